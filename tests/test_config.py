"""Configuration: file + environment, secrets resolved once, one clear error per bad setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from jeeves.config import load_settings
from jeeves.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "jeeves.toml"
    path.write_text(text)
    return path


def test_example_config_documents_a_loadable_configuration():
    settings = load_settings(REPO / "config/jeeves.example.toml", environ={"JEEVES_WORK_PASSWORD": "s3cret"})
    account = settings.accounts[0]
    assert account.password.get_secret_value() == "s3cret"
    assert account.effective_port == 993
    assert "s3cret" not in repr(settings)


def test_environment_overrides_the_file(tmp_path):
    path = _write(tmp_path, '[database]\nurl = "sqlite:///from-file.db"\n[notify]\ndry_run = false\n')
    settings = load_settings(path, environ={"JEEVES_DATABASE__URL": "sqlite:///from-env.db", "JEEVES_NOTIFY__DRY_RUN": "true"})
    assert settings.database_url == "sqlite:///from-env.db"
    assert settings.notify.dry_run is True


def test_default_database_is_sqlite_in_the_data_dir(tmp_path):
    settings = load_settings(_write(tmp_path, f'data_dir = "{tmp_path}/d"\n'), environ={})
    assert settings.database_url == f"sqlite:///{tmp_path}/d/jeeves.db"


def test_relative_paths_are_relative_to_the_config_file(tmp_path):
    settings = load_settings(_write(tmp_path, '[[mailboxes]]\npath = "mail/box.mbox"\n'), environ={})
    assert settings.mailboxes[0].path == tmp_path / "mail/box.mbox"


@pytest.mark.parametrize(
    "text, names",
    [
        ("[notify]\nquiet_hours = \"late\"\n", "notify.quiet_hours"),
        ("[notfy]\nto = \"+1\"\n", "notfy"),
        ("[[accounts]]\nname = \"a\"\nhost = \"imap.example.com\"\nusername = \"u\"\npassword = \"p\"\ntls = \"none\"\n", "insecure"),
        ("[[accounts]]\nname = \"a\"\nhost = \"h\"\nusername = \"u\"\npassword = \"p\"\nfirst_sync = \"yesterday\"\n", "first_sync"),
        ("[model]\ntarget_recall = 1.5\n", "model.target_recall"),
        ("[notify]\nto = \"555-1234\"\n", "notify.to"),
        ("[notify]\nto = \"call me maybe\"\n", "notify.to"),
        ("[notify]\nto = \"+0123456789\"\n", "notify.to"),
        ("[notify]\ntimezone = \"London\"\n", "notify.timezone"),
        ("[notify]\nmax_per_hour = -1\n", "notify.max_per_hour"),
        ("[database]\nconnect_retry_seconds = -5\n", "database.connect_retry_seconds"),
    ],
)
def test_bad_setting_gets_one_error_naming_it(tmp_path, text, names):
    with pytest.raises(ConfigError) as info:
        load_settings(_write(tmp_path, text), environ={})
    assert names in str(info.value)


def test_bad_values_are_one_line_each_without_pydantic_noise(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_settings(_write(tmp_path, '[notify]\nto = "555-1234"\n'), environ={})
    message = str(info.value)
    assert "\n" not in message and "Value error" not in message and "E.164" in message
    with pytest.raises(ConfigError) as info:
        load_settings(_write(tmp_path, '[notify]\nto = "call me maybe"\ntimezone = "London"\n'), environ={})
    lines = str(info.value).splitlines()
    assert len(lines) == 3 and lines[1].strip().startswith("notify.to:") and lines[2].strip().startswith("notify.timezone:")
    assert "Europe/London" in lines[2]


def test_phone_numbers_and_time_zones_that_are_valid_pass(tmp_path):
    settings = load_settings(_write(tmp_path, '[notify]\nto = "+44 (20) 7946-0958"\ntimezone = "Europe/London"\n'), environ={})
    assert settings.notify.to == "+442079460958"  # as Twilio wants it
    assert settings.notify.timezone == "Europe/London"


def test_zero_turns_off_the_hourly_cap_and_the_thread_window(tmp_path):
    from datetime import datetime, timedelta, timezone

    from jeeves.notify.policy import Candidate, History, Policy, decide

    settings = load_settings(_write(tmp_path, "[notify]\nmax_per_hour = 0\nthread_window_hours = 0\n"), environ={})
    policy = Policy.from_settings(settings.notify)
    now = datetime(2026, 11, 10, 12, tzinfo=timezone.utc)
    busy = History(last_in_thread=now - timedelta(minutes=1), last_hour=tuple(now - timedelta(seconds=i) for i in range(1, 500)))
    assert decide(policy, Candidate("alice@example.com", "thread-1"), busy, now).action == "send"


def test_missing_password_names_the_variable_to_set(tmp_path):
    path = _write(tmp_path, '[[accounts]]\nname = "home"\nhost = "h"\nusername = "u"\n')
    with pytest.raises(ConfigError, match="JEEVES_HOME_PASSWORD"):
        load_settings(path, environ={})


def test_the_password_variable_named_in_the_error_is_the_one_read(tmp_path):
    path = _write(tmp_path, '[[accounts]]\nname = "my-work.mail"\nhost = "h"\nusername = "u"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    named = str(info.value).rpartition("$")[2]
    assert named == "JEEVES_MY_WORK_MAIL_PASSWORD"
    settings = load_settings(path, environ={named: "s3cret"})
    assert settings.accounts[0].password.get_secret_value() == "s3cret"


def test_twilio_credentials_from_twilio_variables(tmp_path):
    path = _write(tmp_path, '[notify]\nto = "+15550001111"\n[twilio]\nfrom_number = "+15550002222"\n')
    settings = load_settings(path, environ={"TWILIO_ACCOUNT_SID": "AC123", "TWILIO_AUTH_TOKEN": "zq9-secret-token"})
    assert settings.twilio.configured
    assert "zq9-secret-token" not in repr(settings.twilio)


def test_not_toml_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(_write(tmp_path, "this is = = not toml"), environ={})


def test_the_process_environment_beats_the_file_which_beats_the_defaults(tmp_path, monkeypatch):
    path = _write(tmp_path, "[notify]\nmax_per_hour = 3\nthread_window_hours = 2\n")
    monkeypatch.setenv("JEEVES_NOTIFY__MAX_PER_HOUR", "7")
    settings = load_settings(path)
    assert (settings.notify.max_per_hour, settings.notify.thread_window_hours, settings.notify.max_attempts) == (7, 2.0, 6)
    # Given a mapping, the process environment is neither read nor changed.
    assert load_settings(path, environ={}).notify.max_per_hour == 3
    import os

    assert os.environ["JEEVES_NOTIFY__MAX_PER_HOUR"] == "7"


def test_a_config_path_that_is_a_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not a file"):
        load_settings(tmp_path, environ={})


@pytest.mark.parametrize("host, allowed", [
    ("localhost", True), ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True),
    ("127.0.0.1.example.com", False),  # a host name that merely starts with 127. can be anywhere
    ("imap.example.com", False), ("10.0.0.1", False),
])
def test_plaintext_imap_is_allowed_only_to_this_machine_without_insecure(tmp_path, host, allowed):
    path = _write(tmp_path, f'[[accounts]]\nname = "a"\nhost = "{host}"\nusername = "u"\npassword = "p"\ntls = "none"\n')
    if allowed:
        assert load_settings(path, environ={}).accounts[0].tls == "none"
    else:
        with pytest.raises(ConfigError, match="insecure"):
            load_settings(path, environ={})
