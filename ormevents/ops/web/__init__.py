"""The web dashboard: failed jobs, events, delayed events and the queue at a glance (Starlette,
Jinja2 templates, a little vendored htmx; ``pip install 'ormevents[web]'``).

``app.py`` assembles the ASGI app, ``views.py`` serves the pages (GET, read only),
``actions.py`` the state changes (confirm with GET, act with a CSRF-checked POST),
``security.py`` the authentication, CSRF and bind rules, ``reads.py`` the Redis reads and
``render.py`` the templates' helpers and the chart.

Imported by :mod:`ormevents.web` (the public entry point) and the ``ormevents web`` command
only; nothing in the library imports it, and ``import ormevents`` never loads Starlette.
"""
