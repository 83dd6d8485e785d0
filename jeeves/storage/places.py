"""The stored mail between the user and a correspondent, read for place suggestions.

Places are extracted on demand (``jeeves.places.extract``) rather than stored: the extractor is cheap
(bench/bench_places.py), so an improved extractor applies to old mail at once, with no
re-scan, no table to keep in step and nothing for a crash to leave half-written. This module
only reads: messages *from* the correspondent, and the user's own messages *to* them (stored
when a Sent folder is synced; ``recipients`` holds the lower-cased To + Cc addresses).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterator, Sequence

from sqlalchemy import or_, select
from jeeves.storage.engine import Database
from jeeves.storage.schema import StoredMessage


@dataclass(frozen=True)
class Exchanged:
    """One stored message between the user and a correspondent."""

    message_pk: int
    correspondent: str  # the other person's address
    from_user: bool  # the user wrote it (to ``correspondent``)
    sender: str  # "Name <addr>" as displayed
    conversation: str  # thread key, else the logical email: mentions in one thread count once
    sent_at: datetime | None
    new_text: str


_COLUMNS = (StoredMessage.id, StoredMessage.sender, StoredMessage.sender_address, StoredMessage.recipients,
            StoredMessage.thread_key, StoredMessage.dedupe_key, StoredMessage.sent_at, StoredMessage.new_text)


def _recipients(value: str) -> list[str]:
    return [r.strip().lower() for r in (value or "").split(",") if r.strip()]


def exchanged_with(store: Database, correspondent: str, user_addresses: Sequence[str], *,
                   exclude_pk: int | None = None, limit: int | None = None) -> list[Exchanged]:
    """Messages from ``correspondent``, and from the user to them, in the order stored; with ``limit``,
    only the newest ``limit`` of them (what an alert reads, so a prolific sender stays cheap)."""
    who = correspondent.strip().lower()
    if not who:
        return []
    me = [a.lower() for a in user_addresses if a]
    clauses = [StoredMessage.sender_address == who]
    if me:
        # ``recipients`` is a list in one column: LIKE narrows it, the split below decides.
        clauses.append(StoredMessage.sender_address.in_(me) & StoredMessage.recipients.contains(who))
    stmt = select(*_COLUMNS).where(or_(*clauses)).order_by(StoredMessage.id.desc())
    if exclude_pk is not None:
        stmt = stmt.where(StoredMessage.id != exclude_pk)
    found: list[Exchanged] = []
    with store.session() as session:
        for row in session.execute(stmt.execution_options(yield_per=200)):
            if limit is not None and len(found) == limit:
                break
            from_user = row.sender_address in me
            if from_user and who not in _recipients(row.recipients):
                continue
            found.append(Exchanged(row.id, who, from_user, row.sender or "", row.thread_key or row.dedupe_key,
                                   row.sent_at, row.new_text or ""))
    return found[::-1]


def all_exchanges(store: Database, user_addresses: Sequence[str], *, batch: int = 1000) -> Iterator[Exchanged]:
    """Every stored message as exchanges with each correspondent: one per other person for the
    user's own mail (each recipient), one (its sender) for anyone else's."""
    me = {a.lower() for a in user_addresses if a}
    stmt = select(*_COLUMNS).order_by(StoredMessage.id).execution_options(yield_per=batch)
    with store.session() as session:
        for row in session.execute(stmt):
            conversation = row.thread_key or row.dedupe_key
            if row.sender_address in me:
                for recipient in _recipients(row.recipients):
                    if recipient not in me:
                        yield Exchanged(row.id, recipient, True, row.sender or "", conversation, row.sent_at,
                                        row.new_text or "")
            elif row.sender_address:
                yield Exchanged(row.id, row.sender_address, False, row.sender or "", conversation, row.sent_at,
                                row.new_text or "")
