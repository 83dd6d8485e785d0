"""End to end: APPEND → SMS at the local Twilio server, under a steady load, with a real daemon.

    .venv/bin/python bench/bench_e2e.py [--rate 10] [--seconds 120] [--positives 0.3] [--json PATH]

One run, all on loopback, everything started and stopped by the bench:

- a private Dovecot (the test fixture's ``DovecotServer``) with one user;
- the local Twilio API (``tests.fake_twilio.FakeTwilio``), which here also stamps every
  accepted SMS with ``time.time()`` when its request arrives;
- a real ``jeeves run`` daemon (a subprocess, as users run it) on SQLite, watching the user's
  INBOX with IDLE and texting through the local Twilio API; ``thread_window_hours = 0`` and a
  high ``max_per_hour`` so the policy never holds a text back.

The load: ``rate`` messages per second for ``seconds`` seconds, APPENDed on one IMAP connection
on a fixed schedule (message *i* at ``t0 + i / rate``). The messages are distinct real messages
from the shipped corpus ``data/enron-meetings``, a ``--positives`` share of them labelled
positive there (so there are enough texts), each given a unique Message-ID. Which of them the
model flags is computed beforehand with the same shipped model, so missing and duplicate
texts are counted too.

Latency = time the local Twilio server received the SMS − time the APPEND was sent, for
every flagged message (matched through the ``#id`` in the SMS and the Message-ID in the
daemon's database).

Reference, in the same run: a bare IDLE client on the same folder records when Dovecot
announces each message (untagged EXISTS). APPEND → EXISTS is the floor any IDLE client pays
(Dovecot batches its mailbox-change notifications); APPEND → SMS minus that is what Jeeves
adds (fetch, parse, store, classify, outbox, HTTP to Twilio).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fake_twilio import FakeTwilio  # noqa: E402
from tests.fixtures_dovecot import start_dovecot  # noqa: E402

CORPUS = REPO / "data" / "enron-meetings"
USER, PASSWORD = "bench", "bench-pw"
TO = "+15005550006"
TARGET_MEDIAN_S = 1.0


class StampingTwilio(FakeTwilio):
    """The local Twilio API, recording the arrival time of each accepted SMS (wall clock)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.arrivals: list[tuple[float, str]] = []

    def _accept(self, account_sid, form):
        now = time.time()
        sms = super()._accept(account_sid, form)
        with self._lock:
            self.arrivals.append((now, sms.body))
        return sms


_MSGID = re.compile(rb"^Message-ID:[^\n]*\n(?:[ \t][^\n]*\n)*", re.IGNORECASE | re.MULTILINE)


def with_message_id(raw: bytes, msgid: str) -> bytes:
    raw = raw.replace(b"\r\n", b"\n")
    head, sep, body = raw.partition(b"\n\n")
    head = _MSGID.sub(b"", head + b"\n").rstrip(b"\n")
    raw = f"Message-ID: <{msgid}>\n".encode() + head + sep + body
    return raw.replace(b"\n", b"\r\n")


def pick_messages(count: int, positives: float, run_id: str, seed: int = 0) -> tuple[list[bytes], list[str], list[bool]]:
    """``count`` distinct corpus messages (``positives`` share labelled 1), unique Message-IDs,
    and whether the shipped model flags each one."""
    from jeeves.model.corpus import load_corpus
    from jeeves.model.serving import load_model
    from jeeves.parsing import EmailDocument, parse_email

    corpus = load_corpus(CORPUS)
    rng = random.Random(seed)
    pos = [i for i, y in enumerate(corpus.labels) if y == 1]
    neg = [i for i, y in enumerate(corpus.labels) if y == 0]
    n_pos = min(len(pos), int(round(count * positives)))
    chosen = rng.sample(pos, n_pos) + rng.sample(neg, count - n_pos)
    rng.shuffle(chosen)
    ids = [f"e2e-{k}.{run_id}@jeeves-bench" for k in range(count)]
    raws = [with_message_id(corpus.raw[i], ids[k]) for k, i in enumerate(chosen)]
    model = load_model()
    flagged = model.decide(model.score([EmailDocument.from_parsed(parse_email(r)) for r in raws]))
    return raws, ids, [bool(f) for f in flagged], model.version


