"""The model the fault scenarios write (their writers import it, in-process or in a subprocess)."""

from __future__ import annotations

from ormevents import EventModel


class FaultNote(EventModel):
    """One write per note; its ``fault_note.created`` event is counted by :mod:`tests.faults.fault_handlers`."""

    _collection = "fault_notes"
    run: str
    i: int
