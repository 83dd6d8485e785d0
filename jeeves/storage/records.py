"""What storage takes and gives: plain frozen dataclasses, never ORM rows.

Callers outside ``jeeves.storage`` see these and nothing of SQLAlchemy, so a detached row
cannot lazy-load after its session closed, and the schema can change behind them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from jeeves.parsing import ParsedEmail
from jeeves.storage.schema import OutboxStatus


@dataclass(frozen=True)
class NewMessage:
    """A message as a source hands it to storage."""

    raw: bytes
    parsed: ParsedEmail
    uid: int | None = None
    flags: tuple[str, ...] = ()
    gmail_msgid: int | None = None
    internal_date: datetime | None = None
    #: Size on the server; larger than ``len(raw)`` when the body was cut at the size limit.
    size: int | None = None
    truncated: bool = False
    #: Whether a positive on this message may be texted.
    notify: bool = True


@dataclass(frozen=True)
class FolderState:
    id: int
    account: str
    name: str
    uidvalidity: int | None
    last_uid: int
    notify_after: datetime | None
    notify_from_uid: int | None = None


@dataclass(frozen=True)
class StoredRef:
    """Where a message of a batch ended up: ``new`` is False when it was already stored."""

    pk: int
    new: bool


@dataclass(frozen=True)
class MessageRecord:
    """A stored message (``messages`` row), raw bytes included."""

    id: int
    message_id: str | None
    dedupe_key: str
    content_hash: str
    raw: bytes
    size: int
    truncated: bool
    subject: str
    sender: str
    sender_address: str
    recipients: str
    sent_at: datetime | None
    #: The normalised subject (``jeeves.parsing.thread_key``).
    thread_key: str
    refs: str
    is_reply: bool
    is_forward: bool
    new_text: str
    quoted_text: str
    notify: bool
    stored_at: datetime | None


@dataclass(frozen=True)
class LabelRecord:
    """A human judgement on a message: 1 needs a place, 0 not."""

    message_pk: int
    value: int
    source: str
    confidence: str | None
    created_at: datetime | None


@dataclass(frozen=True)
class AccountRecord:
    name: str
    kind: str
    last_sync_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None


@dataclass(frozen=True)
class FolderRecord:
    """A watched folder's sync state, for ``jeeves status``."""

    account: str
    name: str
    uidvalidity: int | None
    last_uid: int
    last_sync_at: datetime | None
    last_error: str | None


class UncertainMessage(NamedTuple):
    """An unlabelled message and its newest score, for labelling where the model is least sure."""

    message: MessageRecord
    score: float
    threshold: float


@dataclass(frozen=True)
class PredictionInput:
    message_pk: int
    score: float
    threshold: float
    #: Sure enough for a text (an outbox row).
    decision: bool
    #: Unsure: listed in the next daily digest instead (ignored when ``decision`` is set).
    digest: bool = False


@dataclass(frozen=True)
class DigestLine:
    """A message waiting for the daily digest, as the digest lists it."""

    message_pk: int
    sender: str
    sender_address: str
    subject: str


@dataclass
class Counts:
    messages: int = 0
    predictions: int = 0
    positives: int = 0
    labels: int = 0
    outbox: dict[str, int] = field(default_factory=dict)


# --- the outbox (``jeeves.storage.outbox``) ---------------------------------------------------


@dataclass(frozen=True)
class DueRow:
    """A pending outbox row that is due, with what the rules and the alert text need."""

    id: int
    attempts: int
    kind: str
    message_pk: int | None
    conversation_key: str
    body: str | None
    sender: str = ""
    sender_address: str = ""
    subject: str = ""
    new_text: str = ""


@dataclass(frozen=True)
class SendHistory:
    """Texts already sent (or attempted) that the rules count against, for one due row."""

    last_in_conversation: datetime | None
    last_hour: tuple[datetime, ...]


@dataclass(frozen=True)
class StartSend:
    """Claim the row for a send: the attempt is committed before the provider is called."""

    worker_id: str
    recipient: str
    channel: str
    body: str


@dataclass(frozen=True)
class Hold:
    """Look at the row again no sooner than ``not_before``."""

    not_before: datetime
    reason: str


@dataclass(frozen=True)
class Suppress:
    """Never text the row (the rules said no)."""

    reason: str
    body: str
    channel: str


Move = StartSend | Hold | Suppress


@dataclass(frozen=True)
class Claimed:
    """A claim's outcome: ``won`` is False when another sender moved the row first."""

    row: DueRow
    move: Move
    won: bool


@dataclass(frozen=True)
class Outcome:
    """The provider's answer to an attempt, as recorded on its row."""

    status: OutboxStatus
    error_code: str | None = None
    error_message: str | None = None
    not_before: datetime | None = None
    #: Set when the text went out (with the provider's id and status).
    sent_at: datetime | None = None
    provider_id: str | None = None
    provider_status: str | None = None


@dataclass(frozen=True)
class InDoubtRow:
    """An attempt whose fate the provider must be asked about."""

    id: int
    attempts: int
    recipient: str | None
    body: str | None
    last_attempt_at: datetime | None
    channel: str | None


@dataclass(frozen=True)
class OutboxProblem:
    """A row that needs the user's eyes in ``jeeves status``: failed, or still in doubt."""

    id: int
    message_pk: int | None
    status: str
    attempts: int
    error_code: str | None
    error_message: str | None
    last_attempt_at: datetime | None
