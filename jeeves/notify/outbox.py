"""The outbox sender: turns pending outbox rows into texts, exactly once, across crashes.

The state machine (``status``, an ``OutboxStatus``):

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
cannot both move one row. The SQL of each step is one method of the outbox repository
(``jeeves.storage.outbox``, ``store.outbox``): this module decides, the repository commits.
On PostgreSQL the claim is ``SELECT … FOR UPDATE SKIP LOCKED`` under a transaction-scoped
advisory lock, which also makes the policy's counts (thread window, hourly cap) exact across
daemons; on SQLite the claim is the compare-and-set ``UPDATE … WHERE status = 'pending'`` and
one writer is assumed.

A channel that cannot be asked (the console) makes an interrupted send count as sent: at
most once, documented in ``ConsoleNotifier``.
"""

from __future__ import annotations

import logging
import os
import random
import socket
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta, timezone
from typing import Callable

from jeeves.clock import Clock, utc_now
from jeeves.config import PlacesSettings, Settings
from jeeves.errors import (
    AmbiguousSendError,
    ConfigError,
    NotifyError,
    PermanentSendError,
    ReconcileUnavailable,
    StoreError,
    TransientSendError,
)
from jeeves.logs import mask_number
from jeeves.notify.base import Notifier, SendResult
from jeeves.notify.message import compose
from jeeves.notify.policy import Candidate, History, Policy, decide
from jeeves.notify.replies import replies_polled
from jeeves.places.suggest import alert_places
from jeeves.storage import OutboxStatus, Store
from jeeves.storage.records import DueRow, Hold, Outcome, SendHistory, StartSend, Suppress

log = logging.getLogger(__name__)

StepHook = Callable[[str, int], None]


