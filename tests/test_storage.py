"""Storage behaviour users rely on, on SQLite and PostgreSQL."""

from __future__ import annotations

from jeeves.parsing import parse_email
from jeeves.storage import NewMessage, PredictionInput, Store


def _new(raw: bytes, uid: int | None = None, notify: bool = True) -> NewMessage:
    return NewMessage(raw=raw, parsed=parse_email(raw), uid=uid, notify=notify)


def test_same_message_stored_once_and_folder_advances_with_it(db_url, corpus_raw_messages):
    store = Store(db_url)
    folder = store.folder_state("acct", "INBOX")
    batch = [_new(raw, uid=i + 1) for i, raw in enumerate(corpus_raw_messages[:20])]
    first = store.store_batch(batch, folder=folder, uidvalidity=7, advance_to=20)
    again = store.store_batch(batch, folder=folder, uidvalidity=7, advance_to=20)
    assert sum(r.new for r in first) == 20
    assert not any(r.new for r in again)
    assert [r.pk for r in first] == [r.pk for r in again]
    state = store.folder_state("acct", "INBOX")
    assert (state.uidvalidity, state.last_uid) == (7, 20)
    assert store.counts().messages == 20


def test_crlf_copy_of_a_message_is_the_same_message(db_url, corpus_raw_messages):
    store = Store(db_url)
    raw = corpus_raw_messages[0]
    store.store_batch([_new(raw)])
    refs = store.store_batch([_new(raw.replace(b"\n", b"\r\n"))])
    assert refs[0].new is False
    assert store.counts().messages == 1


def test_raw_bytes_are_kept_exactly(db_url, corpus_raw_messages):
    store = Store(db_url)
    raw = corpus_raw_messages[3] + b"\x00\xff binary tail"
    [ref] = store.store_batch([_new(raw)])
    assert store.get_message(ref.pk).raw == raw


def test_positive_writes_one_outbox_row_per_logical_email(db_url, corpus_raw_messages):
    store = Store(db_url)
    raw = corpus_raw_messages[1]
    # The same email delivered twice with different transport headers: two rows, one alert.
    other_copy = b"Received: from relay.example (relay) by mx; Mon, 1 Jan 2001 00:00:00 +0000\n" + raw
    refs = store.store_batch([_new(raw), _new(other_copy)])
    assert len({r.pk for r in refs}) == 2
    created = store.record_predictions("m1", [PredictionInput(r.pk, 0.9, 0.5, True) for r in refs])
    assert len(created) == 1
    assert store.record_predictions("m1", [PredictionInput(r.pk, 0.9, 0.5, True) for r in refs]) == []
    counts = store.counts()
    assert counts.outbox == {"pending": 1}
    assert counts.predictions == 2


def test_old_mail_is_classified_but_never_queued(db_url, corpus_raw_messages):
    store = Store(db_url)
    [ref] = store.store_batch([_new(corpus_raw_messages[2], notify=False)])
    assert store.record_predictions("m1", [PredictionInput(ref.pk, 0.99, 0.5, True)]) == []
    assert store.documents_to_classify() == []


def test_latest_label_wins_and_history_is_kept(db_url, corpus_raw_messages):
    store = Store(db_url)
    [ref] = store.store_batch([_new(corpus_raw_messages[4])])
    store.add_label(ref.pk, 1, "corpus", "high")
    store.add_label(ref.pk, 0, "cli")
    current = store.current_labels()
    assert current[ref.pk].value == 0 and current[ref.pk].source == "cli"


def test_migrating_twice_is_harmless(db_url):
    Store(db_url).close()
    store = Store(db_url)
    assert store.counts().messages == 0


def test_account_lease_is_exclusive_across_connections_and_freed_on_exit(pg_url):
    first, second = Store(pg_url), Store(pg_url, migrate=False)
    with first.account_lease("work") as held:
        assert held
        with second.account_lease("work") as other:
            assert not other
        with second.account_lease("home") as unrelated:
            assert unrelated
    with second.account_lease("work") as after:
        assert after


