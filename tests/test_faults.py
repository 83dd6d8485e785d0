"""Jeeves under faults (issue 8, "Faults and bad input"): what a user relies on still holds.

- The database goes away (PostgreSQL stopped) while a ``jeeves run`` daemon ingests a steady
  stream of APPENDs, then comes back: nothing lost, nothing duplicated, no restart needed.
- The disk fills up / the SQLite file is read-only: one clear ``jeeves: …`` line naming the
  database and the cause, exit code ≠ 0, and no partial state (a folder's sync position never
  moves past mail that was not stored; once the disk is writable the next pass stores the rest
  exactly once).
- The daemon starts while PostgreSQL is down: it waits (one log line) and works once the server
  is up; SIGTERM still stops it; a database that refuses it (missing, wrong password) is not
  waited for.
- The daemon is SIGKILLed at random moments while it works through 1,000 messages, restarted
  each time: every message stored once, every positive texted once at the local Twilio API.

Each test prints one ``FAULT-REPORT`` line (visible with ``-s``, and in the log) with its
figures: load held, faults injected, inputs tried, messages lost, duplicate SMS.

How the faults are made: PostgreSQL by ``pg_ctl stop`` (fast, then immediate); a full disk in
the library by ``PRAGMA max_page_count`` on the store's connections, and for the CLI by a 1 MB
tmpfs when the tests may mount (root), else the same CLI with the page cap (tests/fault_cli.py);
a read-only database by a read-only bind mount as root (root ignores ``chmod``), by
``chmod 0444``/``0555`` otherwise. ``JEEVES_FAULT_NO_MOUNT=1`` forces the unprivileged variants;
``JEEVES_FAULT_SEED=N`` replays the kill moments of a SIGKILL run (the seed is in its report).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import event, func, select

from jeeves.config import load_settings
from jeeves.errors import StoreError
from jeeves.parsing import parse_email
from jeeves.service import Jeeves
from jeeves.sources.imap import IMAPSource
from jeeves.storage import NewMessage, Store
from jeeves.storage.schema import Folder, MessageLocation, OutboxEntry, Prediction, StoredMessage
from tests.fixtures_twilio import TEST_TO
from tests.daemon_helpers import REPO, _config, _expected_positive_keys, _start, _wait_for

log = logging.getLogger("jeeves.faults")


def _report(test: str, **figures) -> None:
    line = f"FAULT-REPORT {test}: " + ", ".join(f"{k}={v}" for k, v in figures.items())
    print(line)
    log.warning(line)


# --- shared checks ------------------------------------------------------------------------------


def _stored_figures(store: Store) -> dict:
    """What the database holds: rows, distinct Message-IDs, predictions, outbox by status."""
    with store.session() as s:
        rows = s.scalar(select(func.count()).select_from(StoredMessage))
        distinct = s.scalar(select(func.count(func.distinct(StoredMessage.dedupe_key))))
        predicted = s.scalar(select(func.count(func.distinct(Prediction.message_pk))))
        outbox_keys = s.scalars(select(StoredMessage.dedupe_key).join(OutboxEntry, OutboxEntry.message_pk == StoredMessage.id)).all()
        statuses = dict(s.execute(select(OutboxEntry.status, func.count()).group_by(OutboxEntry.status)).all())
    return {"rows": rows, "distinct": distinct, "predicted": predicted, "outbox_keys": outbox_keys, "statuses": statuses}


def _keys(raws: list[bytes]) -> set[str]:
    parsed = [parse_email(r) for r in raws]
    return {p.message_id or p.content_hash for p in parsed}


def _assert_exactly_once(store: Store, raws: list[bytes], expected_positive: set[str], twilio) -> dict:
    """Every message stored once and classified; every positive texted once, nothing else texted."""
    figures = _stored_figures(store)
    with store.session() as s:
        stored_keys = set(s.scalars(select(StoredMessage.dedupe_key)).all())
    wanted = _keys(raws)
    lost = len(wanted - stored_keys)
    sms = twilio.sms_to(TEST_TO)
    bodies = twilio.bodies()
    duplicate_sms = len(bodies) - len(set(bodies))
    figures.update(lost=lost, sms=len(sms), duplicate_sms=duplicate_sms)
    assert lost == 0, f"{lost} appended messages were never stored"
    assert figures["rows"] == figures["distinct"] == len(wanted), figures
    assert figures["predicted"] == len(wanted), figures
    assert len(figures["outbox_keys"]) == len(set(figures["outbox_keys"])), "two outbox rows for one message"
    assert set(figures["outbox_keys"]) == expected_positive, "outbox rows differ from the model's own positives"
    assert figures["statuses"] == {"sent": len(expected_positive)}, figures["statuses"]
    assert duplicate_sms == 0
    assert len(sms) == len(expected_positive)
    return figures


def _stop_daemon(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _pg_running(server) -> bool:
    return subprocess.run(server._cmd("pg_ctl", "-D", str(server.datadir), "status"), capture_output=True).returncode == 0


def _ensure_pg_running(server) -> None:
    if not _pg_running(server):
        server.start()


def _advisory_locks_held(store: Store) -> int:
    """Session advisory locks held in ``store``'s database (the daemons' account leases)."""
    from sqlalchemy import text

    try:
        with store.session() as s:
            return s.execute(text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND pid <> pg_backend_pid()"
            )).scalar()
    except StoreError:
        return -1


def _children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _log_text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


# --- 1. PostgreSQL goes away during ingestion and comes back ----------------------------------------


@pytest.mark.postgres
@pytest.mark.dovecot
@pytest.mark.slow
def test_postgres_outage_during_ingestion_loses_and_repeats_nothing(tmp_path, postgres_server, pg_url, dovecot, twilio_server,
                                                                   corpus_raw_messages):
    """Two outages (a fast shutdown and a crash-like immediate one) while mail keeps arriving."""
    raws = corpus_raw_messages[1000:1120]
    expected = _expected_positive_keys(raws)
    assert len(expected) >= 5
    config = _config(tmp_path, db_url=pg_url, dovecot=dovecot, twilio=twilio_server, users=("alice",))
    Store(pg_url).close()  # migrate up front, as a deploy step would
    log_path = tmp_path / "daemon.log"
    proc = _start(config, "pg-outage", log_path)
    pid = proc.pid
    store = Store(pg_url, migrate=False)
    outages: list[tuple[str, float]] = []
    started = time.monotonic()
    try:
        _wait_for(lambda: len(store.folders()) == 1, 60, "the account to be watched")
        # A steady stream of ~10 messages/s; PostgreSQL goes away twice for several seconds.
        plan = {25: "fast", 75: "immediate"}  # stop mode by message index; each outage lasts 5 s
        down: tuple[str, float] | None = None
        for i, raw in enumerate(raws):
            if down is None and plan and i >= min(plan):
                mode = plan.pop(min(plan))
                postgres_server.stop(mode)
                assert not _pg_running(postgres_server)
                down = (mode, time.monotonic())
            dovecot.append("alice", "INBOX", raw)
            if down is not None and time.monotonic() - down[1] >= 5.0:
                postgres_server.start()
                outages.append((down[0], time.monotonic() - down[1]))
                down = None
            time.sleep(0.05)
            assert proc.poll() is None, f"the daemon died during the outage:\n{_log_text(log_path)[-3000:]}"
        if down is not None:
            time.sleep(max(0.0, 5.0 - (time.monotonic() - down[1])))
            postgres_server.start()
            outages.append((down[0], time.monotonic() - down[1]))
        assert len(outages) == 2
        append_seconds = time.monotonic() - started
        _wait_for(lambda: store.counts().predictions >= len(raws), 120, "every message to be stored and classified")
        # A send recorded while the database was down is settled by reconciliation (stale_after ≈ 70 s).
        _wait_for(lambda: len(twilio_server.sms_to(TEST_TO)) >= len(expected)
                  and set(store.counts().outbox) == {"sent"}, 150, "every positive to be texted")
        # The account lease died with its session at each restart; the daemon holds it again.
        _wait_for(lambda: _advisory_locks_held(store) == 1, 60, "the daemon to hold the account lease again")
        time.sleep(2)  # a duplicate, if any, would arrive now
        assert proc.poll() is None and proc.pid == pid, "the daemon did not survive the outages"
        figures = _assert_exactly_once(store, raws, expected, twilio_server)
        text = _log_text(log_path)
        assert text.count("jeeves running") == 1, "the daemon restarted itself"
        assert "Traceback" not in text, text[-3000:]
        assert " failed: " not in "\n".join(l for l in text.splitlines() if "job " in l), "a scheduler job died"
    finally:
        _ensure_pg_running(postgres_server)  # the server is shared with the rest of the session
        _stop_daemon(proc)
        store.close()
    _report("postgres-outage", load=f"{len(raws)} APPENDs at ~{len(raws) / append_seconds:.1f}/s",
            faults=f"{len(outages)} PostgreSQL outages ({', '.join(f'{m} {d:.1f}s' for m, d in outages)})",
            inputs=len(raws), positives=len(expected), stored=figures["rows"], lost=figures["lost"],
            sms=figures["sms"], duplicate_sms=figures["duplicate_sms"], daemon_restarts=0,
            seconds=round(time.monotonic() - started, 1))


# --- 2. Disk full / read-only SQLite file ---------------------------------------------------------------


def _position_is_safe(store: Store, server_uids: list[int]) -> tuple[int, int, int]:
    """(last_uid, stored messages, stored locations); asserts no server UID at or below the
    folder's sync position is missing from the store: the position never moved past lost mail."""
    with store.session() as s:
        folder = s.scalars(select(Folder)).one_or_none()
        last_uid = folder.last_uid if folder is not None else 0
        uids = set(s.scalars(select(MessageLocation.uid)).all())
        rows = s.scalar(select(func.count()).select_from(StoredMessage))
    missing = [uid for uid in server_uids if uid <= last_uid and uid not in uids]
    assert not missing, f"the sync position {last_uid} moved past {len(missing)} unstored messages"
    return last_uid, rows, len(uids)


