"""SMS through Twilio's official client, with every failure sorted into retry / ask / give up.

The classification follows what each failure says about the message: a 429 or a refused
connection means Twilio never took it (retry); a 5xx, a read timeout or a connection dropped
mid-request means it may have been queued (ask the Messages list before any resend); a 4xx
with a known code means retrying cannot help. Twilio has no idempotency key, so "ask before
resending" is the only guard against a double text.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from jeeves.config import TwilioSettings
from jeeves.errors import AmbiguousSendError, ConfigError, PermanentSendError, SendError, TransientSendError
from jeeves.notify.base import SendResult

log = logging.getLogger(__name__)

#: Error codes that mean the message will never go through as sent (field notes, Twilio docs).
PERMANENT_CODES = frozenset({21211, 21408, 21606, 21659, 21608, 21610, 21612, 21614, 21635, 20003})
RATE_LIMIT_CODE = 20429

#: Twilio's request logging is verbose at INFO; keep it to warnings under Jeeves's own name.
_http_log = logging.getLogger("jeeves.notify.twilio.http")
_http_log.setLevel(logging.WARNING)


class TwilioNotifier:
    """Texts through ``twilio.rest.Client``, with a real timeout and an optional base URL.

    ``base_url`` replaces ``https://api.twilio.com`` on the client's Api domain (the attribute
    every request URL is built from, ``twilio.base.domain.Domain.absolute_url``), which is how
    tests point the unmodified client at a local server.
    """

    channel = "twilio"
    can_reconcile = True

    def __init__(self, settings: TwilioSettings, *, reconcile_slack: timedelta = timedelta(minutes=5)) -> None:
        if not settings.configured or settings.auth_token is None:
            raise ConfigError("twilio.account_sid, twilio.auth_token and twilio.from_number (or messaging_service_sid) must be set")
        self._from = settings.from_number
        self._service = settings.messaging_service_sid
        self._account_sid = settings.account_sid
        self._slack = reconcile_slack
        http = TwilioHttpClient(timeout=settings.timeout, logger=_http_log)
        self._client = Client(settings.account_sid, settings.auth_token.get_secret_value(), http_client=http)
        if settings.base_url:
            self._client.api.base_url = settings.base_url.rstrip("/")
            # TWILIO_EDGE / TWILIO_REGION in the environment would rewrite the host of every
            # request (Client.get_hostname); an explicit base URL must be used as given.
            self._client.edge = None
            self._client.region = None
        self.base_url = self._client.api.base_url

    def __repr__(self) -> str:
        return f"TwilioNotifier(account_sid={self._account_sid!r}, base_url={self.base_url!r})"

    def send(self, to: str, body: str) -> SendResult:
        sender = {"messaging_service_sid": self._service} if self._service else {"from_": self._from}
        try:
            message = self._client.messages.create(to=to, body=body, **sender)
        except TwilioException as exc:
            raise classify_twilio_exception(exc) from None
        except requests.RequestException as exc:
            raise classify_transport_error(exc) from None
        return SendResult(provider_id=message.sid, status=str(message.status or "queued"))

    def find_sent(self, to: str, since: datetime, body: str) -> SendResult | None:
        """The message with this body sent to ``to`` since ``since``, asked of the Messages list.

        Two reads, because Twilio leaves ``date_sent`` empty while a message is still queued
        (so a ``DateSent>`` filter alone misses exactly the messages a crash just created):
        the newest page for the number, matched on ``date_created``; then the ``DateSent>``
        filter, for a number that received many texts since. ``since`` is widened by a few
        minutes for clock skew; the body carries the alert's id, so matching it is exact.
        Errors propagate as transient/ambiguous send errors: the row stays in doubt.
        """
        since = since.astimezone(timezone.utc) - self._slack
        wanted = body.strip()
        try:
            recent = self._client.messages.list(to=to, limit=50, page_size=50)
            found = _match(recent, wanted, since, use_created=True)
            if found is None:
                dated = self._client.messages.list(to=to, date_sent_after=since, page_size=100)
                found = _match(dated, wanted, since, use_created=False)
        except TwilioException as exc:
            raise classify_twilio_exception(exc) from None
        except requests.RequestException as exc:
            raise classify_transport_error(exc) from None
        return found

    def received(self, since: datetime, *, limit: int = 1000) -> list["InboundSms"]:
        """Inbound texts to Jeeves's own number (``from_number``) since ``since``, newest first.

        Twilio documents ``DateSent>`` at day granularity, so the list may reach further back
        than asked; callers dedupe by SID. Errors propagate as send errors (the poll is retried).
        """
        if not self._from:
            raise ConfigError("reading SMS replies needs twilio.from_number (the number people reply to)")
        try:
            listed = self._client.messages.list(to=self._from, date_sent_after=since.astimezone(timezone.utc),
                                                limit=limit, page_size=min(limit, 100))
        except TwilioException as exc:
            raise classify_twilio_exception(exc) from None
        except requests.RequestException as exc:
            raise classify_transport_error(exc) from None
        return [
            InboundSms(sid=m.sid, sender=m.from_ or "", to=m.to or "", body=m.body or "", status=str(m.status or ""),
                       date_sent=m.date_sent or m.date_created)
            for m in listed
            if str(m.direction) == "inbound"
        ]


@dataclass(frozen=True)
class InboundSms:
    """One text someone sent to Jeeves's number, as Twilio lists it."""

    sid: str
    sender: str
    to: str
    body: str
    status: str
    date_sent: datetime | None


