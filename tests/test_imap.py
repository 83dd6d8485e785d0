"""IMAP ingestion against a real Dovecot: sync, dedupe, first-sync limits, odd messages, errors."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from jeeves.errors import AuthenticationError, SourceError
from jeeves.sources.imap import IMAPSource
from jeeves.storage import Store
from jeeves.storage.schema import Account, Label, MessageLocation, StoredMessage
from tests.store_faults import fail_store_batch_on_call


def _msg(n: int, *, msgid: bool = True, body: str = "Let's meet tomorrow, where?") -> bytes:
    head = f"From: Sender {n} <s{n}@example.com>\r\nTo: alice@example.com\r\nSubject: test {n}\r\n"
    head += "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
    if msgid:
        head += f"Message-ID: <m{n}.{time.time_ns()}@example.com>\r\n"
    return (head + f"\r\n{body} #{n}\r\n").encode()


def _stored(store: Store) -> list[StoredMessage]:
    with store.session() as s:
        return list(s.scalars(select(StoredMessage).order_by(StoredMessage.id)))


def test_sync_stores_corpus_messages_once_and_never_marks_seen(dovecot, db_url, corpus_raw_messages):
    """The key sync test, on SQLite and PostgreSQL: all messages stored once, sync state advanced."""
    raws = corpus_raw_messages[:60]
    dovecot.append_many("alice", "INBOX", raws)
    store = Store(db_url)
    with IMAPSource(dovecot.account("alice", fetch_batch=25), store) as source:
        first = source.sync()
        again = source.sync()
    assert (first.fetched, first.stored, first.errors) == (60, len({r.replace(b"\r\n", b"\n").rstrip(b"\n") for r in raws}), [])
    assert (again.fetched, again.stored) == (0, 0)
    state = store.folder_state("alice", "INBOX")
    assert state.last_uid == max(dovecot.uids("alice", "INBOX"))
    with dovecot.client("alice") as client:
        client.select_folder("INBOX", readonly=True)
        assert client.search(["SEEN"]) == []  # BODY.PEEK: nothing marked read
    with store.session() as s:
        assert s.scalar(select(Account.last_error).where(Account.name == "alice")) is None


def test_replayed_batches_and_second_source_store_nothing_twice(dovecot, tmp_path):
    dovecot.append_many("alice", "INBOX", [_msg(i) for i in range(10)])
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    with IMAPSource(dovecot.account("alice"), store) as source:
        assert source.sync().stored == 10
    # Simulate a crash after storing but before the sync state moved: the replay dedupes.
    state = store.folder_state("alice", "INBOX")
    with store.session() as s:
        from jeeves.storage.schema import Folder

        s.get(Folder, state.id).last_uid = dovecot.uids("alice", "INBOX")[2]
    with IMAPSource(dovecot.account("alice"), store) as source:
        report = source.sync()
    assert (report.fetched, report.stored) == (7, 0)
    assert len(_stored(store)) == 10


def test_recreated_folder_new_uidvalidity_restores_nothing(dovecot, tmp_path):
    raws = [_msg(i) for i in range(8)]
    dovecot.append_many("alice", "Projects", raws)
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    account = dovecot.account("alice", folders=["Projects"])
    with IMAPSource(account, store) as source:
        assert source.sync().stored == 8
        old = store.folder_state("alice", "Projects").uidvalidity
        source.close()
        dovecot.delete_folder("alice", "Projects")
        dovecot.append_many("alice", "Projects", raws + [_msg(99)])
        report = source.sync()
    state = store.folder_state("alice", "Projects")
    assert state.uidvalidity != old
    assert (report.fetched, report.stored) == (9, 1)
    assert len(_stored(store)) == 9
    assert state.last_uid == max(dovecot.uids("alice", "Projects"))


def test_first_sync_new_fetches_no_old_mail(dovecot, tmp_path):
    dovecot.append_many("alice", "INBOX", [_msg(i) for i in range(5)])
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    with IMAPSource(dovecot.account("alice", first_sync="new"), store) as source:
        assert source.sync().fetched == 0
        dovecot.append("alice", "INBOX", _msg(100))
        report = source.sync()
    assert (report.fetched, report.stored) == (1, 1)
    [message] = _stored(store)
    assert "test 100" in message.subject and message.notify is True


def test_old_mail_is_stored_but_not_notified(dovecot, tmp_path):
    """first_sync=all on a mailbox with years of mail: stored for training, never texted."""
    old = datetime(2015, 5, 1, 12, 0, tzinfo=timezone.utc)
    dovecot.append("alice", "INBOX", _msg(1), msg_time=old)
    dovecot.append("alice", "INBOX", _msg(2), msg_time=old)
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    with IMAPSource(dovecot.account("alice", first_sync="all"), store) as source:
        assert source.sync().stored == 2
        dovecot.append("alice", "INBOX", _msg(3))  # arrives after Jeeves first saw the folder
        assert source.sync().stored == 1
    assert [m.notify for m in _stored(store)] == [False, False, True]


@pytest.mark.parametrize("first_sync", ["all", "last:50", "new"])
def test_mail_there_at_first_sight_is_never_texted_however_recent(dovecot, tmp_path, first_sync):
    """Issue #13: 40 messages appended just before the first sync were texted (a 5-minute
    clock-skew allowance). The server's UIDNEXT at first sight decides, not any clock."""
    dovecot.append_many("alice", "INBOX", [_msg(i) for i in range(40)])  # INTERNALDATE: just now
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    with IMAPSource(dovecot.account("alice", first_sync=first_sync), store) as source:
        source.sync()
        dovecot.append("alice", "INBOX", _msg(100))
        source.sync()
    stored = _stored(store)
    assert [m.subject for m in stored if m.notify] == ["test 100"]
    assert len(stored) == (1 if first_sync == "new" else 41)


