"""Mistakes caught when a model is defined or an id is parsed (issue 10, item 8)."""

from __future__ import annotations

import pytest

from ormevents import (
    EventModel,
    EventModelConfig,
    InvalidIdError,
    ModelDefinitionError,
    OrmEventsError,
    RecordingPublisher,
)


@pytest.mark.parametrize("name", ["save", "update", "delete", "reload", "emit", "get", "find", "changes", "is_new"])
def test_a_field_shadowing_a_model_method_fails_at_class_creation(name: str) -> None:
    namespace = {"__annotations__": {name: "str"}, "__module__": __name__}
    with pytest.raises(ModelDefinitionError, match=f"'{name}'") as caught:
        type("Shadowing", (EventModel,), namespace)
    assert "rename" in str(caught.value)


class Member(EventModel):
    name: str


async def test_get_with_an_invalid_id_raises_invalid_id_error(mock_recorder: RecordingPublisher) -> None:
    with pytest.raises(InvalidIdError, match="not-an-id") as caught:
        await Member.get("not-an-id")
    assert isinstance(caught.value, OrmEventsError) and isinstance(caught.value, ValueError)
    assert type(caught.value) is InvalidIdError, f"got {type(caught.value).__name__}"
    member = await Member.create(name="ann")
    assert await Member.get(str(member.id)) == member


def test_event_data_is_checked_when_the_model_is_defined() -> None:
    class Lean(EventModel):
        email: str

    class Named(EventModel):
        model_config = EventModelConfig(event_data=("email", "email"))
        email: str

    class Whole(EventModel):
        model_config = EventModelConfig(event_data="document")
        email: str

    assert (Lean.__ormevents__.event_fields, Named.__ormevents__.event_fields) == ((), ("email",))
    assert Whole.__ormevents__.event_fields is None
    for bad, match in ((("emial",), "'emial', not fields of the model"), (("id",), "'id'"),
                       ("all", "'changes', 'document' or a tuple"), ((1,), "got \\(1,\\)")):
        with pytest.raises(ModelDefinitionError, match=match):
            class Bad(EventModel):
                model_config = EventModelConfig(event_data=bad)  # type: ignore[typeddict-item]  # under test
                email: str
