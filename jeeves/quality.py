"""Live quality: how precise the alerts really are, from the user's own verdicts on them.

The model card's precision is an offline estimate on the Enron corpus; the user's inbox is
not Enron. When the user marks alerts right or wrong (``jeeves label ID 0|1``, or a "0" reply to
the text), the share of
alerts they confirmed over the last 30 days is the live precision — shown next to the offline
estimate so drift shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from jeeves.clock import utc_now
from jeeves.storage import Store

#: Label sources that are the user's judgement (not the shipped corpus).
USER_SOURCES = ("cli", "review", "web", "sms", "imap-folder", "imap-keyword", "gmail-label")


@dataclass(frozen=True)
class LiveQuality:
    days: int
    alerts: int  # alerts sent in the window
    judged: int  # of those, labelled by the user
    confirmed: int  # of those, labelled "needs a place"

    @property
    def precision(self) -> float | None:
        return self.confirmed / self.judged if self.judged else None


def live_quality(store: Store, *, days: int = 30, now: datetime | None = None) -> LiveQuality:
    since = (now or utc_now()) - timedelta(days=days)
    from jeeves.storage.outbox.alerts import sent_alert_verdicts

    verdicts = [verdict for _, verdict in sent_alert_verdicts(store, USER_SOURCES, since=since)]
    judged = [v for v in verdicts if v is not None]
    return LiveQuality(days=days, alerts=len(verdicts), judged=len(judged), confirmed=sum(judged))


def offline_precision(card: dict, trade_off: str | None = None) -> float | None:
    """The model card's cross-validated precision at its threshold, when it has one.

    For a card with inbox operating points, the precision an ordinary inbox gets at the chosen
    trade-off (comparable with live precision); otherwise the corpus figure.
    """
    point = (card.get("operating_points") or {}).get(trade_off or card.get("trade_off") or "")
    if point and (point.get("cross_validated") or {}).get("precision") is not None:
        return float(point["cross_validated"]["precision"])
    cv = card.get("cv") or {}
    at = cv.get("at_threshold_cross_validated") or cv.get("at_threshold_in_sample") or {}
    value = at.get("precision")
    return float(value) if value is not None else None
