"""Alerts as the user sees them: what was texted, the score behind it and the user's verdict.

Read-only queries for the review page (``jeeves web``). A verdict is the newest label from one of
the given label sources (the user's own, see ``jeeves.quality.USER_SOURCES``): relabelling
replaces it, exactly as live precision counts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Sequence

from sqlalchemy import func, select

from jeeves.clock import as_utc
from jeeves.storage.schema import Label, OutboxEntry, OutboxKind, OutboxStatus, Prediction, StoredMessage

if TYPE_CHECKING:
    from jeeves.storage.engine import Database


@dataclass(frozen=True)
class AlertRecord:
    """One alert outbox row with its message, the prediction that raised it and the verdict."""

    outbox_id: int
    message_pk: int
    status: str  # the outbox state: pending, sending, sent, failed, in_doubt, suppressed
    created_at: datetime
    sent_at: datetime | None
    subject: str
    sender: str
    new_text: str
    score: float | None
    threshold: float | None
    model_version: str | None
    #: The user's newest verdict: 1 right (needs a place), 0 wrong, None not judged yet.
    verdict: int | None
    verdict_source: str | None


def _newest_verdicts(sources: Sequence[str]):
    """Subquery: the id of each message's newest label from ``sources``."""
    return (
        select(Label.message_pk, func.max(Label.id).label("label_id"))
        .where(Label.source.in_(sources))
        .group_by(Label.message_pk)
        .subquery()
    )


def recent_alerts(store: "Database", sources: Sequence[str], *, limit: int = 30) -> list[AlertRecord]:
    """The newest alerts (whatever their outbox state), newest first."""
    newest = _newest_verdicts(sources)
    with store.session() as s:
        rows = s.execute(
            select(OutboxEntry, StoredMessage, Prediction.score, Prediction.threshold, Prediction.model_version,
                   Label.value, Label.source)
            .join(StoredMessage, StoredMessage.id == OutboxEntry.message_pk)
            .outerjoin(Prediction, Prediction.id == OutboxEntry.prediction_id)
            .outerjoin(newest, newest.c.message_pk == OutboxEntry.message_pk)
            .outerjoin(Label, Label.id == newest.c.label_id)
            .where(OutboxEntry.kind == OutboxKind.ALERT)
            .order_by(OutboxEntry.id.desc())
            .limit(limit)
        ).all()
        return [
            AlertRecord(
                outbox_id=entry.id, message_pk=message.id, status=entry.status,
                created_at=as_utc(entry.created_at), sent_at=as_utc(entry.sent_at),
                subject=message.subject, sender=message.sender, new_text=message.new_text,
                score=score, threshold=threshold, model_version=version, verdict=value, verdict_source=source,
            )
            for entry, message, score, threshold, version, value, source in rows
        ]


def sent_alert_verdicts(store: "Database", sources: Sequence[str], *, since: datetime) -> list[tuple[datetime, int | None]]:
    """(sent_at, verdict) of every alert texted since ``since``, oldest first."""
    newest = _newest_verdicts(sources)
    with store.session() as s:
        rows = s.execute(
            select(OutboxEntry.sent_at, Label.value)
            .outerjoin(newest, newest.c.message_pk == OutboxEntry.message_pk)
            .outerjoin(Label, Label.id == newest.c.label_id)
            .where(OutboxEntry.kind == OutboxKind.ALERT, OutboxEntry.status == OutboxStatus.SENT, OutboxEntry.sent_at >= since)
            .order_by(OutboxEntry.sent_at)
        ).all()
        return [(as_utc(sent_at), value) for sent_at, value in rows]
