"""Gmail extensions (X-GM-MSGID, X-GM-LABELS) through a shim over the real Dovecot.

Dovecot has no X-GM-EXT-1, so the shim makes the connected client claim it, answers
X-GM-MSGID with a synthetic id, and maps X-GM-LABELS searches onto keywords (Dovecot's
nearest equivalent). Everything else, including the sync and storage, is the real thing.
"""

from __future__ import annotations

from sqlalchemy import select

from jeeves.sources.imap import IMAPSource
from jeeves.storage import Store
from jeeves.storage.schema import Label, MessageLocation, StoredMessage


def _gmailify(client) -> None:
    real_has, real_fetch, real_search = client.has_capability, client.fetch, client.search

    def has_capability(capability):
        return capability.upper() == "X-GM-EXT-1" or real_has(capability)

    def fetch(messages, data, modifiers=None):
        wanted = [d for d in data if d.upper() != "X-GM-MSGID"]
        out = real_fetch(messages, wanted, modifiers)
        if len(wanted) != len(data):
            for uid, item in out.items():
                item[b"X-GM-MSGID"] = 1_600_000_000_000_000_000 + uid
        return out

    def search(criteria="ALL", charset=None):
        if isinstance(criteria, list) and criteria and criteria[0] == "X-GM-LABELS":
            criteria = ["KEYWORD", criteria[1].replace(" ", "_")]
        return real_search(criteria, charset)

    client.has_capability, client.fetch, client.search = has_capability, fetch, search


def test_gmail_msgid_and_labels(dovecot, tmp_path):
    raw = b"From: g@example.com\r\nSubject: gmail %d\r\nMessage-ID: <g%d@example.com>\r\n\r\nMeet?\r\n"
    dovecot.append("alice", "INBOX", raw % (1, 1), flags=["Meetings"])
    dovecot.append("alice", "INBOX", raw % (2, 2), flags=["Not_meetings"])
    dovecot.append("alice", "INBOX", raw % (3, 3))
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    account = dovecot.account("alice", positive_gmail_label="Meetings", negative_gmail_label="Not meetings",
                              positive_keyword=None, negative_keyword=None)
    source = IMAPSource(account, store)
    real_connect = source.connect

    def connect():
        fresh = source.session.client is None
        client = real_connect()
        if fresh:
            _gmailify(client)
        return client

    source.connect = connect  # type: ignore[method-assign]
    with source:
        report = source.sync()
        assert report.errors == [] and report.stored == 3
        source.sync()  # unchanged labels are not repeated
    with store.session() as s:
        ids = s.scalars(select(MessageLocation.gmail_msgid)).all()
        labels = s.execute(select(StoredMessage.subject, Label.value, Label.source).join(Label, Label.message_pk == StoredMessage.id)).all()
    assert all(i and i > 1_600_000_000_000_000_000 for i in ids)
    assert sorted(tuple(r) for r in labels) == [("gmail 1", 1, "gmail-label"), ("gmail 2", 0, "gmail-label")]
