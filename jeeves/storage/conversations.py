"""Which conversation an alert belongs to, so that the thread window groups real conversations.

Mail clients thread by References/In-Reply-To (RFC 5322 §3.6.4) and fall back on the subject
only where those headers are missing. The subject alone is not enough: unrelated people share
generic subjects ("Meeting", "lunch?", none at all), and grouping by it would silence the second
person's request for the whole window.

Rules, applied to each positive as its outbox row is written (inside that transaction):

1. A message that references others joins the conversation of an alert already written for a
   referenced message, else its root's (the first reference), so that replies arriving before
   their root, or roots that were never alerted, still line up.
2. A reply without references (Outlook and Lotus Notes often send none) joins the newest alerted
   conversation with the same normalised subject that shares its people: its sender took part
   in it, or that conversation's sender is among its recipients.
3. Anything else starts its own conversation, keyed by its Message-ID (or content hash).
"""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from jeeves.parsing import ParsedEmail
from jeeves.storage.schema import OutboxEntry, StoredMessage

#: References kept per message: the root and the nearest ancestors (long chains add nothing).
MAX_REFS = 20
#: Alerted messages with the same subject examined for a shared participant (rule 2).
SUBJECT_CANDIDATES = 50


def conversation_refs(parsed: ParsedEmail) -> list[str]:
    """The Message-IDs ``parsed`` answers, root first, without repeats."""
    refs = list(dict.fromkeys([*parsed.references, *([parsed.in_reply_to] if parsed.in_reply_to else [])]))
    refs = [r for r in refs if r != parsed.message_id]
    if len(refs) > MAX_REFS:
        refs = refs[:1] + refs[-(MAX_REFS - 1):]
    return refs


def conversation_key(session: Session, message: StoredMessage) -> str:
    """The thread-window key for an alert on ``message`` (see the module docstring)."""
    refs = message.refs.split()
    if refs:
        known = session.scalar(
            select(OutboxEntry.thread_key)
            .join(StoredMessage, OutboxEntry.message_pk == StoredMessage.id)
            .where(OutboxEntry.message_pk != message.id, OutboxEntry.thread_key != "")
            .where(or_(StoredMessage.message_id.in_(refs), OutboxEntry.thread_key.in_(refs)))
            .order_by(OutboxEntry.id)
            .limit(1)
        )
        return known or refs[0]
    if message.is_reply and message.thread_key:
        people = _people(message)
        candidates = session.execute(
            select(OutboxEntry.thread_key, StoredMessage.sender_address, StoredMessage.recipients)
            .join(StoredMessage, OutboxEntry.message_pk == StoredMessage.id)
            .where(StoredMessage.thread_key == message.thread_key, OutboxEntry.message_pk != message.id)
            .where(OutboxEntry.thread_key != "")
            .order_by(OutboxEntry.id.desc())
            .limit(SUBJECT_CANDIDATES)
        ).all()
        for key, sender, recipients in candidates:
            if message.sender_address in _split(recipients) | {sender} or sender in people:
                return key
    return message.dedupe_key


def _people(message: StoredMessage) -> set[str]:
    return _split(message.recipients) | {message.sender_address}


def _split(recipients: str) -> set[str]:
    return {r.strip().lower() for r in (recipients or "").split(",") if r.strip()}
