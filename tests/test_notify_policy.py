"""The user's rules, as pure functions with an injected "now"."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

from jeeves.config import NotifySettings
from jeeves.notify.policy import Candidate, History, Policy, decide, quiet_until, sender_matches

UTC = timezone.utc
ALICE = Candidate("alice@example.com", "thread-1")


def at(hour: int, minute: int = 0, day: int = 10) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def test_quiet_hours_wrapping_midnight_hold_until_the_window_ends():
    window = (time(22, 0), time(7, 0))
    assert quiet_until(at(23, 30), window, "UTC") == at(7, 0, day=11)
    assert quiet_until(at(3, 0), window, "UTC") == at(7, 0)
    assert quiet_until(at(7, 0), window, "UTC") is None
    assert quiet_until(at(12, 0), window, "UTC") is None


def test_quiet_hours_are_in_the_users_timezone_across_dst():
    # New York springs forward on 2026-03-08: 07:00 local is 11:00 UTC that morning.
    window = (time(22, 0), time(7, 0))
    assert quiet_until(datetime(2026, 3, 8, 5, 0, tzinfo=UTC), window, "America/New_York") == datetime(2026, 3, 8, 11, 0, tzinfo=UTC)
    assert quiet_until(datetime(2026, 3, 8, 16, 0, tzinfo=UTC), window, "America/New_York") is None


def test_daytime_window_without_wrap():
    assert quiet_until(at(12, 30), (time(12, 0), time(13, 0)), "UTC") == at(13, 0)


def test_decide_holds_in_quiet_hours_and_sends_after():
    policy = Policy.from_settings(NotifySettings(quiet_hours="22:00-07:00"))
    held = decide(policy, ALICE, History(), at(23, 0))
    assert held.action == "hold" and held.not_before == at(7, 0, day=11)
    assert decide(policy, ALICE, History(), held.not_before).action == "send"


def test_one_text_per_thread_within_the_window():
    policy = Policy(thread_window=timedelta(hours=24))
    recent = History(last_in_thread=at(9, 0))
    assert decide(policy, ALICE, recent, at(20, 0)).action == "suppress"
    assert decide(policy, ALICE, recent, at(9, 1, day=11)).action == "send"
    assert decide(policy, Candidate("alice@example.com", ""), recent, at(20, 0)).action == "send"  # no thread known
    assert decide(Policy(thread_window=timedelta(0)), ALICE, recent, at(20, 0)).action == "send"


def test_hourly_cap_holds_until_the_oldest_text_is_an_hour_old():
    policy = Policy(max_per_hour=3)
    history = History(last_hour=(at(10, 5), at(10, 20), at(10, 40)))
    held = decide(policy, ALICE, history, at(10, 50))
    assert held.action == "hold" and held.not_before == at(11, 5)
    assert decide(policy, ALICE, history, at(11, 6)).action == "send"


def test_deny_and_allow_lists():
    assert sender_matches("a@mail.example.com", ("example.com",))
    assert sender_matches("a@example.com", ("@example.com",))
    assert not sender_matches("a@notexample.com", ("example.com",))
    assert sender_matches("a@example.com", ("a@example.com",))
    deny = Policy(deny_senders=("spam.example",))
    assert decide(deny, Candidate("x@spam.example", ""), History(), at(12)).action == "suppress"
    allow = Policy(allow_senders=("boss@corp.example",))
    assert decide(allow, Candidate("x@corp.example", ""), History(), at(12)).action == "suppress"
    assert decide(allow, Candidate("boss@corp.example", ""), History(), at(12)).action == "send"


def test_the_users_own_mail_is_never_texted_even_from_an_allowed_address():
    """A synced Sent folder (or a copy to oneself) holds the user's own requests to others."""
    policy = Policy(own_addresses=("me@corp.example",), allow_senders=("corp.example",))
    own = decide(policy, Candidate("Me@Corp.example", ""), History(), at(12))
    assert own.action == "suppress" and "own mail" in own.reason
    assert decide(policy, Candidate("boss@corp.example", ""), History(), at(12)).action == "send"


def test_own_addresses_come_from_the_accounts_and_reach_alerts_and_the_digest():
    from jeeves.config import AccountSettings, PlacesSettings, Settings
    from jeeves.notify.digest import allowed
    from jeeves.notify.outbox import SenderSettings
    from jeeves.storage import DigestLine

    settings = Settings(accounts=[AccountSettings(name="work", host="imap.example.com", username="Me@Corp.example")])
    assert SenderSettings.from_settings(settings).policy.own_addresses == ("me@corp.example",)
    mine, theirs = DigestLine(1, "Me", "me@corp.example", "Lunch?"), DigestLine(2, "Bo", "bo@corp.example", "Lunch?")
    assert not allowed(mine, (), (), settings.user_addresses) and allowed(theirs, (), (), settings.user_addresses)
    # places.my_addresses, when given, names them instead of the account usernames.
    named = Settings(places=PlacesSettings(my_addresses=["me@home.example"]))
    assert SenderSettings.from_settings(named).policy.own_addresses == ("me@home.example",)


def test_deny_wins_over_allow_and_refusals_come_before_delays():
    policy = Policy(allow_senders=("corp.example",), deny_senders=("boss@corp.example",), quiet_window=(time(0), time(23, 59)))
    assert decide(policy, Candidate("boss@corp.example", ""), History(), at(12)).action == "suppress"


def test_dry_run_after_every_other_rule():
    policy = Policy(dry_run=True, max_per_hour=1)
    assert decide(policy, ALICE, History(), at(12)).action == "dry_run"
    assert decide(policy, ALICE, History(last_hour=(at(11, 30),)), at(12)).action == "hold"
