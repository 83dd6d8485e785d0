"""Which conversation an alert belongs to, so that the thread window groups real conversations.

Mail clients thread by References/In-Reply-To (RFC 5322 §3.6.4) and fall back on the subject
only where those headers are missing. The subject alone is not enough: unrelated people share
generic subjects ("Meeting", "lunch?", none at all), and grouping by it would silence the second
person's request for the whole window.

Rules, applied to each positive as its outbox row is written (storage asks this module inside
that transaction, through ``Store.record_predictions(..., conversation_of=conversation_key)``):

1. A message that references others joins the conversation of an alert already written for a
   referenced message, else its root's (the first reference), so that replies arriving before
   their root, or roots that were never alerted, still line up.
2. A reply without references (Outlook and Lotus Notes often send none) joins the newest alerted
   conversation with the same normalised subject that shares its people: its sender took part
   in it, or that conversation's sender is among its recipients.
3. Anything else starts its own conversation, keyed by its Message-ID (or content hash).
"""

from __future__ import annotations

from jeeves.storage.outbox.conversations import ConversationFacts, ConversationLookup

#: Alerted messages with the same subject examined for a shared participant (rule 2).
SUBJECT_CANDIDATES = 50


def conversation_key(message: ConversationFacts, lookup: ConversationLookup) -> str:
    """The thread-window key for an alert on ``message`` (see the module docstring)."""
    if message.refs:
        return lookup.key_of_referenced(message) or message.refs[0]
    if message.is_reply and message.subject_key:
        people = _split(message.recipients) | {message.sender_address}
        for peer in lookup.alerted_with_subject(message, SUBJECT_CANDIDATES):
            if message.sender_address in _split(peer.recipients) | {peer.sender_address} or peer.sender_address in people:
                return peer.conversation_key
    return message.dedupe_key


def _split(recipients: str) -> set[str]:
    return {r.strip().lower() for r in (recipients or "").split(",") if r.strip()}
