"""SMS replies: each one applied exactly once, remembered by its Twilio SID.

A reply ("0", "#7 0", "STOP", anything) is read from Twilio's Messages list, possibly many
times (every poll re-lists a safety overlap; several daemons may poll one PostgreSQL). What
keeps it applied once is ``sms_replies.sid``: unique, and inserted (``ON CONFLICT DO NOTHING``)
in the *same transaction* as what the reply does — the label it records, or the help text it
queues in the outbox. So a crash before the commit leaves neither (the next poll applies the
reply), a crash after it leaves both (the next poll finds the SID and does nothing), and two
pollers racing on one reply see exactly one insert succeed.

On PostgreSQL the transaction also takes an advisory lock, which makes "at most one help text
a day" exact across daemons; SQLite has one writer at a time anyway.

Only facts are kept: the SID, when it was received, a masked number, and what it did. The text
of a reply is never stored (from a stranger, it is not even logged).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from jeeves.clock import as_utc
from jeeves.storage.outbox import replies as outbox
from jeeves.storage.schema import Label, OutboxKind, SmsReply

#: Serialises reply handling across daemons sharing one PostgreSQL database.
_ADVISORY_KEY = 7271015

#: What a recorded reply did (``sms_replies.outcome``).
LABELLED, KEYWORD, HELP_QUEUED, UNCLEAR, STRANGER = "labelled", "keyword", "help", "unclear", "stranger"


@dataclass(frozen=True)
class ReceivedReply:
    """An inbound SMS as listed by Twilio (the body is only read, never stored)."""

    sid: str
    sender: str
    received_at: datetime
    body: str


@dataclass(frozen=True)
class ReplyIntent:
    """What a reply asks for, as ``jeeves.notify.replies.parse_reply`` reads it.

    ``kind``: ``label`` (``value``, and ``message_pk`` when it names one), ``keyword``
    (``keyword``: Twilio's STOP/START/HELP, never a label), ``stranger`` (not the user's
    number) or ``unclear``.
    """

    kind: str
    value: int | None = None
    message_pk: int | None = None
    keyword: str | None = None


@dataclass(frozen=True)
class AppliedReply:
    """What applying one reply did."""

    sid: str
    outcome: str
    message_pk: int | None = None
    value: int | None = None
    outbox_id: int | None = None
    detail: str | None = None


def reply_watermark(store) -> datetime | None:
    """When the newest reply handled so far was received (None before the first)."""
    with store.session() as s:
        return as_utc(s.scalar(select(func.max(SmsReply.received_at))))


def apply_reply(
    store,
    reply: ReceivedReply,
    intent: ReplyIntent,
    *,
    masked_sender: str,
    help_body: str,
    help_every: timedelta,
    now: datetime,
    on_step: Callable[[str, str], None] | None = None,
) -> AppliedReply | None:
    """Apply ``reply`` once: record its SID and do what ``intent`` asks, in one transaction.

    Returns None when the SID was already recorded (by an earlier poll or another daemon).
    A label needs an alert to apply to: the one ``intent`` names (any message Jeeves texted
    about, in an alert or a sent digest), else the newest text sent to the sender before the
    reply — which must be an alert, since a bare "0" after a digest does not say which entry.
    Anything that cannot be applied gets the help text, at most once per ``help_every`` and
    only while the reply is fresh (an old reply read late is answered by nobody).
    """
    with store.session() as s:
        if store.dialect == "postgresql":
            s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_KEY})
        reply_id = s.execute(
            store.insert(SmsReply)
            .values(sid=reply.sid, received_at=reply.received_at, sender=masked_sender, outcome=UNCLEAR, created_at=now)
            .on_conflict_do_nothing(index_elements=["sid"])
            .returning(SmsReply.id)
        ).scalar()
        if reply_id is None:
            return None
        result = _apply(s, store, reply, intent, help_body=help_body, help_every=help_every, now=now)
        s.execute(
            update(SmsReply).where(SmsReply.id == reply_id).values(
                outcome=result.outcome, detail=result.detail, message_pk=result.message_pk, value=result.value,
                label_id=result.label_id, outbox_id=result.outbox_id,
            )
        )
        if on_step is not None:
            on_step("record-uncommitted", reply.sid)
    return AppliedReply(reply.sid, result.outcome, result.message_pk, result.value, result.outbox_id, result.detail)


@dataclass
class _Result:
    outcome: str
    detail: str | None = None
    message_pk: int | None = None
    value: int | None = None
    label_id: int | None = None
    outbox_id: int | None = None


def _apply(s: Session, store, reply: ReceivedReply, intent: ReplyIntent, *, help_body: str, help_every: timedelta,
           now: datetime) -> _Result:
    if intent.kind == "stranger":
        return _Result(STRANGER)
    if intent.kind == "keyword":
        return _Result(KEYWORD, detail=intent.keyword)
    why = "not understood"
    if intent.kind == "label":
        target, why = _target(s, reply, intent.message_pk)
        if target is not None:
            label = Label(message_pk=target, value=intent.value, source="sms", created_at=now)
            s.add(label)
            s.flush()
            return _Result(LABELLED, message_pk=target, value=intent.value, label_id=label.id)
    if reply.received_at < now - help_every:
        return _Result(UNCLEAR, detail=f"{why}; too old to answer")
    if outbox.help_queued_since(s, now - help_every):
        return _Result(UNCLEAR, detail=f"{why}; help already sent")
    outbox_id = outbox.queue_help(s, store, dedupe_key=f"help:{reply.sid}", body=help_body, now=now)
    return _Result(HELP_QUEUED, detail=why, outbox_id=outbox_id)


def _target(s: Session, reply: ReceivedReply, named: int | None) -> tuple[int | None, str]:
    """The message a label reply applies to, or None and why not."""
    if named is not None:
        if not outbox.was_texted_about(s, named):
            return None, f"#{named} was never texted"
        return named, ""
    newest = outbox.newest_text_before(s, reply.sender, reply.received_at)
    if newest is None:
        return None, "no text before it"
    if newest.kind != OutboxKind.ALERT:
        return None, "answers a digest without naming an entry"
    return newest.message_pk, ""


def reply_counts(store) -> tuple[dict[str, int], str | None]:
    """Replies handled per outcome, and the newest opt keyword (``STOP`` means Twilio refuses
    every text until ``START``), for ``jeeves status``."""
    with store.session() as s:
        counts = dict(s.execute(select(SmsReply.outcome, func.count()).group_by(SmsReply.outcome)).all())
        keyword = s.scalar(
            select(SmsReply.detail).where(SmsReply.outcome == KEYWORD, SmsReply.detail.in_(("STOP", "START")))
            .order_by(SmsReply.received_at.desc(), SmsReply.id.desc()).limit(1)
        )
    return counts, keyword
