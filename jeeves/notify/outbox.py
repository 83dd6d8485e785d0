"""The outbox sender: turns pending outbox rows into texts, exactly once, across crashes.

The state machine (``status``):

    pending ──claim──▶ sending ──ok──▶ sent
       ▲   │              │  ├─transient─▶ pending (backoff) … ▶ failed after max_attempts
       │   │              │  ├─permanent─▶ failed (code, reason)
       │   │              │  └─ambiguous─▶ in_doubt
       │   ├─policy─▶ suppressed | dry_run | pending with not_before (held)
       │   │              └─crash (claim older than stale_after)─▶ in_doubt
       └── in_doubt ──reconcile: not found──┘      in_doubt ──found──▶ sent

Why it holds: the attempt (status ``sending``, attempts+1, body, recipient, time) is committed
*before* the provider is called, so after a crash at any point the row says a send may have
happened; such rows are never resent blindly but reconciled by asking the provider (Twilio's
Messages list) for a message with the same body since the attempt. Every transition is a
compare-and-set on (status, attempts), so two senders, or a slow sender and a reconciler,
cannot both move one row. On PostgreSQL the claim is ``SELECT … FOR UPDATE SKIP LOCKED``
under a transaction-scoped advisory lock, which also makes the policy's counts (thread
window, hourly cap) exact across daemons; on SQLite the claim is the compare-and-set
``UPDATE … WHERE status = 'pending'`` and one writer is assumed.

A channel that cannot be asked (the console) makes an interrupted send count as sent: at
most once, documented in ``ConsoleNotifier``.
"""

from __future__ import annotations

import logging
import random
import os
import socket
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta, timezone
from typing import Callable

from sqlalchemy import and_, func, or_, select, text, update

from jeeves.config import Settings
from jeeves.errors import ConfigError, NotifyError, StoreError
from jeeves.notify.base import (
    AmbiguousSendError,
    Notifier,
    PermanentSendError,
    ReconcileUnavailable,
    SendResult,
    TransientSendError,
)
from jeeves.notify.message import compose
from jeeves.notify.policy import Candidate, History, Policy, decide
from jeeves.storage.schema import OutboxEntry, StoredMessage
from jeeves.storage.store import Store

log = logging.getLogger(__name__)

PENDING, SENDING, SENT, FAILED, IN_DOUBT, SUPPRESSED, DRY_RUN = (
    "pending", "sending", "sent", "failed", "in_doubt", "suppressed", "dry_run",
)
#: Rows that count as "texted" for the thread window and the hourly cap. (``dry_run`` rows were
#: left by older versions, whose dry runs used alerts up; a dry run now changes no row.)
COUNTED = (SENT, SENDING, IN_DOUBT, DRY_RUN)
_ADVISORY_KEY = 7271006

