"""``python -m ormevents``: the ``ormevents`` command line (see :mod:`ormevents.ops.cli`)."""

from .ops.cli import main

main()
