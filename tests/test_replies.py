"""SMS replies teach Jeeves: "0" after an alert labels it, once, whatever crashes or repeats.

Replies arrive as inbound texts at the local Twilio API (``FakeTwilio.add_inbound``) and are
read by the real ``twilio`` client through ``Jeeves.poll_replies``, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select, update

from jeeves.config import DatabaseSettings
from jeeves.notify.message import SMS_LIMIT, compose, gsm7_length
from jeeves.notify.replies import HELP_TEXT, parse_reply
from jeeves.parsing import parse_email
from jeeves.service import Jeeves
from jeeves.storage import NewMessage, PredictionInput, Store
from jeeves.storage.schema import SmsReply
from jeeves.storage.schema import DigestEntry, Label, OutboxEntry
from tests.fixtures_twilio import TEST_FROM, TEST_TO, notify_settings_for, outbox_rows, seed_positives

REPO = Path(__file__).resolve().parent.parent
STRANGER = "+15005550999"
NOTIFY = {"digest_time": None, "max_per_hour": 0, "thread_window_hours": 0}


def _app(db_url: str, server, **notify) -> Jeeves:
    settings = notify_settings_for(server, notify={**NOTIFY, **notify})
    settings = settings.model_copy(update={"database": DatabaseSettings(url=db_url)})
    return Jeeves(settings, store=Store(db_url))


def _send_alerts(app: Jeeves, raws, count: int) -> list[tuple[int, datetime]]:
    """``count`` alerts texted to TEST_TO, one a minute ending a minute ago: [(message id, sent at)]."""
    ids = seed_positives(app.store, raws, count)
    assert app.notify().sent == count
    now = datetime.now(timezone.utc).replace(microsecond=0)
    sent = []
    with app.store.session() as s:
        for i, outbox_id in enumerate(sorted(ids)):
            at = now - timedelta(minutes=count - i)
            s.execute(update(OutboxEntry).where(OutboxEntry.id == outbox_id).values(sent_at=at))
            sent.append((s.get(OutboxEntry, outbox_id).message_pk, at))
    return sent


def _labels(store) -> list[tuple[int, int, str]]:
    with store.session() as s:
        return [(l.message_pk, l.value, l.source) for l in s.scalars(select(Label).order_by(Label.id))]


def _reply(server, body: str, at: datetime, *, sender: str = TEST_TO, sid: str | None = None):
    return server.add_inbound(sender, TEST_FROM, body, date_sent=at, sid=sid)


# --- what a reply means -------------------------------------------------------------------------


@pytest.mark.parametrize("body, kind, value, pk", [
    ("0", "label", 0, None), ("No.", "label", 0, None), ("wrong", "label", 0, None),
    ("1", "label", 1, None), ("yes", "label", 1, None), ("Right!", "label", 1, None),
    ("0 7", "label", 0, 7), ("#7 0", "label", 0, 7), ("7 0", "label", 0, 7), ("0 #7", "label", 0, 7),
    ("wrong #12", "label", 0, 12), ("1 #7", "label", 1, 7), ("7 1", "label", 1, 7),
    ("STOP", "keyword", None, None), ("stop", "keyword", None, None), ("Unsubscribe", "keyword", None, None),
    ("START", "keyword", None, None), ("help", "keyword", None, None),
    ("0 0", "unclear", None, None), ("3 4", "unclear", None, None), ("ok thanks", "unclear", None, None),
    ("", "unclear", None, None), ("0 7 8", "unclear", None, None),
])
def test_reply_forms(body, kind, value, pk):
    intent = parse_reply(body)
    assert (intent.kind, intent.value, intent.message_pk) == (kind, value, pk)


def test_alerts_end_with_the_reply_instruction_within_one_segment(corpus_raw_messages):
    from jeeves.parsing import parse_email

    for pk, raw in enumerate(corpus_raw_messages[:200], start=100000):
        parsed = parse_email(raw)
        body = compose(message_pk=pk, sender=parsed.sender, subject=parsed.subject, new_text=parsed.new_text,
                       sender_address=parsed.sender_address, reply_hint=True)
        assert 0 < gsm7_length(body) <= SMS_LIMIT, body
        assert body.endswith(f"#{pk} Reply 0 if wrong")
    assert gsm7_length(HELP_TEXT) <= SMS_LIMIT


def test_texted_alerts_ask_for_a_reply_only_when_replies_are_read(tmp_path, twilio_server, corpus_raw_messages):
    app = _app(f"sqlite:///{tmp_path / 'a.db'}", twilio_server)
    pk, _ = _send_alerts(app, corpus_raw_messages, 1)[0]
    assert twilio_server.bodies()[0].endswith(f"#{pk} Reply 0 if wrong")
    twilio_server.reset()
    off = _app(f"sqlite:///{tmp_path / 'b.db'}", twilio_server, reply_poll_seconds=0)
    pk, _ = _send_alerts(off, corpus_raw_messages, 1)[0]
    assert twilio_server.bodies()[0].endswith(f"Wrong? jeeves label {pk} 0")


# --- applying replies ---------------------------------------------------------------------------


def test_bare_verdict_labels_the_newest_alert_before_it_and_counts_in_live_precision(db_url, twilio_server,
                                                                                      corpus_raw_messages):
    app = _app(db_url, twilio_server)
    (first, first_at), (second, second_at) = _send_alerts(app, corpus_raw_messages, 2)
    _reply(twilio_server, "1", first_at + timedelta(seconds=20))   # between the two alerts: the first
    _reply(twilio_server, "Wrong", second_at + timedelta(seconds=20))  # after the second
    summary = app.poll_replies()
    assert (summary.labelled, summary.help_queued) == (2, 0)
    assert sorted(_labels(app.store)) == sorted([(first, 1, "sms"), (second, 0, "sms")])
    live = app.status()["live_quality"]
    assert (live["alerts"], live["judged"], live["confirmed"], live["precision"]) == (2, 2, 1, 0.5)


def test_explicit_forms_name_an_alert_or_a_digest_entry(db_url, twilio_server, corpus_raw_messages):
    app = _app(db_url, twilio_server)
    (a, a_at), (b, _) = _send_alerts(app, corpus_raw_messages, 2)
    ref = app.store.store_batch([NewMessage(corpus_raw_messages[80], parse_email(corpus_raw_messages[80]))])[0]
    unlisted = app.store.store_batch([NewMessage(corpus_raw_messages[81], parse_email(corpus_raw_messages[81]))])[0]
    with app.store.session() as s:  # message c was not alerted, only listed in a sent digest
        digest = OutboxEntry(dedupe_key="digest:x", kind="digest", status="sent", recipient=TEST_TO, body="digest",
                             sent_at=a_at + timedelta(seconds=1))
        s.add(digest)
        s.flush()
        s.add(DigestEntry(dedupe_key="listed", message_pk=ref.pk, outbox_id=digest.id))
    c = ref.pk
    late = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=10)
    _reply(twilio_server, f"0 {a}", late)
    _reply(twilio_server, f"#{b} 1", late + timedelta(seconds=1))
    _reply(twilio_server, f"{c} 1", late + timedelta(seconds=2))
    _reply(twilio_server, f"{unlisted.pk} 1", late + timedelta(seconds=3))  # stored, never texted: not labelled
    summary = app.poll_replies()
    assert (summary.labelled, summary.help_queued) == (3, 1)
    assert sorted(_labels(app.store)) == sorted([(a, 0, "sms"), (b, 1, "sms"), (c, 1, "sms")])


def test_a_reply_is_applied_once_however_often_it_is_listed(db_url, twilio_server, corpus_raw_messages):
    app = _app(db_url, twilio_server)
    (pk, at), = _send_alerts(app, corpus_raw_messages, 1)
    sms = _reply(twilio_server, "0", at + timedelta(seconds=5))
    _reply(twilio_server, "0", at + timedelta(seconds=5), sid=sms.sid)  # Twilio lists the same SID twice
    first = app.poll_replies()
    assert (first.labelled, first.already) == (1, 1)
    second = app.poll_replies()  # the overlap lists it again
    assert (second.labelled, second.already) == (0, 2)
    other = _app(db_url, twilio_server)  # another process on the same database
    assert other.poll_replies().labelled == 0
    assert _labels(app.store) == [(pk, 0, "sms")]
    with app.store.session() as s:
        assert s.scalars(select(SmsReply.sid)).all() == [sms.sid]


def test_a_long_list_is_read_page_by_page_and_only_inbound_texts_count(tmp_path, twilio_server, corpus_raw_messages):
    app = _app(f"sqlite:///{tmp_path / 'p.db'}", twilio_server)
    (pk, at), = _send_alerts(app, corpus_raw_messages, 1)
    for i in range(130):  # more than one page of 100
        _reply(twilio_server, "START", at + timedelta(seconds=1 + i % 50))
    twilio_server.add_inbound(TEST_TO, "+15005550002", "0", date_sent=at + timedelta(seconds=3))  # to another number
    gets = twilio_server.count("GET")
    summary = app.poll_replies()
    assert (summary.read, summary.keywords, summary.labelled) == (130, 130, 0)
    assert twilio_server.count("GET") - gets == 2  # two pages, following next_page_uri
    assert app.poll_replies().already == 130


def test_a_strangers_text_is_ignored_and_its_text_never_logged(db_url, twilio_server, corpus_raw_messages, caplog):
    app = _app(db_url, twilio_server)
    (pk, at), = _send_alerts(app, corpus_raw_messages, 1)
    _reply(twilio_server, "0 my secret words", at + timedelta(seconds=5), sender=STRANGER)
    _reply(twilio_server, "0", at + timedelta(seconds=6), sender=STRANGER)
    with caplog.at_level(logging.INFO, logger="jeeves"):
        summary = app.poll_replies()
    assert (summary.ignored, summary.labelled, summary.help_queued) == (2, 0, 0)
    assert _labels(app.store) == []
    assert [r.kind for r in outbox_rows(app.store)] == ["alert"]  # no help text to a stranger
    logged = " ".join(r.getMessage() + " " + str(r.__dict__) for r in caplog.records)
    assert "secret" not in logged and STRANGER not in logged
    assert "***0999" in logged


def test_stop_keeps_twilios_meaning_and_later_texts_fail_without_retrying(db_url, twilio_server,
                                                                         corpus_raw_messages):
    app = _app(db_url, twilio_server)
    (pk, at), = _send_alerts(app, corpus_raw_messages, 1)
    _reply(twilio_server, "STOP", at + timedelta(seconds=5))
    summary = app.poll_replies()
    assert (summary.keywords, summary.labelled, summary.help_queued) == (1, 0, 0)
    assert _labels(app.store) == []
    seed_positives(app.store, corpus_raw_messages[50:], 1)
    posts = twilio_server.count("POST")
    result = app.notify()
    assert (result.sent, result.failed) == (0, 1)
    app.notify()
    assert twilio_server.count("POST") == posts + 1  # refused once (21610), never retried
    failed = [r for r in outbox_rows(app.store) if r.status == "failed"]
    assert [(r.error_code, r.attempts) for r in failed] == [("21610", 1)]
    assert app.status()["sms_replies"] == {"keyword": 1, "opted_out": True}
    _reply(twilio_server, "START", datetime.now(timezone.utc).replace(microsecond=0))
    assert app.poll_replies().keywords == 1
    assert _labels(app.store) == []
    assert app.status()["sms_replies"] == {"keyword": 2, "opted_out": False}


def test_anything_else_gets_one_help_text_at_most_a_day(db_url, twilio_server, corpus_raw_messages):
    app = _app(db_url, twilio_server)
    (pk, at), = _send_alerts(app, corpus_raw_messages, 1)
    _reply(twilio_server, "who is this?", at + timedelta(seconds=5))
    _reply(twilio_server, "hello??", at + timedelta(seconds=6))
    _reply(twilio_server, "0 99999", at + timedelta(seconds=7))  # never texted about
    summary = app.poll_replies()
    assert (summary.help_queued, summary.unclear, summary.labelled) == (1, 2, 0)
    assert app.notify().sent == 1
    assert app.poll_replies().busy is False  # the help text itself is outbound: not a reply
    _reply(twilio_server, "still confused", datetime.now(timezone.utc).replace(microsecond=0))
    assert (app.poll_replies().help_queued, app.notify().sent) == (0, 0)
    helps = [b for b in twilio_server.bodies() if b == HELP_TEXT]
    assert len(helps) == 1
    assert [r.kind for r in outbox_rows(app.store)] == ["alert", "help"]


def test_a_bare_verdict_after_a_digest_asks_which_entry(db_url, twilio_server, corpus_raw_messages):
    app = _app(db_url, twilio_server)
    (pk, at), = _send_alerts(app, corpus_raw_messages, 1)
    with app.store.session() as s:
        s.add(OutboxEntry(dedupe_key="digest:x", kind="digest", status="sent", recipient=TEST_TO, body="digest",
                          sent_at=at + timedelta(seconds=10)))
    _reply(twilio_server, "0", at + timedelta(seconds=30))
    summary = app.poll_replies()
    assert (summary.labelled, summary.help_queued) == (0, 1)


def test_the_digest_asks_for_a_reply_naming_the_entry_and_that_reply_labels_it(tmp_path, twilio_server,
                                                                                 corpus_raw_messages):
    app = _app(f"sqlite:///{tmp_path / 'g.db'}", twilio_server, digest_time="00:00")
    refs = app.store.store_batch([NewMessage(raw, parse_email(raw)) for raw in corpus_raw_messages[90:92]])
    app.store.record_predictions("m1", [PredictionInput(r.pk, 0.3, 0.5, False, digest=True) for r in refs])
    assert app.notify().sent == 1
    digest = twilio_server.bodies()[-1]
    assert digest.endswith(" Needs a place? Reply 1 #ID") and f"#{refs[1].pk} " in digest
    _reply(twilio_server, f"1 #{refs[1].pk}", datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=1))
    with app.store.session() as s:  # the digest went out a moment before the reply
        s.execute(update(OutboxEntry).where(OutboxEntry.kind == "digest")
                  .values(sent_at=datetime.now(timezone.utc) - timedelta(minutes=1)))
    assert app.poll_replies().labels == [(refs[1].pk, 1)]


def test_two_pollers_on_one_database_apply_each_reply_once(pg_url, twilio_server, corpus_raw_messages):
    apps = [_app(pg_url, twilio_server) for _ in range(3)]
    sent = _send_alerts(apps[0], corpus_raw_messages, 6)
    for i, (pk, at) in enumerate(sent):
        _reply(twilio_server, f"0 {pk}", at + timedelta(seconds=30))
    _reply(twilio_server, "huh", sent[-1][1] + timedelta(seconds=40))
    _reply(twilio_server, "what", sent[-1][1] + timedelta(seconds=41))
    results, errors = [], []

    def poll(app):
        try:
            results.append(app.poll_replies())
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=poll, args=(a,)) for a in apps]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sum(r.labelled for r in results) == 6
    assert sum(r.help_queued for r in results) == 1
    assert Counter(pk for pk, _, _ in _labels(apps[0].store)) == {pk: 1 for pk, _ in sent}


def test_sms_labels_reach_retraining(tmp_path, twilio_server, corpus_raw_messages):
    from jeeves.model.retrain import gather_labels

    app = _app(f"sqlite:///{tmp_path / 'r.db'}", twilio_server)
    (pk, at), = _send_alerts(app, corpus_raw_messages, 1)
    _reply(twilio_server, "0", at + timedelta(seconds=5))
    app.poll_replies()
    data, user = gather_labels(app.store, corpus_dir=None)
    assert user == 1 and list(data.labels) == [0] and data.source == ["user"]


def test_daemon_polls_replies_only_with_twilio(tmp_path, twilio_server, corpus_raw_messages, caplog):
    from jeeves.config import Settings
    from jeeves.daemon import Daemon

    app = _app(f"sqlite:///{tmp_path / 'd.db'}", twilio_server)
    daemon = Daemon(app.settings, app=app)
    daemon.schedule()
    job = daemon.scheduler.get_job("replies")
    assert job is not None and job.trigger.interval == timedelta(seconds=60)
    _send_alerts(app, corpus_raw_messages, 1)
    twilio_server.fail_next(503, times=3, method="GET")  # Twilio away for three polls: one warning, then one "works again"
    with caplog.at_level(logging.INFO, logger="jeeves.daemon"):
        for _ in range(4):
            daemon.poll_replies()
    said = [r.getMessage() for r in caplog.records if r.name == "jeeves.daemon"]
    assert len(said) == 2 and said[0].startswith("reading SMS replies failed") and said[1] == "reading SMS replies works again"
    console = Daemon(Settings(database=DatabaseSettings(url=f"sqlite:///{tmp_path / 'c.db'}")))
    console.schedule()
    assert console.scheduler.get_job("replies") is None


def test_cli_reads_replies_once(tmp_path, twilio_server, corpus_raw_messages, monkeypatch, capsys):
    from jeeves.cli import main

    db = f"sqlite:///{tmp_path / 'cli.db'}"
    app = _app(db, twilio_server)
    (pk, at), = _send_alerts(app, corpus_raw_messages, 1)
    _reply(twilio_server, "0", at + timedelta(seconds=5))
    config = tmp_path / "jeeves.toml"
    config.write_text(
        f'[database]\nurl = "{db}"\n[notify]\nto = "{TEST_TO}"\n'
        f'[twilio]\naccount_sid = "{twilio_server.account_sid}"\nfrom_number = "{TEST_FROM}"\n'
        f'base_url = "{twilio_server.url}"\n'
    )
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", twilio_server.auth_token)
    monkeypatch.setenv("JEEVES_DATA_DIR", str(tmp_path / "data"))
    assert main(["-c", str(config), "replies"]) == 0
    out = capsys.readouterr().out
    assert f"message {pk} labelled 0" in out and "read 1 replies: 1 labelled" in out
    assert main(["-c", str(config), "replies"]) == 0
    assert "0 labelled" in capsys.readouterr().out and _labels(app.store) == [(pk, 0, "sms")]
    assert main(["-c", str(config), "status"]) == 0
    out = capsys.readouterr().out
    assert "replies    1 labelled by SMS" in out and "1 judged by you (live precision 0.00" in out
    console = tmp_path / "console.toml"
    console.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "console.db"}"\n')
    assert main(["-c", str(console), "replies"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("jeeves: reading SMS replies needs Twilio") and "\n" not in err
    assert not (tmp_path / "console.db").exists()


# --- crashes ------------------------------------------------------------------------------------


def _poll_process(db: str, server, kill_step: str | None = None, nth: int = 1) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "tests.replies_crash_worker", "--db", db, "--base-url", server.url,
           "--account-sid", server.account_sid, "--to", TEST_TO, "--from-number", TEST_FROM]
    if kill_step:
        cmd += ["--kill-step", kill_step, "--kill-nth", str(nth)]
    env = {**os.environ, "FAKE_TWILIO_TOKEN": server.auth_token}
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("step, nth", [("listed", 1), ("record-uncommitted", 1), ("record-uncommitted", 3),
                                       ("recorded", 2)])
def test_a_poll_killed_between_reading_and_recording_applies_each_reply_exactly_once(
        db_url, twilio_server, corpus_raw_messages, step, nth):
    app = _app(db_url, twilio_server)
    sent = _send_alerts(app, corpus_raw_messages, 4)
    for pk, at in sent:
        _reply(twilio_server, f"#{pk} 0", at + timedelta(seconds=30))
    _reply(twilio_server, "hmm", sent[-1][1] + timedelta(seconds=40))
    killed = _poll_process(db_url, twilio_server, step, nth)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    done_before = len(_labels(app.store))
    assert done_before == {"listed": 0, "record-uncommitted": nth - 1, "recorded": nth}[step]
    again = _poll_process(db_url, twilio_server)
    assert again.returncode == 0, again.stderr
    assert Counter(pk for pk, _, _ in _labels(app.store)) == {pk: 1 for pk, _ in sent}
    assert [r.kind for r in outbox_rows(app.store)].count("help") == 1
    with app.store.session() as s:
        assert len(s.scalars(select(SmsReply.sid)).all()) == 5
    assert app.poll_replies().busy is False


@pytest.mark.slow
def test_a_replies_command_killed_before_any_statement_applies_each_reply_once(tmp_path, twilio_server,
                                                                               corpus_raw_messages):
    """``jeeves replies`` SIGKILLed just before its Nth SQL statement (tests/kill_cli.py), for every N
    of a whole poll, each time from the same start; the next poll then applies each reply once."""
    db_path = tmp_path / "kill.db"
    db = f"sqlite:///{db_path}"
    app = _app(db, twilio_server)
    (first, _), (second, second_at) = _send_alerts(app, corpus_raw_messages, 2)
    app.store.close()
    template = tmp_path / "template.db"
    shutil.copy(db_path, template)
    _reply(twilio_server, f"#{first} 1", second_at + timedelta(seconds=10))
    _reply(twilio_server, "0", second_at + timedelta(seconds=20))
    _reply(twilio_server, "huh?", second_at + timedelta(seconds=30))
    config = tmp_path / "jeeves.toml"
    config.write_text(
        f'[database]\nurl = "{db}"\n[notify]\nto = "{TEST_TO}"\ndigest_time = ""\n'
        f'[twilio]\naccount_sid = "{twilio_server.account_sid}"\nfrom_number = "{TEST_FROM}"\n'
        f'base_url = "{twilio_server.url}"\n'
    )
    env = {**os.environ, "TWILIO_AUTH_TOKEN": twilio_server.auth_token, "JEEVES_DATA_DIR": str(tmp_path / "data")}
    kills = 0
    for statement in range(1, 100):
        for leftover in (tmp_path / "kill.db-wal", tmp_path / "kill.db-shm"):
            leftover.unlink(missing_ok=True)
        shutil.copy(template, db_path)
        run = subprocess.run([sys.executable, str(REPO / "tests/kill_cli.py"), "-c", str(config), "replies"],
                             env={**env, "JEEVES_TEST_KILL_AT_STATEMENT": str(statement)},
                             capture_output=True, text=True, timeout=120)
        if run.returncode == 0:
            break  # the poll sends fewer statements: every one of them has been a kill point
        assert run.returncode == -signal.SIGKILL, run.stderr
        kills += 1
        again = _app(db, twilio_server)
        again.poll_replies()
        assert sorted(_labels(again.store)) == sorted([(first, 1, "sms"), (second, 0, "sms")]), statement
        assert [r.kind for r in outbox_rows(again.store)].count("help") == 1, statement
        with again.store.session() as s:
            assert len(s.scalars(select(SmsReply.sid)).all()) == 3, statement
        again.close()
    print(f"replies command killed before each of its {kills} SQL statements")
    assert kills >= 12  # start-up reads, then three replies' transactions (insert, target, label, update)
