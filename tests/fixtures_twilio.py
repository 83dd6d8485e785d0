"""The local Twilio API (``tests.fake_twilio``) as fixtures: one server per session, reset per test."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import SecretStr
from sqlalchemy import select, update

from jeeves.config import NotifySettings, Settings, TwilioSettings
from jeeves.parsing import parse_email
from jeeves.storage import NewMessage, PredictionInput
from jeeves.storage.schema import OutboxEntry, StoredMessage
from tests.fake_twilio import FakeTwilio

TEST_TO = "+15005550006"
TEST_FROM = "+15005550001"


@pytest.fixture(scope="session")
def _twilio_session_server():
    server = FakeTwilio().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def twilio_server(_twilio_session_server: FakeTwilio) -> FakeTwilio:
    """The fake Twilio API, with no messages, no queued failures and no latency."""
    _twilio_session_server.reset()
    yield _twilio_session_server
    _twilio_session_server.reset()


def twilio_settings(server: FakeTwilio, *, timeout: float = 2.0, **overrides) -> TwilioSettings:
    """Twilio settings pointing the real client at ``server``."""
    values = dict(
        account_sid=server.account_sid,
        auth_token=SecretStr(server.auth_token),
        from_number=TEST_FROM,
        base_url=server.url,
        timeout=timeout,
    )
    values.update(overrides)
    return TwilioSettings(**values)


def notify_settings_for(server: FakeTwilio, *, timeout: float = 2.0, notify: dict | None = None, **twilio_overrides) -> Settings:
    """Whole ``Settings`` texting ``TEST_TO`` through ``server`` (notify options as a dict)."""
    notify_values = {"channel": "twilio", "to": TEST_TO, **(notify or {})}
    return Settings(
        notify=NotifySettings(**notify_values),
        twilio=twilio_settings(server, timeout=timeout, **twilio_overrides),
    )


@pytest.fixture
def twilio_settings_factory(twilio_server):
    """``factory(notify={...}, timeout=...)`` → ``Settings`` aimed at the fake server."""

    def factory(**kwargs) -> Settings:
        return notify_settings_for(twilio_server, **kwargs)

    return factory


class FakeClock:
    """A settable UTC clock for the outbox and the fake server: tests move time, not sleep."""

    def __init__(self, start=None) -> None:
        self.now = start or datetime.now(timezone.utc).replace(microsecond=0)

    def __call__(self):
        return self.now

    def advance(self, **delta) -> None:
        self.now = self.now + timedelta(**delta)


def seed_positives(store, raws, count: int, *, distinct_threads: bool = True, model: str = "test-model") -> list[int]:
    """Store corpus messages and record positive predictions: ``count`` pending outbox rows.

    Corpus messages share subjects ("Re: meeting"), hence thread keys; unless a test is about
    threads, each row gets its own thread so the thread window does not interfere.
    """
    created: list[int] = []
    start = 0
    while len(created) < count:
        batch = raws[start:start + (count - len(created))]
        if not batch:
            raise ValueError("not enough corpus messages")
        start += len(batch)
        refs = store.store_batch([NewMessage(raw, parse_email(raw)) for raw in batch])
        created += store.record_predictions(model, [PredictionInput(r.pk, 0.9, 0.5, True) for r in refs if r.new])
    if distinct_threads:
        with store.session() as s:
            for outbox_id in created:
                s.execute(update(OutboxEntry).where(OutboxEntry.id == outbox_id).values(conversation_key=f"thread-{outbox_id}"))
            pks = [pk for (pk,) in s.execute(
                select(OutboxEntry.message_pk).where(OutboxEntry.id.in_(created)))]
            for pk in pks:
                s.execute(update(StoredMessage).where(StoredMessage.id == pk).values(thread_key=f"msg-{pk}"))
    return created


def outbox_rows(store):
    """All outbox rows, oldest first (detached objects; attributes readable after the session)."""
    with store.session() as s:
        return list(s.scalars(select(OutboxEntry).order_by(OutboxEntry.id)))
