"""The daily digest: unsure mail costs one text a day, listed once, labelled like an alert."""

from __future__ import annotations

import io
from datetime import datetime, time, timezone

import numpy as np
import pytest

from jeeves.config import NotifySettings, Settings
from jeeves.notify.console import ConsoleNotifier
from jeeves.notify.digest import DIGEST_HEAD, compose_digest, due_date
from jeeves.notify.message import gsm7_length
from jeeves.parsing import parse_email
from jeeves.service import Jeeves
from jeeves.storage import DigestLine, NewMessage, PredictionInput, Store
from tests.fixtures_twilio import TEST_TO, FakeClock, outbox_rows


def _store_messages(store: Store, raws: list[bytes], notify: bool = True) -> list[int]:
    refs = store.store_batch([NewMessage(raw, parse_email(raw), notify=notify) for raw in raws])
    return [r.pk for r in refs]


def test_unsure_messages_wait_for_the_digest_instead_of_a_text(db_url, corpus_raw_messages):
    store = Store(db_url)
    sure, unsure, nothing = _store_messages(store, corpus_raw_messages[:3])
    created = store.record_predictions("m1", [
        PredictionInput(sure, 0.9, 0.5, True),
        PredictionInput(unsure, 0.3, 0.5, False, digest=True),
        PredictionInput(nothing, 0.01, 0.5, False),
    ])
    assert len(created) == 1
    assert store.digest_waiting() == 1
    # Scored again (a retrain, a second copy): still one entry.
    store.record_predictions("m2", [PredictionInput(unsure, 0.3, 0.5, False, digest=True)])
    assert store.digest_waiting() == 1


def test_old_mail_and_already_texted_mail_never_reach_the_digest(db_url, corpus_raw_messages):
    store = Store(db_url)
    [old] = _store_messages(store, corpus_raw_messages[3:4], notify=False)
    [texted] = _store_messages(store, corpus_raw_messages[4:5])
    store.record_predictions("m1", [PredictionInput(old, 0.3, 0.5, False, digest=True),
                                    PredictionInput(texted, 0.9, 0.5, True)])
    # A later model is unsure about the message an earlier one texted: no second mention.
    store.record_predictions("m2", [PredictionInput(texted, 0.3, 0.5, False, digest=True)])
    assert store.digest_waiting() == 0


def test_one_digest_per_day_lists_each_entry_once(db_url, corpus_raw_messages):
    store = Store(db_url)
    pks = _store_messages(store, corpus_raw_messages[5:9])
    store.record_predictions("m1", [PredictionInput(pk, 0.3, 0.5, False, digest=True) for pk in pks])

    first = store.queue_digest("digest:2026-11-29", compose_digest)
    assert first is not None
    assert store.queue_digest("digest:2026-11-29", compose_digest) is None  # once a day
    assert store.digest_waiting() == 0
    [row] = [r for r in outbox_rows(store) if r.kind == "digest"]
    assert row.message_pk is None and row.status == "pending"
    assert row.body.startswith(DIGEST_HEAD)
    for pk in pks:
        assert f"#{pk} " in row.body
    # Nothing new waits: tomorrow brings no empty digest.
    assert store.queue_digest("digest:2026-11-30", compose_digest) is None


def test_what_does_not_fit_waits_for_the_next_digest(db_url, corpus_raw_messages):
    store = Store(db_url)
    pks = _store_messages(store, corpus_raw_messages[10:40])
    store.record_predictions("m1", [PredictionInput(pk, 0.3, 0.5, False, digest=True) for pk in pks])
    store.queue_digest("digest:2026-11-29", compose_digest)
    waiting = store.digest_waiting()
    assert 0 < waiting < len(pks)
    [today] = [r for r in outbox_rows(store) if r.kind == "digest"]
    assert f"(+{waiting} tomorrow)" in today.body
    store.queue_digest("digest:2026-11-30", compose_digest)
    bodies = " ".join(r.body for r in outbox_rows(store) if r.kind == "digest")
    listed = [pk for pk in pks if f"#{pk} " in bodies]
    assert len(listed) == len(pks) - store.digest_waiting()
    assert all(bodies.count(f"#{pk} ") == 1 for pk in listed)


def test_denied_senders_are_left_out_of_the_digest(db_url, corpus_raw_messages):
    store = Store(db_url)
    pks = _store_messages(store, corpus_raw_messages[40:43])
    store.record_predictions("m1", [PredictionInput(pk, 0.3, 0.5, False, digest=True) for pk in pks])
    denied = store.get_message(pks[0]).sender_address
    store.queue_digest("digest:2026-11-29", compose_digest, keep=lambda line: line.sender_address != denied)
    [row] = [r for r in outbox_rows(store) if r.kind == "digest"]
    assert f"#{pks[0]} " not in row.body
    assert store.digest_waiting() == 0


