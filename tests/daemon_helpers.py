"""Helpers for tests that run real `jeeves run` daemons: their config file, starting one as a
subprocess, waiting for what it should do, and which sample messages it should text about.
Shared by test_daemon, test_faults and test_soak."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from jeeves.model.serving import load_model
from jeeves.parsing import EmailDocument, parse_email
from tests.fixtures_twilio import TEST_TO

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample" / "sample.mbox"


def _config(tmp_path: Path, *, db_url: str, dovecot=None, twilio=None, users=(), mailbox: Path | None = None, extra: str = "") -> Path:
    lines = [f'data_dir = "{tmp_path}"', "[database]", f'url = "{db_url}"']
    for user in users:
        lines += [
            "[[accounts]]", f'name = "{user}"', f'host = "{dovecot.host}"', f"port = {dovecot.port}", 'tls = "none"',
            f'username = "{user}"', f'password = "{dovecot.passwords[user]}"', 'first_sync = "all"',
            "connect_timeout = 5.0", "read_timeout = 20.0", "poll_interval = 2.0",
        ]
    if mailbox is not None:
        lines += ["[[mailboxes]]", f'path = "{mailbox}"']
    if twilio is not None:
        lines += [
            # No daily digest: these tests count alerts, and a digest's time of day would make them depend on the clock.
            "[notify]", 'channel = "twilio"', f'to = "{TEST_TO}"', "thread_window_hours = 0", "max_per_hour = 10000",
            'digest_time = ""',
            "[twilio]", f'account_sid = "{twilio.account_sid}"', f'auth_token = "{twilio.auth_token}"',
            'from_number = "+15005550001"', f'base_url = "{twilio.url}"', "timeout = 5.0",
        ]
    else:
        lines += ["[notify]", 'channel = "console"', 'digest_time = ""']
    lines += ["[daemon]", "outbox_interval = 0.5", "mailbox_interval = 1.0", "retrain_interval_hours = 0", extra]
    path = tmp_path / "jeeves.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _start(config: Path, worker: str, log_path: Path) -> subprocess.Popen:
    env = {**os.environ, "JEEVES_DAEMON__WORKER_ID": worker}
    log = open(log_path, "ab")
    return subprocess.Popen([sys.executable, "-m", "jeeves", "--config", str(config), "run"],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)


def _wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _expected_positive_keys(raws: list[bytes]) -> set[str]:
    model = load_model()
    parsed = [parse_email(r) for r in raws]
    decisions = model.decide(model.score([EmailDocument.from_parsed(p) for p in parsed]))
    return {p.message_id or p.content_hash for p, d in zip(parsed, decisions) if d}
