"""The few storage operations the rest of Jeeves uses, on SQLite and PostgreSQL alike.

Every write that must be atomic is one method here, so callers cannot half-do it:
``store_batch`` stores messages *and* advances the folder's sync state; ``record_predictions``
writes predictions *and* their outbox rows. Inserts are insert-if-absent (``ON CONFLICT DO
NOTHING``), so replaying any step after a crash is harmless.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from sqlalchemy import Engine, create_engine, event, func, select, text, update
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, load_only, sessionmaker

from jeeves import resources
from jeeves.errors import DatabaseUnreachable, StoreError
from jeeves.parsing import EmailDocument, ParsedEmail
from jeeves.storage.conversations import conversation_key, conversation_refs
from jeeves.storage.schema import (
    Account,
    DigestEntry,
    Folder,
    Label,
    MessageLocation,
    OutboxEntry,
    Prediction,
    StoredMessage,
    utcnow,
)

log = logging.getLogger(__name__)

#: The Alembic scripts shipped in the package (``migrations/`` of the repository).
MIGRATIONS_DIR = resources.migrations_dir()
#: What ``conversation_key`` reads of a message (not its raw bytes or text).
_CONVERSATION_COLUMNS = (
    StoredMessage.id, StoredMessage.dedupe_key, StoredMessage.message_id, StoredMessage.refs,
    StoredMessage.thread_key, StoredMessage.is_reply, StoredMessage.sender_address, StoredMessage.recipients,
)


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


def _set_sqlite_pragmas(dbapi_connection, _record) -> None:  # pragma: no cover - exercised via engine
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class Lease:
    """The right to watch one account (``Store.account_lease``); truthy while held."""

    def __init__(self, held: bool, connection=None, key: int | None = None) -> None:
        self.held = held
        self.lost = False
        self._connection = connection
        self._key = key

    def __bool__(self) -> bool:
        return self.held and not self.lost

    def still_held(self) -> bool:
        """Whether the database still holds the lock for us (False once its session is gone).

        A PostgreSQL restart or a dropped connection ends the session and frees the lock, and
        another daemon may then take the account: the holder must stop watching.
        """
        if not self.held or self.lost:
            return False
        if self._connection is None:
            return True
        hi, lo = (self._key >> 32) & 0xFFFFFFFF, self._key & 0xFFFFFFFF
        try:
            found = self._connection.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
                    " AND pid = pg_backend_pid() AND classid::bigint = :hi AND objid::bigint = :lo"
                ),
                {"hi": hi, "lo": lo},
            ).scalar()
            self._connection.commit()
        except SQLAlchemyError:
            found = 0
        if not found:
            self.lost = True
        return not self.lost


class Store:
    """Storage for one database URL. Thread-safe: each call runs in its own transaction."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self.where = _describe(url)
        self.engine: Engine = _make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._migrated = threading.Event()
        if migrate and not self._schema_is_current():
            self.migrate()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    # --- plumbing ---------------------------------------------------------------------------

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction; commits on success, rolls back on error, maps DB errors to StoreError."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except DBAPIError as exc:
            session.rollback()
            raise self._error("database error", exc) from exc
        except SQLAlchemyError as exc:
            session.rollback()
            raise StoreError(f"database error ({self.where}): {exc}") from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def _error(self, what: str, exc: DBAPIError) -> StoreError:
        cause = _cause(exc, self.url)
        # SQLAlchemy flags a connection lost in use (server restarted, backend terminated); a
        # connect that failed carries no such flag, nor a SQLSTATE, so libpq's words tell there.
        unreachable = exc.connection_invalidated or any(needle in cause for needle in _UNREACHABLE)
        kind = DatabaseUnreachable if unreachable else StoreError
        return kind(f"{what} ({self.where}): {cause}")

    def _schema_is_current(self) -> bool:
        """Whether the database is already at the newest migration, asked without Alembic.

        Importing Alembic and running ``upgrade`` costs about half a second, on every command;
        one SELECT answers the usual case. Any doubt (no table, no answer) means "migrate",
        which then reports a real problem with its own clear error.
        """
        head = head_revision()
        if head is None:
            return False
        try:
            with self.engine.connect() as connection:
                current = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        except SQLAlchemyError:
            return False
        return current == [head]

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision: all of it or none of it.

        Every pending migration runs in one transaction together with the ``alembic_version``
        update, so a process killed at any point (the very first start included) leaves either
        the old schema or the new one, and the next start simply migrates again. Concurrent
        starts are serialised: by an advisory lock on PostgreSQL, by ``BEGIN IMMEDIATE`` (the
        write lock, waited for up to the busy timeout) on SQLite.
        """
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["engine"] = self.engine
        try:
            with self.engine.connect() as connection, _transactional_ddl(connection):
                if self.dialect == "postgresql":
                    # Several daemons may start together; only one may run migrations at a time.
                    connection.execute(text("SELECT pg_advisory_xact_lock(7271001)"))
                else:
                    _drop_interrupted_first_migration(connection)
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                connection.commit()
        except DBAPIError as exc:
            raise self._error("cannot migrate the database", exc) from exc
        self._migrated.set()

    @contextmanager
    def account_lease(self, account: str) -> Iterator["Lease"]:
        """Hold the right to watch ``account`` for the duration of the block.

        On PostgreSQL this is a session advisory lock on a dedicated connection: exactly one
        process holds it, and it is released the moment that process dies (its connection
        closes), so another daemon takes the account over on its next try. It also dies with
        the connection when the server restarts: ``Lease.still_held()`` tells the holder.
        SQLite is a single-process database, so the lease is always granted there.
        The yielded ``Lease`` is truthy when held.
        """
        if self.dialect != "postgresql":
            yield Lease(True)
            return
        key = int.from_bytes(hashlib.sha256(f"jeeves-account:{account}".encode()).digest()[:8], "big", signed=True)
        try:
            connection = self.engine.connect()
        except DBAPIError as exc:
            raise self._error("database error", exc) from exc
        try:
            try:
                held = bool(connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
                connection.commit()
            except DBAPIError as exc:
                raise self._error("database error", exc) from exc
            lease = Lease(held, connection, key)
            try:
                yield lease
            finally:
                if held and not lease.lost:
                    try:
                        connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                        connection.commit()
                    except SQLAlchemyError:
                        pass  # the connection is gone, and with it the lock
        finally:
            try:
                connection.close()
            except SQLAlchemyError:
                pass

    def _insert(self, table):
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table)

    # --- accounts and folders ---------------------------------------------------------------

    def ensure_account(self, name: str, kind: str) -> int:
        with self.session() as s:
            s.execute(self._insert(Account).values(name=name, kind=kind, created_at=utcnow()).on_conflict_do_nothing(index_elements=["name"]))
            return s.scalar(select(Account.id).where(Account.name == name))

    def folder_state(self, account: str, folder: str, *, kind: str = "imap", notify_after: datetime | None = None) -> FolderState:
        """The folder's sync state, created on first use (with ``notify_after`` when given)."""
        account_id = self.ensure_account(account, kind)
        with self.session() as s:
            s.execute(
                self._insert(Folder)
                .values(account_id=account_id, name=folder, last_uid=0, notify_after=notify_after)
                .on_conflict_do_nothing(index_elements=["account_id", "name"])
            )
            row = s.scalars(select(Folder).where(Folder.account_id == account_id, Folder.name == folder)).one()
            return FolderState(row.id, account, folder, row.uidvalidity, row.last_uid, _aware(row.notify_after), row.notify_from_uid)

    def set_first_sight(self, state: FolderState, *, from_uid: int, after: datetime) -> FolderState:
        """Record, once, where the folder's texted mail begins: at UID ``from_uid`` (the server's
        UIDNEXT at first sight), and after INTERNALDATE ``after`` once UIDs are renumbered."""
        with self.session() as s:
            s.execute(update(Folder).where(Folder.id == state.id, Folder.notify_from_uid.is_(None), Folder.uidvalidity.is_(None))
                      .values(notify_from_uid=from_uid, notify_after=after))
            row = s.get(Folder, state.id)
            return FolderState(row.id, state.account, state.name, row.uidvalidity, row.last_uid, _aware(row.notify_after), row.notify_from_uid)

    def reset_folder(self, folder_id: int, uidvalidity: int) -> None:
        """Adopt a new UIDVALIDITY: start the folder over; stored messages dedupe by content."""
        with self.session() as s:
            s.execute(update(Folder).where(Folder.id == folder_id).values(uidvalidity=uidvalidity, last_uid=0, notify_from_uid=None))

    def content_hash_at(self, folder_id: int, uidvalidity: int, uid: int) -> str | None:
        """Content hash of the message stored at a folder position, to detect rewritten files."""
        with self.session() as s:
            return s.scalar(
                select(StoredMessage.content_hash)
                .join(MessageLocation, MessageLocation.message_pk == StoredMessage.id)
                .where(MessageLocation.folder_id == folder_id, MessageLocation.uidvalidity == uidvalidity, MessageLocation.uid == uid)
            )

    def message_pks_at(self, folder_id: int, uidvalidity: int, uids: Sequence[int]) -> dict[int, int]:
        """UID -> message pk for the stored UIDs of one folder."""
        found: dict[int, int] = {}
        uids = list(uids)
        with self.session() as s:
            for i in range(0, len(uids), 500):
                rows = s.execute(
                    select(MessageLocation.uid, MessageLocation.message_pk).where(
                        MessageLocation.folder_id == folder_id,
                        MessageLocation.uidvalidity == uidvalidity,
                        MessageLocation.uid.in_(uids[i : i + 500]),
                    )
                ).all()
                found.update({int(uid): int(pk) for uid, pk in rows})
        return found

    def newest_labels(self, message_pks: Sequence[int], source: str) -> dict[int, int]:
        """The newest label value per message from one label source."""
        found: dict[int, int] = {}
        pks = list(message_pks)
        with self.session() as s:
            for i in range(0, len(pks), 500):
                newest = (
                    select(func.max(Label.id))
                    .where(Label.message_pk.in_(pks[i : i + 500]), Label.source == source)
                    .group_by(Label.message_pk)
                )
                rows = s.execute(select(Label.message_pk, Label.value).where(Label.id.in_(newest))).all()
                found.update({int(pk): int(value) for pk, value in rows})
        return found

    def record_sync(self, account: str, *, error: str | None = None, kind: str = "imap") -> None:
        """Note a finished sync (or its error) for ``jeeves status``; creates the account row if needed."""
        self.ensure_account(account, kind)
        now = utcnow()
        values = {"last_error": error, "last_error_at": now} if error else {"last_sync_at": now, "last_error": None}
        with self.session() as s:
            s.execute(update(Account).where(Account.name == account).values(**values))

    # --- messages ---------------------------------------------------------------------------

    def store_batch(
        self,
        messages: Sequence[NewMessage],
        *,
        folder: FolderState | None = None,
        uidvalidity: int | None = None,
        advance_to: int | None = None,
    ) -> list[StoredRef]:
        """Store ``messages`` if absent and, in the same transaction, advance the folder.

        After a crash either both happened or neither did, so the next sync refetches exactly
        the UIDs whose messages are not stored yet.
        """
        refs: list[StoredRef] = []
        with self.session() as s:
            hashes = [m.parsed.content_hash for m in messages]
            existing = dict(s.execute(select(StoredMessage.content_hash, StoredMessage.id).where(StoredMessage.content_hash.in_(hashes))).all()) if hashes else {}
            fresh = [m for m in messages if m.parsed.content_hash not in existing]
            if fresh:
                seen: set[str] = set()
                rows = []
                for m in fresh:
                    if m.parsed.content_hash in seen:
                        continue
                    seen.add(m.parsed.content_hash)
                    rows.append(_message_row(m))
                # executemany on the Core table: a multi-VALUES insert spends most of its time
                # compiling thousands of bind parameters (measured: 2,000 messages 1.17 s -> 0.25 s).
                s.execute(self._insert(StoredMessage.__table__).on_conflict_do_nothing(index_elements=["content_hash"]), rows)
                inserted = dict(s.execute(select(StoredMessage.content_hash, StoredMessage.id).where(StoredMessage.content_hash.in_(list(seen)))).all())
            else:
                inserted = {}
            for m in messages:
                h = m.parsed.content_hash
                refs.append(StoredRef(existing.get(h) or inserted[h], h not in existing))
            if folder is not None:
                locations = [
                    {
                        "message_pk": ref.pk,
                        "folder_id": folder.id,
                        "uidvalidity": uidvalidity or 0,
                        "uid": m.uid,
                        "gmail_msgid": m.gmail_msgid,
                        "flags": " ".join(m.flags),
                        "seen_at": utcnow(),
                    }
                    for m, ref in zip(messages, refs)
                    if m.uid is not None
                ]
                if locations:
                    s.execute(
                        self._insert(MessageLocation.__table__).on_conflict_do_nothing(index_elements=["folder_id", "uidvalidity", "uid"]),
                        locations,
                    )
                values: dict = {"last_sync_at": utcnow()}
                if uidvalidity is not None:
                    values["uidvalidity"] = uidvalidity
                if advance_to is not None:
                    values["last_uid"] = func.max(Folder.last_uid, advance_to) if self.dialect == "sqlite" else func.greatest(Folder.last_uid, advance_to)
                s.execute(update(Folder).where(Folder.id == folder.id).values(**values))
        return refs

    def get_message(self, ref: str | int) -> StoredMessage | None:
        """A stored message by primary key, short id (``#12``/``12``) or Message-ID."""
        with self.session() as s:
            text_ref = str(ref).strip().lstrip("#")
            if text_ref.isdigit():
                return s.get(StoredMessage, int(text_ref))
            return s.scalars(select(StoredMessage).where(StoredMessage.message_id == str(ref).strip()).limit(1)).first()

    def documents_to_classify(self, limit: int = 500) -> list[tuple[int, EmailDocument]]:
        """Stored messages with no prediction yet, oldest first, as classifier input.

        Reads only the text columns: raw bytes (up to the size limit each) stay in the database.
        """
        with self.session() as s:
            stmt = (
                select(
                    StoredMessage.id,
                    StoredMessage.subject,
                    StoredMessage.new_text,
                    StoredMessage.quoted_text,
                    StoredMessage.is_reply,
                    StoredMessage.is_forward,
                    StoredMessage.recipients,
                    StoredMessage.sender_address,
                )
                .where(~select(Prediction.id).where(Prediction.message_pk == StoredMessage.id).exists())
                .order_by(StoredMessage.id)
                .limit(limit)
            )
            return [
                (
                    row.id,
                    EmailDocument(
                        subject=row.subject,
                        new_text=row.new_text,
                        quoted_text=row.quoted_text,
                        is_reply=row.is_reply,
                        is_forward=row.is_forward,
                        n_recipients=len([r for r in row.recipients.split(",") if r.strip()]),
                        sender_address=row.sender_address,
                    ),
                )
                for row in s.execute(stmt)
            ]

    def record_predictions(self, model_version: str, predictions: Iterable[PredictionInput]) -> list[int]:
        """Write predictions and, for texted positives, their outbox rows in one transaction.

        Returns the ids of outbox rows created. A message whose logical email (``dedupe_key``)
        already has an outbox row gets none, so one email seen twice is texted once.
        """
        created: list[int] = []
        predictions = list(predictions)
        if not predictions:
            return created
        with self.session() as s:
            s.execute(
                self._insert(Prediction)
                .values([
                    {
                        "message_pk": p.message_pk,
                        "model_version": model_version,
                        "score": float(p.score),
                        "threshold": float(p.threshold),
                        "decision": bool(p.decision),
                        "created_at": utcnow(),
                    }
                    for p in predictions
                ])
                .on_conflict_do_nothing(index_elements=["message_pk", "model_version"])
            )
            positives = [p.message_pk for p in predictions if p.decision]
            if positives:
                rows = s.execute(
                    select(StoredMessage, Prediction.id)
                    .join(Prediction, (Prediction.message_pk == StoredMessage.id) & (Prediction.model_version == model_version))
                    .where(StoredMessage.id.in_(positives), StoredMessage.notify.is_(True))
                    .order_by(StoredMessage.id)
                    .options(load_only(*_CONVERSATION_COLUMNS))
                ).all()
                for message, prediction_id in rows:
                    thread = conversation_key(s, message)
                    result = s.execute(
                        self._insert(OutboxEntry)
                        .values(dedupe_key=message.dedupe_key, message_pk=message.id, prediction_id=prediction_id,
                                thread_key=thread, status="pending", created_at=utcnow())
                        .on_conflict_do_nothing(index_elements=["dedupe_key"])
                        .returning(OutboxEntry.id)
                    )
                    new_id = result.scalar()
                    if new_id is not None:
                        created.append(new_id)
            unsure = [p.message_pk for p in predictions if p.digest and not p.decision]
            if unsure:
                rows = s.execute(
                    select(StoredMessage.id, StoredMessage.dedupe_key, Prediction.id)
                    .join(Prediction, (Prediction.message_pk == StoredMessage.id) & (Prediction.model_version == model_version))
                    .where(StoredMessage.id.in_(unsure), StoredMessage.notify.is_(True))
                    .where(~select(OutboxEntry.id).where(OutboxEntry.dedupe_key == StoredMessage.dedupe_key).exists())
                    .order_by(StoredMessage.id)
                ).all()
                for message_pk, dedupe_key, prediction_id in rows:
                    s.execute(
                        self._insert(DigestEntry)
                        .values(dedupe_key=dedupe_key, message_pk=message_pk, prediction_id=prediction_id,
                                created_at=utcnow())
                        .on_conflict_do_nothing(index_elements=["dedupe_key"])
                    )
        return created

    def queue_digest(
        self,
        key: str,
        compose: Callable[[list[DigestLine]], tuple[str, list[DigestLine]]],
        keep: Callable[[DigestLine], bool] = lambda line: True,
    ) -> int | None:
        """Create the digest ``key`` listing the waiting messages, in one transaction.

        ``compose`` turns the waiting lines (oldest first) into the text and the lines it lists;
        those entries are linked to the new outbox row (kind ``digest``), the rest wait for the
        next digest. Lines ``keep`` refuses (sender lists) are closed without being listed.
        Returns the outbox id, or None when the digest ``key`` exists or nothing waits.
        """
        with self.session() as s:
            if s.scalar(select(OutboxEntry.id).where(OutboxEntry.dedupe_key == key)) is not None:
                return None
            rows = s.execute(
                select(DigestEntry.id, StoredMessage.id, StoredMessage.sender, StoredMessage.sender_address,
                       StoredMessage.subject)
                .join(StoredMessage, StoredMessage.id == DigestEntry.message_pk)
                .where(DigestEntry.outbox_id.is_(None))
                .order_by(DigestEntry.id)
            ).all()
            waiting = [(row[0], DigestLine(row[1], row[2] or "", row[3] or "", row[4] or "")) for row in rows]
            refused = {entry_id for entry_id, line in waiting if not keep(line)}
            wanted = [line for entry_id, line in waiting if entry_id not in refused]
            if not wanted:
                return None
            body, listed = compose(wanted)
            new_id = s.execute(
                self._insert(OutboxEntry)
                .values(dedupe_key=key, kind="digest", message_pk=None, thread_key="", status="pending", body=body,
                        created_at=utcnow())
                .on_conflict_do_nothing(index_elements=["dedupe_key"])
                .returning(OutboxEntry.id)
            ).scalar()
            if new_id is None:
                return None  # another daemon queued it first
            done = {line.message_pk for line in listed}
            close = [entry_id for entry_id, line in waiting if line.message_pk in done or entry_id in refused]
            s.execute(
                update(DigestEntry)
                .where(DigestEntry.id.in_(close), DigestEntry.outbox_id.is_(None))
                .values(outbox_id=new_id)
            )
            return new_id

    def digest_waiting(self) -> int:
        """How many messages wait for the next digest."""
        with self.session() as s:
            return s.scalar(select(func.count()).select_from(DigestEntry).where(DigestEntry.outbox_id.is_(None))) or 0

    # --- labels -----------------------------------------------------------------------------

    def add_label(self, message_pk: int, value: int, source: str, confidence: str | None = None) -> None:
        if value not in (0, 1):
            raise ValueError("a label is 0 or 1")
        with self.session() as s:
            s.add(Label(message_pk=message_pk, value=value, source=source, confidence=confidence, created_at=utcnow()))

    def current_labels(self) -> dict[int, Label]:
        """The newest label of each labelled message (relabelling replaces, history stays)."""
        with self.session() as s:
            newest = (
                select(Label.message_pk, func.max(Label.id).label("max_id")).group_by(Label.message_pk).subquery()
            )
            rows = s.scalars(select(Label).join(newest, Label.id == newest.c.max_id))
            return {row.message_pk: row for row in rows}

    def least_certain_unlabelled(self, limit: int = 20) -> list[tuple[StoredMessage, float, float]]:
        """Unlabelled messages whose newest prediction sits closest to its threshold.

        These are the labels that teach the model most (uncertainty sampling).
        """
        with self.session() as s:
            latest = select(Prediction.message_pk, func.max(Prediction.id).label("pid")).group_by(Prediction.message_pk).subquery()
            stmt = (
                select(StoredMessage, Prediction.score, Prediction.threshold)
                .join(latest, latest.c.message_pk == StoredMessage.id)
                .join(Prediction, Prediction.id == latest.c.pid)
                .where(~select(Label.id).where(Label.message_pk == StoredMessage.id).exists())
                .order_by(func.abs(Prediction.score - Prediction.threshold))
                .limit(limit)
            )
            return [(m, score, threshold) for m, score, threshold in s.execute(stmt).all()]

    # --- status -----------------------------------------------------------------------------

    def counts(self) -> Counts:
        with self.session() as s:
            outbox = dict(s.execute(select(OutboxEntry.status, func.count()).group_by(OutboxEntry.status)).all())
            return Counts(
                messages=s.scalar(select(func.count()).select_from(StoredMessage)) or 0,
                predictions=s.scalar(select(func.count()).select_from(Prediction)) or 0,
                positives=s.scalar(select(func.count()).select_from(Prediction).where(Prediction.decision.is_(True))) or 0,
                labels=s.scalar(select(func.count(func.distinct(Label.message_pk)))) or 0,
                outbox=outbox,
            )

    def flagged_by_message_id(self, message_ids: Sequence[str]) -> dict[str, tuple[int, str, bool, bool]]:
        """Message-ID -> (pk, subject, whether any model flagged it for a text, whether it waits
        for or was listed in a digest) for the stored ones."""
        found: dict[str, tuple[int, str, bool, bool]] = {}
        ids = list(message_ids)
        with self.session() as s:
            for i in range(0, len(ids), 500):
                flagged = (
                    select(func.count()).select_from(Prediction)
                    .where(Prediction.message_pk == StoredMessage.id, Prediction.decision.is_(True))
                    .scalar_subquery()
                )
                listed = (
                    select(func.count()).select_from(DigestEntry)
                    .where(DigestEntry.message_pk == StoredMessage.id)
                    .scalar_subquery()
                )
                rows = s.execute(
                    select(StoredMessage.message_id, StoredMessage.id, StoredMessage.subject, flagged, listed)
                    .where(StoredMessage.message_id.in_(ids[i : i + 500]))
                ).all()
                found.update({mid: (int(pk), subject or "", bool(n), bool(d)) for mid, pk, subject, n, d in rows})
        return found

    def accounts(self) -> list[Account]:
        with self.session() as s:
            return list(s.scalars(select(Account).order_by(Account.name)))

    def folders(self) -> list[tuple[str, Folder]]:
        with self.session() as s:
            return [(a, f) for a, f in s.execute(select(Account.name, Folder).join(Folder, Folder.account_id == Account.id).order_by(Account.name, Folder.name)).all()]


