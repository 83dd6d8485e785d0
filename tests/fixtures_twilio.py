"""The local Twilio API (``tests.fake_twilio``) as fixtures: one server per session, reset per test."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from jeeves.config import NotifySettings, Settings, TwilioSettings
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
