"""The notifier contract the outbox relies on.

A notifier's ``send`` returns a ``SendResult`` or raises one of the three send errors defined in
``jeeves.errors``: the outbox's exactly-once promise depends on knowing, for each failure,
whether the message may have left, so errors are split into transient (certainly not sent,
retry), ambiguous (maybe sent, ask the provider before retrying) and permanent (never retry).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

@dataclass(frozen=True)
class SendResult:
    """What the provider said about an accepted message (Twilio: the SM… SID and its status)."""

    provider_id: str
    status: str


@runtime_checkable
class Notifier(Protocol):
    """A channel that delivers one alert and, where it can, says whether one was delivered."""

    #: Short name stored in ``outbox.channel`` ("console", "twilio").
    channel: str
    #: Whether ``find_sent`` can answer; when False an interrupted send counts as sent.
    can_reconcile: bool

    def send(self, to: str, body: str) -> SendResult: ...

    def find_sent(self, to: str, since: datetime, body: str) -> SendResult | None: ...