def _message_row(m: NewMessage) -> dict:
    p = m.parsed
    return {
        "content_hash": p.content_hash,
        "message_id": p.message_id,
        "dedupe_key": p.message_id or p.content_hash,
        "raw": m.raw,
        "size": m.size if m.size is not None else len(m.raw),
        "truncated": m.truncated,
        "subject": p.subject,
        "sender": p.sender,
        "sender_address": p.sender_address[:320],
        "recipients": ", ".join(p.to + p.cc),
        "sent_at": p.date,
        "thread_key": p.thread_key,
        "refs": " ".join(conversation_refs(p)),
        "is_reply": p.is_reply,
        "is_forward": p.is_forward,
        "new_text": _clean_for_db(p.new_text),
        "quoted_text": _clean_for_db(p.quoted_text),
        "parse_defects": "; ".join(p.defects),
        "notify": m.notify,
        "stored_at": utcnow(),
    }


def _clean_for_db(value: str) -> str:
    # PostgreSQL text cannot hold NUL characters; they carry no meaning in mail text.
    return value.replace("\x00", "")


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


@contextmanager
def _transactional_ddl(connection) -> Iterator[None]:
    """Make DDL on ``connection`` part of its transaction, as it is on PostgreSQL.

    Python's sqlite3 module only opens a transaction before INSERT/UPDATE/DELETE, so CREATE and
    ALTER TABLE would each commit on their own: a crash mid-migration would leave tables behind
    without their ``alembic_version`` row, and every later start would fail on "table already
    exists". With the module's implicit transactions off, the explicit BEGIN covers everything
    until the connection commits (SQLAlchemy's documented recipe for SQLite transactional DDL).
    """
    if connection.dialect.name != "sqlite":
        yield
        return
    dbapi_connection = connection.connection.driver_connection
    saved = dbapi_connection.isolation_level
    dbapi_connection.isolation_level = None
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        yield
    finally:
        if dbapi_connection.in_transaction:
            dbapi_connection.rollback()
        dbapi_connection.isolation_level = saved


