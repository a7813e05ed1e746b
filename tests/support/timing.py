"""Timing bounds shared by the delivery tests.

Lower bounds are exact (an event never runs before it is due); upper bounds allow for the
scheduler's 50 ms poll plus the scheduling noise of a loaded 2-core CI machine, which has
delayed a wake-up by ~70 ms on its own. Typical lateness measured here is 10-60 ms.
"""

LATE_SLACK = 0.3
"""Seconds a delayed event or a retry may run after its due time in an integration test."""