@dataclass(frozen=True)
class SenderSettings:
    """What the sender needs of the configuration, and nothing else."""

    policy: Policy
    #: The phone number that receives alerts ("console" on the console).
    recipient: str | None
    max_attempts: int
    #: How the alert's "Wrong? jeeves label N 0" is printed, so it works as printed.
    command: str = "jeeves"
    #: The provider's HTTP timeout: a claim older than twice this (plus a minute) is a crash.
    send_timeout: float = 10.0
    #: What an alert may suggest (``[places]``); the user's own addresses are ``policy.own_addresses``.
    places: PlacesSettings = field(default_factory=PlacesSettings)
    #: Jeeves reads replies to its texts (``jeeves.notify.replies``): alerts say "Reply 0 if wrong".
    reply_hint: bool = False

    @classmethod
    def from_settings(cls, settings: Settings, *, dry_run: bool = False) -> "SenderSettings":
        """``dry_run`` asks for a sender that sends nothing (``notify.dry_run`` makes every one)."""
        policy = replace(Policy.from_settings(settings.notify, dry_run=dry_run), own_addresses=tuple(settings.user_addresses))
        return cls(policy=policy, recipient=settings.notify.to, max_attempts=settings.notify.max_attempts,
                   command=settings.cli_command, send_timeout=settings.twilio.timeout,
                   places=settings.places,
                   reply_hint=replies_polled(settings))


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

    ``worker_id`` names one live sender (``default_worker_id()``: ``host:pid``); rows still
    ``sending`` under the same id when a new instance first reconciles were left by a dead
    predecessor and are reconciled at once; anyone else's are reconciled once their claim is
    ``stale_after`` old, which must exceed the longest send (the HTTP timeout), so a live send
    is never doubted. ``on_step`` is called at each step of a send (for crash-injection tests).
    """

    def __init__(
        self,
        store: Store,
        settings: SenderSettings,
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
        self.outbox = store.outbox
        self._store = store  # read-only: where the user met an alert's sender (place suggestions)
        self._places, self._user_addresses = settings.places, settings.policy.own_addresses
        self.notifier = notifier
        self.worker_id = worker_id
        self.policy = settings.policy
        if notifier.channel == "console":
            # Quiet hours, the hourly cap and the thread window keep a phone from buzzing at
            # night, too often, or twice about one conversation; a terminal needs none of them,
            # and the demo shows one alert per message. Sender lists and dry run still apply.
            self.policy = replace(self.policy, quiet_window=None, max_per_hour=1_000_000_000, thread_window=timedelta(0))
        self.max_attempts = settings.max_attempts
        self.command = settings.command
        self.recipient = settings.recipient or ("console" if notifier.channel == "console" else None)
        # Replies are read only from Twilio: the console's alerts keep the command to type.
        self.reply_hint = settings.reply_hint and notifier.channel == "twilio"
        if not self.recipient:
            raise ConfigError("notify.to (the phone number that receives alerts) is not set")
        self._clock = clock
        self._rng = rng or random.Random()
        self.stale_after = stale_after if stale_after is not None else timedelta(seconds=2 * settings.send_timeout + 60)
        self.reconcile_delay = reconcile_delay
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._on_step = on_step
        self._recovered_own = False
        self._unrecorded: list[tuple[int, int, Outcome]] = []  # provider answers the database missed
        self._previewed: set[int] = set()  # dry run: rows already shown
        self._would_have_sent: list[tuple[str, datetime]] = []  # dry run: (conversation key, when)

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
        return sum(self._reconcile_row(row.id, row.attempts, row.recipient, row.body, row.last_attempt_at or now, row.channel)
                   for row in self.outbox.in_doubt(now, limit))

    # --- dry run ----------------------------------------------------------------------------

    def _preview(self, limit: int) -> SendSummary:
        """What a real pass would do with the due rows, without touching them.

        Rows are read, never claimed or updated, so a later real run still sends them. The
        rules count the texts this sender would have sent (kept in memory) as if they had gone
        out, and each row is shown once per sender, so a dry-run daemon does not repeat itself.
        """
        summary = SendSummary()
        now = self._now()
        for row in self.outbox.due(now, limit=limit, skip=self._previewed):
            stored = self.outbox.history(row, now, self.policy.thread_window)
            key = row.conversation_key
            would_have = [t for k, t in self._would_have_sent if k == key and key]
            history = History(
                last_in_thread=max([t for t in (stored.last_in_conversation, *would_have) if t is not None], default=None),
                last_hour=(*stored.last_hour, *(t for _, t in self._would_have_sent if t > now - timedelta(hours=1))),
            )
            decision = decide(self.policy, Candidate(sender_address=row.sender_address, conversation_key=key), history, now)
            body = self._body(row) if decision.action == "dry_run" else None  # only a text to show is composed
            self._previewed.add(row.id)
            if decision.action == "dry_run":
                self._would_have_sent.append((key, now))
                summary.dry_run += 1
                summary.previews.append((row.id, body))
            elif decision.action == "hold":
                summary.held += 1
            else:
                summary.suppressed += 1
            _event("dry_run" if decision.action == "dry_run" else f"dry_run_would_{decision.action}", row.id, self.recipient,
                   reason=decision.reason, not_before=decision.not_before.isoformat() if decision.not_before else None,
                   body=body)
        return summary

    # --- claiming ---------------------------------------------------------------------------

    def _claim_next(self, summary: SendSummary):
        now = self._now()
        # The text is composed before the claim's transaction opens: its place lookup reads the
        # sender's mail (up to a second for a busy correspondent), and on PostgreSQL the claim
        # holds the advisory lock every sender waits on. The claim still commits the text it
        # sends; if another sender took this row meanwhile, the row the claim gets is composed there.
        ahead = self.outbox.due(now, limit=1)
        composed = {row.id: self._body(row) for row in ahead}

        def body(row: DueRow) -> str:
            return composed[row.id] if row.id in composed else self._body(row)

        def choose(row: DueRow, history: SendHistory):
            candidate = Candidate(sender_address=row.sender_address, conversation_key=row.conversation_key, kind=row.kind)
            decision = decide(self.policy, candidate, _policy_history(history), now)
            if decision.action == "send":
                return StartSend(self.worker_id, self.recipient, self.notifier.channel, body(row))
            if decision.action == "hold":
                return Hold(decision.not_before, decision.reason)
            # suppress (a dry run never gets here: ``_preview`` handles it without claiming)
            return Suppress(decision.reason, body(row), self.notifier.channel)

        claimed = self.outbox.claim_next(now, thread_window=self.policy.thread_window, choose=choose,
                                         before_commit=lambda row_id: self._step("claim-uncommitted", row_id))
        if claimed is None:
            return None
        if not claimed.won:
            return _POLICY_HANDLED  # another sender moved it first
        row_id, move = claimed.row.id, claimed.move
        self._step("after-claim", row_id)
        if isinstance(move, StartSend):
            return _Attempt(row_id, claimed.row.attempts + 1, self.recipient, move.body, now)
        if isinstance(move, Hold):
            summary.held += 1
            _event("hold", row_id, self.recipient, reason=move.reason, not_before=move.not_before.isoformat())
        else:
            summary.suppressed += 1
            _event("suppressed", row_id, self.recipient, reason=move.reason)
        return _POLICY_HANDLED

    def _body(self, row: DueRow) -> str:
        """The row's text: a digest's was composed when queued; an alert's is composed now
        (with its place suggestion) and committed with the claim that sends it, so a retry or a
        reconciliation compares the very text that went out."""
        if row.body:
            return row.body
        return compose(
            message_pk=row.message_pk, sender=row.sender, sender_address=row.sender_address,
            subject=row.subject, new_text=row.new_text, command=self.command,
            places=alert_places(self._store, self._places, self._user_addresses, row), reply_hint=self.reply_hint,
        )

    # --- sending ----------------------------------------------------------------------------

    def _send(self, attempt: _Attempt, summary: SendSummary) -> None:
        try:
            result = self.notifier.send(attempt.recipient, attempt.body)
        except TransientSendError as exc:
            self._step("after-send", attempt.id)
            if attempt.attempts >= self.max_attempts:
                self._finish(attempt, OutboxStatus.FAILED, error_code=exc.code, error_message=f"gave up after {attempt.attempts} attempts: {exc.reason}")
                summary.failed += 1
                _event("failed", attempt.id, attempt.recipient, attempts=attempt.attempts, code=exc.code, reason=exc.reason, level=logging.WARNING)
            else:
                delay = self._backoff(attempt.attempts)
                self._finish(attempt, OutboxStatus.PENDING, error_code=exc.code, error_message=exc.reason, not_before=self._now() + delay)
                summary.retried += 1
                _event("retry", attempt.id, attempt.recipient, attempts=attempt.attempts, code=exc.code, reason=exc.reason, retry_in=round(delay.total_seconds(), 1))
            return
        except PermanentSendError as exc:
            self._step("after-send", attempt.id)
            self._finish(attempt, OutboxStatus.FAILED, error_code=exc.code, error_message=exc.reason)
            summary.failed += 1
            _event("failed", attempt.id, attempt.recipient, attempts=attempt.attempts, code=exc.code, reason=exc.reason, level=logging.WARNING)
            return
        except Exception as exc:  # noqa: BLE001 - ambiguous, or a bug: either way it may have left
            self._step("after-send", attempt.id)
            code = exc.code if isinstance(exc, AmbiguousSendError) else type(exc).__name__
            reason = exc.reason if isinstance(exc, AmbiguousSendError) else str(exc)
            # Ask no sooner than the backoff: 5xx errors get the same exponential spacing as 429s.
            wait = max(self.reconcile_delay, self._backoff(attempt.attempts))
            self._finish(attempt, OutboxStatus.IN_DOUBT, error_code=code, error_message=reason, not_before=self._now() + wait)
            summary.in_doubt += 1
            _event("in_doubt", attempt.id, attempt.recipient, attempts=attempt.attempts, code=code, reason=reason, level=logging.WARNING)
            return
        self._step("after-send", attempt.id)
        self._finish(attempt, OutboxStatus.SENT, result=result)
        summary.sent += 1
        _event("sent", attempt.id, attempt.recipient, attempts=attempt.attempts, sid=result.provider_id, provider_status=result.status)
        self._step("after-record", attempt.id)

    def _finish(self, attempt: _Attempt, status: OutboxStatus, *, result: SendResult | None = None,
                error_code: str | None = None, error_message: str | None = None, not_before: datetime | None = None) -> None:
        outcome = Outcome(status, error_code=error_code, error_message=error_message, not_before=not_before)
        if result is not None:
            outcome = replace(outcome, sent_at=self._now(), provider_id=result.provider_id, provider_status=result.status)
        try:
            self.outbox.record_outcome(attempt.id, attempt.attempts, outcome)
        except StoreError:
            # The provider's answer is known but the database is away: keep the answer and record
            # it first thing next pass, rather than leaving the row "sending" until reconciliation
            # has to ask the provider. If this process dies first, reconciliation still covers it.
            self._unrecorded.append((attempt.id, attempt.attempts, outcome))
            raise

    def _record_unrecorded(self) -> None:
        while self._unrecorded:
            self.outbox.record_outcome(*self._unrecorded[0])
            self._unrecorded.pop(0)

    def _backoff(self, attempts: int) -> timedelta:
        ceiling = min(self.backoff_max.total_seconds(), self.backoff_base.total_seconds() * 2 ** (attempts - 1))
        return timedelta(seconds=ceiling / 2 + self._rng.uniform(0, ceiling / 2))

    # --- reconciling ------------------------------------------------------------------------

    def _mark_stale(self, now: datetime) -> None:
        ids = self.outbox.mark_stale(now, self.stale_after, worker_id=None if self._recovered_own else self.worker_id)
        self._recovered_own = True
        for row_id in ids:
            _event("in_doubt", row_id, None, reason="sender stopped during the send", level=logging.WARNING)

    def _reconcile_row(self, row_id: int, attempts: int, recipient: str | None, body: str | None, since: datetime, channel: str | None) -> int:
        now = self._now()
        askable = self.notifier.can_reconcile and channel in (None, self.notifier.channel) and recipient and body
        found: SendResult | None = None
        if askable:
            try:
                found = self.notifier.find_sent(recipient, since, body)
            except ReconcileUnavailable:
                askable = False
            except NotifyError as exc:
                self.outbox.ask_again_later(row_id, attempts, now + self._backoff(1))
                _event("reconcile_later", row_id, recipient, reason=str(exc), level=logging.WARNING)
                return 0
        if not askable:
            changed = self.outbox.assume_sent(
                row_id, attempts, now, "interrupted send on a channel that cannot be checked; counted as sent (at most once)")
            event = "assumed_sent"
        elif found is not None:
            changed = self.outbox.confirm_sent(row_id, attempts, now, found.provider_id, found.status)
            event = "reconciled_sent"
        elif attempts >= self.max_attempts:
            changed = self.outbox.give_up(row_id, attempts, f"gave up after {attempts} attempts: not delivered")
            event = "failed"
        else:
            changed = self.outbox.requeue(row_id, attempts, now)
            event = "reconciled_resend"
        if changed:
            _event(event, row_id, recipient, attempts=attempts, sid=found.provider_id if found else None)
        return int(changed)

    # --- helpers ----------------------------------------------------------------------------

    def _now(self) -> datetime:
        return self._clock().astimezone(timezone.utc)

    def _step(self, name: str, row_id: int) -> None:
        if self._on_step is not None:
            self._on_step(name, row_id)


_POLICY_HANDLED = object()


def _policy_history(history: SendHistory) -> History:
    return History(last_in_thread=history.last_in_conversation, last_hour=history.last_hour)


def default_worker_id() -> str:
    """``host:pid``: unique among live senders sharing a database."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _event(event: str, row_id: int, recipient: str | None, *, level: int = logging.INFO, **details) -> None:
    """One log line per outcome; the facts ride as structured fields (key=value as text, keys in JSON)."""
    fields_ = {"outbox_id": row_id, "to": mask_number(recipient)}
    fields_.update({k: v for k, v in details.items() if v is not None})
    log.log(level, "alert %s", event, extra=fields_)
