"""What storage knows about conversations: a message's references, and alerts already keyed.

The rule that turns these into an alert's conversation key (for the thread window) is a
notification rule and lives in ``jeeves.notify.conversations``; storage records the
references of each message as it is stored, answers the two questions that rule asks
(``ConversationLookup``, inside the transaction that writes the alert), and stores the key
it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from jeeves.parsing import ParsedEmail
from jeeves.storage.schema import OutboxEntry, StoredMessage

#: References kept per message: the root and the nearest ancestors (long chains add nothing).
MAX_REFS = 20


def conversation_refs(parsed: ParsedEmail) -> list[str]:
    """The Message-IDs ``parsed`` answers, root first, without repeats."""
    refs = list(dict.fromkeys([*parsed.references, *([parsed.in_reply_to] if parsed.in_reply_to else [])]))
    refs = [r for r in refs if r != parsed.message_id]
    if len(refs) > MAX_REFS:
        refs = refs[:1] + refs[-(MAX_REFS - 1):]
    return refs


@dataclass(frozen=True)
class ConversationFacts:
    """What the conversation rule reads of a message about to be alerted."""

    message_pk: int
    dedupe_key: str
    #: Message-IDs it answers, root first.
    refs: tuple[str, ...]
    #: Its normalised subject (``messages.thread_key``).
    subject_key: str
    is_reply: bool
    sender_address: str
    recipients: str


@dataclass(frozen=True)
class AlertedPeer:
    """An alert already written for a message with the same subject, and that message's people."""

    conversation_key: str
    sender_address: str
    recipients: str


class ConversationLookup:
    """The rule's questions about alerts already written, asked inside one transaction."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def key_of_referenced(self, facts: ConversationFacts) -> str | None:
        """The conversation of the first alert written for a message ``facts`` references
        (or whose conversation is keyed by one of those references)."""
        refs = list(facts.refs)
        return self._session.scalar(
            select(OutboxEntry.conversation_key)
            .join(StoredMessage, OutboxEntry.message_pk == StoredMessage.id)
            .where(OutboxEntry.message_pk != facts.message_pk, OutboxEntry.conversation_key != "")
            .where(or_(StoredMessage.message_id.in_(refs), OutboxEntry.conversation_key.in_(refs)))
            .order_by(OutboxEntry.id)
            .limit(1)
        )

    def alerted_with_subject(self, facts: ConversationFacts, limit: int) -> Sequence[AlertedPeer]:
        """Up to ``limit`` alerts on other messages with the same normalised subject, newest first."""
        rows = self._session.execute(
            select(OutboxEntry.conversation_key, StoredMessage.sender_address, StoredMessage.recipients)
            .join(StoredMessage, OutboxEntry.message_pk == StoredMessage.id)
            .where(StoredMessage.thread_key == facts.subject_key, OutboxEntry.message_pk != facts.message_pk)
            .where(OutboxEntry.conversation_key != "")
            .order_by(OutboxEntry.id.desc())
            .limit(limit)
        ).all()
        return [AlertedPeer(key, sender or "", recipients or "") for key, sender, recipients in rows]


#: Decides an alert's conversation key (``jeeves.notify.conversations.conversation_key``).
ConversationRule = Callable[[ConversationFacts, ConversationLookup], str]


def own_conversation(facts: ConversationFacts, lookup: ConversationLookup) -> str:
    """The rule used when none is given: every alert is a conversation of its own."""
    return facts.dedupe_key


def facts_of(message: StoredMessage) -> ConversationFacts:
    return ConversationFacts(
        message_pk=message.id, dedupe_key=message.dedupe_key, refs=tuple(message.refs.split()),
        subject_key=message.thread_key or "", is_reply=bool(message.is_reply),
        sender_address=message.sender_address or "", recipients=message.recipients or "",
    )