def _settings(config: Path, *, fetch_batch: int = 50):
    settings = load_settings(config)
    accounts = [a.model_copy(update={"fetch_batch": fetch_batch}) for a in settings.accounts]
    return settings.model_copy(update={"accounts": accounts})


def _cli(config: Path, *args: str, wrapper_env: dict | None = None) -> subprocess.CompletedProcess:
    """``jeeves --config CONFIG ARGS`` as a user runs it (optionally through tests/fault_cli.py)."""
    env = {**os.environ, **(wrapper_env or {})}
    entry = [str(REPO / "tests" / "fault_cli.py")] if wrapper_env else ["-m", "jeeves"]
    return subprocess.run([sys.executable, *entry, "--config", str(config), *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=180)


def _assert_clear_error(result: subprocess.CompletedProcess, db: Path, *causes: str) -> str:
    assert result.returncode not in (0, None), result
    assert "Traceback" not in result.stderr, result.stderr
    lines = [l for l in result.stderr.splitlines() if l.startswith("jeeves: ")]
    assert len(lines) == 1, result.stderr
    assert str(db) in lines[0], lines[0]
    assert any(c in lines[0] for c in causes), lines[0]
    return lines[0]


@contextlib.contextmanager
def _sqlite_page_cap(store: Store, extra_pages: int):
    """Simulated disk full: ``PRAGMA max_page_count`` on every new connection of ``store``."""
    with store.session() as s:
        from sqlalchemy import text

        limit = s.execute(text("PRAGMA page_count")).scalar() + extra_pages

    def cap(dbapi_connection, _record):
        dbapi_connection.execute(f"PRAGMA max_page_count={limit}")

    store.engine.dispose()
    event.listen(store.engine, "connect", cap)
    try:
        yield limit
    finally:
        event.remove(store.engine, "connect", cap)
        store.engine.dispose()


@pytest.mark.dovecot
def test_disk_full_library_stores_nothing_partial_and_resumes(tmp_path, dovecot, corpus_raw_messages):
    """``Jeeves.run_once`` on a database that fills up mid-sync (SQLite ``max_page_count``)."""
    raws = corpus_raw_messages[:300]
    dovecot.append_many("alice", "INBOX", raws)
    db = tmp_path / "j.db"
    settings = _settings(_config(tmp_path, db_url=f"sqlite:///{db}", dovecot=dovecot, users=("alice",)))
    store = Store(settings.database_url)
    app = Jeeves(settings, store=store)
    started = time.monotonic()
    try:
        with _sqlite_page_cap(store, extra_pages=150):
            with pytest.raises(StoreError) as info:
                app.run_once()
            message = str(info.value)
            assert str(db) in message and "full" in message, message
            last_uid, rows, locations = _position_is_safe(store, dovecot.uids("alice", "INBOX"))
            assert 0 < rows < len(raws), "the fault should strike after some batches were stored"
            # A batch written directly is all or nothing, too.
            before = store.counts().messages
            with pytest.raises(StoreError):
                store.store_batch([NewMessage(r, parse_email(r)) for r in corpus_raw_messages[300:700]])
            assert store.counts().messages == before
        partial = rows
        report = app.run_once()  # the disk has room again
        assert report.stored == len(raws) - partial and not report.errors
        last_uid, rows, locations = _position_is_safe(store, dovecot.uids("alice", "INBOX"))
        assert rows == locations == len(raws) and last_uid == max(dovecot.uids("alice", "INBOX"))
        figures = _stored_figures(store)
        assert figures["distinct"] == len(raws) and figures["predicted"] == len(raws)
    finally:
        app.close()
    _report("disk-full-library", load=f"{len(raws)} messages in batches of 50", faults="1 disk full (max_page_count) + 1 oversized batch",
            inputs=len(raws), stored_before_fault=partial, lost=0, duplicates=rows - figures["distinct"],
            error=repr(message), seconds=round(time.monotonic() - started, 1))


@contextlib.contextmanager
def _small_disk(path: Path, size: str):
    """A tmpfs of ``size`` at ``path`` (root only); yields a function that grows it, or None."""
    path.mkdir()
    if os.geteuid() != 0 or os.environ.get("JEEVES_FAULT_NO_MOUNT"):
        yield None
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "jeeves-faults", str(path)], capture_output=True)
    if mounted.returncode != 0:
        yield None
        return
    try:
        yield lambda new_size: subprocess.run(["mount", "-o", f"remount,size={new_size}", str(path)], check=True, capture_output=True)
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.mark.dovecot
@pytest.mark.slow
def test_disk_full_cli_exits_with_one_clear_line_and_resumes(tmp_path, dovecot, corpus_raw_messages):
    """``jeeves run --once`` with its database on a nearly full disk: a real 1 MB tmpfs when the
    tests may mount one (root), else the same CLI under a SQLite page cap (tests/fault_cli.py)."""
    raws = corpus_raw_messages[:300]
    dovecot.append_many("alice", "INBOX", raws)
    started = time.monotonic()
    with _small_disk(tmp_path / "disk", "1m") as grow:
        db = tmp_path / "disk" / "j.db"
        config = _config(tmp_path, db_url=f"sqlite:///{db}", dovecot=dovecot, users=("alice",))
        if grow is None:
            how = "SQLite max_page_count (no tmpfs)"
            Store(f"sqlite:///{db}").close()
            wrapper = {"JEEVES_TEST_MAX_PAGES": "250"}
        else:
            how = "1 MB tmpfs"
            wrapper = None
        failed = _cli(config, "run", "--once", wrapper_env=wrapper)
        line = _assert_clear_error(failed, db, "full")
        store = Store(f"sqlite:///{db}", migrate=False)
        try:
            _, partial, _ = _position_is_safe(store, dovecot.uids("alice", "INBOX"))
        finally:
            store.close()
        if grow is not None:
            grow("64m")
        ok = _cli(config, "run", "--once")
        assert ok.returncode == 0, ok.stderr[-3000:]
        store = Store(f"sqlite:///{db}", migrate=False)
        try:
            last_uid, rows, locations = _position_is_safe(store, dovecot.uids("alice", "INBOX"))
            figures = _stored_figures(store)
        finally:
            store.close()
    assert rows == locations == figures["distinct"] == figures["predicted"] == len(raws)
    assert last_uid == max(dovecot.uids("alice", "INBOX"))
    _report("disk-full-cli", load=f"{len(raws)} messages", faults=f"1 disk full ({how})", inputs=len(raws),
            stored_before_fault=partial, lost=0, duplicates=rows - figures["distinct"], exit_code=failed.returncode,
            error=repr(line), seconds=round(time.monotonic() - started, 1))


