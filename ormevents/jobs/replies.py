"""Redis reply values as text: clients made with or without ``decode_responses`` read alike.

Example::

    >>> reply_text(b"running"), reply_text("running"), reply_text(3)
    ('running', 'running', '3')
"""

from __future__ import annotations

from typing import Any


def reply_text(value: Any) -> str:
    """A Redis reply item (``bytes``, ``str`` or a number) as ``str``."""
    return value.decode() if isinstance(value, bytes) else str(value)