def _drop_interrupted_first_migration(connection) -> None:
    """Clear what a first start killed mid-migration by an earlier Jeeves left in an SQLite file.

    Before migrations were transactional on SQLite, such a crash left some tables and no
    ``alembic_version`` row, and every later start failed on "table ... already exists". Those
    tables are recognisable (only Jeeves's, all empty, no version recorded) and hold nothing, so
    they are dropped and the migration runs afresh; anything else is left for the error to name.
    """
    from sqlalchemy import inspect

    from jeeves.storage.schema import Base

    tables = set(inspect(connection).get_table_names())
    if not tables & set(Base.metadata.tables):
        return
    if "alembic_version" in tables and connection.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar():
        return
    leftovers = tables - {"alembic_version"}
    if any(t not in Base.metadata.tables and not t.startswith("_alembic_tmp_") for t in leftovers):
        return
    if any(connection.exec_driver_sql(f'SELECT 1 FROM "{t}" LIMIT 1').first() for t in leftovers):
        return
    # Children before parents: with foreign keys on, SQLite checks a dropped parent's references.
    ordered = [t.name for t in reversed(Base.metadata.sorted_tables) if t.name in leftovers]
    for table in ordered + sorted(leftovers - set(ordered)):
        connection.exec_driver_sql(f'DROP TABLE "{table}"')
    log.warning("dropped %d empty tables left by an interrupted first start; migrating afresh", len(leftovers))


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _set_sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, connect_args={"connect_timeout": 10})


