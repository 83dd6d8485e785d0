"""The outbox sender: retries, reconciliation, the user's rules and concurrent senders."""

from __future__ import annotations

import io
import threading
from datetime import timedelta

import pytest

from jeeves.logs import TextFormatter
from pydantic import SecretStr
from sqlalchemy import update

from jeeves.config import NotifySettings, Settings
from jeeves.notify import ConsoleNotifier, OutboxSender, SenderSettings, make_notifier
from jeeves.notify.twilio import TwilioNotifier
from jeeves.storage import Store
from jeeves.storage.schema import OutboxEntry, StoredMessage
from tests.fixtures_postgres import free_port
from tests.fixtures_twilio import TEST_TO, FakeClock, notify_settings_for, outbox_rows, seed_positives


@pytest.fixture
def clock(twilio_server) -> FakeClock:
    clock = FakeClock()
    twilio_server.clock = clock  # the fake's dates follow the same clock as the outbox
    return clock


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'jeeves.db'}")
    yield store
    store.close()


def make_sender(store, settings, clock, notifier=None, worker="w1", **kwargs) -> OutboxSender:
    return OutboxSender(store, SenderSettings.from_settings(settings), notifier or make_notifier(settings.notify.channel, settings.twilio),
                        worker_id=worker, clock=clock, **kwargs)


def test_each_positive_is_texted_once(db_url, twilio_server, clock, corpus_raw_messages):
    store = Store(db_url)
    seed_positives(store, corpus_raw_messages, 4)
    sender = make_sender(store, notify_settings_for(twilio_server), clock)
    assert sender.run_once().sent == 4
    assert not sender.run_once().busy
    rows = outbox_rows(store)
    assert {r.status for r in rows} == {"sent"}
    assert sorted(r.provider_id for r in rows) == sorted(m.sid for m in twilio_server.messages)
    assert sorted(r.body for r in rows) == sorted(twilio_server.bodies())
    assert all(r.attempts == 1 and r.recipient == TEST_TO for r in rows)
    store.close()


def test_rate_limit_is_retried_with_backoff_then_sent(store, twilio_server, clock, corpus_raw_messages):
    seed_positives(store, corpus_raw_messages, 1)
    sender = make_sender(store, notify_settings_for(twilio_server, notify={"max_attempts": 4}), clock)
    twilio_server.fail_next(429, 20429, times=2)
    assert sender.run_once().retried == 1
    [row] = outbox_rows(store)
    first_delay = row.not_before.replace(tzinfo=clock.now.tzinfo) - clock.now
    assert timedelta(seconds=5) <= first_delay <= timedelta(seconds=10)
    assert not sender.run_once().busy  # not due yet: no request
    assert twilio_server.count() == 1
    clock.advance(seconds=10)
    assert sender.run_once().retried == 1
    [row] = outbox_rows(store)
    assert timedelta(seconds=10) <= row.not_before.replace(tzinfo=clock.now.tzinfo) - clock.now <= timedelta(seconds=20)
    clock.advance(seconds=20)
    assert sender.run_once().sent == 1
    assert twilio_server.count() == 3 and len(twilio_server.messages) == 1
    assert outbox_rows(store)[0].attempts == 3


def test_transient_errors_give_up_after_max_attempts(store, twilio_server, clock, corpus_raw_messages):
    seed_positives(store, corpus_raw_messages, 1)
    sender = make_sender(store, notify_settings_for(twilio_server, notify={"max_attempts": 3}), clock)
    twilio_server.fail_next(429, 20429, times=10)
    for _ in range(6):
        sender.run_once()
        clock.advance(hours=1)
    [row] = outbox_rows(store)
    assert (row.status, row.attempts, row.error_code) == ("failed", 3, "20429")
    assert twilio_server.count() == 3


