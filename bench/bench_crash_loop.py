"""Progress of a daemon that keeps being killed (issue #13, item 10).

A backlog of N messages is stored (texts allowed), then `jeeves run` is started and SIGKILLed
LIFE seconds after each start, again and again. After each life the bench counts what is
committed: messages classified and alerts sent. Jeeves classifies in steps of
``jeeves.service.CLASSIFY_STEP`` messages and sends each step's alerts before the next; the
reference, in the same run and on the same backlog, is the previous pipeline (classify the whole
backlog, committing per 256, then send), patched in for the reference daemon only.

    .venv/bin/python bench/bench_crash_loop.py [--messages 1500] [--life 30] [--lives 4]

A life shorter than the daemon's start plus the model load (4-20 s on a busy 2-core box) can
make no progress with either pipeline; LIFE is measured from the process start.
"""

from __future__ import annotations

import argparse
import mailbox
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REPO, message_pool  # noqa: E402

PY = sys.executable
#: The pipeline before item 10: the whole backlog classified (committed per 256), then sent.
OLD_PIPELINE = (
    "import sys, jeeves.service as s\n"
    "def whole_backlog_then_send(self, *, dry_run=None, stop=None):\n"
    "    return self.classify(), self.notify(dry_run=dry_run)\n"
    "s.Jeeves.classify_and_notify = whole_backlog_then_send\n"
    "from jeeves.cli import main\n"
    "raise SystemExit(main(sys.argv[1:]))\n"
)
NEW_PIPELINE = "import sys\nfrom jeeves.cli import main\nraise SystemExit(main(sys.argv[1:]))\n"


def counts(db: Path) -> tuple[int, int]:
    import sqlite3

    with sqlite3.connect(db) as connection:
        classified = connection.execute("SELECT count(*) FROM predictions").fetchone()[0]
        sent = connection.execute("SELECT count(*) FROM outbox WHERE status = 'sent'").fetchone()[0]
    return classified, sent


def run_variant(name: str, program: str, backlog: Path, args) -> list[tuple[int, int]]:
    with tempfile.TemporaryDirectory(prefix="jeeves-bench-crash-") as tmp:
        config = Path(tmp) / "jeeves.toml"
        config.write_text(f'data_dir = "{tmp}"\n[notify]\nchannel = "console"\n'
                          '[daemon]\nlog_level = "WARNING"\nretrain_interval_hours = 0\n')
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JEEVES_", "TWILIO_"))}
        subprocess.run([PY, "-m", "jeeves", "--config", str(config), "import", str(backlog), "--notify"],
                       env=env, cwd=REPO, check=True, capture_output=True)
        db = Path(tmp) / "jeeves.db"
        progress = []
        for _ in range(args.lives):
            proc = subprocess.Popen([PY, "-c", program, "--config", str(config), "run"], env=env, cwd=REPO,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(args.life)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            progress.append(counts(db))
        print(f"{name}: after each life of {args.life:.0f} s (classified, sent): "
              + " ".join(f"({c},{s})" for c, s in progress))
        return progress


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1500)
    parser.add_argument("--life", type=float, default=30.0)
    parser.add_argument("--lives", type=int, default=4)
    args = parser.parse_args()
    from jeeves.service import CLASSIFY_STEP

    with tempfile.TemporaryDirectory(prefix="jeeves-bench-backlog-") as tmp:
        backlog = Path(tmp) / "backlog.mbox"
        box = mailbox.mbox(backlog)
        for raw in message_pool(args.messages):
            box.add(raw)
        box.flush()
        print(f"backlog {args.messages} messages; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
              f"step {CLASSIFY_STEP} messages")
        new = run_variant("jeeves (steps, send after each)", NEW_PIPELINE, backlog, args)
        old = run_variant("reference (whole backlog, then send)", OLD_PIPELINE, backlog, args)
    lives_with_progress = lambda p: sum(1 for i, c in enumerate(p) if c != (p[i - 1] if i else (0, 0)))  # noqa: E731
    print(f"{'':38} {'classified':>10} {'sent':>6} {'lives that committed work':>26}")
    for name, p in (("jeeves", new), ("reference", old)):
        print(f"{name:38} {p[-1][0]:>10} {p[-1][1]:>6} {lives_with_progress(p):>20} of {len(p)}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
