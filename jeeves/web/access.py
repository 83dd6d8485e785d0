"""Who may use the page: the holder of the access token printed at start, from the page itself.

- A request whose ``?token=`` equals the process's access token starts a session: a signed,
  HttpOnly, SameSite=Strict cookie (Starlette's ``SessionMiddleware``), then a redirect to the
  same address without the token, so it does not linger in the address bar or history.
- Every other request without that session is refused with 403, static files included.
- A POST is refused (403) unless it comes from the page's own origin (when the browser names
  one, as browsers do for forms) and its form carries the session's CSRF token
  (``checked_form``), so another site open in the same browser cannot label on the user's behalf.

The session's signing key is random per process: restarting ``jeeves web`` logs everyone out.
"""

from __future__ import annotations

import logging
import secrets

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse

log = logging.getLogger(__name__)

SESSION_COOKIE = "jeeves_web"
#: Host names a loopback-bound page answers to (anything else is a DNS-rebinding attempt).
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
REFUSED = "Forbidden: open the address with the token that `jeeves web` printed when it started."


def new_token() -> str:
    return secrets.token_urlsafe(32)


def same_secret(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison that is false for missing values (never "" == "")."""
    if not given or not expected:
        return False
    return secrets.compare_digest(given.encode(), expected.encode())


class AccessGuard(BaseHTTPMiddleware):
    """Token → session exchange, 403 for everyone else, and the Origin check on POST."""

    def __init__(self, app, *, token: str) -> None:
        super().__init__(app)
        self.token = token

    async def dispatch(self, request: Request, call_next):
        given = request.query_params.get("token")
        if given is not None:
            if not same_secret(given, self.token):
                log.warning("web: refused a request with a wrong access token from %s", _client(request))
                return PlainTextResponse(REFUSED, status_code=403)
            request.session["authenticated"] = True
            request.session.setdefault("csrf", new_token())
            clean = request.url.remove_query_params("token")
            return RedirectResponse(clean.path + (f"?{clean.query}" if clean.query else ""), status_code=303)
        if not request.session.get("authenticated"):
            return PlainTextResponse(REFUSED, status_code=403)
        if request.method not in ("GET", "HEAD"):
            origin = request.headers.get("origin")
            if origin is not None and origin != f"{request.url.scheme}://{request.headers.get('host', '')}":
                log.warning("web: refused a %s from another origin (%s)", request.method, origin)
                return PlainTextResponse("Forbidden: this form was not sent from the Jeeves page.", status_code=403)
        return await call_next(request)


async def checked_form(request: Request) -> FormData:
    """The POSTed form, once its CSRF token matches the session's; 403 otherwise."""
    form = await request.form()
    if not same_secret(form.get("csrf"), request.session.get("csrf")):
        log.warning("web: refused a form without a valid CSRF token from %s", _client(request))
        raise HTTPException(403, "Forbidden: the form's security token is missing or stale; reload the page.")
    return form


def csrf_token(request: Request) -> str:
    return request.session.get("csrf", "")


def access_middleware(token: str, host: str) -> list[Middleware]:
    """Outermost first: Host allow-list, the session cookie, then the guard that reads it."""
    allowed = list(LOOPBACK_NAMES) if host in LOOPBACK_NAMES else ["*"]
    return [
        Middleware(TrustedHostMiddleware, allowed_hosts=allowed),
        Middleware(SessionMiddleware, secret_key=new_token(), session_cookie=SESSION_COOKIE,
                   max_age=None, same_site="strict", https_only=False),
        Middleware(AccessGuard, token=token),
    ]


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"
