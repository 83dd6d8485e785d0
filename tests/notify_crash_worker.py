"""A sender process for crash-injection tests: builds a Store and a TwilioNotifier from its
arguments and runs ``OutboxSender.run_once`` until the outbox is done, or until it kills itself
with SIGKILL at a named step (``--kill-step after-send --kill-nth 2``).

Steps: ``claim-uncommitted`` (inside the claim transaction), ``after-claim`` (attempt committed,
nothing sent), ``after-send`` (the provider answered, result not recorded), ``after-record``.
The auth token comes from ``$FAKE_TWILIO_TOKEN`` so it is not on the command line.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import timedelta

from pydantic import SecretStr

from jeeves.config import NotifySettings, Settings, TwilioSettings
from jeeves.notify.outbox import OutboxSender, SenderSettings
from jeeves.notify.twilio import TwilioNotifier
from jeeves.storage import Store
from tests.crash_steps import sigkill_at


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--account-sid", required=True)
    parser.add_argument("--to", required=True)
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--kill-step")
    parser.add_argument("--kill-nth", type=int, default=1)
    parser.add_argument("--stale-after", type=float, default=2.0)
    parser.add_argument("--deadline", type=float, default=30.0)
    args = parser.parse_args(argv)

    on_step = sigkill_at(args.kill_step, args.kill_nth)

    settings = Settings(
        notify=NotifySettings(channel="twilio", to=args.to, max_per_hour=100_000, thread_window_hours=0, max_attempts=50),
        twilio=TwilioSettings(account_sid=args.account_sid, auth_token=SecretStr(os.environ["FAKE_TWILIO_TOKEN"]),
                              from_number="+15005550001", base_url=args.base_url, timeout=1.0),
    )
    store = Store(args.db, migrate=False)
    sender = OutboxSender(
        store, SenderSettings.from_settings(settings), TwilioNotifier(settings.twilio), worker_id=args.worker_id,
        stale_after=timedelta(seconds=args.stale_after), reconcile_delay=timedelta(0),
        backoff_base=timedelta(milliseconds=50), backoff_max=timedelta(milliseconds=200), on_step=on_step,
    )
    print("started", flush=True)
    deadline = time.monotonic() + args.deadline
    while time.monotonic() < deadline:
        summary = sender.run_once(limit=5)
        if not summary.busy:
            if not store.outbox.unfinished():
                return 0
            time.sleep(0.05)  # someone else's claim is not stale yet, or a row is backing off
    return 3


if __name__ == "__main__":
    sys.exit(main())