def test_digest_text_fits_four_segments_and_names_each_id():
    lines = [DigestLine(1000 + i, f"Person Number {i} <p{i}@example.com>", f"p{i}@example.com",
                        "Re: a rather long subject line about the quarterly review — “draft”") for i in range(30)]
    body, listed = compose_digest(lines)
    assert 0 < gsm7_length(body) <= 4 * 153
    assert 3 <= len(listed) < 30
    assert all(f"#{line.message_pk} " in body for line in listed)
    assert f"(+{30 - len(listed)} tomorrow)" in body
    assert body.endswith("Needs a place? jeeves label ID 1")


def test_digest_is_due_at_the_users_local_time():
    at = time(18, 0)
    # 17:59 in Chicago is 23:59 UTC in winter: not yet; 18:00 local is due, for that local date.
    assert due_date(datetime(2026, 11, 29, 23, 59, tzinfo=timezone.utc), at, "America/Chicago") is None
    assert str(due_date(datetime(2026, 11, 30, 0, 0, tzinfo=timezone.utc), at, "America/Chicago")) == "2026-11-29"
    assert due_date(datetime(2026, 11, 30, 0, 0, tzinfo=timezone.utc), None, "UTC") is None


class _TwoTierModel:
    """A scoring model with fixed scores per subject word: 'sure' texts, 'maybe' goes to the digest."""

    version = "two-tier"
    threshold = 0.5
    digest_threshold = 0.2

    def score(self, documents):
        return np.array([0.9 if "sure" in d.subject else 0.3 if "maybe" in d.subject else 0.0 for d in documents])

    def decide(self, scores):
        return np.asarray(scores) >= self.threshold

    def for_digest(self, scores):
        scores = np.asarray(scores)
        return (scores >= self.digest_threshold) & (scores < self.threshold)


def _mail(subject: str, n: int) -> bytes:
    return (f"From: Friend {n} <friend{n}@example.com>\nTo: me@example.com\nSubject: {subject}\n"
            f"Message-ID: <m{n}@example.com>\nDate: Sun, 29 Nov 2026 10:00:00 +0000\n\nCan we meet?\n").encode()


@pytest.mark.parametrize("channel", ["console", "twilio"])
def test_pass_texts_the_sure_and_digests_the_unsure_once_a_day(tmp_path, channel, twilio_server):
    clock = FakeClock(datetime(2026, 11, 29, 17, 0, tzinfo=timezone.utc))
    notify = dict(digest_time="18:00", timezone="UTC", to=TEST_TO)
    if channel == "twilio":
        from tests.fixtures_twilio import notify_settings_for

        settings = notify_settings_for(twilio_server, notify=notify)
        settings = settings.model_copy(update={"data_dir": tmp_path})
        notifier = None
    else:
        settings = Settings(data_dir=tmp_path, notify=NotifySettings(channel="console", **notify))
        notifier = ConsoleNotifier(io.StringIO())
    app = Jeeves(settings, notifier=notifier)
    app._model, app._model_stamp = _TwoTierModel(), app._model_stamp_now()
    pks = _store_messages(app.store, [_mail("lunch (sure)", 1), _mail("lunch (maybe)", 2), _mail("report", 3),
                                      _mail("coffee (maybe)", 4)])
    app.classify()
    sender = app.outbox_sender()
    sender._clock = clock

    def texts() -> list[str]:
        if channel == "twilio":
            return twilio_server.bodies()
        return notifier._stream.getvalue().splitlines()

    assert app.queue_digest(clock()) is None  # 17:00: not yet
    sender.run_once()
    assert len(texts()) == 1 and f"#{pks[0]}" in texts()[0]

    clock.advance(hours=1)
    assert app.queue_digest(clock()) is not None
    assert app.queue_digest(clock()) is None  # at most one a day
    sender.run_once()
    sent = texts()
    assert len(sent) == 2
    digest = sent[1]
    assert DIGEST_HEAD in digest and f"#{pks[1]} " in digest and f"#{pks[3]} " in digest
    assert f"#{pks[2]} " not in digest and f"#{pks[0]} " not in digest
    sender.run_once()
    assert len(texts()) == 2
    # Its entries are labelled like alerts: the id in the digest is the message id.
    assert app.label(str(pks[1]), 1) == pks[1]
