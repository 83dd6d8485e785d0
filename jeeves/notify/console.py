"""Alerts printed to a terminal: the default channel and what the demo shows."""

from __future__ import annotations

import sys
import threading
import uuid
from datetime import datetime
from typing import TextIO

from jeeves.errors import ReconcileUnavailable
from jeeves.notify.base import SendResult
from jeeves.notify.digest import DIGEST_HEAD


class ConsoleNotifier:
    """Prints one block per alert to ``stream`` (stdout by default).

    A terminal keeps no record Jeeves can query, so ``can_reconcile`` is False: a send
    interrupted by a crash is counted as delivered (at most once) rather than printed again.
    For a console that is the better error: a lost line is visible in the log, a repeated
    one looks like a second meeting request.
    """

    channel = "console"
    can_reconcile = False

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, to: str, body: str) -> SendResult:
        stream = self._stream or sys.stdout
        with self._lock:
            kind = "digest" if body.startswith(DIGEST_HEAD) else "alert"
            stream.write(f"[jeeves {kind}] {body}\n")
            stream.flush()
        return SendResult(provider_id=f"console-{uuid.uuid4().hex[:12]}", status="printed")

    def find_sent(self, to: str, since: datetime, body: str) -> SendResult | None:
        raise ReconcileUnavailable("the console keeps no record of printed alerts")

    def __repr__(self) -> str:
        return "ConsoleNotifier()"
