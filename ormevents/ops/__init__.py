"""Operating ormevents: the ``ormevents`` command line (:mod:`.cli`); the dashboard joins it here.

Nothing in the library imports this package; it imports delivery, jobs and handlers to show and operate them.
"""