def _safe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return "<database url>"


@functools.lru_cache(maxsize=1)
def head_revision() -> str | None:
    """The newest migration's revision id, from the migration files' ``revision`` and
    ``down_revision`` lines (the revision no other one revises); None when that is not one
    clear answer. tests/test_storage.py checks it against Alembic's own."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        source = path.read_text()
        found = re.search(r"^revision\s*=\s*['\"]([^'\"]+)['\"]", source, re.M)
        if found is None:
            return None
        revisions.add(found.group(1))
        revised.update(re.findall(r"['\"]([^'\"]+)['\"]", (re.search(r"^down_revision\s*=\s*(.*)$", source, re.M) or [None, ""])[1]))
    heads = revisions - revised
    return heads.pop() if len(heads) == 1 else None


def _describe(url: str) -> str:
    """Which database, for error messages: the SQLite file's path, or the URL without password."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001
        return "<database url>"
    if parsed.get_backend_name() == "sqlite":
        return f"SQLite file {Path(parsed.database).resolve()}" if parsed.database and parsed.database != ":memory:" else "SQLite in memory"
    return _safe_url(url)


#: What to do about the causes users meet most, appended to the driver's own words.
_HINTS = (
    ("database or disk is full", "free disk space where the database lives"),
    ("Connection refused", "is the database server running?"),
)
#: PostgreSQL/libpq words, when a connect fails, for a server that is not (yet) there, as opposed
#: to one that refuses us (a lost connection is ``DBAPIError.connection_invalidated``).
_UNREACHABLE = (
    "Connection refused", "could not connect", "timeout expired", "Connection timed out",
    "the database system is starting up", "the database system is shutting down",
    "the database system is in recovery mode", "No route to host",
    "could not translate host name", "Temporary failure in name resolution",
)
#: SQLite's words when it cannot write the file, its journal or its directory.
_SQLITE_WRITE_ERRORS = ("readonly database", "unable to open database file", "disk I/O error")


def _cause(exc: DBAPIError, url: str | None = None) -> str:
    cause = _short(exc)
    hint = next((h for needle, h in _HINTS if needle in cause), None)
    if hint is None and url is not None and any(e in cause for e in _SQLITE_WRITE_ERRORS):
        hint = _sqlite_write_hint(url)
    return f"{cause} ({hint})" if hint else cause


def _sqlite_write_hint(url: str) -> str | None:
    """Why SQLite cannot write: a missing directory, or a read-only file, directory or disk."""
    from sqlalchemy.engine import make_url

    try:
        database = make_url(url).database
    except Exception:  # noqa: BLE001
        return None
    if not database or database == ":memory:":
        return None
    path = Path(database).resolve()
    if not path.parent.is_dir():
        return f"the directory {path.parent} does not exist"
    # access(2) also answers EROFS for a read-only file system, even to root.
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return "the file or its directory is read-only; Jeeves must write both the database and its WAL journal"
    return None


def _short(exc: DBAPIError) -> str:
    return str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
