"""What the review page reads: recent alerts with the user's verdicts, and texts per local day.

On both SQLite and PostgreSQL (``jeeves.storage.outbox.alerts``), through the library API.
"""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta, timezone

from jeeves.config import NotifySettings, Settings
from jeeves.notify import ConsoleNotifier
from jeeves.notify.outbox import OutboxSender, SenderSettings
from jeeves.service import Jeeves
from jeeves.storage import Store
from tests.fixtures_twilio import FakeClock, outbox_rows, seed_positives

#: 03:00 UTC is still the previous evening in Chicago: days must be the user's, not UTC's.
NOW = datetime(2026, 3, 12, 3, 0, tzinfo=timezone.utc)


def _send_all(store: Store, settings: Settings, clock: FakeClock) -> None:
    OutboxSender(store, SenderSettings.from_settings(settings), ConsoleNotifier(io.StringIO()), worker_id="w1", clock=clock).run_once()


def test_alerts_per_local_day_and_their_verdicts(db_url, corpus_raw_messages):
    store = Store(db_url)
    settings = Settings(notify=NotifySettings(channel="console", timezone="America/Chicago", max_per_hour=0,
                                              thread_window_hours=0, digest_time=None))
    app = Jeeves(settings, store=store)
    clock = FakeClock(NOW - timedelta(days=1))
    seed_positives(store, corpus_raw_messages, 2)
    _send_all(store, settings, clock)  # two texts on 10 March, Chicago time
    clock.now = NOW
    seed_positives(store, corpus_raw_messages[50:], 3)
    _send_all(store, settings, clock)  # three on 11 March, Chicago time (12 March in UTC)
    rows = outbox_rows(store)
    assert [r.status for r in rows] == ["sent"] * 5
    older, newer = [r.message_pk for r in rows[:2]], [r.message_pk for r in rows[2:]]

    app.label(str(older[0]), 0, source="web")
    app.label(str(newer[0]), 1, source="cli")
    app.label(str(newer[0]), 0, source="web")  # relabelled: the newest verdict wins
    app.label(str(newer[1]), 1, source="web")
    store.add_label(newer[2], 0, "corpus")  # not the user's verdict: not counted

    days = app.alerts_per_day(days=3, now=NOW)
    assert [d.day for d in days] == [date(2026, 3, 9), date(2026, 3, 10), date(2026, 3, 11)]
    assert [(d.sent, d.judged, d.wrong) for d in days] == [(0, 0, 0), (2, 1, 1), (3, 2, 1)]
    assert [d.share_wrong for d in days] == [None, 0.5, 1 / 3]

    alerts = app.recent_alerts(limit=4)
    assert [a.message_pk for a in alerts] == list(reversed(newer)) + [older[1]]
    verdicts = {a.message_pk: (a.verdict, a.verdict_source) for a in alerts}
    assert verdicts == {newer[2]: (None, None), newer[1]: (1, "web"), newer[0]: (0, "web"), older[1]: (None, None)}
    assert all(a.status == "sent" and a.score == 0.9 and a.sent_at is not None for a in alerts)
    store.close()