@pytest.mark.parametrize("code", [21211, 21610, 21614, 21408])
def test_permanent_errors_fail_at_once_with_the_reason(store, twilio_server, clock, corpus_raw_messages, code):
    seed_positives(store, corpus_raw_messages, 1)
    sender = make_sender(store, notify_settings_for(twilio_server), clock)
    twilio_server.fail_next(400, code)
    assert sender.run_once().failed == 1
    clock.advance(days=1)
    assert not sender.run_once().busy
    [row] = outbox_rows(store)
    assert (row.status, row.error_code, row.attempts) == ("failed", str(code), 1)
    assert row.error_message and twilio_server.count() == 1
    assert store.counts().outbox == {"failed": 1}
    [problem] = store.outbox.problems()
    assert (problem.status, problem.error_code) == ("failed", str(code))


def test_server_error_after_accepting_is_reconciled_not_resent(store, twilio_server, clock, corpus_raw_messages):
    seed_positives(store, corpus_raw_messages, 1)
    sender = make_sender(store, notify_settings_for(twilio_server), clock)
    twilio_server.fail_next(500, after_accepting=True)
    assert sender.run_once().in_doubt == 1
    assert outbox_rows(store)[0].status == "in_doubt"
    clock.advance(minutes=1)
    assert sender.run_once().reconciled == 1
    [row] = outbox_rows(store)
    assert (row.status, row.provider_id) == ("sent", twilio_server.messages[0].sid)
    assert twilio_server.count() == 1 and len(twilio_server.messages) == 1


def test_server_error_without_the_message_is_resent_after_checking(store, twilio_server, clock, corpus_raw_messages):
    seed_positives(store, corpus_raw_messages, 1)
    sender = make_sender(store, notify_settings_for(twilio_server), clock)
    twilio_server.fail_next(503)
    sender.run_once()
    clock.advance(minutes=1)
    summary = sender.run_once()
    assert (summary.reconciled, summary.sent) == (1, 1)
    assert twilio_server.count("POST") == 2 and len(twilio_server.messages) == 1
    assert twilio_server.count("GET") >= 1
    assert outbox_rows(store)[0].attempts == 2


def test_server_errors_are_retried_after_checking_up_to_max_attempts(store, twilio_server, clock, corpus_raw_messages):
    seed_positives(store, corpus_raw_messages, 1)
    sender = make_sender(store, notify_settings_for(twilio_server, notify={"max_attempts": 3}), clock)
    twilio_server.fail_next(503, times=10)
    for _ in range(8):
        sender.run_once()
        clock.advance(minutes=10)
    [row] = outbox_rows(store)
    assert (row.status, row.attempts) == ("failed", 3)
    assert twilio_server.count("POST") == 3 and twilio_server.messages == []
    assert twilio_server.count("GET") >= 3  # each attempt was checked before the next


def test_read_timeout_after_accepting_is_one_text(store, twilio_server, clock, corpus_raw_messages):
    seed_positives(store, corpus_raw_messages, 1)
    sender = make_sender(store, notify_settings_for(twilio_server, timeout=0.3), clock)
    twilio_server.fail_next(201, delay=0.6, succeed_after_delay=True)
    assert sender.run_once().in_doubt == 1
    clock.advance(minutes=1)
    assert sender.run_once().reconciled == 1
    assert outbox_rows(store)[0].status == "sent" and len(twilio_server.messages) == 1


def test_in_doubt_row_waits_while_twilio_cannot_be_asked(store, twilio_server, clock, corpus_raw_messages):
    seed_positives(store, corpus_raw_messages, 1)
    sender = make_sender(store, notify_settings_for(twilio_server), clock)
    twilio_server.fail_next(500, after_accepting=True)
    sender.run_once()
    clock.advance(minutes=1)
    twilio_server.fail_next(503, method="GET")
    assert sender.run_once().reconciled == 0
    assert outbox_rows(store)[0].status == "in_doubt" and twilio_server.count("POST") == 1
    clock.advance(minutes=5)
    sender.run_once()
    assert outbox_rows(store)[0].status == "sent" and len(twilio_server.messages) == 1


