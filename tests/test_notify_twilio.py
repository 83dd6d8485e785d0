"""The Twilio channel against the local Twilio API: the real client, never patched."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import SecretStr
from twilio.rest import Client

from jeeves.config import TwilioSettings
from jeeves.errors import AmbiguousSendError, PermanentSendError, TransientSendError
from jeeves.notify import ConsoleNotifier, make_notifier
from jeeves.notify.twilio import TwilioNotifier
from tests.fixtures_postgres import free_port
from tests.fixtures_twilio import TEST_FROM, TEST_TO, twilio_settings


def now() -> datetime:
    return datetime.now(timezone.utc)


def test_send_posts_the_message_with_basic_auth_and_returns_the_sid(twilio_server):
    result = TwilioNotifier(twilio_settings(twilio_server)).send(TEST_TO, "hello #1")
    [sms] = twilio_server.messages
    assert result.provider_id == sms.sid and sms.sid.startswith("SM")
    assert (sms.to, sms.from_, sms.body) == (TEST_TO, TEST_FROM, "hello #1")


def test_base_url_wins_over_twilio_region_in_the_environment(twilio_server, monkeypatch):
    monkeypatch.setenv("TWILIO_REGION", "ie1")
    monkeypatch.setenv("TWILIO_EDGE", "dublin")
    TwilioNotifier(twilio_settings(twilio_server)).send(TEST_TO, "regional")
    assert len(twilio_server.messages) == 1


def test_messaging_service_sid_is_used_when_set(twilio_server):
    settings = twilio_settings(twilio_server, from_number=None, messaging_service_sid="MG" + "0" * 32)
    TwilioNotifier(settings).send(TEST_TO, "via service")
    assert twilio_server.messages[0].messaging_service_sid == "MG" + "0" * 32


def test_wrong_token_is_a_permanent_authentication_error(twilio_server):
    notifier = TwilioNotifier(twilio_settings(twilio_server, auth_token=SecretStr("wrong")))
    with pytest.raises(PermanentSendError) as info:
        notifier.send(TEST_TO, "x")
    assert info.value.code == "20003"


@pytest.mark.parametrize("status, code, error", [
    (400, 21211, PermanentSendError),
    (400, 21408, PermanentSendError),
    (400, 21610, PermanentSendError),
    (400, 21614, PermanentSendError),
    (429, 20429, TransientSendError),
    (500, None, AmbiguousSendError),
    (503, None, AmbiguousSendError),
])
def test_error_answers_are_classified(twilio_server, status, code, error):
    twilio_server.fail_next(status, code)
    with pytest.raises(error) as info:
        TwilioNotifier(twilio_settings(twilio_server)).send(TEST_TO, "x")
    if code:
        assert info.value.code == str(code)
    assert twilio_server.messages == []


def test_invalid_number_is_refused_by_the_server_itself(twilio_server):
    with pytest.raises(PermanentSendError) as info:
        TwilioNotifier(twilio_settings(twilio_server)).send("+1500", "x")
    assert info.value.code == "21211"


def test_read_timeout_is_ambiguous_and_the_message_can_be_found(twilio_server):
    notifier = TwilioNotifier(twilio_settings(twilio_server, timeout=0.3))
    twilio_server.fail_next(201, delay=0.6, succeed_after_delay=True)
    started = now()
    with pytest.raises(AmbiguousSendError):
        notifier.send(TEST_TO, "slow #7")
    found = notifier.find_sent(TEST_TO, started, "slow #7")
    assert found is not None and found.provider_id == twilio_server.messages[0].sid


def test_connection_refused_is_transient():
    from jeeves.config import TwilioSettings

    settings = TwilioSettings(account_sid="AC" + "1" * 32, auth_token=SecretStr("t"), from_number=TEST_FROM,
                              base_url=f"http://127.0.0.1:{free_port()}", timeout=1)
    with pytest.raises(TransientSendError):
        TwilioNotifier(settings).send(TEST_TO, "x")


def test_find_sent_sees_queued_messages_and_matches_the_body(twilio_server):
    twilio_server.sent_lag = 3600  # still queued: date_sent is empty, DateSent> cannot see it
    notifier = TwilioNotifier(twilio_settings(twilio_server))
    started = now()
    notifier.send(TEST_TO, "queued #1")
    assert notifier.find_sent(TEST_TO, started, "queued #1") is not None
    assert notifier.find_sent(TEST_TO, started, "queued #2") is None
    assert notifier.find_sent("+15005550009", started, "queued #1") is None


def test_find_sent_reaches_past_the_newest_page_through_the_date_filter(twilio_server):
    notifier = TwilioNotifier(twilio_settings(twilio_server))
    started = now()
    for i in range(60):
        notifier.send(TEST_TO, f"bulk #{i}")
    assert notifier.find_sent(TEST_TO, started, "bulk #0") is not None


def test_list_paging_envelope_works_with_the_real_client(twilio_server):
    notifier = TwilioNotifier(twilio_settings(twilio_server))
    for i in range(25):
        notifier.send(TEST_TO, f"page #{i}")
    client = Client(twilio_server.account_sid, twilio_server.auth_token)
    client.api.base_url = twilio_server.url
    listed = client.messages.list(to=TEST_TO, date_sent_after=now() - timedelta(minutes=1), page_size=10)
    assert sorted(m.body for m in listed) == sorted(f"page #{i}" for i in range(25))
    assert twilio_server.count("GET") == 3
    assert isinstance(listed[0].date_created, datetime)


def test_secrets_stay_out_of_reprs_and_logs(twilio_server, caplog):
    settings = twilio_settings(twilio_server)
    notifier = TwilioNotifier(settings)
    with caplog.at_level(logging.DEBUG):
        notifier.send(TEST_TO, "secret check")
    assert twilio_server.auth_token not in repr(notifier)
    assert twilio_server.auth_token not in repr(settings)
    assert twilio_server.auth_token not in caplog.text


def test_make_notifier_picks_twilio_when_configured_and_console_otherwise(twilio_server):
    assert isinstance(make_notifier("auto", TwilioSettings()), ConsoleNotifier)
    assert isinstance(make_notifier("auto", twilio_settings(twilio_server)), TwilioNotifier)
    assert isinstance(make_notifier("console", twilio_settings(twilio_server)), ConsoleNotifier)