def test_the_quick_schema_check_knows_alembics_head(db_url):
    """Store skips Alembic when the database is at the newest migration, found by reading the
    migration files: it must agree with Alembic, and a database behind it must still migrate."""
    from alembic.script import ScriptDirectory
    from sqlalchemy import text

    from jeeves.storage.migrations import MIGRATIONS_DIR, head_revision

    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert head_revision() == head
    from alembic import command
    from alembic.config import Config

    store = Store(db_url)
    assert store.schema_is_current()
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "-1")  # a database one migration behind
    assert not store.schema_is_current()
    store.close()
    reopened = Store(db_url)
    assert reopened.schema_is_current()
    with reopened.engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
    reopened.close()


def test_migrations_build_exactly_the_schema_the_code_uses(db_url):
    """Alembic owns the schema: a model change without its migration fails here, not in production."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from jeeves.storage.schema import Base

    store = Store(db_url)
    with store.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_upgrade_to_the_status_check_keeps_alerts_and_digest_links_and_refuses_unknown_states(db_url, corpus_raw_messages):
    """Migration 0005 rebuilds ``outbox`` on SQLite: queued alerts, their conversation keys and
    the digest entries' links to their digest must survive it; afterwards a status outside
    the state machine is refused by the database itself."""
    import pytest
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    from jeeves.storage.migrations import MIGRATIONS_DIR

    store = Store(db_url, migrate=False)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0004")
    refs = store.store_batch([_new(raw) for raw in corpus_raw_messages[:3]])
    with store.engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO outbox (id, dedupe_key, kind, message_pk, thread_key, status, attempts, created_at)"
            " VALUES (1, 'a', 'alert', :pk, 'conv-1', 'pending', 0, CURRENT_TIMESTAMP),"
            " (2, 'digest:2026-11-29', 'digest', NULL, '', 'sent', 1, CURRENT_TIMESTAMP)"), {"pk": refs[0].pk})
        connection.execute(text(
            "INSERT INTO digest_entries (dedupe_key, message_pk, outbox_id, created_at)"
            " VALUES ('b', :listed, 2, CURRENT_TIMESTAMP), ('c', :waiting, NULL, CURRENT_TIMESTAMP)"),
            {"listed": refs[1].pk, "waiting": refs[2].pk})
    store.migrate()
    with store.engine.connect() as connection:
        assert connection.execute(text("SELECT id, conversation_key, status FROM outbox ORDER BY id")).all() == [
            (1, "conv-1", "pending"), (2, "", "sent")]
        assert connection.execute(text("SELECT dedupe_key, outbox_id FROM digest_entries ORDER BY dedupe_key")).all() == [
            ("b", 2), ("c", None)]
    assert store.digest_waiting() == 1
    with pytest.raises(IntegrityError), store.engine.begin() as connection:
        connection.execute(text("UPDATE outbox SET status = 'snet' WHERE id = 1"))
    with pytest.raises(IntegrityError), store.engine.begin() as connection:
        connection.execute(text("UPDATE outbox SET kind = 'sms' WHERE id = 1"))
    store.close()


def test_a_lost_connection_is_unreachable_and_a_missing_database_is_not(pg_url):
    """Waiting helps a database that went away (daemon and one-shot commands retry it); it does
    not help a database that does not exist, which must fail at once with its own words."""
    import pytest
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from jeeves.errors import DatabaseUnreachable, StoreError

    store, admin = Store(pg_url), Store(pg_url, migrate=False)
    try:
        with pytest.raises(DatabaseUnreachable):
            with store.session() as session:
                pid = session.execute(text("SELECT pg_backend_pid()")).scalar()
                with admin.session() as other:
                    other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                session.execute(text("SELECT 1"))
        assert store.counts().messages == 0  # the pool replaced the dead connection
    finally:
        store.close()
        admin.close()
    missing = make_url(pg_url).set(database="no_such_database").render_as_string(hide_password=False)
    with pytest.raises(StoreError) as info:
        Store(missing)
    assert not isinstance(info.value, DatabaseUnreachable) and "does not exist" in str(info.value)
