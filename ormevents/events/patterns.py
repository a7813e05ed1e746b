"""Event-name patterns handlers subscribe with (pure).

Syntax, segment by segment (segments are separated by ``.`` as in event names):

* a literal segment (``user``, ``created``) matches itself;
* ``*`` matches exactly one segment (as in AMQP topics): ``user.*`` matches ``user.created``
  but not ``user.profile.updated``; ``*.deleted`` matches ``order.deleted``;
* ``**`` matches one or more segments: ``user.**`` matches ``user.profile.updated``;
* a lone ``*`` (or ``**``) matches every event.

Anything else (empty segments, upper case, ``user*``) can never match a valid event name and
is rejected with :class:`~ormevents.errors.HandlerRegistrationError`.

Example::

    >>> p = Pattern.compile("user.*")
    >>> p.matches("user.created"), p.matches("user.profile.updated"), p.matches("order.created")
    (True, False, False)
    >>> Pattern.compile("*.deleted").matches("order.deleted")
    True
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import HandlerRegistrationError

_SEGMENT = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class Pattern:
    """A compiled event-name pattern; build with :meth:`compile`."""

    text: str
    _regex: re.Pattern[str]

    @classmethod
    def compile(cls, text: object) -> Pattern:
        """Parse ``text``; raise :class:`HandlerRegistrationError` if it can never match."""
        if not isinstance(text, str) or not text:
            raise HandlerRegistrationError(f"an event pattern must be a non-empty string, got {text!r}")
        if text in ("*", "**"):
            return cls(text, re.compile(r".+"))
        parts: list[str] = []
        for segment in text.split("."):
            if segment == "*":
                parts.append(r"[a-z][a-z0-9_]*")
            elif segment == "**":
                parts.append(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*")
            elif _SEGMENT.fullmatch(segment):
                parts.append(re.escape(segment))
            else:
                raise HandlerRegistrationError(
                    f"invalid event pattern {text!r}: segment {segment!r} is not a lowercase name, "
                    "'*' (one segment) or '**' (one or more segments)"
                )
        if len(parts) < 2:
            raise HandlerRegistrationError(
                f"invalid event pattern {text!r}: event names have at least two segments "
                "(e.g. 'user.created', 'user.*'); use '*' alone to match everything"
            )
        return cls(text, re.compile(r"\.".join(parts)))

    def matches(self, name: str) -> bool:
        """True if the event name ``name`` matches this pattern."""
        return self._regex.fullmatch(name) is not None

    @property
    def is_exact(self) -> bool:
        """True for a pattern without wildcards."""
        return "*" not in self.text