def _match(messages, wanted: str, since: datetime, *, use_created: bool) -> SendResult | None:
    for message in messages:
        remote = (message.body or "").strip()
        # Trial accounts prefix "Sent from your Twilio trial account - ": match the tail.
        if remote != wanted and not remote.endswith(wanted):
            continue
        stamp = message.date_created if use_created else (message.date_sent or message.date_created)
        if isinstance(stamp, datetime) and stamp < since:
            continue
        if str(message.status) in {"failed", "undelivered", "canceled"}:
            continue
        return SendResult(provider_id=message.sid, status=str(message.status))
    return None


def classify_twilio_exception(exc: TwilioException) -> SendError:
    """Any exception of the twilio library as a send error.

    Three shapes exist: ``TwilioRestException`` (status, code, msg), ``TwilioServiceException``
    (RFC 9457 bodies: status, code), and a bare ``TwilioException("Unable to fetch page",
    response)`` raised by list reads, which carries only the HTTP response.
    """
    if isinstance(exc, TwilioRestException):
        return classify_rest_error(exc.status, exc.code, exc.msg)
    status = getattr(exc, "status", None)
    code = getattr(exc, "code", None)
    if status is None:
        response = next((a for a in exc.args if hasattr(a, "status_code")), None)
        if response is not None:
            status = response.status_code
            try:
                code = json.loads(response.text).get("code", status)
            except (ValueError, AttributeError):
                code = status
    return classify_rest_error(status, code, str(exc.args[0]) if exc.args else type(exc).__name__)


def classify_rest_error(status: int | None, code: int | str | None, message: str) -> SendError:
    """The send error an HTTP error answer from Twilio amounts to."""
    try:
        numeric = int(code) if code is not None else None
    except (TypeError, ValueError):
        numeric = None
    code_text = str(numeric) if numeric is not None else (str(code) if code else None)
    reason = _clean(message)
    if status == 429 or numeric == RATE_LIMIT_CODE:
        return TransientSendError(reason, code=code_text or "429")
    if numeric in PERMANENT_CODES:
        return PermanentSendError(reason, code=code_text)
    if status is not None and status >= 500:
        return AmbiguousSendError(reason, code=code_text or str(status))
    # Any other 4xx: Twilio looked at the request and refused it; the same request will fail again.
    return PermanentSendError(reason, code=code_text or (str(status) if status else None))


def classify_transport_error(exc: requests.RequestException) -> SendError:
    """Only a connection that never opened proves the request was not received."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return TransientSendError(f"connect timeout: {_clean(str(exc))}", code="connect-timeout")
    if isinstance(exc, requests.exceptions.ConnectionError) and _never_connected(exc):
        return TransientSendError(f"connection refused: {_clean(str(exc))}", code="connect")
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return AmbiguousSendError("read timeout: Twilio did not answer in time", code="read-timeout")
    return AmbiguousSendError(f"connection lost: {_clean(str(exc))}", code="connection")


def _never_connected(exc: BaseException) -> bool:
    from urllib3.exceptions import NameResolutionError, NewConnectionError

    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, (NewConnectionError, NameResolutionError, ConnectionRefusedError)):
            return True
        stack.extend([getattr(item, "reason", None), item.__cause__, item.__context__])
        stack.extend(a for a in getattr(item, "args", ()) if isinstance(a, BaseException))
    return False


def _clean(text: str) -> str:
    text = " ".join(str(text).split())
    return text[:300]
