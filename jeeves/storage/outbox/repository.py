"""The outbox repository: the send lifecycle of ``outbox`` and ``digest_entries`` rows.

The sender (``jeeves.notify.outbox``) owns the state machine and the decisions; this module
owns the SQL that makes each step one transaction and each transition a compare-and-set on
(id, status, attempts), so two senders, or a slow sender and a reconciler, cannot both move
one row. On PostgreSQL the claim runs under a transaction-scoped advisory lock with
``SELECT … FOR UPDATE SKIP LOCKED``, which also makes the counts the rules read (the thread
window, the hourly cap) exact across daemons; on SQLite one writer is assumed.

Writes that must be atomic are one method each: ``record_predictions`` writes predictions
*and* their outbox (or digest) rows; ``queue_digest`` creates a digest *and* links the
entries it lists. Inserts are insert-if-absent, so replaying any step after a crash is harmless.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.orm import load_only

from jeeves.clock import as_utc, utc_now
from jeeves.storage.outbox.conversations import ConversationLookup, ConversationRule, facts_of, own_conversation
from jeeves.storage.records import (
    Claimed,
    DigestLine,
    DueRow,
    Hold,
    InDoubtRow,
    Move,
    OutboxProblem,
    Outcome,
    PredictionInput,
    SendHistory,
    StartSend,
)
from jeeves.storage.schema import DigestEntry, OutboxEntry, OutboxKind, OutboxStatus, Prediction, StoredMessage

if TYPE_CHECKING:
    from jeeves.storage.engine import Database

#: Rows that count as "texted" for the thread window and the hourly cap. (``dry_run`` rows were
#: left by older versions, whose dry runs used alerts up; a dry run now changes no row.)
COUNTED = (OutboxStatus.SENT, OutboxStatus.SENDING, OutboxStatus.IN_DOUBT, OutboxStatus.DRY_RUN)
#: Rows a sender still has work on.
UNFINISHED = (OutboxStatus.PENDING, OutboxStatus.SENDING, OutboxStatus.IN_DOUBT)
_ADVISORY_KEY = 7271006
#: What the conversation rule reads of a message (not its raw bytes or text).
_CONVERSATION_COLUMNS = (
    StoredMessage.id, StoredMessage.dedupe_key, StoredMessage.message_id, StoredMessage.refs,
    StoredMessage.thread_key, StoredMessage.is_reply, StoredMessage.sender_address, StoredMessage.recipients,
)


class OutboxRepository:
    """The outbox and digest tables of one database (``Store.outbox``)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # --- queueing ---------------------------------------------------------------------------

    def record_predictions(self, model_version: str, predictions: Iterable[PredictionInput], *,
                           conversation_of: ConversationRule = own_conversation) -> list[int]:
        """Write predictions and, for texted positives, their outbox rows in one transaction.

        Returns the ids of outbox rows created. A message whose logical email (``dedupe_key``)
        already has an outbox row gets none, so one email seen twice is texted once. Each row
        gets the conversation key ``conversation_of`` gives (asked inside the transaction).
        """
        created: list[int] = []
        predictions = list(predictions)
        if not predictions:
            return created
        insert = self._db.insert
        with self._db.session() as s:
            s.execute(
                insert(Prediction)
                .values([
                    {"message_pk": p.message_pk, "model_version": model_version, "score": float(p.score),
                     "threshold": float(p.threshold), "decision": bool(p.decision), "created_at": utc_now()}
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
                lookup = ConversationLookup(s)
                for message, prediction_id in rows:
                    new_id = s.execute(
                        insert(OutboxEntry)
                        .values(dedupe_key=message.dedupe_key, message_pk=message.id, prediction_id=prediction_id,
                                conversation_key=conversation_of(facts_of(message), lookup),
                                kind=OutboxKind.ALERT, status=OutboxStatus.PENDING, created_at=utc_now())
                        .on_conflict_do_nothing(index_elements=["dedupe_key"])
                        .returning(OutboxEntry.id)
                    ).scalar()
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
                        insert(DigestEntry)
                        .values(dedupe_key=dedupe_key, message_pk=message_pk, prediction_id=prediction_id, created_at=utc_now())
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
        with self._db.session() as s:
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
                self._db.insert(OutboxEntry)
                .values(dedupe_key=key, kind=OutboxKind.DIGEST, message_pk=None, conversation_key="",
                        status=OutboxStatus.PENDING, body=body, created_at=utc_now())
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
        with self._db.session() as s:
            return s.scalar(select(func.count()).select_from(DigestEntry).where(DigestEntry.outbox_id.is_(None))) or 0

    # --- claiming ---------------------------------------------------------------------------

    def claim_next(self, now: datetime, *, thread_window: timedelta,
                   choose: Callable[[DueRow, SendHistory], Move],
                   before_commit: Callable[[int], None] | None = None) -> Claimed | None:
        """Take the oldest due row and apply the move ``choose`` picks for it, in one transaction.

        ``choose`` sees the row and its history as of this transaction; ``before_commit`` runs
        after a won compare-and-set, before the commit (for crash-injection tests). None when
        nothing is due.
        """
        postgres = self._db.dialect == "postgresql"
        with self._db.session() as s:
            if postgres:
                s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_KEY})
            query = self._due_query(now).limit(1)
            if postgres:
                query = query.with_for_update(skip_locked=True, of=OutboxEntry)
            found = s.execute(query).first()
            if found is None:
                return None
            row = _due_row(found)
            move = choose(row, self._history(s, row, now, thread_window))
            guard = and_(OutboxEntry.id == row.id, OutboxEntry.status == OutboxStatus.PENDING,
                         OutboxEntry.attempts == row.attempts)
            if isinstance(move, StartSend):
                values = dict(status=OutboxStatus.SENDING, attempts=row.attempts + 1, claimed_by=move.worker_id,
                              claimed_at=now, last_attempt_at=now, body=move.body, recipient=move.recipient,
                              channel=move.channel)
            elif isinstance(move, Hold):
                values = dict(not_before=move.not_before, error_message=f"held: {move.reason}")
            else:
                values = dict(status=OutboxStatus.SUPPRESSED, error_message=move.reason, body=move.body, channel=move.channel)
            won = s.execute(update(OutboxEntry).where(guard).values(**values)).rowcount == 1
            if won and before_commit is not None:
                before_commit(row.id)
        return Claimed(row, move, won)

    def due(self, now: datetime, *, limit: int, skip: Iterable[int] = ()) -> list[DueRow]:
        """Due pending rows, oldest first, read without claiming them (a dry run's view)."""
        skip = list(skip)
        query = self._due_query(now)
        if skip:
            query = query.where(OutboxEntry.id.notin_(skip))
        with self._db.session() as s:
            return [_due_row(found) for found in s.execute(query.limit(limit)).all()]

    def history(self, row: DueRow, now: datetime, thread_window: timedelta) -> SendHistory:
        """What the rules count against ``row`` at ``now`` (see ``SendHistory``)."""
        with self._db.session() as s:
            return self._history(s, row, now, thread_window)

    # --- recording --------------------------------------------------------------------------

    def record_outcome(self, row_id: int, attempts: int, outcome: Outcome) -> None:
        """Record the provider's answer to attempt ``attempts`` of a row.

        A reconciler may have marked a slow send in doubt meanwhile; the answer still wins.
        """
        values: dict = {"status": outcome.status, "error_code": outcome.error_code,
                        "error_message": outcome.error_message, "not_before": outcome.not_before}
        if outcome.sent_at is not None:
            values.update(sent_at=outcome.sent_at, provider_id=outcome.provider_id, provider_status=outcome.provider_status)
        with self._db.session() as s:
            s.execute(
                update(OutboxEntry)
                .where(OutboxEntry.id == row_id, OutboxEntry.attempts == attempts,
                       OutboxEntry.status.in_((OutboxStatus.SENDING, OutboxStatus.IN_DOUBT)))
                .values(**values)
            )

    # --- reconciling ------------------------------------------------------------------------

    def mark_stale(self, now: datetime, stale_after: timedelta, *, worker_id: str | None = None) -> list[int]:
        """Put sends in doubt whose claim is older than ``stale_after`` (or, given ``worker_id``,
        any claimed under that id: a dead predecessor's); returns their ids."""
        crashed = OutboxEntry.claimed_at < now - stale_after
        if worker_id is not None:
            crashed = or_(crashed, OutboxEntry.claimed_by == worker_id)
        with self._db.session() as s:
            ids = s.scalars(select(OutboxEntry.id).where(OutboxEntry.status == OutboxStatus.SENDING, crashed)).all()
            if ids:
                s.execute(
                    update(OutboxEntry)
                    .where(OutboxEntry.id.in_(ids), OutboxEntry.status == OutboxStatus.SENDING)
                    .values(status=OutboxStatus.IN_DOUBT, not_before=None, error_code="interrupted",
                            error_message="sender stopped during the send")
                )
        return list(ids)

    def in_doubt(self, now: datetime, limit: int) -> list[InDoubtRow]:
        """In-doubt rows due for reconciling, oldest first."""
        with self._db.session() as s:
            rows = s.execute(
                select(OutboxEntry.id, OutboxEntry.attempts, OutboxEntry.recipient, OutboxEntry.body,
                       OutboxEntry.last_attempt_at, OutboxEntry.channel)
                .where(OutboxEntry.status == OutboxStatus.IN_DOUBT,
                       or_(OutboxEntry.not_before.is_(None), OutboxEntry.not_before <= now))
                .order_by(OutboxEntry.id)
                .limit(limit)
            ).all()
        return [InDoubtRow(r[0], r[1], r[2], r[3], as_utc(r[4]), r[5]) for r in rows]

    def ask_again_later(self, row_id: int, attempts: int, not_before: datetime) -> None:
        """The provider could not be asked now: try reconciling the row after ``not_before``."""
        self._settle_in_doubt(row_id, attempts, not_before=not_before)

    def confirm_sent(self, row_id: int, attempts: int, now: datetime, provider_id: str | None, provider_status: str | None) -> bool:
        """The provider has the text: the row is sent."""
        return self._settle_in_doubt(row_id, attempts, status=OutboxStatus.SENT, sent_at=now, provider_id=provider_id,
                                     provider_status=provider_status, error_code=None, error_message=None)

    def assume_sent(self, row_id: int, attempts: int, now: datetime, reason: str) -> bool:
        """The channel cannot be asked: count the interrupted send as sent (at most once)."""
        return self._settle_in_doubt(row_id, attempts, status=OutboxStatus.SENT, sent_at=now, provider_status="assumed",
                                     error_message=reason)

    def give_up(self, row_id: int, attempts: int, reason: str) -> bool:
        """Not delivered and out of attempts: the row failed."""
        return self._settle_in_doubt(row_id, attempts, status=OutboxStatus.FAILED, error_message=reason)

    def requeue(self, row_id: int, attempts: int, now: datetime) -> bool:
        """Not delivered: the row is pending again, due at once."""
        return self._settle_in_doubt(row_id, attempts, status=OutboxStatus.PENDING, not_before=now,
                                     claimed_by=None, claimed_at=None)

    # --- reading ----------------------------------------------------------------------------

    def problems(self, limit: int = 20) -> list[OutboxProblem]:
        """Failed and in-doubt rows, newest first, with the provider's code and reason."""
        with self._db.session() as s:
            rows = s.execute(
                select(OutboxEntry.id, OutboxEntry.message_pk, OutboxEntry.status, OutboxEntry.attempts,
                       OutboxEntry.error_code, OutboxEntry.error_message, OutboxEntry.last_attempt_at)
                .where(OutboxEntry.status.in_((OutboxStatus.FAILED, OutboxStatus.IN_DOUBT)))
                .order_by(OutboxEntry.id.desc())
                .limit(limit)
            ).all()
        return [OutboxProblem(*row[:6], as_utc(row[6])) for row in rows]

    def status_counts(self) -> dict[str, int]:
        """How many rows are in each status (only the statuses that occur)."""
        with self._db.session() as s:
            return dict(s.execute(select(OutboxEntry.status, func.count()).group_by(OutboxEntry.status)).all())

    def unfinished(self) -> int:
        """How many rows a sender still has work on (pending, sending or in doubt)."""
        with self._db.session() as s:
            return s.scalar(select(func.count()).select_from(OutboxEntry).where(OutboxEntry.status.in_(UNFINISHED))) or 0

    def flagged_by_message_id(self, message_ids: Sequence[str]) -> dict[str, tuple[int, str, bool, bool]]:
        """Message-ID -> (pk, subject, whether any model flagged it for a text, whether it waits
        for or was listed in a digest) for the stored ones."""
        found: dict[str, tuple[int, str, bool, bool]] = {}
        ids = list(message_ids)
        with self._db.session() as s:
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

    # --- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _due_query(now: datetime):
        return (
            select(OutboxEntry.id, OutboxEntry.attempts, OutboxEntry.kind, OutboxEntry.message_pk,
                   OutboxEntry.conversation_key, OutboxEntry.body, StoredMessage.sender,
                   StoredMessage.sender_address, StoredMessage.subject, StoredMessage.new_text)
            .outerjoin(StoredMessage, StoredMessage.id == OutboxEntry.message_pk)
            .where(OutboxEntry.status == OutboxStatus.PENDING,
                   or_(OutboxEntry.not_before.is_(None), OutboxEntry.not_before <= now))
            .order_by(OutboxEntry.id)
        )

    @staticmethod
    def _history(s, row: DueRow, now: datetime, thread_window: timedelta) -> SendHistory:
        last_in_conversation = None
        if row.conversation_key and thread_window > timedelta(0):
            last_in_conversation = s.scalar(
                select(func.max(OutboxEntry.last_attempt_at)).where(
                    OutboxEntry.conversation_key == row.conversation_key,
                    OutboxEntry.id != row.id,
                    OutboxEntry.status.in_(COUNTED),
                    OutboxEntry.last_attempt_at >= now - thread_window,
                )
            )
        last_hour = s.scalars(
            select(OutboxEntry.last_attempt_at).where(
                OutboxEntry.status.in_(COUNTED), OutboxEntry.last_attempt_at > now - timedelta(hours=1)
            )
        ).all()
        return SendHistory(as_utc(last_in_conversation), tuple(as_utc(t) for t in last_hour))

    def _settle_in_doubt(self, row_id: int, attempts: int, **values) -> bool:
        guard = and_(OutboxEntry.id == row_id, OutboxEntry.status == OutboxStatus.IN_DOUBT, OutboxEntry.attempts == attempts)
        with self._db.session() as s:
            return s.execute(update(OutboxEntry).where(guard).values(**values)).rowcount == 1


def _due_row(found) -> DueRow:
    (row_id, attempts, kind, message_pk, conversation_key, body, sender, sender_address, subject, new_text) = found
    return DueRow(row_id, attempts, kind or OutboxKind.ALERT, message_pk, conversation_key or "", body,
                  sender or "", sender_address or "", subject or "", new_text or "")
