"""What the SMS replies ask of the outbox: which texts went out, and the one help text.

A reply is applied in one transaction with its SID row (``jeeves.storage.replies``), so these
queries take that transaction's session rather than opening their own; ``first_text_at`` is
the exception, read before any reply is handled.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jeeves.clock import as_utc
from jeeves.storage.schema import DigestEntry, OutboxEntry, OutboxKind, OutboxStatus

if TYPE_CHECKING:
    from jeeves.storage.engine import Database

#: The texts a reply can answer (a help text is never answered).
_ANSWERABLE = (OutboxKind.ALERT, OutboxKind.DIGEST)


class SentText(NamedTuple):
    kind: str
    message_pk: int | None


def first_text_at(db: "Database", recipient: str) -> datetime | None:
    """When Jeeves first texted ``recipient`` (alert or digest): no reply can be older."""
    with db.session() as s:
        return as_utc(s.scalar(
            select(func.min(OutboxEntry.sent_at)).where(
                OutboxEntry.recipient == recipient, OutboxEntry.status == OutboxStatus.SENT,
                OutboxEntry.kind.in_(_ANSWERABLE))
        ))


def was_texted_about(s: Session, message_pk: int) -> bool:
    """Whether ``message_pk`` was the subject of an alert or listed in a digest that went out."""
    alerted = s.scalar(select(OutboxEntry.id).where(OutboxEntry.message_pk == message_pk,
                                                    OutboxEntry.kind == OutboxKind.ALERT).limit(1))
    listed = s.scalar(select(DigestEntry.id).where(DigestEntry.message_pk == message_pk,
                                                   DigestEntry.outbox_id.is_not(None)).limit(1))
    return alerted is not None or listed is not None


def newest_text_before(s: Session, recipient: str, when: datetime) -> SentText | None:
    """The newest alert or digest sent to ``recipient`` at or before ``when``."""
    found = s.execute(
        select(OutboxEntry.kind, OutboxEntry.message_pk)
        .where(OutboxEntry.recipient == recipient, OutboxEntry.status == OutboxStatus.SENT,
               OutboxEntry.kind.in_(_ANSWERABLE), OutboxEntry.sent_at <= when)
        .order_by(OutboxEntry.sent_at.desc(), OutboxEntry.id.desc())
        .limit(1)
    ).first()
    return SentText(found.kind, found.message_pk) if found is not None else None


def help_queued_since(s: Session, since: datetime) -> bool:
    """Whether a help text was queued at or after ``since`` (at most one a day is sent)."""
    return s.scalar(
        select(OutboxEntry.id).where(OutboxEntry.kind == OutboxKind.HELP, OutboxEntry.created_at >= since).limit(1)
    ) is not None


def queue_help(s: Session, db: "Database", *, dedupe_key: str, body: str, now: datetime) -> int | None:
    """Queue one help text (insert-if-absent on ``dedupe_key``); its outbox id, or None if it was there."""
    return s.execute(
        db.insert(OutboxEntry)
        .values(dedupe_key=dedupe_key, kind=OutboxKind.HELP, message_pk=None, conversation_key="",
                status=OutboxStatus.PENDING, body=body, created_at=now)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(OutboxEntry.id)
    ).scalar()