@contextlib.contextmanager
def _read_only_dir(path: Path):
    """Make ``path`` and its files read-only in a way that binds root too (a read-only bind mount);
    without root, plain permissions (chmod 0555/0444) do."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [path, *path.iterdir()]}
        for p in modes:
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            yield "chmod 0444"
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    if os.environ.get("JEEVES_FAULT_NO_MOUNT") or subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True).returncode != 0:
        pytest.skip("cannot make a directory read-only for root here (no bind mounts)")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True, capture_output=True)
        yield "read-only bind mount"
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.mark.dovecot
@pytest.mark.slow
def test_read_only_database_is_a_clear_error_with_no_partial_state(tmp_path, dovecot, corpus_raw_messages):
    raws = corpus_raw_messages[:120]
    first, later = raws[:60], raws[60:]
    dovecot.append_many("alice", "INBOX", first)
    folder = tmp_path / "db"
    db = folder / "j.db"
    config = _config(tmp_path, db_url=f"sqlite:///{db}", dovecot=dovecot, users=("alice",))
    settings = _settings(config)
    started = time.monotonic()
    app = Jeeves(settings)
    assert app.run_once().stored == len(first)
    app.close()
    dovecot.append_many("alice", "INBOX", later)
    inputs = 0
    with _read_only_dir(folder) as how:
        # The library: one StoreError naming the file; nothing moved.
        app = Jeeves(settings)
        try:
            with pytest.raises(StoreError) as info:
                app.run_once()
                inputs += 1
        finally:
            app.close()
        inputs += 1
        lib_message = str(info.value)
        assert str(db) in lib_message and "read-only" in lib_message, lib_message
        # The CLI: exit code ≠ 0 and one line, for a pass and for an import.
        failed = _cli(config, "run", "--once")
        line = _assert_clear_error(failed, db, "read-only")
        failed_import = _cli(config, "import", str(REPO / "data" / "sample" / "sample.mbox"))
        _assert_clear_error(failed_import, db, "read-only")
        inputs += 2
    store = Store(f"sqlite:///{db}", migrate=False)
    try:
        last_uid, rows, _ = _position_is_safe(store, dovecot.uids("alice", "INBOX"))
        assert rows == len(first) and last_uid == dovecot.uids("alice", "INBOX")[len(first) - 1]
    finally:
        store.close()
    # Writable again: the next pass stores exactly the rest.
    app = Jeeves(settings)
    try:
        assert app.run_once().stored == len(later)
        last_uid, rows, locations = _position_is_safe(app.store, dovecot.uids("alice", "INBOX"))
        figures = _stored_figures(app.store)
    finally:
        app.close()
    assert rows == locations == figures["distinct"] == figures["predicted"] == len(raws)
    _report("read-only-db", load=f"{len(raws)} messages", faults=f"1 read-only database ({how})", inputs=f"{inputs} attempts",
            lost=0, duplicates=rows - figures["distinct"], exit_code=failed.returncode, error=repr(line),
            seconds=round(time.monotonic() - started, 1))


# --- 3. Random SIGKILL of the daemon during a run of 1,000 messages, repeated --------------------------------


def _progress(store: Store, twilio) -> tuple[int, int, int]:
    try:
        counts = store.counts()
    except StoreError:
        return (-1, -1, len(twilio.sms_to(TEST_TO)))
    return (counts.messages, counts.predictions, len(twilio.sms_to(TEST_TO)))


def _sigkill_rounds(tmp_path, db_url, dovecot, twilio, raws, *, kills: int, seed: int, label: str) -> None:
    expected = _expected_positive_keys(raws)
    assert len(expected) >= 20
    config = _config(tmp_path, db_url=db_url, dovecot=dovecot, twilio=twilio, users=("alice",))
    Store(db_url).close()  # migrated up front: a kill during the first migration is another test
    # Jeeves sees the (empty) folder first and the backlog arrives after: mail already there when
    # an account is added is never texted, and this test is about texting exactly once.
    first_sight = Store(db_url)
    with IMAPSource(dovecot.account("alice"), first_sight) as source:
        source.sync()
    first_sight.close()
    dovecot.append_many("alice", "INBOX", raws)
    log_path = tmp_path / "daemon.log"
    store = Store(db_url, migrate=False)
    rng = random.Random(seed)
    killed_at: list[tuple[float, str, tuple[int, int, int], int]] = []
    orphans_seen = 0
    started = time.monotonic()
    proc = None
    try:
        for round_ in range(kills):
            runs = _log_text(log_path).count("jeeves running")
            # The same worker id across restarts, as a supervisor restarting one service gives:
            # the new process reconciles its predecessor's interrupted sends at once.
            proc = _start(config, f"{label}-worker", log_path)
            _wait_for(lambda: _log_text(log_path).count("jeeves running") > runs or proc.poll() is not None, 60,
                      "the daemon to start")
            assert proc.poll() is None, _log_text(log_path)[-3000:]
            # Kill in a phase picked at random, once the phase is under way (stored, classified or
            # texted moved on since the start), after a further random delay; a phase that is
            # already complete gets a kill at a random moment instead.
            phase = rng.choice(("ingest", "classify", "send"))
            index = ("ingest", "classify", "send").index(phase)
            done = (len(raws), len(raws), len(expected))[index]
            before = _progress(store, twilio)[index]
            try:
                _wait_for(lambda: _progress(store, twilio)[index] > before or before >= done, 60, f"the {phase} phase",
                          interval=0.05)
            except AssertionError:
                pass  # a kill now is as good a fault as any
            time.sleep(rng.uniform(0.0, 0.6))
            children = _children(proc.pid)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            killed_at.append((time.monotonic() - started, phase, _progress(store, twilio), len(children)))
            orphans_seen += len(children)
            # Its parse workers (spawned for a backlog) must not outlive it.
            _wait_for(lambda: not any(_alive(c) for c in children), 15, "the killed daemon's child processes to exit")
        proc = _start(config, f"{label}-worker", log_path)
        _wait_for(lambda: store.counts().predictions >= len(raws), 150, "every message to be stored and classified")
        _wait_for(lambda: len(twilio.sms_to(TEST_TO)) >= len(expected) and set(store.counts().outbox) == {"sent"}, 150,
                  "every positive to be texted")
        time.sleep(2)  # a duplicate, if any, would arrive now
        assert proc.poll() is None
    finally:
        if proc is not None:
            _stop_daemon(proc)
    try:
        figures = _assert_exactly_once(store, raws, expected, twilio)
        with store.session() as s:
            locations = s.scalar(select(func.count()).select_from(MessageLocation))
        assert locations == len(raws)
    finally:
        store.close()
    moments = "; ".join(f"{t:.1f}s in {ph} at stored/classified/texted={p[0]}/{p[1]}/{p[2]}" for t, ph, p, _ in killed_at)
    _report(f"sigkill-{label}", load=f"{len(raws)} messages backlog", faults=f"{kills} SIGKILLs (seed {seed})",
            inputs=len(raws), positives=len(expected), stored=figures["rows"], lost=figures["lost"], sms=figures["sms"],
            duplicate_sms=figures["duplicate_sms"], children_exited_with_daemon=orphans_seen, kills=f"[{moments}]", seconds=round(time.monotonic() - started, 1))


@pytest.mark.dovecot
@pytest.mark.slow
def test_random_sigkills_during_1000_messages_sqlite(tmp_path, dovecot, twilio_server, corpus_raw_messages):
    seed = int(os.environ.get("JEEVES_FAULT_SEED", "0")) or random.randrange(1, 10**6)
    _sigkill_rounds(tmp_path, f"sqlite:///{tmp_path / 'j.db'}", dovecot, twilio_server, corpus_raw_messages[:1000],
                    kills=4, seed=seed, label="sqlite")


@pytest.mark.postgres
@pytest.mark.dovecot
@pytest.mark.slow
def test_random_sigkills_during_1000_messages_postgres(tmp_path, pg_url, dovecot, twilio_server, corpus_raw_messages):
    seed = int(os.environ.get("JEEVES_FAULT_SEED", "0")) or random.randrange(1, 10**6)
    _sigkill_rounds(tmp_path, pg_url, dovecot, twilio_server, corpus_raw_messages[1000:2000], kills=1, seed=seed,
                    label="postgres")


# --- the lease and an unreachable server, in isolation ----------------------------------------------------


@pytest.mark.postgres
def test_account_lease_knows_when_its_session_is_gone(pg_url):
    """A lease whose backend is terminated (as by a server restart) reports itself lost, and the
    account can be leased again at once."""
    from sqlalchemy import text

    store, admin = Store(pg_url), Store(pg_url, migrate=False)
    try:
        with store.account_lease("alice") as lease:
            assert lease and lease.still_held()
            with admin.session() as s:
                killed = s.execute(text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND objsubid = 1 AND pid <> pg_backend_pid()"
                    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                )).scalar()
            assert killed == 1
            assert not lease.still_held() and not lease
            with admin.account_lease("alice") as again:
                assert again and again.still_held()
    finally:
        store.close()
        admin.close()


def test_unreachable_postgres_is_one_clear_line(tmp_path):
    """``jeeves run --once`` against a PostgreSQL that is not there: exit ≠ 0, one line naming the
    server (without password) and the cause, no traceback."""
    from tests.fixtures_postgres import free_port

    port = free_port()  # nothing listens here
    url = f"postgresql+psycopg2://jeeves:s3cret@127.0.0.1:{port}/jeeves"
    config = _config(tmp_path, db_url=url)
    result = _cli(config, "run", "--once")
    line = _assert_clear_error(result, Path(f"127.0.0.1:{port}/jeeves"), "refused")
    assert "s3cret" not in result.stderr and "database server running" in line
    _report("postgres-unreachable", faults="1 unreachable server", inputs=1, exit_code=result.returncode, error=repr(line))


# --- 5. The daemon starts before its database -------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.dovecot
def test_daemon_started_before_postgres_waits_for_it(tmp_path, postgres_server, pg_url, dovecot):
    """Boot order is not guaranteed (a compose stack, a reboot): ``jeeves run`` started while its
    PostgreSQL is down logs one line, waits, and works once the server is up, without a restart."""
    raw = b"Message-ID: <late-db@test>\r\nSubject: after the database\r\nFrom: a@example.com\r\n\r\nhello\r\n"
    config = _config(tmp_path, db_url=pg_url, dovecot=dovecot, users=("alice",))
    log_path = tmp_path / "daemon.log"
    postgres_server.stop("fast")
    proc = None
    try:
        proc = _start(config, "late-db", log_path)
        _wait_for(lambda: "waiting for it" in _log_text(log_path), 30, "the daemon to say it waits for the database")
        time.sleep(4)  # several retries
        assert proc.poll() is None, f"the daemon gave up:\n{_log_text(log_path)[-3000:]}"
        assert _log_text(log_path).count("database unavailable at start") == 1, "one line per outage, not per retry"
        dovecot.append("alice", "INBOX", raw)
        postgres_server.start()
        store = Store(pg_url, migrate=False)

        def classified() -> bool:
            try:
                return store.counts().predictions >= 1
            except StoreError:  # the daemon has not created the schema yet
                return False

        try:
            _wait_for(classified, 60, "the message to be stored and classified")
            assert store.get_message("<late-db@test>") is not None
        finally:
            store.close()
        text = _log_text(log_path)
        assert "database available after" in text and text.count("jeeves running") == 1
        assert "Traceback" not in text, text[-3000:]
    finally:
        _ensure_pg_running(postgres_server)
        if proc is not None:
            _stop_daemon(proc)


def test_daemon_waiting_for_postgres_stops_on_sigterm(tmp_path):
    from tests.fixtures_postgres import free_port

    url = f"postgresql+psycopg2://jeeves:s3cret@127.0.0.1:{free_port()}/jeeves"
    log_path = tmp_path / "daemon.log"
    proc = _start(_config(tmp_path, db_url=url), "waiting", log_path)
    try:
        _wait_for(lambda: "waiting for it" in _log_text(log_path), 30, "the daemon to wait for the database")
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - started < 10
        assert "s3cret" not in _log_text(log_path)
    finally:
        _stop_daemon(proc)


@pytest.mark.postgres
def test_daemon_does_not_wait_for_a_database_that_refuses_it(tmp_path, postgres_server):
    """A wrong database name (or password) will not fix itself: exit at once with the reason."""
    url = postgres_server.url("no_such_database")
    log_path = tmp_path / "daemon.log"
    proc = _start(_config(tmp_path, db_url=url), "refused", log_path)
    try:
        assert proc.wait(timeout=30) != 0
        text = _log_text(log_path)
        assert "no_such_database" in text and "does not exist" in text
        assert "waiting for it" not in text
    finally:
        _stop_daemon(proc)
