"""The long-running service: APScheduler jobs over the ``Jeeves`` library object.

Jobs live in memory and are rebuilt from the config at start (a job store shared between
processes causes duplicate or missed runs); processes coordinate through the database.
APScheduler 3.x drops a run that is more than one second late by default, so every job sets
``misfire_grace_time`` and ``coalesce`` deliberately, and never overlaps itself. A periodic run
that finds the previous one still busy is skipped by design (``max_instances = 1``); APScheduler
logs each skip as a warning, which is dropped here (``_SkippedRunFilter``). Each IMAP watcher,
and the pipeline, is one long-running job that restarts itself, so nothing is resubmitted
behind it.

Ingestion and the pipeline never share a thread: a watcher (or the mail-file job) only stores
mail, through the same ``guarded_sync`` as ``jeeves run --once``, and then wakes the pipeline job
(``wake_pipeline`` sets an event it waits on), which classifies and sends on its own thread. A
slow Twilio answer therefore never keeps IDLE from receiving; mail stored while a pass runs
starts the next pass as soon as that one ends.

The daemon announces itself in one line (what it watches, where alerts go) at any log level,
before the model is loaded: the card is checked at once, the model unpickled by the first pass.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import timezone

from apscheduler.events import EVENT_JOB_ERROR
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from jeeves.clock import utc_now
from jeeves.config import Settings
from jeeves.logs import mask_number
from jeeves.errors import DatabaseUnreachable, JeevesError, ModelError, StoreError
from jeeves.service import Jeeves
from jeeves.sources import SyncReport, guarded_sync

log = logging.getLogger(__name__)

#: How long a dead IMAP watcher waits before it restarts (also: retrying an account's lease).
WATCHER_RESTART_SECONDS = 15.0
#: How often a watcher checks that its account lease survives (a PostgreSQL restart ends it).
LEASE_CHECK_SECONDS = 5.0
#: Longest pause between attempts to reach a database that was down when the daemon started.
DATABASE_WAIT_MAX_SECONDS = 10.0


class _SkippedRunFilter(logging.Filter):
    """Drops APScheduler's warning that a run was skipped because the last one is still busy."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and "skipped: maximum number of running instances" in record.msg)


def _quiet_apscheduler() -> None:
    logger = logging.getLogger("apscheduler.scheduler")
    if not any(isinstance(f, _SkippedRunFilter) for f in logger.filters):
        logger.addFilter(_SkippedRunFilter())


def _announce(message: str, **facts) -> None:
    """Log a lifecycle line at INFO even when the configured level is higher (the demo runs at
    WARNING): that the daemon runs, and what it watches, is never noise."""
    record = log.makeRecord(log.name, logging.INFO, __file__, 0, message, (), None, extra=facts or None)
    log.handle(record)