def write_config(work: Path, server, twilio: FakeTwilio) -> Path:
    cfg = work / "jeeves.toml"
    cfg.write_text("\n".join([
        f'data_dir = "{work}"',
        "[database]", f'url = "sqlite:///{work / "jeeves.db"}"',
        "[[accounts]]", 'name = "bench"', f'host = "{server.host}"', f"port = {server.port}", 'tls = "none"',
        f'username = "{USER}"', f'password = "{PASSWORD}"', 'first_sync = "all"', "idle = true",
        "connect_timeout = 5.0", "read_timeout = 30.0", "poll_interval = 60.0",
        "[notify]", 'channel = "twilio"', f'to = "{TO}"', "thread_window_hours = 0", "max_per_hour = 100000",
        "[twilio]", f'account_sid = "{twilio.account_sid}"', f'auth_token = "{twilio.auth_token}"',
        'from_number = "+15005550001"', f'base_url = "{twilio.url}"', "timeout = 5.0",
        "[daemon]", "outbox_interval = 0.5", "retrain_interval_hours = 0",
    ]) + "\n")
    return cfg


class ExistsWatcher:
    """A bare IDLE client: the wall-clock time at which each message count was first announced."""

    def __init__(self, server) -> None:
        self.client = server.client(USER)
        self.client.select_folder("INBOX", readonly=True)
        self.first_seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.client.idle()
        last = 0
        while not self._stop.is_set():
            for resp in self.client.idle_check(timeout=0.5):
                if len(resp) >= 2 and resp[1] == b"EXISTS":
                    now, n = time.time(), int(resp[0])
                    for k in range(last + 1, n + 1):
                        self.first_seen.setdefault(k, now)
                    last = max(last, n)
        self.client.idle_done()

    def start(self) -> "ExistsWatcher":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        try:
            self.client.logout()
        except Exception:  # noqa: BLE001
            pass


