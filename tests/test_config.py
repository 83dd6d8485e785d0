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
    ],
)
def test_bad_setting_gets_one_error_naming_it(tmp_path, text, names):
    with pytest.raises(ConfigError) as info:
        load_settings(_write(tmp_path, text), environ={})
    assert names in str(info.value)


def test_missing_password_names_the_variable_to_set(tmp_path):
    path = _write(tmp_path, '[[accounts]]\nname = "home"\nhost = "h"\nusername = "u"\n')
    with pytest.raises(ConfigError, match="JEEVES_HOME_PASSWORD"):
        load_settings(path, environ={})


def test_twilio_credentials_from_twilio_variables(tmp_path):
    path = _write(tmp_path, '[notify]\nto = "+15550001111"\n[twilio]\nfrom_number = "+15550002222"\n')
    settings = load_settings(path, environ={"TWILIO_ACCOUNT_SID": "AC123", "TWILIO_AUTH_TOKEN": "zq9-secret-token"})
    assert settings.twilio.configured
    assert "zq9-secret-token" not in repr(settings.twilio)


def test_not_toml_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(_write(tmp_path, "this is = = not toml"), environ={})
