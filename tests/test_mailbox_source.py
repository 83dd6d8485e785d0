"""mbox and maildir files as sources: incremental, rewrite-safe, never duplicating."""

from __future__ import annotations

import mailbox

import pytest

from jeeves.errors import SourceError
from jeeves.sources.mailbox_file import MailboxFileSource
from jeeves.storage import Store


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