def pct(values, q) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10.0, help="APPENDs per second")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--positives", type=float, default=0.3, help="share of corpus positives in the load")
    parser.add_argument("--drain", type=float, default=60.0, help="seconds to wait for late texts after the load")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    count = int(args.rate * args.seconds)
    run_id = f"{os.getpid()}.{int(time.time())}"
    t = time.perf_counter()
    raws, ids, flagged, model_version = pick_messages(count + 1, args.positives, run_id)
    warm_raw, warm_id = raws.pop(0), ids.pop(0)
    flagged.pop(0)
    print(f"e2e: {count} messages ({args.rate:g}/s for {args.seconds:g} s), {sum(flagged)} flagged by model "
          f"{model_version} (prepared in {time.perf_counter() - t:.0f} s)", flush=True)
    # A warm-up message the model flags, so the daemon is loaded and idling before the clock starts.
    warm_raw = with_message_id(
        b"From: Warm Up <warm@example.com>\nTo: bench@example.com\nSubject: lunch tomorrow?\n\n"
        b"Can we get together for lunch tomorrow at noon? Where would you like to meet?\n", warm_id)

    work = Path(tempfile.mkdtemp(prefix="jeeves-bench-e2e-"))
    work.chmod(0o755)
    server = twilio = proc = watcher = writer = None
    log_path = work / "daemon.log"
    result: dict = {}
    try:
        server = start_dovecot(work / "dovecot", users={USER: PASSWORD})
        twilio = StampingTwilio().start()
        cfg = write_config(work, server, twilio)
        with open(log_path, "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "jeeves", "--config", str(cfg), "run"], stdout=log,
                                    stderr=subprocess.STDOUT, cwd=REPO,
                                    env={**os.environ, "JEEVES_DAEMON__WORKER_ID": "bench"})
        deadline = time.monotonic() + 120
        while "watching account bench" not in log_path.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"daemon did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        writer = server.client(USER)
        time.sleep(1.0)
        writer.append("INBOX", warm_raw)
        deadline = time.monotonic() + 60
        while not twilio.arrivals:
            if time.monotonic() > deadline:
                raise SystemExit(f"warm-up message was not texted within 60 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        warm_latency = None
        time.sleep(1.0)
        base_count = len(twilio.arrivals)
        watcher = ExistsWatcher(server).start()
        time.sleep(0.5)
        existing = 1  # the warm-up message

        sent_at: list[float] = []
        append_s: list[float] = []
        t0 = time.time() + 0.5
        for i, raw in enumerate(raws):
            target = t0 + i / args.rate
            delay = target - time.time()
            if delay > 0:
                time.sleep(delay)
            start = time.time()
            writer.append("INBOX", raw)
            sent_at.append(start)
            append_s.append(time.time() - start)
        load_s = time.time() - t0
        expected = sum(flagged)
        deadline = time.monotonic() + args.drain
        while len(twilio.arrivals) - base_count < expected and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2.0)  # a duplicate, if any, would arrive now
        watcher.stop()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

        # Match texts to messages: "#<pk>" in the body -> Message-ID in the daemon's database.
        with sqlite3.connect(work / "jeeves.db") as db:
            pk_to_msgid = {pk: (mid or "").strip().strip("<>")
                           for pk, mid in db.execute("SELECT id, message_id FROM messages").fetchall()}
        index = {mid: k for k, mid in enumerate(ids)}
        latencies, texted, unknown = {}, {}, 0
        for arrived, body in twilio.arrivals[base_count:]:
            m = re.search(r"#(\d+) (?:Wrong\?|Reply [01] if)", body)  # both footers of notify.message.compose
            k = index.get(pk_to_msgid.get(int(m.group(1)), "")) if m else None
            if k is None:
                unknown += 1
                if unknown == 1:
                    print(f"unmatched SMS body: {body!r}")
                continue
            texted[k] = texted.get(k, 0) + 1
            latencies.setdefault(k, arrived - sent_at[k])
        lat = np.array(sorted(latencies.values()))
        floor = np.array([watcher.first_seen[existing + k + 1] - sent_at[k] for k in range(len(raws))
                          if existing + k + 1 in watcher.first_seen])
        floor_flagged = np.array([watcher.first_seen[existing + k + 1] - sent_at[k] for k in latencies
                                  if existing + k + 1 in watcher.first_seen])
        flagged_idx = {k for k, f in enumerate(flagged) if f}
        result = {
            "messages": len(raws), "rate_target": args.rate, "rate_achieved": len(raws) / load_s if load_s else 0,
            "append_median_ms": 1000 * statistics.median(append_s), "append_max_ms": 1000 * max(append_s),
            "flagged": expected, "texted": len(texted), "missing": len(flagged_idx - set(texted)),
            "duplicates": sum(v - 1 for v in texted.values()), "unexpected": len(set(texted) - flagged_idx),
            "unmatched_sms": unknown,
            "sms_median_s": pct(lat, 50), "sms_p95_s": pct(lat, 95), "sms_p99_s": pct(lat, 99),
            "sms_max_s": float(lat.max()) if len(lat) else float("nan"),
            "exists_median_s": pct(floor, 50), "exists_p99_s": pct(floor, 99),
            "exists_flagged_median_s": pct(floor_flagged, 50), "exists_announced": int(len(floor)),
            "model": model_version, "target_median_s": TARGET_MEDIAN_S,
        }
    finally:
        if watcher is not None and watcher._thread.is_alive():
            watcher.stop()
        if writer is not None:
            try:
                writer.logout()
            except Exception:  # noqa: BLE001
                pass
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if twilio is not None:
            twilio.stop()
        if server is not None:
            server.close()
        errors = [line for line in log_path.read_text(errors="replace").splitlines() if " ERROR " in line or "Traceback" in line] \
            if log_path.exists() else []
        shutil.rmtree(work, ignore_errors=True)

    r = result
    print(f"load: {r['messages']} APPENDs at {r['rate_achieved']:.2f}/s (target {args.rate:g}/s), "
          f"APPEND round trip median {r['append_median_ms']:.0f} ms, max {r['append_max_ms']:.0f} ms")
    print(f"texts: {r['flagged']} messages flagged by the model, {r['texted']} texted, missing {r['missing']}, "
          f"duplicates {r['duplicates']}, unexpected {r['unexpected']}, unmatched {r['unmatched_sms']}")
    print(f"{'':44s} {'median s':>9s} {'p95 s':>7s} {'p99 s':>7s} {'max s':>7s}")
    print(f"{'jeeves: APPEND → SMS at local Twilio':44s} {r['sms_median_s']:9.3f} {r['sms_p95_s']:7.3f} "
          f"{r['sms_p99_s']:7.3f} {r['sms_max_s']:7.3f}")
    print(f"{'reference: APPEND → EXISTS (bare IDLE client)':44s} {r['exists_median_s']:9.3f} {'':7s} "
          f"{r['exists_p99_s']:7.3f}")
    print(f"ratio median SMS / median EXISTS: {r['sms_median_s'] / r['exists_median_s']:.2f}x; median SMS minus median EXISTS of the flagged messages: "
          f"{1000 * (r['sms_median_s'] - r['exists_flagged_median_s']):.0f} ms (negative: under load a sync started by an earlier notice fetches a message before Dovecot announces it)")
    verdict = "PASS" if r["sms_median_s"] < TARGET_MEDIAN_S and not r["missing"] and not r["duplicates"] else "MISS"
    print(f"target median < {TARGET_MEDIAN_S:g} s, no missing or duplicate text: {verdict}")
    if errors:
        print(f"daemon log: {len(errors)} ERROR/Traceback lines, first: {errors[0][:300]}")
    r["daemon_errors"] = len(errors)
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))
    print("JSON: " + json.dumps(r))
    return r


if __name__ == "__main__":
    main()
