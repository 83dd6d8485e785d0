"""``jeeves web``: a small local page to review alerts and correct Jeeves from a browser.

The promise: everything the page shows and every label it records goes through the library
API (``jeeves.service.Jeeves``), exactly as the CLI does — a click on "wrong" is
``Jeeves.label(id, 0, source="web")``, and it counts in live precision and the next retrain like
``jeeves label ID 0``. The page is for its owner only: it listens on 127.0.0.1 by default and
refuses (403) every request that does not carry the random access token printed at start (as
Jupyter does) or the session cookie that token sets; a label is recorded only from a form that
carries the session's CSRF token and comes from the page's own origin.

Why Starlette + Jinja2 served by uvicorn: Starlette is a small, well-kept ASGI toolkit whose
parts are exactly what this needs and no more — a signed-cookie session (``SessionMiddleware``,
itsdangerous), a Host allow-list against DNS rebinding (``TrustedHostMiddleware``), Jinja2
templates with autoescaping, static files — and uvicorn serves it from a socket we bind
ourselves, so ``--port 0`` and tests on a free port just work. No JavaScript build step: the
pages are server-rendered HTML forms that work without scripts; a few lines of plain JS add the
keyboard shortcuts.

Modules: ``access`` (token, session, CSRF, origin), ``chart`` (the texts-per-day SVG),
``pages`` (routes and templates), ``server`` (binding and running).
"""

from jeeves.web.pages import create_app
from jeeves.web.server import WebServer, serve

__all__ = ["WebServer", "create_app", "serve"]
