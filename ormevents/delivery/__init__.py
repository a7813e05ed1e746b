"""Delivery: the :class:`~.base.Publisher` protocol and its implementations — ``celery/`` (broker,
worker, schedule), :mod:`.eager` (in-process), :mod:`.recording` — plus their metrics and tracing.

The runtime picks one; the model layer sees only the protocol. Delivery never imports the model layer.
"""
