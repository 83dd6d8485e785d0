"""The read-only half of the library API: what Jeeves has done, put for a person.

``jeeves status``, the review page (``jeeves web``) and ``jeeves places`` ask these questions;
none of them changes anything or loads the model (the card says what a person needs of it).
``Jeeves`` (``jeeves.service``) inherits them, so the CLI and the page call one object.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from jeeves.clock import utc_now
from jeeves.errors import ModelError

if TYPE_CHECKING:
    from jeeves.config import Settings
    from jeeves.storage import Store


@dataclass
class DayAlerts:
    """One local day of texts: how many were sent, judged by the user, and marked wrong."""

    day: date
    sent: int = 0
    judged: int = 0
    wrong: int = 0

    @property
    def share_wrong(self) -> float | None:
        """The share of the day's texts the user marked wrong (None on a day without texts)."""
        return self.wrong / self.sent if self.sent else None


class Reporting:
    """Questions about what Jeeves did; mixed into ``Jeeves``, which provides ``settings``,
    ``store`` and ``model_card``."""

    settings: "Settings"
    store: "Store"

    def model_summary(self) -> dict:
        """The serving model's version, thresholds at the configured trade-off and its offline
        precision estimate, from its card (nothing unpickled); ``{"error": ...}`` when unusable."""
        from jeeves.quality import offline_precision

        try:
            card = self.model_card()
        except ModelError as exc:
            return {"error": str(exc)}
        trade_off = self.settings.notify.trade_off
        point = (card.get("operating_points") or {}).get(trade_off)
        return {"version": card["version"],
                "threshold": float(point["text_threshold"] if point else card["threshold"]),
                "digest_threshold": float(point["digest_threshold"]) if point else None,
                "trade_off": trade_off if point else None,
                "offline_precision": offline_precision(card, trade_off)}

    def live_quality(self, *, days: int = 30):
        """The share of the last ``days``' alerts the user confirmed (``jeeves.quality``)."""
        from jeeves.quality import live_quality

        return live_quality(self.store, days=days)

    def recent_alerts(self, limit: int = 30):
        """The newest alerts with their outbox state, score and the user's verdict, newest first."""
        from jeeves.quality import USER_SOURCES
        from jeeves.storage.outbox.alerts import recent_alerts

        return recent_alerts(self.store, USER_SOURCES, limit=limit)

    def alerts_per_day(self, *, days: int = 30, now: datetime | None = None) -> list["DayAlerts"]:
        """Texts sent on each of the last ``days`` local days (``notify.timezone``), oldest first,
        with how many of them the user judged and marked wrong; days without texts included."""
        from zoneinfo import ZoneInfo

        from jeeves.quality import USER_SOURCES
        from jeeves.storage.outbox.alerts import sent_alert_verdicts

        zone = ZoneInfo(self.settings.notify.timezone)
        today = (now or utc_now()).astimezone(zone).date()
        first = today - timedelta(days=days - 1)
        since = datetime.combine(first, datetime.min.time(), zone)
        per_day = {first + timedelta(days=i): DayAlerts(first + timedelta(days=i)) for i in range(days)}
        for sent_at, verdict in sent_alert_verdicts(self.store, USER_SOURCES, since=since):
            day = per_day.get(sent_at.astimezone(zone).date())
            if day is not None:
                day.sent += 1
                day.judged += verdict is not None
                day.wrong += verdict == 0
        return list(per_day.values())

    def unsure_queue(self, limit: int = 20):
        """Unlabelled messages the model is least sure about, as ``jeeves label --review`` asks:
        [(StoredMessage, score, threshold)]."""
        return self.store.least_certain_unlabelled(limit)

    def places(self, correspondent: str | None = None) -> list:
        """Where the user met each correspondent (or one, by address), from stored mail between
        them: a list of ``jeeves.places.suggest.CorrespondentPlaces``."""
        from jeeves.places.suggest import learn_places
        from jeeves.storage.places import all_exchanges, exchanged_with

        me = self.settings.user_addresses
        if correspondent:
            return learn_places(exchanged_with(self.store, correspondent, me))
        return learn_places(all_exchanges(self.store, me))

    def status(self) -> dict:
        """Accounts, counts, model version and outbox state, as plain data."""
        store = self.store
        counts = store.counts()
        model_info = self.model_summary()
        live = self.live_quality()
        from jeeves.storage.replies import reply_counts

        replies, opt = reply_counts(store)

        return {
            "database": store.dialect,
            "outbox_problems": [
                {"outbox_id": p.id, "message": p.message_pk, "status": p.status, "attempts": p.attempts,
                 "code": p.error_code, "reason": p.error_message}
                for p in store.outbox.problems()
            ],
            "model": model_info,
            "messages": counts.messages,
            "predictions": counts.predictions,
            "positives": counts.positives,
            "labelled": counts.labels,
            "outbox": counts.outbox,
            "digest_waiting": store.digest_waiting(),
            "sms_replies": {**replies, "opted_out": opt == "STOP"},
            "live_quality": {"days": live.days, "alerts": live.alerts, "judged": live.judged, "confirmed": live.confirmed,
                             "precision": live.precision},
            "accounts": [
                {
                    "name": a.name,
                    "kind": a.kind,
                    "last_sync": a.last_sync_at.isoformat() if a.last_sync_at else None,
                    "last_error": a.last_error,
                }
                for a in store.accounts()
            ],
        }