Clock = Callable[[], datetime]
StepHook = Callable[[str, int], None]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class SendSummary:
    """What one pass did, for the daemon's log line and ``jeeves run --once``."""

    sent: int = 0
    failed: int = 0
    held: int = 0
    suppressed: int = 0
    in_doubt: int = 0
    retried: int = 0
    dry_run: int = 0
    reconciled: int = 0
    #: Dry run: (outbox id, text) of each alert it would have sent.
    previews: list[tuple[int, str]] = field(default_factory=list)

    def __add__(self, other: "SendSummary") -> "SendSummary":
        return SendSummary(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    @property
    def busy(self) -> bool:
        """Whether the pass changed anything (a loop can stop when it did not)."""
        return any(getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True)
class _Attempt:
    id: int
    attempts: int
    recipient: str
    body: str
    started: datetime


class OutboxSender:
    """Sends due outbox rows through one notifier. Call ``run_once`` every pass.

    ``worker_id`` names one live sender (e.g. ``host:pid``); rows still ``sending`` under the
    same id when a new instance first reconciles were left by a dead predecessor and are
    reconciled at once; anyone else's are reconciled once their claim is ``stale_after`` old,
    which must exceed the longest send (the HTTP timeout), so a live send is never doubted.
    ``on_step`` is called at each step of a send (for crash-injection tests).
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        notifier: Notifier,
        *,
        worker_id: str,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
        stale_after: timedelta | None = None,
        reconcile_delay: timedelta = timedelta(seconds=30),
        backoff_base: timedelta = timedelta(seconds=10),
        backoff_max: timedelta = timedelta(minutes=30),
        on_step: StepHook | None = None,
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.worker_id = worker_id
        self.policy = Policy.from_settings(settings.notify)
        if not getattr(notifier, "reaches_phone", notifier.channel != "console"):
            # Quiet hours, the hourly cap and the thread window keep a phone from buzzing at
            # night, too often, or twice about one conversation; a terminal needs none of them,
            # and the demo shows one alert per message. Sender lists and dry run still apply.
            self.policy = replace(self.policy, quiet_window=None, max_per_hour=1_000_000_000, thread_window=timedelta(0))
        self.max_attempts = settings.notify.max_attempts
        self.command = settings.cli_command  # the alert's "Wrong? jeeves label N 0" must work as printed
        from jeeves.notify.replies import replies_polled

        # Replies are read only from Twilio: the console's alerts keep the command to type.
        self.reply_hint = notifier.channel == "twilio" and replies_polled(settings)
        self.recipient = settings.notify.to or ("console" if notifier.channel == "console" else None)
        if not self.recipient:
            raise ConfigError("notify.to (the phone number that receives alerts) is not set")
        self._clock = clock
        self._rng = rng or random.Random()
        self.stale_after = stale_after if stale_after is not None else timedelta(seconds=2 * settings.twilio.timeout + 60)
        self.reconcile_delay = reconcile_delay
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._on_step = on_step
        self._recovered_own = False
        self._unrecorded: list[tuple[int, int, dict]] = []  # provider answers the database missed
        self._previewed: set[int] = set()  # dry run: rows already shown
        self._would_have_sent: list[tuple[str, datetime]] = []  # dry run: (thread key, when)

    # --- public -----------------------------------------------------------------------------

    def run_once(self, limit: int = 100) -> SendSummary:
        """Reconcile what a crash or an ambiguous error left, then work through due rows.

        A dry run changes nothing in the outbox: it shows what it would send (and hold or
        suppress) and leaves every row for a later real run.
        """
        if self.policy.dry_run:
            return self._preview(limit)
        summary = SendSummary()
        self._record_unrecorded()
        summary.reconciled = self.reconcile()
        for _ in range(limit):
            attempt = self._claim_next(summary)
            if attempt is None:
                break
            if attempt is _POLICY_HANDLED:
                continue
            self._send(attempt, summary)
        return summary

    def reconcile(self, limit: int = 100) -> int:
        """Resolve in-doubt rows (and crashed ``sending`` ones) by asking the notifier.

        Returns how many rows left the in-doubt state (to sent, pending or failed).
        """
        now = self._now()
        self._mark_stale(now)
        with self.store.session() as s:
            rows = s.execute(
                select(OutboxEntry.id, OutboxEntry.attempts, OutboxEntry.recipient, OutboxEntry.body, OutboxEntry.last_attempt_at, OutboxEntry.channel)
                .where(OutboxEntry.status == IN_DOUBT, or_(OutboxEntry.not_before.is_(None), OutboxEntry.not_before <= now))
                .order_by(OutboxEntry.id)
                .limit(limit)
            ).all()
        resolved = 0
        for row_id, attempts, recipient, body, last_attempt_at, channel in rows:
            resolved += self._reconcile_row(row_id, attempts, recipient, body, _aware(last_attempt_at) or now, channel)
        return resolved

    # --- dry run ----------------------------------------------------------------------------

    def _preview(self, limit: int) -> SendSummary:
        """What a real pass would do with the due rows, without touching them.

        Rows are read, never claimed or updated, so a later real run still sends them. The
        rules count the texts this sender would have sent (kept in memory) as if they had gone
        out, and each row is shown once per sender, so a dry-run daemon does not repeat itself.
        """
        summary = SendSummary()
        now = self._now()
        with self.store.session() as s:
            query = (
                select(OutboxEntry)
                .where(OutboxEntry.status == PENDING, or_(OutboxEntry.not_before.is_(None), OutboxEntry.not_before <= now))
                .order_by(OutboxEntry.id)
            )
            if self._previewed:
                query = query.where(OutboxEntry.id.notin_(self._previewed))
            for row in s.scalars(query.limit(limit)).all():
                message = s.get(StoredMessage, row.message_pk)
                candidate = Candidate(sender_address=message.sender_address if message else "", thread_key=row.thread_key or "")
                history = self._history(s, row, now)
                would_have = [t for key, t in self._would_have_sent if key == row.thread_key and row.thread_key]
                history = History(
                    last_in_thread=max([t for t in (history.last_in_thread, *would_have) if t is not None], default=None),
                    last_hour=(*history.last_hour, *(t for _, t in self._would_have_sent if t > now - timedelta(hours=1))),
                )
                decision = decide(self.policy, candidate, history, now)
                body = row.body or compose(
                    message_pk=row.message_pk, sender=message.sender if message else "",
                    sender_address=candidate.sender_address, subject=message.subject if message else "",
                    new_text=message.new_text if message else "", command=self.command, reply_hint=self.reply_hint,
                )
                self._previewed.add(row.id)
                if decision.action == "dry_run":
                    self._would_have_sent.append((row.thread_key or "", now))
                    summary.dry_run += 1
                    summary.previews.append((row.id, body))
                elif decision.action == "hold":
                    summary.held += 1
                else:
                    summary.suppressed += 1
                _event("dry_run" if decision.action == "dry_run" else f"dry_run_would_{decision.action}", row.id, self.recipient,
                       reason=decision.reason, not_before=decision.not_before.isoformat() if decision.not_before else None,
                       body=body if decision.action == "dry_run" else None)
        return summary

    # --- claiming ---------------------------------------------------------------------------

    def _claim_next(self, summary: SendSummary):
        now = self._now()
        postgres = self.store.dialect == "postgresql"
        with self.store.session() as s:
            if postgres:
                s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_KEY})
            query = (
                select(OutboxEntry)
                .where(OutboxEntry.status == PENDING, or_(OutboxEntry.not_before.is_(None), OutboxEntry.not_before <= now))
                .order_by(OutboxEntry.id)
                .limit(1)
            )
            if postgres:
                query = query.with_for_update(skip_locked=True)
            row = s.scalars(query).first()
            if row is None:
                return None
            message = s.get(StoredMessage, row.message_pk) if row.message_pk is not None else None
            candidate = Candidate(sender_address=message.sender_address if message else "", thread_key=row.thread_key or "",
                                  kind=row.kind or "alert")
            decision = decide(self.policy, candidate, self._history(s, row, now), now)
            body = row.body or compose(
                message_pk=row.message_pk,
                sender=message.sender if message else "",
                sender_address=candidate.sender_address,
                subject=message.subject if message else "",
                new_text=message.new_text if message else "",
                command=self.command,
                reply_hint=self.reply_hint,
            )
            row_id, attempts = row.id, row.attempts  # the ORM update below refreshes ``row``
            guard = and_(OutboxEntry.id == row_id, OutboxEntry.status == PENDING, OutboxEntry.attempts == attempts)
            if decision.action == "send":
                values = dict(
                    status=SENDING, attempts=attempts + 1, claimed_by=self.worker_id, claimed_at=now,
                    last_attempt_at=now, body=body, recipient=self.recipient, channel=self.notifier.channel,
                )
            elif decision.action == "hold":
                values = dict(not_before=decision.not_before, error_message=f"held: {decision.reason}")
            else:  # suppress (a dry run never gets here: ``_preview`` handles it without claiming)
                values = dict(status=SUPPRESSED, error_message=decision.reason, body=body, channel=self.notifier.channel)
            changed = s.execute(
                update(OutboxEntry).where(guard).values(**values).execution_options(synchronize_session=False)
            ).rowcount
            if changed != 1:
                return _POLICY_HANDLED  # another sender moved it first
            self._step("claim-uncommitted", row_id)
        self._step("after-claim", row_id)
        if decision.action != "send":
            if decision.action == "hold":
                summary.held += 1
            else:
                summary.suppressed += 1
            _event("hold" if decision.action == "hold" else "suppressed", row_id, self.recipient,
                   reason=decision.reason, not_before=decision.not_before.isoformat() if decision.not_before else None)
            return _POLICY_HANDLED
        return _Attempt(row_id, attempts + 1, self.recipient, body, now)

    def _history(self, s, row: OutboxEntry, now: datetime) -> History:
        last_in_thread = None
        if row.thread_key and self.policy.thread_window > timedelta(0):
            last_in_thread = s.scalar(
                select(func.max(OutboxEntry.last_attempt_at)).where(
                    OutboxEntry.thread_key == row.thread_key,
                    OutboxEntry.id != row.id,
                    OutboxEntry.status.in_(COUNTED),
                    OutboxEntry.last_attempt_at >= now - self.policy.thread_window,
                )
            )
        last_hour = s.scalars(
            select(OutboxEntry.last_attempt_at).where(
                OutboxEntry.status.in_(COUNTED), OutboxEntry.last_attempt_at > now - timedelta(hours=1)
            )
        ).all()
        return History(last_in_thread=_aware(last_in_thread), last_hour=tuple(_aware(t) for t in last_hour))

    # --- sending ----------------------------------------------------------------------------

    def _send(self, attempt: _Attempt, summary: SendSummary) -> None:
        try:
            result = self.notifier.send(attempt.recipient, attempt.body)
        except TransientSendError as exc:
            self._step("after-send", attempt.id)
            if attempt.attempts >= self.max_attempts:
                self._finish(attempt, FAILED, error_code=exc.code, error_message=f"gave up after {attempt.attempts} attempts: {exc.reason}")
                summary.failed += 1
                _event("failed", attempt.id, attempt.recipient, attempts=attempt.attempts, code=exc.code, reason=exc.reason, level=logging.WARNING)
            else:
                delay = self._backoff(attempt.attempts)
                self._finish(attempt, PENDING, error_code=exc.code, error_message=exc.reason, not_before=self._now() + delay)
                summary.retried += 1
                _event("retry", attempt.id, attempt.recipient, attempts=attempt.attempts, code=exc.code, reason=exc.reason, retry_in=round(delay.total_seconds(), 1))
            return
        except PermanentSendError as exc:
            self._step("after-send", attempt.id)
            self._finish(attempt, FAILED, error_code=exc.code, error_message=exc.reason)
            summary.failed += 1
            _event("failed", attempt.id, attempt.recipient, attempts=attempt.attempts, code=exc.code, reason=exc.reason, level=logging.WARNING)
            return
        except Exception as exc:  # noqa: BLE001 - ambiguous, or a bug: either way it may have left
            self._step("after-send", attempt.id)
            code = exc.code if isinstance(exc, AmbiguousSendError) else type(exc).__name__
            reason = exc.reason if isinstance(exc, AmbiguousSendError) else str(exc)
            # Ask no sooner than the backoff: 5xx errors get the same exponential spacing as 429s.
            wait = max(self.reconcile_delay, self._backoff(attempt.attempts))
            self._finish(attempt, IN_DOUBT, error_code=code, error_message=reason, not_before=self._now() + wait)
            summary.in_doubt += 1
            _event("in_doubt", attempt.id, attempt.recipient, attempts=attempt.attempts, code=code, reason=reason, level=logging.WARNING)
            return
        self._step("after-send", attempt.id)
        self._finish(attempt, SENT, result=result)
        summary.sent += 1
        _event("sent", attempt.id, attempt.recipient, attempts=attempt.attempts, sid=result.provider_id, provider_status=result.status)
        self._step("after-record", attempt.id)

    def _finish(self, attempt: _Attempt, status: str, *, result: SendResult | None = None,
                error_code: str | None = None, error_message: str | None = None, not_before: datetime | None = None) -> None:
        values: dict = {"status": status, "error_code": error_code, "error_message": error_message, "not_before": not_before}
        if result is not None:
            values.update(sent_at=self._now(), provider_id=result.provider_id, provider_status=result.status)
        try:
            self._record(attempt.id, attempt.attempts, values)
        except StoreError:
            # The provider's answer is known but the database is away: keep the answer and record
            # it first thing next pass, rather than leaving the row "sending" until reconciliation
            # has to ask the provider. If this process dies first, reconciliation still covers it.
            self._unrecorded.append((attempt.id, attempt.attempts, values))
            raise

    def _record(self, row_id: int, attempts: int, values: dict) -> None:
        with self.store.session() as s:
            # A reconciler may have marked a slow send in doubt meanwhile; the answer still wins.
            s.execute(
                update(OutboxEntry)
                .where(OutboxEntry.id == row_id, OutboxEntry.attempts == attempts, OutboxEntry.status.in_((SENDING, IN_DOUBT)))
                .values(**values)
            )

    def _record_unrecorded(self) -> None:
        while self._unrecorded:
            self._record(*self._unrecorded[0])
            self._unrecorded.pop(0)

    def _backoff(self, attempts: int) -> timedelta:
        ceiling = min(self.backoff_max.total_seconds(), self.backoff_base.total_seconds() * 2 ** (attempts - 1))
        return timedelta(seconds=ceiling / 2 + self._rng.uniform(0, ceiling / 2))

    # --- reconciling ------------------------------------------------------------------------

    def _mark_stale(self, now: datetime) -> None:
        crashed = OutboxEntry.claimed_at < now - self.stale_after
        if not self._recovered_own:
            crashed = or_(crashed, OutboxEntry.claimed_by == self.worker_id)
        with self.store.session() as s:
            ids = s.scalars(select(OutboxEntry.id).where(OutboxEntry.status == SENDING, crashed)).all()
            if ids:
                s.execute(
                    update(OutboxEntry)
                    .where(OutboxEntry.id.in_(ids), OutboxEntry.status == SENDING)
                    .values(status=IN_DOUBT, not_before=None, error_code="interrupted", error_message="sender stopped during the send")
                )
        self._recovered_own = True
        for row_id in ids:
            _event("in_doubt", row_id, None, reason="sender stopped during the send", level=logging.WARNING)

    def _reconcile_row(self, row_id: int, attempts: int, recipient: str | None, body: str | None, since: datetime, channel: str | None) -> int:
        guard = and_(OutboxEntry.id == row_id, OutboxEntry.status == IN_DOUBT, OutboxEntry.attempts == attempts)
        now = self._now()
        askable = self.notifier.can_reconcile and channel in (None, self.notifier.channel) and recipient and body
        found: SendResult | None = None
        if askable:
            try:
                found = self.notifier.find_sent(recipient, since, body)
            except ReconcileUnavailable:
                askable = False
            except NotifyError as exc:
                with self.store.session() as s:
                    s.execute(update(OutboxEntry).where(guard).values(not_before=now + self._backoff(1)))
                _event("reconcile_later", row_id, recipient, reason=str(exc), level=logging.WARNING)
                return 0
        if not askable:
            values = dict(status=SENT, sent_at=now, provider_status="assumed",
                          error_message="interrupted send on a channel that cannot be checked; counted as sent (at most once)")
            event = "assumed_sent"
        elif found is not None:
            values = dict(status=SENT, sent_at=now, provider_id=found.provider_id, provider_status=found.status, error_code=None, error_message=None)
            event = "reconciled_sent"
        elif attempts >= self.max_attempts:
            values = dict(status=FAILED, error_message=f"gave up after {attempts} attempts: not delivered")
            event = "failed"
        else:
            values = dict(status=PENDING, not_before=now, claimed_by=None, claimed_at=None)
            event = "reconciled_resend"
        with self.store.session() as s:
            changed = s.execute(update(OutboxEntry).where(guard).values(**values)).rowcount
        if changed:
            _event(event, row_id, recipient, attempts=attempts, sid=found.provider_id if found else None)
        return changed

    # --- helpers ----------------------------------------------------------------------------

    def _now(self) -> datetime:
        return self._clock().astimezone(timezone.utc)

    def _step(self, name: str, row_id: int) -> None:
        if self._on_step is not None:
            self._on_step(name, row_id)


_POLICY_HANDLED = object()


def default_worker_id() -> str:
    """``host:pid``: unique among live senders sharing a database."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class OutboxProblem:
    """A row that needs the user's eyes in ``jeeves status``: failed, or still in doubt."""

    id: int
    message_pk: int
    status: str
    attempts: int
    error_code: str | None
    error_message: str | None
    last_attempt_at: datetime | None


def outbox_problems(store: Store, limit: int = 20) -> list[OutboxProblem]:
    """Failed and in-doubt rows, newest first, with the provider's code and reason."""
    with store.session() as s:
        rows = s.execute(
            select(OutboxEntry.id, OutboxEntry.message_pk, OutboxEntry.status, OutboxEntry.attempts,
                   OutboxEntry.error_code, OutboxEntry.error_message, OutboxEntry.last_attempt_at)
            .where(OutboxEntry.status.in_((FAILED, IN_DOUBT)))
            .order_by(OutboxEntry.id.desc())
            .limit(limit)
        ).all()
    return [OutboxProblem(*row[:6], _aware(row[6])) for row in rows]


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def mask_number(number: str | None) -> str:
    """A phone number as logs may show it: enough to tell numbers apart, not to dial."""
    if not number:
        return "-"
    if number == "console":
        return number
    return "***" + number[-4:] if len(number) > 4 else "***"


def _event(event: str, row_id: int, recipient: str | None, *, level: int = logging.INFO, **details) -> None:
    """One log line per outcome; the facts ride as structured fields (key=value as text, keys in JSON)."""
    fields_ = {"outbox_id": row_id, "to": mask_number(recipient)}
    fields_.update({k: v for k, v in details.items() if v is not None})
    log.log(level, "alert %s", event, extra=fields_)


