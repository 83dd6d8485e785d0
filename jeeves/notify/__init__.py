"""Notification: the outbox sender, the channels it sends through, and the user's rules.

The service builds one notifier with ``make_notifier(notify.channel, twilio)`` and one
``OutboxSender`` per process (``OutboxSender(store, SenderSettings.from_settings(settings),
notifier, worker_id=default_worker_id())``), then calls ``sender.run_once()`` every pass; it
reconciles interrupted sends first. ``store.outbox.problems()`` lists failed and in-doubt rows
for ``jeeves status``.
"""

from __future__ import annotations

from typing import TextIO

from jeeves.config import TwilioSettings
from jeeves.errors import AmbiguousSendError, PermanentSendError, ReconcileUnavailable, SendError, TransientSendError
from jeeves.notify.base import Notifier, SendResult
from jeeves.notify.console import ConsoleNotifier
from jeeves.notify.message import compose, gsm7_length, proposed_time, to_gsm7
from jeeves.notify.outbox import OutboxSender, SenderSettings, SendSummary, default_worker_id
from jeeves.notify.policy import Policy


def make_notifier(channel: str, twilio: TwilioSettings, *, stream: TextIO | None = None) -> Notifier:
    """Twilio when ``channel`` (``notify.channel``) asks for it, or is "auto" and ``twilio`` has
    credentials; else the console."""
    if channel == "twilio" or (channel == "auto" and twilio.configured):
        from jeeves.notify.twilio import TwilioNotifier

        return TwilioNotifier(twilio)
    return ConsoleNotifier(stream)


__all__ = [
    "AmbiguousSendError",
    "ConsoleNotifier",
    "Notifier",
    "OutboxSender",
    "PermanentSendError",
    "Policy",
    "ReconcileUnavailable",
    "SendError",
    "SendResult",
    "SendSummary",
    "SenderSettings",
    "TransientSendError",
    "compose",
    "default_worker_id",
    "gsm7_length",
    "make_notifier",
    "proposed_time",
    "to_gsm7",
]
