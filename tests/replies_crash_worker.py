"""A reply poller process for crash-injection tests: one ``Jeeves.poll_replies()`` against the
database and the fake Twilio API given, SIGKILLing itself at a named step of the poll
(``--kill-step record-uncommitted --kill-nth 2``), else printing what it applied as JSON.

Steps (``jeeves.notify.replies.ReplyPoller``): ``listed`` (replies read from Twilio, nothing
recorded), ``record-uncommitted`` (inside a reply's transaction: label written, not committed),
``recorded`` (that reply committed). The auth token comes from ``$FAKE_TWILIO_TOKEN``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from pydantic import SecretStr

from jeeves.config import NotifySettings, Settings, TwilioSettings
from jeeves.service import Jeeves
from jeeves.storage import Store
from tests.crash_steps import sigkill_at


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--account-sid", required=True)
    parser.add_argument("--to", required=True)
    parser.add_argument("--from-number", required=True)
    parser.add_argument("--kill-step")
    parser.add_argument("--kill-nth", type=int, default=1)
    args = parser.parse_args(argv)

    on_step = sigkill_at(args.kill_step, args.kill_nth)

    settings = Settings(
        notify=NotifySettings(channel="twilio", to=args.to, digest_time=None),
        twilio=TwilioSettings(account_sid=args.account_sid, auth_token=SecretStr(os.environ["FAKE_TWILIO_TOKEN"]),
                              from_number=args.from_number, base_url=args.base_url, timeout=2.0),
    )
    app = Jeeves(settings, store=Store(args.db, migrate=False))
    summary = app.poll_replies(on_step=on_step)
    print(json.dumps({"labelled": summary.labelled, "already": summary.already, "help": summary.help_queued}), flush=True)
    app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
