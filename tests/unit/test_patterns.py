"""Event-name patterns (pure)."""

from __future__ import annotations

import pytest

from ormevents.errors import HandlerRegistrationError
from ormevents.events.patterns import Pattern

CASES = [
    ("user.created", "user.created", True),
    ("user.created", "user.updated", False),
    ("user.created", "user.created.extra", False),
    ("user.*", "user.created", True),
    ("user.*", "user.profile.updated", False),
    ("user.*", "users.created", False),
    ("*.deleted", "order.deleted", True),
    ("*.deleted", "order.item.deleted", False),
    ("*.deleted", "order.deleted_soft", False),
    ("user.**", "user.profile.updated", True),
    ("user.**", "user.created", True),
    ("**.deleted", "order.item.deleted", True),
    ("order.*.paid", "order.card.paid", True),
    ("order.*.paid", "order.paid", False),
    ("*", "anything.at_all.deep", True),
    ("**", "a.b", True),
]


@pytest.mark.parametrize(("pattern", "name", "expected"), CASES)
def test_matching(pattern: str, name: str, expected: bool) -> None:
    assert Pattern.compile(pattern).matches(name) is expected


@pytest.mark.parametrize("bad", ["", "user", "User.created", "user..created", "user.crea*", "user.*x", ".user",
                                 "user.created.", "user created", "user.#", 5, None])
def test_patterns_that_can_never_match_are_rejected(bad: object) -> None:
    with pytest.raises(HandlerRegistrationError):
        Pattern.compile(bad)


def test_regex_characters_are_literal() -> None:
    with pytest.raises(HandlerRegistrationError):
        Pattern.compile("user.(a|b)")
    assert Pattern.compile("user.created").is_exact and not Pattern.compile("user.*").is_exact
