"""Crash injection: sender processes are SIGKILLed at every step of a send, at random, over and
over; after restarts and reconciliation every positive has exactly one SMS at the fake server."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from jeeves.storage import Store
from tests.fixtures_twilio import TEST_TO, outbox_rows, seed_positives

REPO = Path(__file__).resolve().parent.parent
STEPS = ["claim-uncommitted", "after-claim", "after-send", "after-record"]


class Crasher:
    """Starts worker processes and kills them, at a named step or after a random delay."""

    def __init__(self, db: str, server, rng: random.Random) -> None:
        self.db, self.server, self.rng = db, server, rng
        self.kills = Counter()
        self._next_step = rng.randrange(len(STEPS))

    def spawn(self, worker: str, kill_step: str | None = None, nth: int = 1, deadline: float = 30.0) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "tests.notify_crash_worker", "--db", self.db, "--base-url", self.server.url,
               "--account-sid", self.server.account_sid, "--to", TEST_TO, "--worker-id", worker,
               "--deadline", str(deadline)]
        if kill_step:
            cmd += ["--kill-step", kill_step, "--kill-nth", str(nth)]
        env = {**os.environ, "FAKE_TWILIO_TOKEN": self.server.auth_token}
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def one_round(self, worker: str) -> tuple[subprocess.Popen, str]:
        """A worker that dies at a random step, or (one time in three) at a random moment."""
        if self.rng.random() < 1 / 3:
            proc = self.spawn(worker)
            proc.stdout.readline()  # "started": the kill lands in the send loop, not in imports
            time.sleep(self.rng.uniform(0.0, 0.15))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            return proc, "random-time"
        step = STEPS[self._next_step % len(STEPS)]  # every step in turn; which send, at random
        self._next_step += 1
        proc = self.spawn(worker, step, self.rng.randint(1, 3))
        return proc, step

    def wait(self, proc: subprocess.Popen, label: str) -> None:
        proc.wait(60)
        if proc.returncode == -signal.SIGKILL:
            self.kills[label] += 1
        else:  # the outbox ran dry before the kill point: a clean exit
            assert proc.returncode == 0, proc.stderr.read()


def check_exactly_once(store: Store, server, expected: int) -> Counter:
    rows = outbox_rows(store)
    assert len(rows) == expected
    assert Counter(r.status for r in rows) == {"sent": expected}, [(r.id, r.status, r.error_message) for r in rows]
    per_body = Counter(server.bodies())
    assert sorted(per_body) == sorted(r.body for r in rows)
    assert max(per_body.values()) == 1, [b for b, n in per_body.items() if n > 1]
    sids = {m.sid for m in server.messages}
    assert {r.provider_id for r in rows} == sids
    return per_body


def run_crash_rounds(db: str, server, raws, *, rounds: int, workers: int, rows: int, seed: int, sent_lag: float = 0.0) -> Counter:
    store = Store(db)
    server.sent_lag = sent_lag  # > 0: messages stay queued, invisible to the DateSent> filter
    seed_positives(store, raws, rows)
    server.latency = (0.002, 0.02)
    crasher = Crasher(db, server, random.Random(seed))
    for _ in range(rounds):
        procs = [crasher.one_round(f"crash-{w}") for w in range(workers)]
        for proc, label in procs:
            crasher.wait(proc, label)
    # Restart: the same worker ids recover their own interrupted sends at once, then finish.
    finals = [crasher.spawn(f"crash-{w}") for w in range(workers)]
    for proc in finals:
        proc.wait(60)
        assert proc.returncode == 0, proc.stderr.read()
    check_exactly_once(store, server, rows)
    store.close()
    crasher.kills["posts"] = server.count("POST")
    return crasher.kills


def test_sigkill_at_every_step_on_sqlite_leaves_exactly_one_sms_per_positive(tmp_path, twilio_server, corpus_raw_messages):
    kills = run_crash_rounds(f"sqlite:///{tmp_path / 'crash.db'}", twilio_server, corpus_raw_messages,
                             rounds=24, workers=1, rows=40, seed=int(os.environ.get("JEEVES_CRASH_SEED", "6")))
    print(f"sqlite crash rounds: kills={dict(kills)} sms={len(twilio_server.messages)}")
    assert sum(n for k, n in kills.items() if k != "posts") >= 16
    assert all(kills[step] for step in STEPS)


@pytest.mark.postgres
def test_sigkill_two_concurrent_senders_on_postgresql(pg_url, twilio_server, corpus_raw_messages):
    kills = run_crash_rounds(pg_url, twilio_server, corpus_raw_messages,
                             rounds=10, workers=2, rows=40, seed=int(os.environ.get("JEEVES_CRASH_SEED", "7")),
                             sent_lag=3600)
    print(f"postgresql crash rounds: kills={dict(kills)} sms={len(twilio_server.messages)}")
    assert sum(n for k, n in kills.items() if k != "posts") >= 8
