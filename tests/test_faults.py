"""Jeeves under faults (issue 8, "Faults and bad input"): what a user relies on still holds.

- The database goes away (PostgreSQL stopped) while a ``jeeves run`` daemon ingests a steady
  stream of APPENDs, then comes back: nothing lost, nothing duplicated, no restart needed.
- The disk fills up / the SQLite file is read-only: one clear ``jeeves: …`` line naming the
  database and the cause, exit code ≠ 0, and no partial state (a folder's sync position never
  moves past mail that was not stored; once the disk is writable the next pass stores the rest
  exactly once).
- The daemon is SIGKILLed at random moments while it works through 1,000 messages, restarted
  each time: every message stored once, every positive texted once at the local Twilio API.

Each test prints one ``FAULT-REPORT`` line (visible with ``-s``, and in the log) with its
figures: load held, faults injected, inputs tried, messages lost, duplicate SMS.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import event, func, select

from jeeves.config import load_settings
from jeeves.errors import StoreError
from jeeves.parsing import parse_email
from jeeves.service import Jeeves
from jeeves.storage import NewMessage, Store
from jeeves.storage.schema import Folder, MessageLocation, OutboxEntry, Prediction, StoredMessage
from tests.fixtures_twilio import TEST_TO
from tests.test_daemon import REPO, _config, _expected_positive_keys, _start, _wait_for

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


def _log_text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


# --- 1. PostgreSQL goes away during ingestion and comes back ----------------------------------------


@pytest.mark.postgres
@pytest.mark.dovecot
@pytest.mark.slow
def test_postgres_outage_during_ingestion_loses_and_repeats_nothing(tmp_path, postgres_server, pg_url, dovecot, twilio_server,
                                                                   corpus_raw_messages):
    """Two outages (a fast shutdown and a crash-like immediate one) while mail keeps arriving."""
    raws = corpus_raw_messages[1000:1150]
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
        plan = {40: "fast", 95: "immediate"}
        down_until = None
        for i, raw in enumerate(raws):
            if i in plan:
                postgres_server.stop(plan[i])
                assert not _pg_running(postgres_server)
                outages.append((plan[i], time.monotonic()))
                down_until = time.monotonic() + 6.0
            dovecot.append("alice", "INBOX", raw)
            if down_until is not None and time.monotonic() >= down_until:
                postgres_server.start()
                outages[-1] = (outages[-1][0], time.monotonic() - outages[-1][1])
                down_until = None
            time.sleep(0.1)
            assert proc.poll() is None, f"the daemon died during the outage:\n{_log_text(log_path)[-3000:]}"
        if down_until is not None:
            while time.monotonic() < down_until:
                time.sleep(0.2)
            postgres_server.start()
            outages[-1] = (outages[-1][0], time.monotonic() - outages[-1][1])
        append_seconds = time.monotonic() - started
        _wait_for(lambda: store.counts().predictions >= len(raws), 120, "every message to be stored and classified")
        # A send recorded while the database was down is settled by reconciliation (stale_after ≈ 70 s).
        _wait_for(lambda: len(twilio_server.sms_to(TEST_TO)) >= len(expected)
                  and set(store.counts().outbox) == {"sent"}, 150, "every positive to be texted")
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
