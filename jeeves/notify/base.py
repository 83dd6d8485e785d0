"""The notifier contract the outbox relies on, and the three ways a send can fail.

The outbox's exactly-once promise depends on knowing, for each failure, whether the message
may have left: that is the whole point of splitting errors into transient (certainly not sent,
retry), ambiguous (maybe sent, ask the provider before retrying) and permanent (never retry).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from jeeves.errors import NotifyError


@dataclass(frozen=True)
class SendResult:
    """What the provider said about an accepted message (Twilio: the SM… SID and its status)."""

    provider_id: str
    status: str


class TransientSendError(NotifyError):
    """The provider certainly did not take the message (429/20429, connection refused): retry."""

    def __init__(self, reason: str, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class AmbiguousSendError(NotifyError):
    """The message may have been accepted (5xx, read timeout): reconcile before any resend."""

    def __init__(self, reason: str, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class PermanentSendError(NotifyError):
    """The provider refused the message for a reason retrying cannot fix (bad number, auth)."""

    def __init__(self, code: str | None, reason: str) -> None:
        super().__init__(f"{code}: {reason}" if code else reason)
        self.code = code
        self.reason = reason


class ReconcileUnavailable(NotifyError):
    """The channel keeps no record to ask, so an interrupted send cannot be checked."""


@runtime_checkable
class Notifier(Protocol):
    """A channel that delivers one alert and, where it can, says whether one was delivered."""

    #: Short name stored in ``outbox.channel`` ("console", "twilio").
    channel: str
    #: Whether ``find_sent`` can answer; when False an interrupted send counts as sent.
    can_reconcile: bool

    def send(self, to: str, body: str) -> SendResult: ...

    def find_sent(self, to: str, since: datetime, body: str) -> SendResult | None: ...