def test_an_interrupted_first_sync_resumes_with_the_servers_boundary(dovecot, tmp_path):
    """A first sync of old mail that stopped halfway (a crash) must not text the rest later."""
    old = datetime(2020, 3, 1, tzinfo=timezone.utc)
    for i in range(6):
        dovecot.append("alice", "INBOX", _msg(i), msg_time=old + timedelta(hours=i))
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    with IMAPSource(dovecot.account("alice", first_sync="all", fetch_batch=2), store) as source:
        source.sync()
    # As if the process died after the first group: the position is back after the 2nd UID.
    state = store.folder_state("alice", "INBOX")
    assert state.notify_after == old + timedelta(hours=5)  # the newest INTERNALDATE, from the server
    with store.session() as s:
        from sqlalchemy import text

        from jeeves.storage.schema import Folder

        s.get(Folder, state.id).last_uid = dovecot.uids("alice", "INBOX")[1]
        s.execute(text("DELETE FROM message_locations WHERE message_pk > 2"))
        s.execute(text("DELETE FROM messages WHERE id > 2"))
    dovecot.append("alice", "INBOX", _msg(100), msg_time=old + timedelta(hours=6))  # new, though dated 2020
    with IMAPSource(dovecot.account("alice", first_sync="all"), store) as source:
        assert source.sync().stored == 5
    assert [m.subject for m in _stored(store) if m.notify] == ["test 100"]