def test_connection_refused_is_retried_then_failed(store, clock, corpus_raw_messages):
    seed_positives(store, corpus_raw_messages, 1)
    settings = Settings(
        notify=NotifySettings(channel="twilio", to=TEST_TO, max_attempts=2),
        twilio={"account_sid": "AC" + "1" * 32, "auth_token": SecretStr("t"), "from_number": "+15005550001",
                "base_url": f"http://127.0.0.1:{free_port()}", "timeout": 1},
    )
    sender = make_sender(store, settings, clock)
    assert sender.run_once().retried == 1
    clock.advance(hours=1)
    assert sender.run_once().failed == 1
    assert outbox_rows(store)[0].error_code == "connect"


def test_crashed_send_of_another_worker_is_reconciled_once_stale(store, twilio_server, clock, corpus_raw_messages):
    [row_id] = seed_positives(store, corpus_raw_messages, 1)
    settings = notify_settings_for(twilio_server)
    notifier = TwilioNotifier(settings.twilio)
    # Another worker claimed the row, sent it, and died before recording the result.
    body = "Someone wants to meet #1 Wrong? jeeves label 1 0"
    notifier.send(TEST_TO, body)
    with store.session() as s:
        s.execute(update(OutboxEntry).where(OutboxEntry.id == row_id).values(
            status="sending", attempts=1, claimed_by="dead", claimed_at=clock.now, last_attempt_at=clock.now,
            body=body, recipient=TEST_TO, channel="twilio"))
    sender = make_sender(store, settings, clock, notifier, stale_after=timedelta(minutes=2))
    assert not sender.run_once().busy  # a live send of someone else's is never doubted early
    clock.advance(minutes=3)
    assert sender.run_once().reconciled == 1
    [row] = outbox_rows(store)
    assert (row.status, row.provider_id) == ("sent", twilio_server.messages[0].sid)
    assert len(twilio_server.messages) == 1


def test_console_prints_one_alert_and_counts_a_crashed_print_as_sent(store, clock, corpus_raw_messages):
    first, second = seed_positives(store, corpus_raw_messages, 2)
    out = io.StringIO()
    settings = Settings()
    sender = make_sender(store, settings, clock, ConsoleNotifier(out))
    assert sender.run_once().sent == 2
    assert out.getvalue().count("[jeeves alert]") == 2 and "jeeves label" in out.getvalue()
    with store.session() as s:  # as if the process died between printing and recording
        s.execute(update(OutboxEntry).where(OutboxEntry.id == second).values(status="sending", claimed_by="w1"))
    again = make_sender(store, settings, clock, ConsoleNotifier(out))
    assert again.run_once().reconciled == 1
    assert out.getvalue().count("[jeeves alert]") == 2
    assert outbox_rows(store)[1].provider_status == "assumed"


def test_console_shows_every_alert_but_keeps_sender_lists(store, clock, corpus_raw_messages):
    ids = seed_positives(store, corpus_raw_messages, 4)
    with store.session() as s:
        s.execute(update(OutboxEntry).where(OutboxEntry.id.in_(ids[:2])).values(conversation_key="same"))
        pk = s.get(OutboxEntry, ids[3]).message_pk
        s.execute(update(StoredMessage).where(StoredMessage.id == pk).values(sender_address="x@spam.example"))
    clock.now = clock.now.replace(hour=23)
    out = io.StringIO()
    settings = Settings(notify=NotifySettings(channel="console", quiet_hours="22:00-07:00", max_per_hour=1,
                                              deny_senders=["spam.example"]))
    summary = make_sender(store, settings, clock, ConsoleNotifier(out)).run_once()
    assert (summary.sent, summary.suppressed, summary.held) == (3, 1, 0)
    assert out.getvalue().count("[jeeves alert]") == 3


