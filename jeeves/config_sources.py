"""Where settings come from: the config file and the environment, read as pydantic-settings
sources, and the secrets the settings name.

``jeeves.config.load_settings`` opens a load (``loading``) naming the config file and,
optionally, an environment mapping to read instead of the process environment, which is never
changed; ``Settings.settings_customise_sources`` asks ``sources_for`` which sources that load
reads. The secrets the settings name (account passwords, OAuth2 token variables, Twilio's own
variables) are resolved from the same environment once, by ``resolve_secrets``;
``oauth_token`` fetches a fresh token whenever an IMAP session needs one.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tomllib
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from pydantic import SecretStr
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, TomlConfigSettingsSource

from jeeves.errors import ConfigError

if TYPE_CHECKING:
    from jeeves.config import AccountSettings, Settings


@dataclass(frozen=True)
class _Load:
    """What one ``load_settings`` call reads: the config file (if any) and the environment to
    use (None: the process environment)."""

    config_file: Path | None
    environ: Mapping[str, str] | None


#: The load in progress, for ``sources_for`` (a context variable: each thread and task sees
#: only its own).
_CURRENT: ContextVar[_Load | None] = ContextVar("jeeves_settings_load", default=None)


@contextmanager
def loading(config_file: Path | None, environ: Mapping[str, str] | None) -> Iterator[None]:
    """Within the block, ``Settings()`` reads ``config_file`` and ``environ`` (None: the
    process environment) besides its defaults."""
    token = _CURRENT.set(_Load(config_file, environ))
    try:
        yield
    finally:
        _CURRENT.reset(token)


def sources_for(
    settings_cls: type[BaseSettings], env_settings: PydanticBaseSettingsSource, init_settings: PydanticBaseSettingsSource
) -> tuple[PydanticBaseSettingsSource, ...]:
    """The sources a ``Settings()`` reads, highest priority first: the environment, values
    passed to ``Settings(...)`` directly (tests, benches), the config file of the load in
    progress, then (implicitly) the defaults."""
    load = _CURRENT.get()
    if load is None:
        return (env_settings, init_settings)
    if load.environ is not None:
        env_settings = _MappingEnvSource(settings_cls, load.environ)
    if load.config_file is None:
        return (env_settings, init_settings)
    return (env_settings, init_settings, _ConfigFileSource(settings_cls, toml_file=load.config_file))


class _ConfigFileSource(TomlConfigSettingsSource):
    """The TOML file, read by pydantic-settings, with two additions: a file that cannot be read
    or parsed is a ``ConfigError``, and relative paths in it are relative to the file."""

    def _read_file(self, file_path: Path) -> dict[str, Any]:
        try:
            data = super()._read_file(file_path)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file_path} is not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"cannot read configuration file {file_path}: {exc.strerror or exc}") from None
        _resolve_relative_paths(data, Path(file_path).parent)
        return data


class _MappingEnvSource(EnvSettingsSource):
    """The ``JEEVES_*`` variables of a given mapping instead of the process environment."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = dict(environ)
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {(name if self.case_sensitive else name.lower()): value for name, value in self._environ.items()}


def _resolve_relative_paths(data: dict[str, Any], base: Path) -> None:
    """Paths in a config file are relative to the file, as a user reading it would expect."""

    def fix(value: Any) -> Any:
        if isinstance(value, str) and value and not value.startswith(("/", "~")) and "://" not in value:
            return str(base / value)
        return value

    for box in data.get("mailboxes", []) or []:
        if isinstance(box, dict) and "path" in box:
            box["path"] = fix(box["path"])
    for section, key in (("model", "dir"), ("model", "path")):
        sec = data.get(section)
        if isinstance(sec, dict) and sec.get(key):
            sec[key] = fix(sec[key])
    if isinstance(data.get("data_dir"), str):
        data["data_dir"] = fix(data["data_dir"])
    for account in data.get("accounts", []) or []:
        if isinstance(account, dict) and account.get("ca_file"):
            account["ca_file"] = fix(account["ca_file"])


def resolve_secrets(settings: Settings, env: Mapping[str, str]) -> None:
    """Fill in the secrets the settings name from ``env``, or raise the ``ConfigError`` saying
    which one is missing and where to put it."""
    for account in settings.accounts:
        if account.password is None and env.get(account.password_variable):
            account.password = SecretStr(env[account.password_variable])
        if account.auth == "password" and account.password is None:
            raise ConfigError(
                f"accounts.{account.name}.password is not set: put it in the config file or in ${account.password_variable}"
            )
        if account.auth != "password" and not (account.oauth_token_command or (account.oauth_token_env and env.get(account.oauth_token_env))):
            raise ConfigError(
                f"accounts.{account.name}: auth = {account.auth!r} needs oauth_token_command or oauth_token_env naming a set variable"
            )
    twilio = settings.twilio
    if not twilio.account_sid and env.get("TWILIO_ACCOUNT_SID"):
        twilio.account_sid = env["TWILIO_ACCOUNT_SID"]
    if twilio.auth_token is None and env.get("TWILIO_AUTH_TOKEN"):
        twilio.auth_token = SecretStr(env["TWILIO_AUTH_TOKEN"])
    if settings.notify.channel == "twilio" and not twilio.configured:
        raise ConfigError("notify.channel = 'twilio' needs twilio.account_sid, twilio.auth_token and twilio.from_number")
    if settings.notify.channel != "console" and twilio.configured and not settings.notify.to:
        raise ConfigError("notify.to (the phone number that receives alerts) is not set")


def oauth_token(account: AccountSettings, environ: Mapping[str, str] | None = None) -> str:
    """A fresh OAuth2 access token for ``account``: from its command (run every time) or env var."""
    env = os.environ if environ is None else environ
    if account.oauth_token_command:
        try:
            result = subprocess.run(
                shlex.split(account.oauth_token_command), capture_output=True, text=True, timeout=60, check=True
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise ConfigError(f"accounts.{account.name}.oauth_token_command failed: {exc}") from None
        token = result.stdout.strip()
    else:
        token = env.get(account.oauth_token_env or "", "").strip()
    if not token:
        raise ConfigError(f"accounts.{account.name}: the OAuth2 token source gave an empty token")
    return token
