"""The thread window groups alerts by real conversation, on SQLite and PostgreSQL.

A user relies on two things: a conversation buzzes the phone once, and one person's request is
never silenced because someone else used the same generic subject.
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from jeeves.notify.conversations import conversation_key
from jeeves.parsing import parse_email
from jeeves.storage import NewMessage, PredictionInput, Store
from jeeves.storage.migrations import MIGRATIONS_DIR
from jeeves.storage.schema import OutboxEntry


def _mail(msgid: str, sender: str, to: str, subject: str, *, refs: str = "", in_reply_to: str = "") -> bytes:
    headers = [f"Message-ID: {msgid}", f"From: {sender}", f"To: {to}", f"Subject: {subject}",
               "Date: Mon, 23 Nov 2026 09:00:00 +0000"]
    if refs:
        headers.append(f"References: {refs}")
    if in_reply_to:
        headers.append(f"In-Reply-To: {in_reply_to}")
    return ("\r\n".join(headers) + "\r\n\r\nCan we meet tomorrow at 10? Where would suit you?\r\n").encode()


def _alert(store: Store, *raws: bytes) -> list[str]:
    """Store ``raws`` one by one as positives; the thread key of each one's alert."""
    keys = []
    for raw in raws:
        [ref] = store.store_batch([NewMessage(raw, parse_email(raw))])
        [outbox_id] = store.record_predictions("m1", [PredictionInput(ref.pk, 0.9, 0.5, True)],
                                               conversation_of=conversation_key)
        with store.session() as s:
            keys.append(s.get(OutboxEntry, outbox_id).conversation_key)
    return keys


def test_same_generic_subject_from_different_people_are_different_conversations(db_url):
    store = Store(db_url)
    keys = _alert(
        store,
        _mail("<a@x>", "alice@example.com", "me@example.com", "Meeting"),
        _mail("<b@x>", "bob@example.org", "me@example.com", "Meeting"),
        _mail("<c@x>", "carol@example.net", "me@example.com", ""),
        _mail("<d@x>", "dave@example.net", "me@example.com", ""),
        # A reply to someone else's "Meeting" thread by a stranger to it is not part of it.
        _mail("<e@x>", "erin@example.net", "me@example.com", "RE: Meeting"),
    )
    assert len(set(keys)) == 5


def test_replies_by_references_join_their_conversation_whatever_the_order(db_url):
    store = Store(db_url)
    root = _mail("<root@x>", "alice@example.com", "me@example.com", "Lunch")
    reply = _mail("<r1@x>", "bob@example.com", "me@example.com", "Re: Lunch", refs="<root@x>", in_reply_to="<root@x>")
    deeper = _mail("<r2@x>", "alice@example.com", "me@example.com", "Re: Re: Lunch",
                   refs="<root@x> <r1@x>", in_reply_to="<r1@x>")
    only_in_reply_to = _mail("<r3@x>", "carol@example.com", "me@example.com", "Re: lunch plans", in_reply_to="<r2@x>")
    # The reply is alerted before its root arrives; the root then joins the reply's conversation.
    keys = _alert(store, reply, root, deeper, only_in_reply_to)
    assert len(set(keys)) == 1, keys


def test_reply_without_references_joins_by_subject_and_people(db_url):
    """Outlook and Lotus Notes replies often carry no References: the subject plus a shared
    participant ties them to the conversation."""
    store = Store(db_url)
    keys = _alert(
        store,
        _mail("<o1@x>", "alice@example.com", "me@example.com, bob@example.com", "Budget review"),
        _mail("<o2@x>", "bob@example.com", "alice@example.com, me@example.com", "RE: Budget review"),
    )
    assert keys[0] == keys[1]
    # A new message (not a reply) with the same subject is a new request, not a follow-up.
    [fresh] = _alert(store, _mail("<o3@x>", "alice@example.com", "me@example.com", "Budget review"))
    assert fresh != keys[0]


def test_upgrade_from_the_first_schema_keeps_stored_mail(db_url):
    store = Store(db_url, migrate=False)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
    with store.engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO messages (content_hash, message_id, dedupe_key, raw, size, truncated, subject, sender,"
            " sender_address, recipients, thread_key, is_reply, is_forward, new_text, quoted_text, parse_defects,"
            " notify, stored_at) VALUES ('h', '<old@x>', '<old@x>', :raw, 3, false, 's', 'a', 'a@x', '', 's',"
            " false, false, 't', '', '', true, CURRENT_TIMESTAMP)"), {"raw": b"raw"})
    store.migrate()
    assert store.get_message("<old@x>").refs == ""
    with store.session() as s:
        assert s.scalar(text("SELECT count(*) FROM messages")) == 1
    # Alerts keyed by a full-length Message-ID fit the widened column on both dialects.
    long_id = "<" + "x" * 600 + "@example.com>"
    [key] = _alert(store, _mail(long_id, "alice@example.com", "me@example.com", "Meeting"))
    assert key == long_id