class Daemon:
    """Owns the scheduler, the stop event and the jobs; ``run`` blocks until stopped."""

    def __init__(self, settings: Settings, *, app: Jeeves | None = None, dry_run: bool = False) -> None:
        self.settings = settings
        self.app = app or Jeeves(settings)
        self.dry_run = dry_run
        self.stop_event = threading.Event()
        self._pipeline_wanted = threading.Event()  # set: run a pass now (mail stored, or stopping)
        self._db_down_since: float | None = None  # while the pipeline finds the database unavailable
        self._replies_failing = False  # while reading SMS replies fails
        # One thread per IMAP watcher (they block in IDLE) plus the periodic jobs (pipeline,
        # mailboxes, replies, retrain) and one spare.
        workers = len(settings.accounts) + 5
        self.scheduler = BackgroundScheduler(
            timezone=timezone.utc,
            executors={"default": ThreadPoolExecutor(max_workers=workers)},
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        self.scheduler.add_listener(self._on_job_error, EVENT_JOB_ERROR)
        self.exit_code = 0
        _quiet_apscheduler()

    # --- jobs ---------------------------------------------------------------------------

    def run_pipeline(self) -> None:
        """The pipeline job, one run for the daemon's life: a pass at start, whenever a source
        stored mail (``wake_pipeline``), and every ``outbox_interval`` (retries, held alerts,
        the digest's hour, a database that came back). Mail stored during a pass wakes the next
        one at once."""
        interval = self.settings.daemon.outbox_interval
        while not self.stop_event.is_set():
            self._pipeline_wanted.clear()
            try:
                self._pipeline_pass()
            except Exception:  # noqa: BLE001 - a bug must not end classification for good
                log.exception("the pipeline pass crashed; retrying in %.0f s", interval)
            self._pipeline_wanted.wait(interval)

    def wake_pipeline(self, report: SyncReport | None = None) -> None:
        """Have the pipeline job run a pass now (after the current one, if it is busy).

        Called by the watchers and the mail-file job when they stored mail; it returns at once
        and touches no scheduler lock (APScheduler's shutdown holds one while it waits for the
        running jobs, these included)."""
        self._pipeline_wanted.set()

    def _pipeline_pass(self) -> None:
        """One pass: classify what is stored and send what is due; a database outage is logged
        once and an unusable model stops the daemon."""
        try:
            self.app.classify_and_notify(dry_run=self.dry_run, stop=self.stop_event)
        except ModelError as exc:
            if self.app.model_loaded:  # a newly promoted model is broken: keep watching mail
                log.error("the promoted model cannot be used: %s; classification waits for a usable one", exc)
                return
            # The card vouched for the file, yet it does not load or run: retrying will not
            # help, and a daemon that can classify nothing should not look healthy.
            log.error("the model cannot be used: %s; stopping", exc)
            self.exit_code = 2
            self.stop()
            return
        except StoreError as exc:
            self._database_down(exc)
            return
        self._database_up()

    def _database_down(self, exc: StoreError) -> None:
        # Once per outage at ERROR: the jobs that meet it run every few seconds.
        if self._db_down_since is None:
            self._db_down_since = time.monotonic()
            log.error("database unavailable, will retry: %s", exc)
        else:
            log.debug("database still unavailable: %s", exc)

    def _database_up(self) -> None:
        if self._db_down_since is not None:
            log.info("database available again after %.0f s", time.monotonic() - self._db_down_since)
            self._db_down_since = None

    def sync_mailboxes(self) -> None:
        """Sync each mail file under the one error policy; wake the pipeline when mail was stored."""
        for source in self.app.mailbox_sources():
            if self.stop_event.is_set():
                return
            try:
                report = guarded_sync(source)
            except StoreError as exc:
                self._database_down(exc)
                return  # the next run of this job retries; positions only move with stored mail
            finally:
                source.close()
            if report.stored:
                self.wake_pipeline(report)

    def watch_account(self, name: str) -> None:
        """Run one account's IDLE/poll loop until stop, restarting it when it dies.

        With several daemons on one PostgreSQL database, the account lease makes exactly one
        of them watch each account; the others retry every WATCHER_RESTART_SECONDS and take
        over when the holder dies. A lease lost with its database session (PostgreSQL restarted)
        stops the watcher, and it is taken back here with backoff once the database answers.
        """
        account = next(a for a in self.settings.accounts if a.name == name)
        delay = 1.0
        while not self.stop_event.is_set():
            try:
                if self._watch_under_lease(account):
                    # The lease died with its database session (a PostgreSQL restart): take it
                    # back as soon as the database answers.
                    wait, delay = delay, min(2 * delay, WATCHER_RESTART_SECONDS)
                else:
                    # Stopped, the watcher gave up on an error, or another process watches it.
                    wait, delay = WATCHER_RESTART_SECONDS, 1.0
            except StoreError as exc:
                log.error("account %s: cannot take its lease: %s; retrying in %.0f s", name, exc, delay)
                wait, delay = delay, min(2 * delay, WATCHER_RESTART_SECONDS)
            except Exception:  # noqa: BLE001 - a bug must not end watching for good
                log.exception("account %s: watcher crashed; restarting in %.0f s", name, WATCHER_RESTART_SECONDS)
                wait = WATCHER_RESTART_SECONDS
            if self.stop_event.wait(wait):
                return

    def _watch_under_lease(self, account) -> bool:
        """Watch ``account`` while holding its lease; True when the lease was lost meanwhile."""
        name = account.name
        with self.app.store.account_lease(name) as lease:
            if not lease:
                log.debug("account %s is watched by another process", name)
                return False
            log.info("watching account %s", name)
            watching = threading.Event()  # set: stop watching (daemon stopping, or the lease is gone)
            guard = threading.Thread(target=self._guard_lease, args=(name, lease, watching), name=f"lease:{name}", daemon=True)
            guard.start()
            source = self.app.imap_source(account)
            try:
                source.watch(watching, self.wake_pipeline)  # stores only; the pipeline job does the rest
            except JeevesError as exc:
                log.error("account %s stopped: %s; restarting in %.0f s", name, exc, WATCHER_RESTART_SECONDS)
            finally:
                watching.set()
                source.close()
                guard.join()
            return lease.lost and not self.stop_event.is_set()

    def _guard_lease(self, name: str, lease, watching: threading.Event) -> None:
        """Stop the watcher when the daemon stops or its lease dies with its database session.

        Without the lease another daemon may take the account over; this one steps back and its
        next scheduled ``watch_account`` run takes a fresh lease (or finds the account taken).
        """
        next_check = time.monotonic() + LEASE_CHECK_SECONDS
        while not watching.is_set():
            if self.stop_event.wait(0.2):
                watching.set()
                return
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + LEASE_CHECK_SECONDS
                if not lease.still_held():
                    log.warning("account %s: the watch lease was lost with its database session; "
                                "stopping the watcher until it is retaken", name)
                    watching.set()
                    return

    def poll_replies(self) -> None:
        """Read the replies to Jeeves's texts (``jeeves.notify.replies``); a failure waits for the next run."""
        if self.stop_event.is_set():
            return
        try:
            self.app.poll_replies()
        except JeevesError as exc:
            # Once per outage (Twilio or the database away), not once a minute.
            if not self._replies_failing:
                log.warning("reading SMS replies failed, will retry every %.0f s: %s",
                            self.settings.notify.reply_poll_seconds, exc)
            self._replies_failing = True
            return
        if self._replies_failing:
            log.info("reading SMS replies works again")
            self._replies_failing = False

    def retrain(self) -> None:
        from jeeves.model.retrain import retrain_and_maybe_promote

        try:
            retrain_and_maybe_promote(self.app)
        except JeevesError as exc:
            log.error("scheduled retrain failed: %s", exc)

    # --- lifecycle ----------------------------------------------------------------------

    def schedule(self) -> None:
        now = utc_now()
        # One run for the daemon's life, like the watchers: it waits for work itself.
        self.scheduler.add_job(self.run_pipeline, "date", run_date=now, id="pipeline", misfire_grace_time=None)
        if self.settings.mailboxes:
            every = self.settings.daemon.mailbox_interval
            self.scheduler.add_job(self.sync_mailboxes, "interval", seconds=every, id="mailboxes", next_run_time=now,
                                   misfire_grace_time=max(1, int(every)))
        for account in self.settings.accounts:
            # One run for the daemon's life: the watcher restarts itself (``watch_account``).
            self.scheduler.add_job(self.watch_account, "date", args=[account.name], run_date=now,
                                   id=f"watch:{account.name}", misfire_grace_time=None)
        from jeeves.notify.replies import replies_polled

        if replies_polled(self.settings) and not (self.dry_run or self.settings.notify.dry_run):
            every = self.settings.notify.reply_poll_seconds
            self.scheduler.add_job(self.poll_replies, "interval", seconds=every, id="replies", next_run_time=now,
                                   misfire_grace_time=max(1, int(every)))
        hours = self.settings.daemon.retrain_interval_hours
        if hours > 0:
            self.scheduler.add_job(self.retrain, "interval", hours=hours, id="retrain", misfire_grace_time=3600)

    def run(self) -> int:
        if not self._wait_for_database():
            self.app.close()
            return 0
        card = self.app.model_card()  # fail fast on a missing, altered or incompatible model
        self.schedule()
        self.scheduler.start()
        _announce(f"jeeves running: {self._what_it_watches()}; model {card['version']}",
                  accounts=len(self.settings.accounts), mailboxes=len(self.settings.mailboxes))
        try:
            while not self.stop_event.wait(1.0):
                pass
        finally:
            self.shutdown()
        return self.exit_code

    def _what_it_watches(self) -> str:
        parts = [f"account {a.name} ({a.host}: {', '.join(a.folders)})" for a in self.settings.accounts]
        parts += [f"mail file {box.path}" for box in self.settings.mailboxes]
        notify = self.settings.notify
        channel = notify.channel
        if channel == "auto":
            channel = "twilio" if self.settings.twilio.configured else "console"
        where = f"alerts by SMS to {mask_number(notify.to)}" if channel == "twilio" else "alerts on the console"
        if self.dry_run or notify.dry_run:
            where += " (dry run: nothing is sent)"
        return f"watching {', '.join(parts) or 'nothing (no accounts or mailboxes configured)'}; {where}"

    def _wait_for_database(self) -> bool:
        """Open (and migrate) the database, waiting while a PostgreSQL server is unreachable.

        A daemon often starts before its database (boot order, a compose stack, a failover), and
        exiting would leave mail unwatched until something restarts it. Only a server that cannot
        be reached is waited for: a wrong password, a missing database or a SQLite file that
        cannot be written will not fix themselves, so they fail at once with their clear error.
        Returns False when asked to stop while waiting.
        """
        delay, down_since = 1.0, None
        while True:
            try:
                self.app.open_store(retry_seconds=0)  # the waiting is done here, stoppably
            except DatabaseUnreachable as exc:
                if down_since is None:
                    down_since = time.monotonic()
                    log.error("database unavailable at start, waiting for it: %s", exc)
                if self.stop_event.wait(delay):
                    return False
                delay = min(delay * 2, DATABASE_WAIT_MAX_SECONDS)
                continue
            if down_since is not None:
                log.info("database available after %.0f s", time.monotonic() - down_since)
            return True

    def stop(self, *_: object) -> None:
        if not self.stop_event.is_set():
            _announce("stopping: finishing current work")
        self.stop_event.set()
        self._pipeline_wanted.set()

    def shutdown(self) -> None:
        self.stop_event.set()
        self._pipeline_wanted.set()
        started = time.monotonic()
        self.scheduler.shutdown(wait=True)
        self.app.close()
        _announce("stopped", seconds=round(time.monotonic() - started, 2))

    def _on_job_error(self, event) -> None:
        log.error("job %s failed: %r", event.job_id, event.exception)


def run_daemon(settings: Settings, *, dry_run: bool = False) -> int:
    daemon = Daemon(settings, dry_run=dry_run)
    signal.signal(signal.SIGTERM, daemon.stop)
    signal.signal(signal.SIGINT, daemon.stop)
    return daemon.run()
