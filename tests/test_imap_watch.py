"""The IMAP watcher against a real Dovecot: IDLE push, polling, dropped links and restarts."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from sqlalchemy import func, select

from jeeves.sources import SyncReport
from jeeves.sources.imap import IMAPSource
from jeeves.storage import Store
from jeeves.storage.schema import Account, MessageLocation, StoredMessage


def _msg(n: int, tag: str = "w") -> bytes:
    return (
        f"From: s{n}@example.com\r\nTo: alice@example.com\r\nSubject: {tag} {n}\r\n"
        f"Message-ID: <{tag}{n}.{time.time_ns()}@example.com>\r\n\r\nMeet at noon? #{n}\r\n"
    ).encode()


def _count(store: Store) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(StoredMessage))


def _wait_for(predicate: Callable[[], bool], timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s")


@contextmanager
def _watching(source: IMAPSource) -> Iterator[list[SyncReport]]:
    stop = threading.Event()
    reports: list[SyncReport] = []
    thread = threading.Thread(target=source.watch, args=(stop, reports.append), daemon=True)
    thread.start()
    try:
        yield reports
    finally:
        stop.set()
        started = time.monotonic()
        thread.join(10)
        assert not thread.is_alive(), "watch() did not return after stop was set"
        assert time.monotonic() - started < 3, "watch() took too long to notice stop"


#: How soon IDLE must deliver a new message (the test's poll interval is 600 s).
PUSH_BOUND = 30
#: How long a first sync or a sub-second poll may take on a busy CI machine.
SETTLE_BOUND = 15


def test_idle_push_stores_new_mail_within_seconds(dovecot, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    # A long poll interval: only IDLE can deliver the mail in time.
    source = IMAPSource(dovecot.account("alice", first_sync="new", poll_interval=600), store)
    with _watching(source) as reports:
        _wait_for(lambda: store.folder_state("alice", "INBOX").uidvalidity is not None, SETTLE_BOUND)
        time.sleep(0.3)  # let the watcher enter IDLE
        for i in range(3):
            dovecot.append("alice", "INBOX", _msg(i))
            # Dovecot reports within about half a second; the bound leaves room for a busy machine
            # and is still twenty times shorter than the poll interval, so only IDLE can meet it.
            _wait_for(lambda: _count(store) == i + 1, PUSH_BOUND)
    assert sum(r.stored for r in reports) == 3
    assert all(m.notify for m in _all(store))


def _all(store: Store) -> list[StoredMessage]:
    with store.session() as s:
        return list(s.scalars(select(StoredMessage)))


def test_polling_when_idle_is_off_and_other_folders_are_polled(dovecot, tmp_path):
    dovecot.create_folder("alice", "Other")
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    source = IMAPSource(dovecot.account("alice", folders=["INBOX", "Other"], idle=False, poll_interval=0.5), store)
    with _watching(source):
        _wait_for(lambda: store.folder_state("alice", "Other").uidvalidity is not None, SETTLE_BOUND)
        dovecot.append("alice", "Other", _msg(1, "other"))
        dovecot.append("alice", "INBOX", _msg(2, "inbox"))
        _wait_for(lambda: _count(store) == 2, SETTLE_BOUND)
    # With IDLE on INBOX, the second folder is still polled at poll_interval.
    source = IMAPSource(dovecot.account("alice", folders=["INBOX", "Other"], poll_interval=1), store)
    with _watching(source):
        time.sleep(0.5)
        dovecot.append("alice", "Other", _msg(3, "other"))
        _wait_for(lambda: _count(store) == 3, SETTLE_BOUND)


def test_killed_connections_and_restart_mid_sync_lose_and_duplicate_nothing(dovecot, db_url, corpus_raw_messages):
    raws = corpus_raw_messages[:300]
    expected = len({r.replace(b"\r\n", b"\n").rstrip(b"\n") for r in raws})
    dovecot.append_many("alice", "INBOX", raws)
    store = Store(db_url)
    batches = {"n": 0}
    real_store_batch = store.store_batch

    def flaky_store_batch(messages, **kwargs):
        refs = real_store_batch(messages, **kwargs)
        if messages:
            batches["n"] += 1
            if batches["n"] == 3:
                dovecot.kill_connections()  # the link drops mid-sync
            elif batches["n"] == 6:
                dovecot.restart()  # the server goes away and comes back
        return refs

    store.store_batch = flaky_store_batch  # type: ignore[method-assign]
    source = IMAPSource(dovecot.account("alice", fetch_batch=25, poll_interval=600), store)
    with _watching(source):
        _wait_for(lambda: _count(store) == expected, 30)
        # Mail that arrives after the restart is caught up too.
        dovecot.kill_connections()
        dovecot.append("alice", "INBOX", _msg(1, "after"))
        _wait_for(lambda: _count(store) == expected + 1, 10)
    assert batches["n"] >= 7
    with store.session() as s:
        locations = s.scalar(select(func.count()).select_from(MessageLocation))
        distinct = s.scalar(select(func.count(func.distinct(MessageLocation.uid))))
    assert locations == distinct == len(raws) + 1
    assert store.folder_state("alice", "INBOX").last_uid == max(dovecot.uids("alice", "INBOX"))


def test_watcher_with_wrong_password_records_error_and_stops_promptly(dovecot, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    source = IMAPSource(dovecot.account("alice", password="nope"), store)
    with _watching(source) as reports:
        def recorded() -> bool:
            with store.session() as s:
                return bool(s.scalar(select(Account.last_error).where(Account.name == "alice")))
        _wait_for(recorded, SETTLE_BOUND)
    assert reports == []


def test_watcher_survives_server_down_at_start(dovecot, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    dovecot.stop()
    try:
        source = IMAPSource(dovecot.account("alice", connect_timeout=1), store)
        with _watching(source):
            time.sleep(1.0)
            dovecot.start()
            dovecot.append("alice", "INBOX", _msg(1))
            _wait_for(lambda: _count(store) == 1, 10)
    finally:
        dovecot.start()


def test_idle_uses_first_folder_that_exists(dovecot, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    source = IMAPSource(dovecot.account("alice", folders=["Missing", "INBOX"], first_sync="new", poll_interval=600), store)
    with _watching(source):
        _wait_for(lambda: store.folder_state("alice", "INBOX").uidvalidity is not None, SETTLE_BOUND)
        time.sleep(0.3)
        dovecot.append("alice", "INBOX", _msg(1))
        _wait_for(lambda: _count(store) == 1, PUSH_BOUND)
    with store.session() as s:
        assert "Missing" in (s.scalar(select(Account.last_error).where(Account.name == "alice")) or "")


def test_idle_is_renewed_and_a_silent_dead_link_is_noticed(dovecot, tmp_path, monkeypatch):
    """IDLE ends and the folders resync at the renewal deadline; a link killed during IDLE
    (which idle_check reports as silence) is reconnected and new mail still arrives."""
    import jeeves.sources.imap.watch as imap_watch

    monkeypatch.setattr(imap_watch, "IDLE_RENEW_SECONDS", 0.5)
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    source = IMAPSource(dovecot.account("alice", first_sync="new", poll_interval=600), store)
    syncs = {"n": 0}
    real_sync = source.sync

    def counting_sync():
        syncs["n"] += 1
        return real_sync()

    source.sync = counting_sync  # type: ignore[method-assign]
    with _watching(source):
        _wait_for(lambda: syncs["n"] >= 4, 6)
        dovecot.kill_connections("alice")
        time.sleep(0.2)
        dovecot.append("alice", "INBOX", _msg(1))
        _wait_for(lambda: _count(store) == 1, 8)


def test_stop_mid_backlog_returns_promptly_and_the_next_sync_resumes(dovecot, tmp_path, corpus_raw_messages):
    raws = corpus_raw_messages[300:500]
    expected = len({r.replace(b"\r\n", b"\n").rstrip(b"\n") for r in raws})
    dovecot.append_many("alice", "INBOX", raws)
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    stop = threading.Event()
    real_store_batch = store.store_batch

    def stopping_store_batch(messages, **kwargs):
        refs = real_store_batch(messages, **kwargs)
        stop.set()  # stop arrives while the backlog is being fetched
        return refs

    store.store_batch = stopping_store_batch  # type: ignore[method-assign]
    source = IMAPSource(dovecot.account("alice", fetch_batch=10), store, parse_workers=0)
    started = time.monotonic()
    source.watch(stop, lambda report: None)
    assert time.monotonic() - started < 3
    assert 0 < _count(store) < expected
    store.store_batch = real_store_batch  # type: ignore[method-assign]
    with IMAPSource(dovecot.account("alice", fetch_batch=50), store) as again:
        again.sync()
    assert _count(store) == expected
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(MessageLocation)) == len(raws)


def test_mail_that_lands_between_select_and_idle_is_not_left_for_the_next_poll(dovecot, tmp_path):
    """Dovecot can send the new message's EXISTS in the same packet as "+ idling"; the line then
    waits in the client's read buffer, where a poll of the socket never sees it."""
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    source = IMAPSource(dovecot.account("alice", first_sync="new", poll_interval=600), store)
    real_select = source.select
    planted = []

    def select_then_deliver(client, folder):
        selected = real_select(client, folder)
        if folder in source.uidnext_seen and not planted:  # the SELECT just before IDLE
            planted.append(dovecot.append("alice", "INBOX", _msg(1, "race")))
        return selected

    source.select = select_then_deliver  # type: ignore[method-assign]
    with _watching(source):
        _wait_for(lambda: bool(planted), 10)
        _wait_for(lambda: _count(store) == 1, PUSH_BOUND)