def test_quiet_hours_hold_then_send(store, twilio_server, clock, corpus_raw_messages):
    seed_positives(store, corpus_raw_messages, 2)
    clock.now = clock.now.replace(hour=23, minute=0)
    sender = make_sender(store, notify_settings_for(twilio_server, notify={"quiet_hours": "22:00-07:00"}), clock)
    assert sender.run_once().held == 2
    assert not sender.run_once().busy
    clock.advance(hours=7, minutes=59)
    assert not sender.run_once().busy
    clock.advance(minutes=1)
    assert sender.run_once().sent == 2
    assert len(twilio_server.messages) == 2


def test_one_text_per_thread_later_positives_recorded(store, twilio_server, clock, corpus_raw_messages):
    ids = seed_positives(store, corpus_raw_messages, 3)
    with store.session() as s:
        s.execute(update(OutboxEntry).where(OutboxEntry.id.in_(ids[:2])).values(conversation_key="same"))
    sender = make_sender(store, notify_settings_for(twilio_server, notify={"thread_window_hours": 6}), clock)
    summary = sender.run_once()
    assert (summary.sent, summary.suppressed) == (2, 1)
    rows = outbox_rows(store)
    assert [r.status for r in rows] == ["sent", "suppressed", "sent"]
    assert "thread already texted" in rows[1].error_message
    assert len(twilio_server.messages) == 2


def test_hourly_cap_holds_the_rest_until_the_hour_frees(store, twilio_server, clock, corpus_raw_messages):
    seed_positives(store, corpus_raw_messages, 5)
    sender = make_sender(store, notify_settings_for(twilio_server, notify={"max_per_hour": 2}), clock)
    summary = sender.run_once()
    assert (summary.sent, summary.held) == (2, 3)
    clock.advance(minutes=30)
    assert not sender.run_once().busy
    clock.advance(minutes=30)
    assert sender.run_once().sent == 2
    clock.advance(hours=1)
    assert sender.run_once().sent == 1
    assert len(twilio_server.messages) == 5 and {r.status for r in outbox_rows(store)} == {"sent"}


def test_allow_and_deny_lists(store, twilio_server, clock, corpus_raw_messages):
    ids = seed_positives(store, corpus_raw_messages, 3)
    with store.session() as s:
        for outbox_id, address in zip(ids, ["boss@corp.example", "spam@corp.example", "friend@else.example"]):
            pk = s.get(OutboxEntry, outbox_id).message_pk
            s.execute(update(StoredMessage).where(StoredMessage.id == pk).values(sender_address=address))
    notify = {"allow_senders": ["corp.example"], "deny_senders": ["spam@corp.example"]}
    sender = make_sender(store, notify_settings_for(twilio_server, notify=notify), clock)
    assert sender.run_once().sent == 1
    rows = outbox_rows(store)
    assert [r.status for r in rows] == ["sent", "suppressed", "suppressed"]
    assert rows[1].error_message == "sender on deny list" and rows[2].error_message == "sender not on allow list"


def test_dry_run_shows_what_it_would_send_and_leaves_every_alert_for_a_real_run(store, twilio_server, clock, corpus_raw_messages):
    seed_positives(store, corpus_raw_messages, 3)
    dry = make_sender(store, notify_settings_for(twilio_server, notify={"dry_run": True, "max_per_hour": 2}), clock)
    summary = dry.run_once()
    # The rules apply as in a real run: the hourly cap of 2 holds the third.
    assert (summary.dry_run, summary.held, summary.sent) == (2, 1, 0)
    assert [body for _, body in summary.previews] and all(body.endswith(" Reply 0 if wrong") for _, body in summary.previews)  # Twilio: replies are read
    assert twilio_server.count("POST") == 0
    assert not dry.run_once().busy  # a dry-run daemon shows each alert once, not every pass
    rows = outbox_rows(store)
    assert [(r.status, r.attempts, r.last_attempt_at) for r in rows] == [("pending", 0, None)] * 3

    real = make_sender(store, notify_settings_for(twilio_server, notify={"max_per_hour": 10}), clock, worker="w2")
    assert real.run_once().sent == 3
    assert len(twilio_server.bodies()) == 3 and {body for _, body in summary.previews} <= set(twilio_server.bodies())
    assert {r.status for r in outbox_rows(store)} == {"sent"}


