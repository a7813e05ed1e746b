"""A handler whose name and pattern text hold Rich markup (``ormevents handlers list`` must print them as is)."""

from __future__ import annotations

from ormevents import Event
from ormevents.handlers import event_handler


@event_handler("odd.event", name="[bold]odd[/] [red]handler")
def odd(event: Event) -> None:
    """Does nothing; only its name matters."""
