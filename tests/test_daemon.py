"""The daemon as users run it: real `jeeves run` processes, real Dovecot, PostgreSQL, the local Twilio API."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
from sqlalchemy import func, select

from jeeves.model.serving import load_model
from jeeves.parsing import EmailDocument, parse_email
from jeeves.storage import Store
from jeeves.storage.schema import OutboxEntry, StoredMessage
from tests.fixtures_twilio import TEST_TO

from tests.daemon_helpers import SAMPLE, _config, _expected_positive_keys, _start, _wait_for


def test_sigterm_stops_the_daemon_within_ten_seconds(tmp_path):
    config = _config(tmp_path, db_url=f"sqlite:///{tmp_path / 'j.db'}", mailbox=SAMPLE)
    proc = _start(config, "solo", tmp_path / "daemon.log")
    try:
        store = Store(f"sqlite:///{tmp_path / 'j.db'}")
        _wait_for(lambda: store.counts().predictions >= 300, 120, "the sample mailbox to be classified")
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert proc.wait(timeout=15) == 0
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
    log = (tmp_path / "daemon.log").read_text()
    assert "[jeeves alert]" in log and "stopped" in log


@pytest.mark.postgres
@pytest.mark.dovecot
@pytest.mark.slow
def test_three_daemons_share_one_database_and_one_is_killed(tmp_path, pg_url, dovecot, twilio_server, corpus_raw_messages):
    """Accounts split by advisory locks, outbox by SKIP LOCKED; a SIGKILL loses and repeats nothing."""
    users = ("alice", "bob")
    config = _config(tmp_path, db_url=pg_url, dovecot=dovecot, twilio=twilio_server, users=users)
    Store(pg_url).close()  # migrate once up front, as a deploy step would
    procs = [_start(config, f"w{i}", tmp_path / f"w{i}.log") for i in range(3)]
    raws = corpus_raw_messages[:120]
    expected = _expected_positive_keys(raws)
    assert len(expected) >= 5
    store = Store(pg_url, migrate=False)
    try:
        # Let the daemons start and take their leases, then deliver the first half.
        _wait_for(lambda: len(store.folders()) == len(users), 60, "both accounts to be watched")
        for i, raw in enumerate(raws[:60]):
            dovecot.append(users[i % 2], "INBOX", raw)
        _wait_for(lambda: store.counts().messages >= 60, 60, "the first half to be stored")
        # SIGKILL a process that watches an account: no cleanup, its leases die with its connections.
        holders = lambda: [i for i in range(3) if "watching account" in (tmp_path / f"w{i}.log").read_text()]  # noqa: E731
        victim = _wait_for(holders, 30, "a lease holder")[0]
        orphaned = {u for u in users if f"watching account {u}" in (tmp_path / f"w{victim}.log").read_text()}
        assert orphaned
        procs[victim].kill()
        procs[victim].wait()
        for i, raw in enumerate(raws[60:]):
            dovecot.append(users[i % 2], "INBOX", raw)
        _wait_for(lambda: store.counts().predictions >= len(raws), 120, "every message to be classified")
        # Another process took the orphaned accounts over (leases are retried every 15 s).
        survivors = "".join((tmp_path / f"w{i}.log").read_text() for i in range(3) if i != victim)
        assert all(f"watching account {u}" in survivors for u in orphaned)
        _wait_for(lambda: len(twilio_server.sms_to(TEST_TO)) >= len(expected), 60, "every positive to be texted")
        time.sleep(2)  # a duplicate, if any, would arrive now
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    with store.session() as s:
        stored = s.scalar(select(func.count()).select_from(StoredMessage))
        keys = s.scalars(select(StoredMessage.dedupe_key).join(OutboxEntry, OutboxEntry.message_pk == StoredMessage.id)).all()
        statuses = set(s.scalars(select(OutboxEntry.status)).all())
    assert stored == len(raws)
    assert set(keys) == expected and statuses == {"sent"}
    assert len(twilio_server.sms_to(TEST_TO)) == len(expected)
    assert len(set(twilio_server.bodies())) == len(expected)


def test_at_warning_level_the_daemon_still_says_what_it_watches(tmp_path):
    config = _config(tmp_path, db_url=f"sqlite:///{tmp_path / 'j.db'}", mailbox=SAMPLE, extra='log_level = "WARNING"')
    proc = _start(config, "quiet", tmp_path / "daemon.log")
    try:
        line = _wait_for(lambda: next((l for l in (tmp_path / "daemon.log").read_text().splitlines() if "jeeves running" in l), None),
                         120, "the daemon's running line")
        assert str(SAMPLE) in line and "alerts on the console" in line
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def test_an_unreachable_account_is_retried_without_scheduler_noise(tmp_path, monkeypatch, caplog):
    """Issue #13: APScheduler repeated "maximum number of running instances reached" every 15 s
    while an account's watcher kept retrying. The watcher restarts itself; nothing else logs."""
    import logging
    import threading

    import jeeves.daemon as daemon_module
    from jeeves.config import load_settings
    from tests.fixtures_postgres import free_port

    monkeypatch.setattr(daemon_module, "WATCHER_RESTART_SECONDS", 0.3)
    path = tmp_path / "jeeves.toml"
    path.write_text(f'data_dir = "{tmp_path}"\n[[accounts]]\nname = "gone"\nhost = "127.0.0.1"\nport = {free_port()}\n'
                    'tls = "none"\nusername = "u"\npassword = "p"\nconnect_timeout = 1.0\n'
                    '[notify]\nchannel = "console"\n[daemon]\nretrain_interval_hours = 0\n')
    daemon = daemon_module.Daemon(load_settings(path, environ={}))
    caplog.set_level(logging.INFO)
    runner = threading.Thread(target=daemon.run)
    runner.start()
    try:
        # Three failed connection attempts: meanwhile the scheduler used to resubmit the watcher
        # every WATCHER_RESTART_SECONDS and log each refusal.
        _wait_for(lambda: sum("imap account gone: " in r.getMessage() for r in caplog.records) >= 3, 300,
                  "the watcher to retry", interval=0.1)
    finally:
        daemon.stop()
        runner.join(60)
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "maximum number of running instances" in m]
    assert any("jeeves running: watching account gone" in m for m in messages)


