"""The model layer: ``EventModel`` (:mod:`.base`), class-level reads (:mod:`.query`), hooks,
definition-time checks (:mod:`.meta`) and :mod:`.storage`, the one place that talks to MongoDB.

Imported only by the public API (``from ormevents import EventModel``); the delivery side never imports it.
"""
