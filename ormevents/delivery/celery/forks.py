"""Which fork of the process this is: a counter the worker's per-process state compares, instead
of ``os.getpid()`` (a system call) on every use.

``os.register_at_fork`` bumps it in each child (billiard's prefork pool, ``multiprocessing``,
``os.fork``), so state made before a fork is made again in the child on first use.

Example::

    made_in = generation()
    ...
    if made_in != generation():   # forked since: the parent's clients and threads are not ours
        ...
"""

from __future__ import annotations

import os

_forks = 0


def generation() -> int:
    """How many forks this process descends through (0 in the process that imported this)."""
    return _forks


def _forked() -> None:
    global _forks
    _forks += 1


os.register_at_fork(after_in_child=_forked)