@pytest.mark.postgres
def test_two_senders_on_one_postgresql_database_never_send_a_row_twice(pg_url, twilio_server, corpus_raw_messages):
    store = Store(pg_url)
    ids = seed_positives(store, corpus_raw_messages, 30)
    twilio_server.latency = (0.0, 0.02)
    settings = notify_settings_for(twilio_server, notify={"max_per_hour": 1000})
    results: dict[str, int] = {}

    def work(name: str) -> None:
        own = Store(pg_url, migrate=False)
        sender = OutboxSender(own, SenderSettings.from_settings(settings), TwilioNotifier(settings.twilio), worker_id=name)
        total = 0
        while (summary := sender.run_once(limit=3)).busy:
            total += summary.sent
        results[name] = total
        own.close()

    threads = [threading.Thread(target=work, args=(f"daemon-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    bodies = twilio_server.bodies()
    assert len(bodies) == len(set(bodies)) == len(ids)
    assert sum(results.values()) == len(ids) and all(results.values())  # both did share the work
    claimed_by = {r.claimed_by for r in outbox_rows(store)}
    assert claimed_by == {"daemon-0", "daemon-1"}
    store.close()


def test_one_structured_log_line_per_outcome_without_secrets(store, twilio_server, clock, corpus_raw_messages, caplog):
    seed_positives(store, corpus_raw_messages, 2)
    sender = make_sender(store, notify_settings_for(twilio_server), clock)
    twilio_server.fail_next(400, 21610)
    with caplog.at_level("DEBUG"):
        sender.run_once()
    records = [r for r in caplog.records if r.name == "jeeves.notify.outbox"]
    assert len(records) == 2
    assert any(r.getMessage() == "alert failed" and str(r.code) == "21610" for r in records)
    assert any(r.getMessage() == "alert sent" and r.sid.startswith("SM") for r in records)
    assert all(r.to == "***0006" for r in records)
    formatted = "\n".join(TextFormatter().format(r) for r in records)
    assert "to=***0006" in formatted and TEST_TO not in formatted and TEST_TO not in caplog.text
    assert twilio_server.auth_token not in caplog.text and twilio_server.auth_token not in formatted


def test_answer_the_database_missed_is_recorded_next_pass_without_asking_twilio(store, twilio_server, clock, corpus_raw_messages):
    """The database fails between Twilio's answer and recording it: no resend, no wait for reconcile."""
    from jeeves.errors import StoreError

    seed_positives(store, corpus_raw_messages, 1)
    real_session = store.session
    outage = {"on": False}

    def flaky_session():
        if outage["on"]:
            outage["on"] = False
            raise StoreError("database error (sqlite): disk I/O error")
        return real_session()

    def on_step(step, row_id):
        if step == "after-send":
            outage["on"] = True  # the next write (recording the answer) fails

    store.session = flaky_session
    # A generous HTTP timeout: on a loaded machine a 2 s one turns the send ambiguous, which is another test.
    sender = make_sender(store, notify_settings_for(twilio_server, timeout=30), clock, on_step=on_step)
    with pytest.raises(StoreError):
        sender.run_once()
    assert [r.status for r in outbox_rows(store)] == ["sending"]
    gets_before = twilio_server.count("GET")
    summary = sender.run_once()  # the database is back
    [row] = outbox_rows(store)
    assert row.status == "sent" and row.provider_id == twilio_server.messages[0].sid
    assert len(twilio_server.messages) == 1 and twilio_server.count("GET") == gets_before
    assert summary.sent == 0  # recorded, not sent again
