"""The pages: recent alerts to mark right or wrong, the unsure queue, and how the model is doing.

Every read and every label goes through the ``Jeeves`` object given to ``create_app`` (the same
library API as the CLI); this module holds no SQL. A label is one form POST that answers with a
redirect back to the page (post/redirect/get), so the page works without JavaScript and a reload
never labels twice.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from importlib import resources

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from jeeves.errors import JeevesError
from jeeves.service import Jeeves
from jeeves.web.access import access_middleware, checked_form, csrf_token
from jeeves.web.chart import share_wrong, texts_per_day_svg

log = logging.getLogger(__name__)

#: Alerts listed on the front page, messages in the unsure queue, days in the chart.
ALERTS_SHOWN = 30
UNSURE_SHOWN = 20
CHART_DAYS = 30
#: Characters of an email's new text shown (the rest is in the mail client).
TEXT_SHOWN = 1500
#: Reasons shown per direction, from ``Jeeves.explain``.
REASONS_SHOWN = 5
#: Where a label form may send the browser back to.
PAGES = {"alerts": "/", "unsure": "/unsure"}


def reason_label(feature: str) -> str:
    """A feature name as the page shows it: ``cues__pair:meet+request`` → ``cues · pair:meet+request``."""
    return feature.replace("__", " · ", 1)


def create_app(jeeves: Jeeves, *, token: str, host: str = "127.0.0.1") -> Starlette:
    """The ASGI app serving ``jeeves``'s pages to the holder of ``token``."""
    templates = Jinja2Templates(directory=str(resources.files("jeeves.web") / "templates"))
    templates.env.filters["reason"] = reason_label

    @lru_cache(maxsize=512)  # a page shows the same alerts often; the model version is in the key
    def explained(message_pk: int, model_version: str):
        return jeeves.explain(str(message_pk))

    def explain(message_pk: int):
        try:
            return explained(message_pk, jeeves.model.version)
        except JeevesError as exc:  # a model that cannot load: the page still lists and labels
            log.warning("web: cannot explain message %s: %s", message_pk, exc)
            return None

    def overview(request: Request) -> dict:
        days = jeeves.alerts_per_day(days=CHART_DAYS)
        return {"request": request, "csrf": csrf_token(request), "model": jeeves.model_summary(),
                "live": jeeves.live_quality(), "chart": texts_per_day_svg(days), "share_wrong": share_wrong(days),
                "texts": sum(d.sent for d in days), "chart_days": CHART_DAYS,
                "text_shown": TEXT_SHOWN, "reasons_shown": REASONS_SHOWN}

    def alerts_page(request: Request):
        alerts = jeeves.recent_alerts(ALERTS_SHOWN)
        items = [{"alert": a, "why": explain(a.message_pk)} for a in alerts]
        return templates.TemplateResponse(request, "alerts.html", {**overview(request), "items": items, "page": "alerts"})

    def unsure_page(request: Request):
        queue = jeeves.unsure_queue(UNSURE_SHOWN)
        items = [{"message": m, "score": score, "threshold": threshold, "why": explain(m.id)}
                 for m, score, threshold in queue]
        return templates.TemplateResponse(request, "unsure.html", {**overview(request), "items": items, "page": "unsure"})

    async def label(request: Request):
        form = await checked_form(request)
        try:
            message_pk, value = int(form.get("message", "")), int(form.get("value", ""))
        except ValueError:
            raise HTTPException(400, "Bad request: a label needs a message id and a value 0 or 1.") from None
        if value not in (0, 1):
            raise HTTPException(400, "Bad request: a label is 0 (wrong) or 1 (right).")
        try:
            await run_in_threadpool(jeeves.label, str(message_pk), value, source="web")
        except JeevesError as exc:
            raise HTTPException(404, str(exc)) from None
        log.info("web: message %d labelled %d", message_pk, value)
        target = PAGES.get(str(form.get("back")), "/")
        focus = str(form.get("focus") or "")
        return RedirectResponse(target + (f"#m-{int(focus)}" if focus.isdigit() else ""), status_code=303)

    static = StaticFiles(directory=str(resources.files("jeeves.web") / "static"))
    return Starlette(
        routes=[Route("/", alerts_page), Route("/unsure", unsure_page), Route("/label", label, methods=["POST"]),
                Mount("/static", static, name="static")],
        middleware=access_middleware(token, host),
    )
