"""Who may use the dashboard, and how its state-changing forms are protected.

* **Binding**: :func:`check_bind` refuses a non-loopback interface unless authentication is
  configured (``ormevents web --host 0.0.0.0`` without ``--token``/``--basic-auth`` exits).
* **Authentication** (:class:`WebAuth`): a token (``Authorization: Bearer <token>``, or once as
  ``?token=<token>`` in a browser, which sets an HttpOnly cookie holding an HMAC of it, never the
  token, and redirects to the same page without it), HTTP basic (``user:password``), or the host
  app's own (``host_auth=True``: mounted inside an app that authenticates its users). With none
  of them, only requests from a loopback address are served (403 otherwise), even when the
  app is mounted in a server that listens on every interface.
* **CSRF**: every state change is a POST whose form carries ``csrf_token``, an HMAC of the
  browser's random ``ormevents_csrf`` cookie (SameSite=Strict, HttpOnly) under the app's secret;
  a POST without it, or with another one, is refused with 403 and changes nothing. GET requests
  never change anything.
* Every response says ``X-Frame-Options: DENY``, ``Content-Security-Policy`` (scripts and styles
  from the dashboard itself only), ``Referrer-Policy: no-referrer`` and ``Cache-Control: no-store``.

Imported by :mod:`ormevents.ops.web.app` and the ``ormevents web`` command.

Example::

    auth = WebAuth.from_options(token=None, basic_auth="ops:s3cret")
    check_bind("0.0.0.0", auth)          # fine: basic auth is configured
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from ...errors import ConfigurationError

SESSION_COOKIE = "ormevents_session"
CSRF_COOKIE = "ormevents_csrf"
CSRF_FIELD = "csrf_token"
HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'",
}


def is_loopback(host: str) -> bool:
    """True for ``localhost``, ``127.0.0.0/8`` and ``::1``; False for every other name or address."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


@dataclass(frozen=True)
class WebAuth:
    """The dashboard's authentication: ``token``, ``basic`` (user, password), or ``host_auth``
    (the host app authenticates before the dashboard sees the request)."""

    token: str | None = None
    basic: tuple[str, str] | None = None
    host_auth: bool = False

    @property
    def configured(self) -> bool:
        """True if anything authenticates requests."""
        return bool(self.token or self.basic or self.host_auth)

    @classmethod
    def from_options(cls, token: str | None = None, basic_auth: str | None = None,
                     host_auth: bool = False) -> WebAuth:
        """From the command line's ``--token`` and ``--basic-auth user:password``;
        :class:`~ormevents.errors.ConfigurationError` for an unusable value."""
        if token is not None and len(token) < 16:
            raise ConfigurationError("the dashboard token must have at least 16 characters "
                                     "(python -c 'import secrets; print(secrets.token_urlsafe())')")
        basic = None
        if basic_auth:
            user, sep, password = basic_auth.partition(":")
            if not sep or not user or not password:
                raise ConfigurationError("--basic-auth takes user:password (both non-empty)")
            basic = (user, password)
        return cls(token or None, basic, host_auth)


def check_bind(host: str, auth: WebAuth) -> None:
    """Raise :class:`~ormevents.errors.ConfigurationError` if ``host`` is not a loopback address
    and ``auth`` configures no token and no basic auth (one line that says what to do)."""
    if not is_loopback(host) and not (auth.token or auth.basic):
        raise ConfigurationError(
            f"refusing to serve the dashboard on {host!r} without authentication: anyone who can reach it "
            "could retry and remove jobs; pass --token (or ORMEVENTS_WEB_TOKEN) or --basic-auth user:password, "
            "or bind to 127.0.0.1")


def _sign(secret: bytes, value: str) -> str:
    return hmac.new(secret, value.encode(), hashlib.sha256).hexdigest()


class Guard(BaseHTTPMiddleware):
    """Authentication, the CSRF cookie and the security headers (see module doc)."""

    def __init__(self, app: Any, auth: WebAuth, secret: bytes) -> None:
        super().__init__(app)
        self.auth = auth
        self.secret = secret
        self.session = _sign(secret, f"session:{auth.token}") if auth.token else ""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        refused = self._authenticate(request)
        if refused is not None:
            return self._finish(request, refused, None)
        cookie = request.cookies.get(CSRF_COOKIE, "")
        fresh = None if len(cookie) == 43 else secrets.token_urlsafe(32)  # 32 random bytes are 43 characters
        request.state.csrf = _sign(self.secret, f"csrf:{fresh or cookie}")
        request.state.csrf_cookie = fresh or cookie
        return self._finish(request, await call_next(request), fresh)

    def _finish(self, request: Request, response: Response, csrf_cookie: str | None) -> Response:
        path = request.scope.get("root_path") or "/"
        if csrf_cookie:
            response.set_cookie(CSRF_COOKIE, csrf_cookie, httponly=True, samesite="strict", path=path)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    def _authenticate(self, request: Request) -> Response | None:
        """``None`` if the request may go on, else the response refusing it."""
        auth = self.auth
        if auth.host_auth:
            return None
        if not (auth.token or auth.basic):
            client = request.client.host if request.client else ""
            if is_loopback(client):
                return None
            return PlainTextResponse("the ormevents dashboard serves only local requests when no authentication "
                                     "is configured (token, basic auth, or host_auth=True)", status_code=403)
        header = request.headers.get("authorization", "")
        if auth.token:
            if hmac.compare_digest(request.cookies.get(SESSION_COOKIE, ""), self.session):
                return None
            if header.lower().startswith("bearer ") and hmac.compare_digest(header[7:].strip(), auth.token):
                return None
            given = request.query_params.get("token")
            if request.method == "GET" and given is not None and hmac.compare_digest(given, auth.token):
                rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
                response = RedirectResponse(request.url.path + (f"?{rest}" if rest else ""), status_code=303)
                response.set_cookie(SESSION_COOKIE, self.session, httponly=True, samesite="strict",
                                    path=request.scope.get("root_path") or "/")
                return response
        if auth.basic and header.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user, password = "", ""
            if hmac.compare_digest(user, auth.basic[0]) & hmac.compare_digest(password, auth.basic[1]):
                return None
        challenge = {"WWW-Authenticate": 'Basic realm="ormevents"'} if auth.basic else {}
        hint = "open the link `ormevents web` printed (?token=...) or send Authorization: Bearer <token>" \
            if auth.token else "log in with the configured user and password"
        return PlainTextResponse(f"authentication required: {hint}", status_code=401, headers=challenge)


async def check_csrf(request: Request) -> dict[str, str]:
    """The POSTed form, if its ``csrf_token`` matches this browser's cookie; else
    :class:`~starlette.exceptions.HTTPException` 403 (nothing is changed)."""
    from starlette.exceptions import HTTPException

    form = await request.form()
    given = form.get(CSRF_FIELD)
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not isinstance(given, str) or not cookie or not hmac.compare_digest(given, request.state.csrf):
        raise HTTPException(403, "missing or invalid CSRF token: reload the page and submit the form again")
    return {key: value for key, value in form.items() if isinstance(value, str)}