@pytest.mark.dovecot
def test_idle_keeps_receiving_while_a_send_is_slow(tmp_path, dovecot, twilio_server, corpus_raw_messages):
    """Issue 14: the IMAP watcher only stores mail and wakes the pipeline job; it never classifies
    or sends. With Twilio taking SLOW_SEND seconds to answer one alert, mail appended meanwhile is
    fetched and stored before that send completes, and is texted after it, once."""
    import threading

    import jeeves.daemon as daemon_module
    from jeeves.config import load_settings

    slow_send = 12.0
    model = load_model()
    pool = corpus_raw_messages[:120]
    decisions = model.decide(model.score([EmailDocument.from_parsed(parse_email(r)) for r in pool]))
    first, second = [raw for raw, positive in zip(pool, decisions) if positive][:2]
    db_url = f"sqlite:///{tmp_path / 'j.db'}"
    config = _config(tmp_path, db_url=db_url, dovecot=dovecot, twilio=twilio_server, users=["alice"])
    config.write_text(config.read_text().replace("timeout = 5.0", f"timeout = {slow_send * 3}"))
    daemon = daemon_module.Daemon(load_settings(config, environ={}))
    runner = threading.Thread(target=daemon.run)
    runner.start()
    store = Store(db_url)
    try:
        _wait_for(lambda: daemon.app.model_loaded and [f for f in store.folders() if f.uidvalidity is not None], 120,
                  "the daemon to load the model and sync the account")
        twilio_server.fail_next(delay=slow_send, succeed_after_delay=True)  # accepted now, answered late
        dovecot.append("alice", "INBOX", first)
        _wait_for(lambda: len(twilio_server.messages) == 1, 60, "the first alert's send to start", interval=0.1)
        dovecot.append("alice", "INBOX", second)
        # IDLE reports it within about a second; the send still has most of SLOW_SEND to go.
        _wait_for(lambda: store.counts().messages == 2, slow_send - 4, "the second message to be stored during the send",
                  interval=0.1)
        assert "sent" not in store.counts().outbox, "the slow send had already completed"
        _wait_for(lambda: store.counts().outbox.get("sent") == 2, 60, "both alerts to be sent")
        time.sleep(1)  # a duplicate, if any, would arrive now
        assert len(twilio_server.sms_to(TEST_TO)) == 2
    finally:
        daemon.stop()
        runner.join(60)
        store.close()
