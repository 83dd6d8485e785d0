"""mbox and maildir files as sources: incremental, rewrite-safe, never duplicating."""

from __future__ import annotations

import mailbox

import pytest

from jeeves.errors import SourceError
from jeeves.sources.mailbox_file import MailboxFileSource
from jeeves.storage import Store
from tests.store_faults import fail_store_batch_on_call


def _mbox(path, raws):
    box = mailbox.mbox(path)
    for raw in raws:
        box.add(raw)
    box.flush()
    box.close()


def test_mbox_sync_is_incremental_and_idempotent(db_url, tmp_path, corpus_raw_messages):
    store = Store(db_url)
    path = tmp_path / "box.mbox"
    _mbox(path, corpus_raw_messages[:30])
    source = MailboxFileSource(path, store)
    assert (source.sync().stored, source.sync().fetched) == (30, 0)
    _mbox(path, corpus_raw_messages[30:40])  # appended
    report = source.sync()
    assert (report.fetched, report.stored) == (10, 10)
    assert store.counts().messages == 40


def test_rewritten_mbox_rescans_without_duplicates(tmp_path, corpus_raw_messages):
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    path = tmp_path / "box.mbox"
    _mbox(path, corpus_raw_messages[:20])
    MailboxFileSource(path, store).sync()
    path.unlink()
    _mbox(path, corpus_raw_messages[5:25])  # compacted: 5 gone, 5 new
    report = MailboxFileSource(path, store).sync()
    assert report.stored == 5
    assert store.counts().messages == 25


def test_maildir_is_read(tmp_path, corpus_raw_messages):
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    box = mailbox.Maildir(tmp_path / "md", create=True)
    for raw in corpus_raw_messages[:7]:
        box.add(raw)
    assert MailboxFileSource(tmp_path / "md", store).sync().stored == 7
    assert MailboxFileSource(tmp_path / "md", store).sync().stored == 0


def test_missing_file_is_a_clear_error(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    with pytest.raises(SourceError, match="not found"):
        MailboxFileSource(tmp_path / "nope.mbox", store).sync()


def test_a_long_mbox_is_parsed_in_workers_and_stored_behind_the_reading(tmp_path, monkeypatch, corpus_raw_messages):
    """An archive is a backlog like an IMAP first sync (``jeeves.sources.backlog``): parsed in
    worker processes exactly as in-process, stored in order by a writer thread; when storing
    fails, reading stops at a safe position and the next sync stores the rest exactly once."""
    import jeeves.sources.backlog as backlog
    import jeeves.sources.mailbox_file as mailbox_file
    from jeeves.errors import StoreError
    from jeeves.parsing import parse_email

    monkeypatch.setattr(backlog, "PARALLEL_PARSE_MIN", 10)
    monkeypatch.setattr(mailbox_file, "BATCH", 16)
    path = tmp_path / "box.mbox"
    _mbox(path, corpus_raw_messages[:60])
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    real = store.store_batch

    calls = fail_store_batch_on_call(store, monkeypatch, 3)
    source = MailboxFileSource(path, store, parse_workers=2)
    with pytest.raises(StoreError):
        source.sync()
    assert len(calls) == 3, "reading went on after the database failed"
    assert store.folder_state(source.name, str(source.path), kind="mbox").last_uid == 32  # two groups of 16
    assert store.counts().messages == 32
    monkeypatch.setattr(store, "store_batch", real)
    report = source.sync()
    assert (report.fetched, report.stored) == (28, 28) and source.parser.pool is None
    assert store.counts().messages == 60
    box = mailbox.mbox(path, create=False)
    expected = [parse_email(box.get_bytes(key)).new_text for key in box.iterkeys()]
    with store.session() as s:
        from sqlalchemy import select

        from jeeves.storage.schema import StoredMessage

        stored = s.scalars(select(StoredMessage.new_text).order_by(StoredMessage.id)).all()
    assert stored == expected  # workers parse exactly as in-process, and order is kept


def test_both_kinds_of_source_are_sources_and_only_imap_can_watch(tmp_path):
    """``run --once`` and the daemon drive every source through the ``Source`` protocol."""
    from jeeves.config import AccountSettings
    from jeeves.sources import Source, WatchableSource
    from jeeves.sources.imap import IMAPSource

    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    box = MailboxFileSource(tmp_path / "box.mbox", store)
    imap = IMAPSource(AccountSettings(name="a", host="127.0.0.1", username="u", password="p", tls="none"), store)
    assert isinstance(box, Source) and not isinstance(box, WatchableSource)
    assert isinstance(imap, WatchableSource)
