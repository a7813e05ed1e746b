"""The lifecycle hook decorators, at the path the docs use: ``from ormevents.hooks import after_update``.

They are defined, with the firing table and the contract of each moment, in
:mod:`ormevents.model.hooks`; they are also importable from ``ormevents`` itself.
"""

from __future__ import annotations

from .model.hooks import (
    after_commit,
    after_create,
    after_delete,
    after_update,
    after_write,
    before_create,
    before_delete,
    before_update,
    before_write,
)

__all__ = ["after_commit", "after_create", "after_delete", "after_update", "after_write", "before_create", "before_delete",
           "before_update", "before_write"]