def test_a_folder_empty_at_first_sight_texts_everything_that_arrives(dovecot, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    account = dovecot.account("alice", folders=["Fresh"])
    dovecot.create_folder("alice", "Fresh")
    with IMAPSource(account, store) as source:
        source.sync()
        dovecot.append("alice", "Fresh", _msg(1), msg_time=datetime(2019, 1, 1, tzinfo=timezone.utc))
        source.sync()
    assert [m.notify for m in _stored(store)] == [True]


def test_first_sync_last_n_and_since(dovecot, tmp_path):
    old = datetime(2016, 1, 1, tzinfo=timezone.utc)
    for i in range(6):
        dovecot.append("alice", "INBOX", _msg(i), msg_time=old + timedelta(days=i))
    store = Store(f"sqlite:///{tmp_path / 'a.db'}")
    with IMAPSource(dovecot.account("alice", first_sync="last:2"), store) as source:
        assert source.sync().fetched == 2
        assert source.sync().fetched == 0  # the skipped ones are not fetched later
    store2 = Store(f"sqlite:///{tmp_path / 'b.db'}")
    with IMAPSource(dovecot.account("alice", first_sync="since:2016-01-04"), store2) as source:
        assert source.sync().fetched == 3


def test_odd_messages_are_stored(dovecot, tmp_path):
    eight_bit = (
        "From: Zoë <zoe@example.com>\r\nSubject: Café à midi?\r\nMessage-ID: <8bit@example.com>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        "On se retrouve où ? Ça me va.\r\n"
    ).encode("utf-8")
    broken_charset = (
        b"From: x@example.com\r\nSubject: =?x-unknown-charset?Q?caf=E9?=\r\nMessage-ID: <bad@example.com>\r\n"
        b"Content-Type: text/plain; charset=x-unknown-charset\r\n\r\nLet's meet \xe9\xff\xfe somewhere\r\n"
    )
    no_msgid = b"From: y@example.com\r\nSubject: no id\r\n\r\nShall we meet?\r\n"
    for raw in (eight_bit, broken_charset, no_msgid):
        dovecot.append("alice", "INBOX", raw)
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    with IMAPSource(dovecot.account("alice"), store) as source:
        report = source.sync()
    assert (report.fetched, report.stored, report.errors) == (3, 3, [])
    stored = _stored(store)
    assert stored[0].subject == "Café à midi?"
    assert stored[1].message_id == "<bad@example.com>"
    assert stored[2].message_id is None and stored[2].dedupe_key == stored[2].content_hash


def test_huge_message_is_stored_truncated_and_flagged(dovecot, tmp_path):
    """A 30 MB message under the default 25 MB limit: header + body prefix, flagged, not dropped."""
    line = b"x" * 998 + b"\r\n"
    body = b"Can we meet on Friday? Where?\r\n" + line * (30 * 1024 * 1024 // len(line))
    raw = b"From: big@example.com\r\nSubject: huge\r\nMessage-ID: <huge@example.com>\r\n\r\n" + body
    dovecot.append("alice", "INBOX", raw)
    dovecot.append("alice", "INBOX", _msg(1))
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    account = dovecot.account("alice")  # default limit: 25 MiB
    with IMAPSource(account, store) as source:
        report = source.sync()
    assert (report.fetched, report.stored) == (2, 2)
    big, small = _stored(store)
    assert big.truncated is True and small.truncated is False
    assert big.size == len(raw) and len(big.raw) <= account.max_message_bytes < len(raw)
    assert big.message_id == "<huge@example.com>" and big.subject == "huge"
    assert "meet on Friday" in big.new_text


def test_wrong_password_is_recorded_and_good_account_keeps_working(dovecot, tmp_path):
    dovecot.append("bob", "INBOX", _msg(1))
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    bad = dovecot.account("alice", password="wrong")
    good = dovecot.account("bob")
    with pytest.raises(AuthenticationError, match="refused the login for 'alice'.*check the password"):
        IMAPSource(bad, store).sync()
    # The one ingestion path (``jeeves run --once`` and the daemon): a failing account is
    # reported and recorded, the others go on.
    from jeeves.config import Settings
    from jeeves.service import Jeeves

    reports = Jeeves(Settings(data_dir=tmp_path, accounts=[bad, good]), store=store).ingest()
    assert sum(r.stored for r in reports) == 1 and len([e for r in reports for e in r.errors]) == 1
    with store.session() as s:
        errors = dict(s.execute(select(Account.name, Account.last_error)).all())
    assert "refused the login" in errors["alice"] and "wrong" not in errors["alice"]
    assert errors["bob"] is None


def test_unknown_folder_is_reported_and_other_folders_sync(dovecot, tmp_path):
    dovecot.append("alice", "INBOX", _msg(1))
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    with IMAPSource(dovecot.account("alice", folders=["Nope", "INBOX"]), store) as source:
        report = source.sync()
    assert report.stored == 1
    assert len(report.errors) == 1 and "folder 'Nope' does not exist" in report.errors[0]
    with store.session() as s:
        assert "Nope" in s.scalar(select(Account.last_error).where(Account.name == "alice"))


def test_tls_verification_is_on_by_default(dovecot, tmp_path):
    dovecot.append("alice", "INBOX", _msg(1))
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    with pytest.raises(SourceError, match="certificate .* not trusted.*ca_file"):
        IMAPSource(dovecot.account("alice", tls="implicit"), store).sync()
    with IMAPSource(dovecot.account("alice", tls="implicit", ca_file=dovecot.ca_file), store) as source:
        assert source.sync().stored == 1
    with IMAPSource(dovecot.account("alice", tls="implicit", insecure=True), store) as source:
        assert source.sync().errors == []


def test_starttls_on_plain_port(dovecot, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    with pytest.raises(SourceError, match="not trusted"):
        IMAPSource(dovecot.account("alice", tls="starttls"), store).sync()
    with IMAPSource(dovecot.account("alice", tls="starttls", ca_file=dovecot.ca_file), store) as source:
        assert source.sync().errors == []


def test_oauth_token_is_refetched_once_when_rejected(dovecot, tmp_path):
    """The token command first yields a stale token, then a fresh one: login succeeds."""
    counter = tmp_path / "count"
    script = tmp_path / "token.sh"
    script.write_text(f'#!/bin/sh\nif [ -e {counter} ]; then echo oauth-token; else touch {counter}; echo stale; fi\n')
    script.chmod(0o755)
    dovecot.append("oauth", "INBOX", _msg(1))
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    for mech in ("xoauth2", "oauthbearer"):
        counter.unlink(missing_ok=True)
        account = dovecot.account("oauth", name=f"o-{mech}", auth=mech, password=None, oauth_token_command=str(script))
        with IMAPSource(account, store) as source:
            assert source.sync().errors == []
    bad = dovecot.account("oauth", name="o-bad", auth="xoauth2", password=None, oauth_token_command="echo nope")
    with pytest.raises(AuthenticationError, match="XOAUTH2 token"):
        IMAPSource(bad, store).sync()


def test_keywords_and_folders_become_labels(dovecot, tmp_path):
    dovecot.append("alice", "INBOX", _msg(1), flags=["$JeevesMeeting"])
    dovecot.append("alice", "INBOX", _msg(2), flags=["$JeevesNotMeeting"])
    dovecot.append("alice", "INBOX", _msg(3))
    dovecot.append("alice", "Meetings", _msg(4))
    dovecot.append("alice", "Noise", _msg(5))
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    account = dovecot.account("alice", positive_folder="Meetings", negative_folder="Noise")

    def labels() -> list[tuple[str, int, str]]:
        with store.session() as s:
            rows = s.execute(select(StoredMessage.subject, Label.value, Label.source).join(Label, Label.message_pk == StoredMessage.id).order_by(Label.id))
            return [tuple(r) for r in rows]

    with IMAPSource(account, store) as source:
        source.sync()
        assert sorted(labels()) == [
            ("test 1", 1, "imap-keyword"), ("test 2", 0, "imap-keyword"),
            ("test 4", 1, "imap-folder"), ("test 5", 0, "imap-folder"),
        ]
        source.sync()
        assert len(labels()) == 4  # unchanged labels are not repeated
        # Relabel: message 1 loses the positive keyword and gets the negative one; 3 gets one.
        uids = dovecot.uids("alice", "INBOX")
        dovecot.set_flags("alice", "INBOX", [uids[0]], ["$JeevesMeeting"], add=False)
        dovecot.set_flags("alice", "INBOX", [uids[0]], ["$JeevesNotMeeting"])
        dovecot.set_flags("alice", "INBOX", [uids[2]], ["$JeevesMeeting"])
        source.sync()
    assert sorted(labels()[4:]) == [("test 1", 0, "imap-keyword"), ("test 3", 1, "imap-keyword")]
    current = store.current_labels()
    by_subject = {m.subject: current[m.id].value for m in _stored(store) if m.id in current}
    assert by_subject == {"test 1": 0, "test 2": 0, "test 3": 1, "test 4": 1, "test 5": 0}
    # Label-folder mail is training data: stored, never texted.
    assert {m.subject: m.notify for m in _stored(store)}["test 4"] is False
    with store.session() as s:
        flags = s.scalars(select(MessageLocation.flags)).all()
    assert any("$JeevesMeeting" in f for f in flags)


def test_backlog_stored_behind_the_fetch_stops_at_a_database_error_with_a_safe_position(dovecot, tmp_path, monkeypatch,
                                                                                        corpus_raw_messages):
    """A long backlog is stored in a writer thread while the next group is fetched; when storing
    fails, fetching stops, the folder position covers only what was stored, and the next sync
    stores the rest exactly once."""
    import jeeves.sources.backlog as backlog
    from jeeves.errors import StoreError

    monkeypatch.setattr(backlog, "PARALLEL_PARSE_MIN", 10)
    raws = corpus_raw_messages[200:280]
    dovecot.append_many("alice", "INBOX", raws)
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    real = store.store_batch

    with dovecot.client("alice") as client:
        client.select_folder("INBOX", readonly=True)
        server_uids = sorted(client.search(["ALL"]))
    assert len(server_uids) == 80
    calls = fail_store_batch_on_call(store, monkeypatch, 3)
    with IMAPSource(dovecot.account("alice", fetch_batch=16), store, parse_workers=0) as source:
        with pytest.raises(StoreError):
            source._sync_once()
    assert len(calls) == 3, "fetching went on after the database failed"
    with store.session() as s:
        positions = s.scalars(select(MessageLocation.uid).order_by(MessageLocation.uid)).all()
    state = store.folder_state("alice", "INBOX")
    assert positions == server_uids[:32] and state.last_uid == server_uids[31]  # two groups of 16, nothing past them
    monkeypatch.setattr(store, "store_batch", real)
    with IMAPSource(dovecot.account("alice", fetch_batch=16), store, parse_workers=0) as source:
        report = source.sync()
    assert report.fetched == 48 and report.errors == []
    with store.session() as s:
        uids = s.scalars(select(MessageLocation.uid).order_by(MessageLocation.uid)).all()
    assert uids == server_uids


def test_large_backlog_is_parsed_in_worker_processes(dovecot, tmp_path, monkeypatch, corpus_raw_messages):
    import jeeves.sources.backlog as backlog

    monkeypatch.setattr(backlog, "PARALLEL_PARSE_MIN", 10)
    raws = corpus_raw_messages[100:180]
    dovecot.append_many("alice", "INBOX", raws)
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    with IMAPSource(dovecot.account("alice", fetch_batch=16), store, parse_workers=2) as source:
        report = source.sync()
        assert source.parser.pool is None  # workers stopped after the backlog
    assert report.fetched == 80 and report.errors == []
    assert report.stored == len({r.replace(b"\r\n", b"\n").rstrip(b"\n") for r in raws})
    from jeeves.parsing import parse_email

    first = _stored(store)[0]
    assert first.new_text == parse_email(first.raw).new_text  # workers parse exactly as in-process
