"""A small shop built on ormevents: users with a status lifecycle, orders, and the handlers
that react to their events (emails, counters, cache, audit, reminders, a flaky payment
gateway and a carrier API that always fails). ``python -m example_app demo`` runs it."""
