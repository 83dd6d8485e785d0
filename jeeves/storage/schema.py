"""The database schema. Alembic (``migrations/``) owns changes to it; this module is its source.

Design rules that keep the "never lose, never repeat" promise:
- ``messages`` holds each distinct message once (unique ``content_hash``), raw bytes included.
- ``message_locations`` records every (folder, UIDVALIDITY, UID) a message was seen at; a
  folder's sync state advances in the same transaction that stores its messages.
- ``outbox`` has one row per logical email (``dedupe_key``: Message-ID, else content hash), so a
  message seen in two folders or accounts is texted once. A daily digest is an outbox row too
  (``kind = 'digest'``, one per local date), so it gets the same exactly-once sending.
- ``digest_entries`` has one row per logical email Jeeves was unsure about; it is listed in
  the first digest composed after it (``outbox_id``), in the transaction that creates that digest.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from jeeves.clock import utc_now

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class OutboxStatus(StrEnum):
    """Where an outbox row is in its state machine (drawn in ``jeeves.notify.outbox``)."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    IN_DOUBT = "in_doubt"
    SUPPRESSED = "suppressed"
    #: Left by older versions, whose dry runs used rows up; a dry run now changes no row.
    DRY_RUN = "dry_run"


class OutboxKind(StrEnum):
    """What an outbox row texts: one message, the day's digest of unsure ones, or the one help
    text that answers a reply Jeeves could not read (``jeeves.notify.replies``)."""

    ALERT = "alert"
    DIGEST = "digest"
    HELP = "help"


