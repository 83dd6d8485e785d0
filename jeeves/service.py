"""The library API: one ``Jeeves`` object wires sources → storage → classification → notification.

The CLI and the daemon are thin layers over this class, and tests call it directly. A pass
(``run_once``) is: sync every source, classify what is new, send what is due. Every step is
idempotent, so a pass interrupted anywhere is simply run again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jeeves.clock import utc_now
from jeeves.config import AccountSettings, Settings
from jeeves.errors import DatabaseUnreachable, NotFound, SourceError
from jeeves.notify.outbox import default_worker_id
from jeeves.parsing import EmailDocument, parse_email
from jeeves.reporting import Reporting
from jeeves.sources import SyncReport, guarded_sync
from jeeves.sources.mailbox_file import MailboxFileSource
from jeeves.storage import Store

if TYPE_CHECKING:
    from jeeves.model.classify import ClassifyReport
    from jeeves.model.serving import ServingModel
    from jeeves.sources.imap import IMAPSource

log = logging.getLogger(__name__)

#: Messages classified per step of a pass, each step's alerts sent before the next (about a
#: tenth of a second of scoring, so even a short-lived process commits progress).
CLASSIFY_STEP = 64


@dataclass
class PassReport:
    """What one ingest → classify → notify pass did, for logs, ``--once`` output and tests."""

    syncs: list[SyncReport] = field(default_factory=list)
    classify: ClassifyReport | None = None
    notify: Any = None  # jeeves.notify.outbox.SendSummary
    errors: list[str] = field(default_factory=list)

    @property
    def stored(self) -> int:
        return sum(s.stored for s in self.syncs)


class Jeeves(Reporting):
    """A configured Jeeves: its store, serving model and notifier, created on first use."""

    def __init__(self, settings: Settings, *, store: Store | None = None, notifier: Any = None) -> None:
        self.settings = settings
        self._store = store
        self._notifier = notifier
        self._model: ServingModel | None = None
        self._model_stamp: tuple | None = None
        self._lock = threading.RLock()
        # Loading a model takes seconds: it has its own lock, so the store stays usable meanwhile
        # (the web page lists and labels while the model loads in the background).
        self._model_lock = threading.RLock()
        self._senders: dict[bool, Any] = {}
        self.worker_id = settings.daemon.worker_id or default_worker_id()

    # --- components ---------------------------------------------------------------------

    @property
    def store(self) -> Store:
        """The store, opened (and migrated) on first use; see ``open_store`` for the waiting."""
        with self._lock:
            if self._store is None:
                self.open_store()
            return self._store

    def open_store(self, *, retry_seconds: float | None = None) -> Store:
        """Open the database, retrying a server that cannot be reached for ``retry_seconds``
        (default ``database.connect_retry_seconds``): a one-shot command started while
        PostgreSQL restarts should wait a little rather than fail. Other errors fail at once."""
        wait = self.settings.database.connect_retry_seconds if retry_seconds is None else retry_seconds
        deadline = time.monotonic() + wait
        delay = 0.5
        with self._lock:
            while self._store is None:
                try:
                    self._store = Store(self.settings.database_url)
                except DatabaseUnreachable as exc:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise
                    if delay == 0.5:
                        log.warning("database unreachable, retrying for up to %.0f s: %s", left, exc)
                    time.sleep(min(delay, left))
                    delay = min(2 * delay, 5.0)
            return self._store

    @property
    def model(self) -> "ServingModel":
        """The serving model; reloaded when a newer one is promoted (``<model.dir>/CURRENT`` changes).

        Until a model is promoted into the default models directory, the shipped one serves.
        """
        with self._model_lock:
            stamp = self._model_stamp_now()
            if self._model is None or stamp != self._model_stamp:
                from jeeves.model.serving import load_model

                model = load_model(self.settings.model.path, models_dir=self.settings.model.serving_dir,
                                   trade_off=self.settings.notify.trade_off)
                if self._model is not None and model.version != self._model.version:
                    log.info("serving model changed: %s -> %s", self._model.version, model.version)
                self._model, self._model_stamp = model, stamp
            return self._model

    @property
    def model_loaded(self) -> bool:
        """Whether a model has been loaded (and served) by this process."""
        return self._model is not None

    def _model_stamp_now(self) -> tuple | None:
        target = self.settings.model.path or (self.settings.model.dir / "CURRENT")
        try:
            st = os.stat(target)
        except OSError:
            return None
        return (str(target), st.st_mtime_ns, st.st_size)

    def model_card(self) -> dict:
        """The serving model's card, once it vouches for the model file (sha256, scikit-learn
        version); raises ``ModelError`` otherwise. Unpickles nothing and imports no scikit-learn,
        so commands that only report on the model stay fast."""
        from jeeves.model.registry import verify_model

        return verify_model(self.settings.model.path, self.settings.model.serving_dir)[1]

    @property
    def notifier(self) -> Any:
        with self._lock:
            if self._notifier is None:
                from jeeves.notify import make_notifier

                self._notifier = make_notifier(self.settings.notify.channel, self.settings.twilio)
            return self._notifier

    def outbox_sender(self, *, dry_run: bool = False):
        """The process's outbox sender, kept across passes. ``dry_run`` asks for one that sends
        nothing (``notify.dry_run`` in the config makes every sender one); its
        ``policy.dry_run`` says which it is."""
        from jeeves.notify.outbox import OutboxSender, SenderSettings

        with self._lock:
            if dry_run not in self._senders:
                settings = SenderSettings.from_settings(self.settings, dry_run=dry_run)
                self._senders[dry_run] = OutboxSender(self.store, settings, self.notifier, worker_id=self.worker_id)
            return self._senders[dry_run]

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    # --- the pass ------------------------------------------------------------------------

    def mailbox_sources(self) -> list[MailboxFileSource]:
        """A source per configured mail file (mbox or maildir)."""
        return [MailboxFileSource(box.path, self.store, notify=box.notify) for box in self.settings.mailboxes]

    def imap_source(self, account: AccountSettings) -> "IMAPSource":
        """The source of one configured IMAP account (close it when done)."""
        from jeeves.sources.imap import IMAPSource

        return IMAPSource(account, self.store)

    def ingest(self) -> list[SyncReport]:
        """Sync every configured source once under the one error policy (``jeeves.sources``):
        a failing source is reported and the others go on; a ``StoreError`` propagates."""
        reports: list[SyncReport] = []
        for source in self.mailbox_sources():
            with closing(source):
                reports.append(guarded_sync(source))
        for account in self.settings.accounts:
            with closing(self.imap_source(account)) as source:
                reports.append(guarded_sync(source))
        return reports

    def classify(self) -> "ClassifyReport":
        from jeeves.model.classify import classify_pending  # numpy: only commands that score pay for it

        return classify_pending(self.store, self.model)

    def queue_digest(self, now: datetime | None = None) -> int | None:
        """Compose today's digest once its local time has come (a no-op otherwise, or when done)."""
        from jeeves.notify.digest import allowed, compose_digest, due_date

        notify = self.settings.notify
        day = due_date(now or utc_now(), notify.digest_at, notify.timezone)
        if day is None:
            return None
        from jeeves.notify.digest import CLI_HINT, REPLY_HINT
        from jeeves.notify.replies import replies_polled

        hint = REPLY_HINT if replies_polled(self.settings) else CLI_HINT
        digest_id = self.store.queue_digest(
            f"digest:{day.isoformat()}", lambda lines: compose_digest(lines, tail_hint=hint),
            lambda line: allowed(line, notify.allow_senders, notify.deny_senders, self.settings.user_addresses),
        )
        if digest_id is not None:
            log.info("digest for %s queued", day.isoformat(), extra={"outbox_id": digest_id})
        return digest_id

    def notify(self, *, dry_run: bool = False):
        """Queue the day's digest when due (not in a dry run), then send what is due."""
        sender = self.outbox_sender(dry_run=dry_run)
        if not sender.policy.dry_run:
            self.queue_digest()
        return sender.run_once()

    def poll_replies(self, *, on_step=None):
        """Read the replies to Jeeves's texts from Twilio and apply each once (a ReplySummary).

        Labels take effect at once; a help text is queued in the outbox and goes out with the
        next send (``notify`` or the daemon's next pass). ``on_step`` is for crash tests.
        """
        from jeeves.notify.replies import ReplyPoller, require_replies

        require_replies(self.settings)  # before opening anything: a config error, said plainly
        return ReplyPoller(self.store, self.settings, self.notifier, on_step=on_step).poll()

    def classify_and_notify(self, *, dry_run: bool = False, stop: threading.Event | None = None):
        """Classify what is stored in steps of ``CLASSIFY_STEP`` messages, sending each step's
        alerts before the next: (ClassifyReport, SendSummary).

        Every step is committed on its own, so a process that keeps being killed after a few
        seconds still moves a backlog forward and texts as it goes, instead of classifying the
        same messages again each life and sending only once all are done. ``stop`` ends the
        pass after the current step.
        """
        from jeeves.model.classify import ClassifyReport, classify_pending

        total = ClassifyReport(model_version="")
        sent = None
        while True:
            model = self.model
            step = classify_pending(self.store, model, batch_size=CLASSIFY_STEP, limit=CLASSIFY_STEP, log_summary=False)
            total.model_version = model.version
            total.classified += step.classified
            total.positives += step.positives
            total.queued += step.queued
            total.unsure += step.unsure
            total.outbox_ids.extend(step.outbox_ids)
            sender = self.outbox_sender(dry_run=dry_run)
            summary = sender.run_once()
            sent = summary if sent is None else sent + summary
            if stop is not None and stop.is_set() and step.classified == CLASSIFY_STEP:
                break
            if step.classified < CLASSIFY_STEP:
                # The backlog is classified: only now may the day's digest be composed (earlier, it
                # would list one step's unsure mail and leave the rest for tomorrow). A dry run
                # composes none: it changes no outbox row.
                if not sender.policy.dry_run and self.queue_digest() is not None:
                    sent = sent + sender.run_once()
                break
        if total.classified:
            log.info("classified %d messages: %d positive, %d alerts queued, %d for the digest (model %s)",
                     total.classified, total.positives, total.queued, total.unsure, total.model_version)
        return total, sent

    def run_once(self, *, dry_run: bool = False) -> PassReport:
        """One full pass. Database errors propagate (the caller retries the pass later)."""
        report = PassReport()
        report.syncs = self.ingest()
        report.errors.extend(e for s in report.syncs for e in s.errors)
        report.classify, report.notify = self.classify_and_notify(dry_run=dry_run)
        return report

    # --- single operations used by the CLI ----------------------------------------------

    def import_path(self, path: str | os.PathLike[str], *, notify: bool = False, progress: bool = False) -> SyncReport:
        """Store an archive (mbox or maildir). Imported mail is not texted unless ``notify``."""
        with closing(MailboxFileSource(path, self.store, notify=notify)) as source:
            return source.sync(progress=progress)

    def classify_file(self, path: str | os.PathLike[str]):
        """Score one .eml file without storing it: (ParsedEmail, score, decision)."""
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {exc}") from exc
        parsed = parse_email(raw)
        model = self.model
        score = float(model.score([EmailDocument.from_parsed(parsed)])[0])
        return parsed, score, bool(model.decide([score])[0])

    def document_for(self, ref: str) -> tuple[int | None, EmailDocument]:
        """A stored message (id or Message-ID) or an .eml file path, as classifier input."""
        if os.path.isfile(ref):
            return None, EmailDocument.from_parsed(parse_email(Path(ref).read_bytes()))
        message = self.store.get_message(ref)
        if message is None:
            raise NotFound(f"{self._not_found(ref)} (give an id like 123, a Message-ID, or an .eml path)")
        return message.id, EmailDocument.from_parsed(parse_email(message.raw))

    def label(self, ref: str, value: int, *, source: str = "cli") -> int:
        """Record a user's judgement on a stored message; the newest label wins."""
        message = self.store.get_message(ref)
        if message is None:
            raise NotFound(self._not_found(ref))
        self.store.add_label(message.id, value, source)
        return message.id

    def explain(self, ref: str):
        """Why the serving model scores a stored message (id or Message-ID) or .eml as it does."""
        _, document = self.document_for(ref)
        return self.model.explain(document)

    def _not_found(self, ref: str) -> str:
        # Name the database searched (never its password) and where that choice came from: the
        # usual cause is a command run without the --config the daemon or demo was started with.
        return f"no stored message {ref!r} in {self.store.where} ({self.settings.config_origin})"
