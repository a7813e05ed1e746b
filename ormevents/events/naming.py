"""Names derived from model classes: event prefixes and collection names (pure)."""

from __future__ import annotations

import re

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake_case(name: str) -> str:
    """``OrderItem`` -> ``order_item``; ``HTTPLog`` -> ``http_log``; ``user`` stays ``user``."""
    return _CAMEL_BOUNDARY.sub("_", name).lower()


def plural(word: str) -> str:
    """A simple English plural: ``user`` -> ``users``, ``category`` -> ``categories``."""
    if word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    return word + "s"


def default_collection(class_name: str) -> str:
    """The default collection of a model class: the snake_case plural of its name."""
    head, _, last = snake_case(class_name).rpartition("_")
    return f"{head}_{plural(last)}" if head else plural(last)
