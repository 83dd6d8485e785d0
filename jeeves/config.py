"""Typed settings: one object, loaded once, passed down.

Sources, lowest priority first: built-in defaults, the TOML file (``--config PATH`` or
``JEEVES_CONFIG``), then environment variables (``JEEVES_SECTION__KEY``, e.g.
``JEEVES_DATABASE__URL``). Both are pydantic-settings sources (``jeeves.config_sources``);
``load_settings`` may hand them an environment mapping of its own, and the process environment
is then neither read nor changed. Secrets may live in the file or the environment; they are
held as ``SecretStr`` so they never appear in a repr or a log line. This module and its
sources are the only code that reads the environment, so the rest is testable with plain
objects.
"""

from __future__ import annotations

import os
import re
import shlex
from datetime import time
from pathlib import Path
from typing import Literal, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from jeeves import resources
from jeeves.config_sources import loading, resolve_secrets, sources_for
from jeeves.errors import ConfigError

#: The shipped (read-only) models and data, inside the installed package; see jeeves/resources.py.
SHIPPED_MODELS_DIR = resources.shipped_models_dir()
SHIPPED_DATA_DIR = resources.shipped_data_dir()


#: An E.164 phone number: '+', a country code not starting with 0, at most 15 digits in all.
E164 = re.compile(r"\+[1-9]\d{6,14}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class DatabaseSettings(_Section):
    #: SQLAlchemy URL. Empty means an SQLite file in the data directory.
    url: str = ""
    #: Seconds a one-shot command (``run --once``, ``status``, ``label`` …) keeps retrying a
    #: database server it cannot reach before failing; 0 fails at once. The daemon waits for it
    #: as long as it takes.
    connect_retry_seconds: float = Field(30.0, ge=0)


class ModelSettings(_Section):
    #: Directory holding versioned models and ``CURRENT``; trained models are written here.
    #: Default ``<data_dir>/models``, which serves the shipped model until one is promoted there.
    dir: Path | None = None
    #: A specific model file to serve instead of the directory's current one.
    path: Path | None = None
    #: Recall the decision threshold is chosen to reach on cross-validated predictions.
    target_recall: float = Field(0.90, gt=0.0, le=1.0)
    _dir_is_default: bool = PrivateAttr(False)

    @property
    def shipped_fallback(self) -> Path | None:
        """The shipped models, served while the default models directory has none; None when
        ``dir`` was configured (then a missing model there is an error, not a silent fallback)."""
        return resources.shipped_models_dir() if self._dir_is_default else None

    @property
    def serving_dir(self) -> Path:
        """The directory whose ``CURRENT`` is served (the shipped models until one is promoted)."""
        return resources.serving_models_dir(self.dir, fall_back_to_shipped=self._dir_is_default)


class AccountSettings(_Section):
    name: str
    host: str
    port: int | None = None
    tls: Literal["implicit", "starttls", "none"] = "implicit"
    #: Required to use ``tls = "none"`` or to skip certificate checks off loopback.
    insecure: bool = False
    ca_file: Path | None = None
    username: str
    password: SecretStr | None = None
    #: Environment variable holding the password; defaults to JEEVES_<NAME>_PASSWORD, with the
    #: name upper-cased and '-' and '.' written as '_' (account "my-work": JEEVES_MY_WORK_PASSWORD).
    password_env: str | None = None
    auth: Literal["password", "xoauth2", "oauthbearer"] = "password"
    #: Environment variable holding an OAuth2 access token.
    oauth_token_env: str | None = None
    #: Command whose stdout is a fresh OAuth2 access token (run again when the server rejects it).
    oauth_token_command: str | None = None
    folders: list[str] = Field(default_factory=lambda: ["INBOX"])
    idle: bool = True
    poll_interval: float = Field(60.0, gt=0)
    #: What the first sync of a folder fetches: "new" (only what arrives from now on),
    #: "all", "last:N" or "since:YYYY-MM-DD". Mail older than the account is never texted.
    first_sync: str = "new"
    max_message_bytes: int = Field(25 * 1024 * 1024, gt=1024)
    fetch_batch: int = Field(200, ge=1, le=2000)
    connect_timeout: float = 15.0
    read_timeout: float = 60.0
    #: Label sources: a folder or keyword whose messages are positives / negatives.
    positive_folder: str | None = None
    negative_folder: str | None = None
    positive_keyword: str | None = "$JeevesMeeting"
    negative_keyword: str | None = "$JeevesNotMeeting"
    positive_gmail_label: str | None = None
    negative_gmail_label: str | None = None

    @field_validator("name")
    @classmethod
    def _name_is_simple(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", value):
            raise ValueError("use letters, digits, '.', '_' or '-' only")
        return value

    @field_validator("first_sync")
    @classmethod
    def _first_sync_form(cls, value: str) -> str:
        if not re.fullmatch(r"new|all|last:\d+|since:\d{4}-\d{2}-\d{2}", value):
            raise ValueError("expected new, all, last:N or since:YYYY-MM-DD")
        return value

    @model_validator(mode="after")
    def _tls_is_safe(self) -> "AccountSettings":
        if self.tls == "none":
            # One definition of loopback; imported only here, as it loads the IMAP package.
            from jeeves.sources.imap.session import is_loopback_host

            if not (is_loopback_host(self.host) or self.insecure):
                raise ValueError(f"tls = 'none' sends the password in clear to {self.host}; set insecure = true to allow it")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or (993 if self.tls == "implicit" else 143)

    @property
    def password_variable(self) -> str:
        """The environment variable the password is read from."""
        return self.password_env or "JEEVES_" + re.sub(r"[-.]", "_", self.name.upper()) + "_PASSWORD"


class MailboxSettings(_Section):
    """A local mbox file or maildir directory read as a mail source."""

    path: Path
    #: Whether positives found in this file are texted (the demo does; archive imports do not).
    notify: bool = True


class NotifySettings(_Section):
    #: "auto" picks Twilio when its credentials are set and the console otherwise.
    channel: Literal["auto", "console", "twilio"] = "auto"
    #: Phone number that receives the alerts, in E.164 form ("+15551234567"); spaces, dots,
    #: dashes and parentheses are dropped ("+1 (555) 123-4567" is the same number).
    to: str | None = None
    dry_run: bool = False
    #: Local-time window when texts are held, e.g. "22:00-07:00"; empty disables it.
    quiet_hours: str | None = None
    #: IANA time zone of quiet_hours, e.g. "Europe/London".
    timezone: str = "UTC"
    #: At most one text per conversation thread within this many hours; 0 disables the rule.
    thread_window_hours: float = Field(24.0, ge=0)
    #: At most this many texts in any hour (the rest wait, never dropped); 0 disables the cap.
    max_per_hour: int = Field(10, ge=0)
    allow_senders: list[str] = Field(default_factory=list)
    deny_senders: list[str] = Field(default_factory=list)
    #: Attempts for transient failures (429, 5xx, connection errors) before a row is failed.
    max_attempts: int = Field(6, ge=1)
    #: How sure a message must be for a text: "fewer-texts", "balanced" or "fewer-misses". Each is
    #: a threshold the model card chose for an ordinary inbox, with its estimated effect
    #: (``jeeves evaluate`` and config/jeeves.example.toml show the figures).
    trade_off: Literal["fewer-texts", "balanced", "fewer-misses"] = "balanced"
    #: Local time (in ``timezone``) of the daily digest listing the messages Jeeves was unsure
    #: about, at most one text a day; empty disables the digest (unsure mail is then not texted).
    digest_time: str | None = "18:00"
    #: Seconds between reads of the replies to Jeeves's texts ("0" = that alert was wrong), when
    #: Twilio is the channel; 0 turns polling off (``jeeves replies`` still reads them once).
    reply_poll_seconds: float = Field(60.0, ge=0)

    @field_validator("digest_time")
    @classmethod
    def _digest_time_form(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        match = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip())
        if not match:
            raise ValueError("expected HH:MM, e.g. 18:00 (or empty to disable the digest)")
        time(int(match.group(1)), int(match.group(2)))  # raises ValueError on 25:00
        return value.strip()

    @property
    def digest_at(self) -> time | None:
        return time.fromisoformat(self.digest_time.zfill(5)) if self.digest_time else None

    @field_validator("to")
    @classmethod
    def _to_is_e164(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        number = re.sub(r"[\s().-]", "", value)
        if not E164.fullmatch(number):
            raise ValueError(f"{value!r} is not a phone number in E.164 form: '+', country code, number, e.g. +15551234567")
        return number

    @field_validator("timezone")
    @classmethod
    def _timezone_is_known(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Europe/London or America/New_York") from None
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours_form(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        match = re.fullmatch(r"(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})", value.strip())
        if not match:
            raise ValueError("expected HH:MM-HH:MM, e.g. 22:00-07:00")
        h1, m1, h2, m2 = map(int, match.groups())
        time(h1, m1), time(h2, m2)  # raises ValueError on 25:00
        return value.strip()

    @property
    def quiet_window(self) -> tuple[time, time] | None:
        if not self.quiet_hours:
            return None
        start, end = self.quiet_hours.split("-")
        return time.fromisoformat(start.zfill(5)), time.fromisoformat(end.zfill(5))


class TwilioSettings(_Section):
    account_sid: str | None = None
    auth_token: SecretStr | None = None
    #: Sender: a Twilio phone number, or a Messaging Service SID.
    from_number: str | None = None
    messaging_service_sid: str | None = None
    #: Override of https://api.twilio.com, for tests and regional edges.
    base_url: str | None = None
    timeout: float = Field(10.0, gt=0)

    @property
    def configured(self) -> bool:
        return bool(self.account_sid and self.auth_token and (self.from_number or self.messaging_service_sid))


class DaemonSettings(_Section):
    outbox_interval: float = Field(5.0, gt=0)
    mailbox_interval: float = Field(60.0, gt=0)
    #: Hours between scheduled retrains; 0 disables them.
    retrain_interval_hours: float = Field(24.0, ge=0)
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"
    #: Stable name of this daemon instance, unique among those sharing a database. With one, a
    #: restarted daemon reconciles its own interrupted sends at once; without, it waits until
    #: they are stale (about a minute). Default: host:pid.
    worker_id: str | None = None


class PlacesSettings(_Section):
    #: Whether alerts suggest a place (where you met the sender before, then your favourites).
    suggest: bool = True
    #: Places you like to meet at, suggested after those you met the sender at before, e.g.
    #: ["Ninfa's", "EB 32C2"]. At most two places are suggested in all.
    favourites: list[str] = Field(default_factory=list)
    #: Your own addresses, so that mail you sent (a synced Sent folder) counts as mail with the
    #: person you sent it to. Default: the accounts' usernames that are addresses.
    my_addresses: list[str] = Field(default_factory=list)


class Settings(BaseSettings):
    """Everything Jeeves can be told. ``load_settings`` builds it; tests may construct it directly."""

    model_config = SettingsConfigDict(
        env_prefix="JEEVES_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    data_dir: Path = Field(default_factory=resources.default_data_dir)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    accounts: list[AccountSettings] = Field(default_factory=list)
    mailboxes: list[MailboxSettings] = Field(default_factory=list)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    twilio: TwilioSettings = Field(default_factory=TwilioSettings)
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    places: PlacesSettings = Field(default_factory=PlacesSettings)
    #: The file these settings were read from (None: defaults and environment only), and
    #: whether it was named by $JEEVES_CONFIG, so that hints can spell a command that works.
    _config_file: Path | None = PrivateAttr(default=None)
    _config_from_env: bool = PrivateAttr(default=False)

    @property
    def cli_command(self) -> str:
        """How to run ``jeeves`` against these same settings from a shell: with ``--config``
        when they came from a file named on the command line, plain ``jeeves`` otherwise."""
        if self._config_file is None or self._config_from_env:
            return "jeeves"
        return f"jeeves -c {shlex.quote(str(self._config_file))}"

    @property
    def config_origin(self) -> str:
        """Where the settings came from, for error messages."""
        if self._config_file is None:
            return "no config file (defaults and environment; give --config or set JEEVES_CONFIG)"
        return f"config {self._config_file}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment over Settings(...) arguments over the config file over defaults.
        return sources_for(settings_cls, env_settings, init_settings)

    @property
    def user_addresses(self) -> list[str]:
        """The user's own addresses: ``places.my_addresses``, else the accounts' usernames."""
        given = self.places.my_addresses or [a.username for a in self.accounts]
        return sorted({a.strip().lower() for a in given if "@" in a})

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.data_dir / 'jeeves.db'}"

    @model_validator(mode="after")
    def _models_dir_in_data_dir(self) -> "Settings":
        if self.model.dir is None:
            self.model.dir = resources.default_models_dir(self.data_dir)
            self.model._dir_is_default = True
        return self

    @model_validator(mode="after")
    def _unique_account_names(self) -> "Settings":
        names = [a.name for a in self.accounts]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"account names must be unique; repeated: {', '.join(dupes)}")
        return self


def _format_validation_error(error: ValidationError, origin: str) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"]
        if item["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown setting (check the spelling against config/jeeves.example.toml)"
        lines.append(f"{where}: {message}")
    if len(lines) == 1:
        return f"invalid configuration in {origin}: {lines[0]}"
    return f"invalid configuration in {origin} ({len(lines)} errors):\n" + "\n".join(f"  {line}" for line in lines)


def load_settings(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from a TOML file and the environment, or raise one ``ConfigError``.

    ``path`` falls back to ``$JEEVES_CONFIG``; with neither, defaults and the environment apply.
    ``environ`` replaces the process environment as the source of every variable (tests).
    Account secrets named by ``password_env`` / ``oauth_token_env`` and Twilio's own
    ``TWILIO_ACCOUNT_SID`` / ``TWILIO_AUTH_TOKEN`` are resolved here, once.
    """
    env = os.environ if environ is None else environ
    from_env = not path and bool(env.get("JEEVES_CONFIG"))
    path = path or env.get("JEEVES_CONFIG") or None
    config_path = Path(path).expanduser() if path else None
    if config_path is not None and not config_path.is_file():
        what = "configuration file not found" if not config_path.exists() else "configuration path is not a file"
        raise ConfigError(f"{what}: {config_path}")
    try:
        with loading(config_path, environ):
            settings = Settings()
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, str(config_path) if config_path else "the environment")) from None
    if config_path is not None:
        settings._config_file = config_path.absolute()
        settings._config_from_env = from_env
    resolve_secrets(settings, env)
    return settings
