"""``ormevents web``: serve the dashboard with uvicorn (``pip install 'ormevents[web]'``).

It binds to 127.0.0.1 unless told otherwise, and refuses any other interface without
authentication (``--token`` / ``ORMEVENTS_WEB_TOKEN``, or ``--basic-auth user:password`` /
``ORMEVENTS_WEB_BASIC_AUTH``): exit 2 and one line saying so. With a token it prints the link
to open once (``http://host:port/?token=...``); the browser then keeps a session cookie.

Example::

    ormevents --redis-url redis://localhost:6379/0 --queue shop:events web
    ormevents web --host 0.0.0.0 --port 8765 --token "$(python -c 'import secrets; print(secrets.token_urlsafe())')"
"""

from __future__ import annotations

import sys

import click

from .plumbing import EXIT_USAGE, Connection


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="interface to bind (non-local needs auth)")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option("--token", envvar="ORMEVENTS_WEB_TOKEN", default=None,
              help="require this token (16+ characters) [env ORMEVENTS_WEB_TOKEN]")
@click.option("--basic-auth", envvar="ORMEVENTS_WEB_BASIC_AUTH", default=None,
              help="require HTTP basic auth, user:password [env ORMEVENTS_WEB_BASIC_AUTH]")
@click.option("--refresh", default=5.0, show_default=True, type=click.FloatRange(0, 3600),
              help="seconds between live updates of a page (0: off)")
@click.pass_obj
def web(conn: Connection, host: str, port: int, token: str | None, basic_auth: str | None, refresh: float) -> None:
    """Serve the web dashboard of this queue (failed jobs, events, delayed events, workers)."""
    from ...errors import ConfigurationError

    try:
        import uvicorn

        from ..web.app import create_app
        from ..web.security import WebAuth, check_bind
    except ImportError as exc:
        click.echo(f"error: the dashboard needs the web extra ({exc.name} is missing): pip install 'ormevents[web]'",
                   err=True)
        sys.exit(EXIT_USAGE)
    try:
        settings = conn.settings  # checks the URLs
        auth = WebAuth.from_options(token, basic_auth)
        check_bind(host, auth)
    except ConfigurationError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    app = create_app(settings, auth=auth, refresh=refresh)
    shown = f"[{host}]" if ":" in host else host
    link = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    click.echo(f"ormevents dashboard for queue {settings.queue_name}: {link}", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=False)
