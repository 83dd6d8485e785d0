"""The library API: one ``Jeeves`` object wires sources → storage → classification → notification.

The CLI and the daemon are thin layers over this class, and tests call it directly. A pass
(``run_once``) is: sync every source, classify what is new, send what is due. Every step is
idempotent, so a pass interrupted anywhere is simply run again.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jeeves.classify import ClassifyReport, classify_pending
from jeeves.config import Settings
from jeeves.errors import JeevesError, ModelError, SourceError, StoreError
from jeeves.parsing import EmailDocument, parse_email
from jeeves.sources import SyncReport
from jeeves.sources.mailbox_file import MailboxFileSource
from jeeves.storage import Store

if TYPE_CHECKING:
    from jeeves.training import ServingModel

log = logging.getLogger(__name__)


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


class Jeeves:
    """A configured Jeeves: its store, serving model and notifier, created on first use."""

    def __init__(self, settings: Settings, *, store: Store | None = None, notifier: Any = None) -> None:
        self.settings = settings
        self._store = store
        self._notifier = notifier
        self._model: ServingModel | None = None
        self._model_stamp: tuple | None = None
        self._lock = threading.RLock()
        self._senders: dict[bool, Any] = {}
        self.worker_id = settings.daemon.worker_id or f"{socket.gethostname()}:{os.getpid()}"

    # --- components ---------------------------------------------------------------------

    @property
    def store(self) -> Store:
        with self._lock:
            if self._store is None:
                self._store = Store(self.settings.database_url)
            return self._store

    @property
    def model(self) -> "ServingModel":
        """The serving model; reloaded when a newer one is promoted (``<model.dir>/CURRENT`` changes).

        Until a model is promoted into the default models directory, the shipped one serves.
        """
        with self._lock:
            stamp = self._model_stamp_now()
            if self._model is None or stamp != self._model_stamp:
                from jeeves.training import load_model

                model = load_model(self.settings.model.path, models_dir=self.settings.model.serving_dir)
                if self._model is not None and model.version != self._model.version:
                    log.info("serving model changed: %s -> %s", self._model.version, model.version)
                self._model, self._model_stamp = model, stamp
            return self._model

    def _model_stamp_now(self) -> tuple | None:
        target = self.settings.model.path or (self.settings.model.dir / "CURRENT")
        try:
            st = os.stat(target)
        except OSError:
            return None
        return (str(target), st.st_mtime_ns, st.st_size)

    @property
    def notifier(self) -> Any:
        with self._lock:
            if self._notifier is None:
                from jeeves.notify import make_notifier

                self._notifier = make_notifier(self.settings)
            return self._notifier

    def outbox_sender(self, *, dry_run: bool | None = None):
        """The process's outbox sender (one per dry-run setting, kept across passes)."""
        from jeeves.notify.outbox import OutboxSender

        settings = self.settings
        if dry_run is not None and dry_run != settings.notify.dry_run:
            settings = settings.model_copy(update={"notify": settings.notify.model_copy(update={"dry_run": dry_run})})
        key = settings.notify.dry_run
        with self._lock:
            if key not in self._senders:
                self._senders[key] = OutboxSender(self.store, settings, self.notifier, worker_id=self.worker_id)
            return self._senders[key]

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    # --- the pass ------------------------------------------------------------------------

    def ingest(self) -> list[SyncReport]:
        """Sync every configured source; one failing source never stops the others."""
        reports: list[SyncReport] = []
        for box in self.settings.mailboxes:
            source = MailboxFileSource(box.path, self.store, notify=box.notify)
            reports.append(self._guarded_sync(source.name, source.sync))
        for account in self.settings.accounts:
            from jeeves.sources.imap import IMAPSource

            source = IMAPSource(account, self.store)
            try:
                reports.append(self._guarded_sync(account.name, source.sync))
            finally:
                source.close()
        return reports

    def _guarded_sync(self, name: str, sync) -> SyncReport:
        try:
            report = sync()
        except StoreError:
            raise
        except JeevesError as exc:
            log.error("sync of %s failed: %s", name, exc)
            return SyncReport(name, errors=[str(exc)])
        if report.stored:
            log.info("synced %s: %d fetched, %d new", name, report.fetched, report.stored)
        return report

    def classify(self) -> ClassifyReport:
        return classify_pending(self.store, self.model)

    def notify(self, *, dry_run: bool | None = None):
        return self.outbox_sender(dry_run=dry_run).run_once()

    def run_once(self, *, dry_run: bool | None = None) -> PassReport:
        """One full pass. Database errors propagate (the caller retries the pass later)."""
        report = PassReport()
        report.syncs = self.ingest()
        report.errors.extend(e for s in report.syncs for e in s.errors)
        report.classify = self.classify()
        report.notify = self.notify(dry_run=dry_run)
        return report

    # --- single operations used by the CLI ----------------------------------------------

    def import_path(self, path: str | os.PathLike[str], *, notify: bool = False, progress: bool = False) -> SyncReport:
        """Store an archive (mbox or maildir). Imported mail is not texted unless ``notify``."""
        return MailboxFileSource(path, self.store, notify=notify).sync(progress=progress)

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
            raise JeevesError(f"no stored message {ref!r} (give an id like 123, a Message-ID, or an .eml path)")
        return message.id, EmailDocument.from_parsed(parse_email(message.raw))

    def label(self, ref: str, value: int, *, source: str = "cli") -> int:
        """Record a user's judgement on a stored message; the newest label wins."""
        message = self.store.get_message(ref)
        if message is None:
            raise JeevesError(f"no stored message {ref!r}")
        self.store.add_label(message.id, value, source)
        return message.id

    def status(self) -> dict:
        """Accounts, counts, model version and outbox state, as plain data."""
        store = self.store
        counts = store.counts()
        from jeeves.quality import live_quality, offline_precision

        try:
            model = self.model
            model_info = {"version": model.version, "threshold": model.threshold, "offline_precision": offline_precision(model.card)}
        except ModelError as exc:
            model_info = {"error": str(exc)}
        live = live_quality(store)
        from jeeves.notify.outbox import outbox_problems

        return {
            "database": store.dialect,
            "outbox_problems": [
                {"outbox_id": p.id, "message": p.message_pk, "status": p.status, "attempts": p.attempts,
                 "code": p.error_code, "reason": p.error_message}
                for p in outbox_problems(store)
            ],
            "model": model_info,
            "messages": counts.messages,
            "predictions": counts.predictions,
            "positives": counts.positives,
            "labelled": counts.labels,
            "outbox": counts.outbox,
            "live_quality": {"days": live.days, "alerts": live.alerts, "judged": live.judged, "confirmed": live.confirmed,
                             "precision": live.precision},
            "accounts": [
                {
                    "name": a.name,
                    "kind": a.kind,
                    "last_sync": a.last_sync_at.isoformat() if a.last_sync_at else None,
                    "last_error": a.last_error,
                }
                for a in store.accounts()
            ],
        }