def _one_of(column: str, values: type[StrEnum]) -> str:
    """The SQL of a CHECK that ``column`` holds one of the enum's values (as migration 0005 writes it)."""
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Account(Base):
    """A mail source: an IMAP account from the config, or a local mailbox file."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20))  # "imap" | "mbox" | "maildir" | "cli"
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    last_sync_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    folders: Mapped[list["Folder"]] = relationship(back_populates="account")


class Folder(Base):
    """Sync state of one watched folder: advanced only together with the messages it covers."""

    __tablename__ = "folders"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(500))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    #: The server's UIDNEXT when Jeeves first saw the folder: lower UIDs were already there and
    #: are stored but never texted. Cleared when UIDVALIDITY changes (UIDs are renumbered).
    notify_from_uid: Mapped[int | None] = mapped_column(BigInteger)
    #: The server's INTERNALDATE of the newest message at first sight (the epoch if it was
    #: empty); decides instead of ``notify_from_uid`` once that is cleared: only later mail is texted.
    notify_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_sync_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)

    account: Mapped[Account] = relationship(back_populates="folders")


class StoredMessage(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    message_id: Mapped[str | None] = mapped_column(String(998), index=True)
    #: One logical email: Message-ID when present, else the content hash.
    dedupe_key: Mapped[str] = mapped_column(String(998), index=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(BigInteger)
    #: True when only headers and the start of the body were kept (over the size limit).
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    subject: Mapped[str] = mapped_column(Text, default="")
    sender: Mapped[str] = mapped_column(Text, default="")
    sender_address: Mapped[str] = mapped_column(String(320), default="")
    recipients: Mapped[str] = mapped_column(Text, default="")  # comma-separated To + Cc
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The normalised subject (``jeeves.parsing.thread_key``); the reply rule of
    #: ``jeeves.notify.conversations`` and training's grouping compare it.
    thread_key: Mapped[str] = mapped_column(String(300), default="", index=True)
    #: Message-IDs this one answers, root first (References, then In-Reply-To), space-separated.
    refs: Mapped[str] = mapped_column(Text, default="", server_default="")
    is_reply: Mapped[bool] = mapped_column(Boolean, default=False)
    is_forward: Mapped[bool] = mapped_column(Boolean, default=False)
    new_text: Mapped[str] = mapped_column(Text, default="")
    quoted_text: Mapped[str] = mapped_column(Text, default="")
    parse_defects: Mapped[str] = mapped_column(Text, default="")
    #: Whether a positive prediction on this message may be texted (false for old mail).
    notify: Mapped[bool] = mapped_column(Boolean, default=True)
    stored_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now, index=True)


class MessageLocation(Base):
    __tablename__ = "message_locations"
    __table_args__ = (UniqueConstraint("folder_id", "uidvalidity", "uid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_pk: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    folder_id: Mapped[int] = mapped_column(ForeignKey("folders.id", ondelete="CASCADE"))
    uidvalidity: Mapped[int] = mapped_column(BigInteger, default=0)
    uid: Mapped[int] = mapped_column(BigInteger)
    gmail_msgid: Mapped[int | None] = mapped_column(BigInteger)
    flags: Mapped[str] = mapped_column(Text, default="")  # space-separated IMAP flags/keywords/labels
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class Label(Base):
    """A human judgement; the newest per message wins, older ones stay as history."""

    __tablename__ = "labels"
    __table_args__ = (Index("ix_labels_message_created", "message_pk", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_pk: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    value: Mapped[int] = mapped_column(Integer)  # 1 needs a place, 0 not
    source: Mapped[str] = mapped_column(String(50))  # corpus | cli | review | imap-folder | imap-keyword | gmail-label
    confidence: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class Prediction(Base):
    __tablename__ = "predictions"
    __table_args__ = (UniqueConstraint("message_pk", "model_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_pk: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    model_version: Mapped[str] = mapped_column(String(100))
    score: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    decision: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class OutboxEntry(Base):
    """One alert to send. Its state machine is in ``jeeves.notify.outbox``.

    status (``OutboxStatus``, a CHECK constraint holds it to those values):
    pending → sending → sent | failed | in_doubt (→ reconciled to sent or pending)
    plus suppressed (policy said no: thread window, sender lists).

    ``kind`` is ``alert`` (one message, ``message_pk`` set) or ``digest`` (the day's list of
    unsure messages, composed in advance into ``body``; ``message_pk`` is empty).
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_status_due", "status", "not_before"),
        CheckConstraint(_one_of("status", OutboxStatus), name="status"),
        CheckConstraint(_one_of("kind", OutboxKind), name="kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(998), unique=True)
    kind: Mapped[str] = mapped_column(String(10), default=OutboxKind.ALERT.value, server_default=OutboxKind.ALERT.value)
    message_pk: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    prediction_id: Mapped[int | None] = mapped_column(ForeignKey("predictions.id", ondelete="SET NULL"))
    #: The conversation the alert belongs to (``jeeves.notify.conversations``), for the thread
    #: window; empty for a digest. (Not ``messages.thread_key``, which is the normalised subject.)
    conversation_key: Mapped[str] = mapped_column(String(998), default="")
    status: Mapped[str] = mapped_column(String(20), default=OutboxStatus.PENDING.value)
    channel: Mapped[str | None] = mapped_column(String(20))
    recipient: Mapped[str | None] = mapped_column(String(50))
    body: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    provider_id: Mapped[str | None] = mapped_column(String(100))  # Twilio message SID
    provider_status: Mapped[str | None] = mapped_column(String(50))
    error_code: Mapped[str | None] = mapped_column(String(50))
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class DigestEntry(Base):
    """A message Jeeves was unsure about: listed in the next daily digest instead of texted."""

    __tablename__ = "digest_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The logical email (as ``outbox.dedupe_key``): one entry however many copies arrive.
    dedupe_key: Mapped[str] = mapped_column(String(998), unique=True)
    message_pk: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    prediction_id: Mapped[int | None] = mapped_column(ForeignKey("predictions.id", ondelete="SET NULL"))
    #: The digest (an ``outbox`` row of kind ``digest``) that lists it; empty until then.
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class SmsReply(Base):
    """One inbound SMS Jeeves has handled; its SID is the exactly-once guard."""

    __tablename__ = "sms_replies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Twilio's message SID (``SM…``): unique, so a reply is applied once however often it is listed.
    sid: Mapped[str] = mapped_column(String(64), unique=True)
    #: When Twilio received it (its ``date_sent``): the polling watermark is the newest of these.
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    #: The sender, masked ("***4567"): enough to tell numbers apart in ``jeeves status``, not to dial.
    sender: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(20))
    #: For keywords: which one (STOP, START, HELP); for unclear replies: why.
    detail: Mapped[str | None] = mapped_column(String(100))
    message_pk: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    value: Mapped[int | None] = mapped_column(Integer)
    label_id: Mapped[int | None] = mapped_column(ForeignKey("labels.id", ondelete="SET NULL"))
    #: The help text queued in answer (an ``outbox`` row of kind ``help``), if any.
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
