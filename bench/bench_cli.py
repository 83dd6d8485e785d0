"""How long the `jeeves` commands take to answer, as a user runs them (issue #13, item 3).

Each command runs as a fresh process against a demo-like setup (the sample mailbox stored and
classified in SQLite, the shipped model, console alerts, log level WARNING); wall time is
measured from the process start to its exit. The daemon's figure is the time from start to its
"jeeves running" line. References in the same run: the bare interpreter (`python -c pass`), and
loading the serving model in a fresh process (what `status` and `health` used to pay). CPU
seconds (user + system, median) are printed too: on a shared machine they say what a command
costs when it has a core to itself.

    .venv/bin/python bench/bench_cli.py [--runs 5]

Target: `--version`, `status`, `health` and `label` each under 1.5 s (median).
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
TARGET_SECONDS = 1.5


def timed(argv: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run. CPU time (user + system) moves far less than wall
    time with the machine's load, so it shows what the command costs on an idle machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=REPO, capture_output=True)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def daemon_until_running(config: Path, env: dict, timeout: float = 120.0) -> float:
    started = time.perf_counter()
    proc = subprocess.Popen([PY, "-m", "jeeves", "--config", str(config), "run"], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        while time.perf_counter() - started < timeout:
            line = proc.stderr.readline()
            if not line:
                raise SystemExit("the daemon exited before saying it runs")
            if b"jeeves running" in line:
                return time.perf_counter() - started
        raise SystemExit(f"no 'jeeves running' line within {timeout:.0f} s")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="jeeves-bench-cli-") as tmp:
        config = Path(tmp) / "demo.toml"
        config.write_text(
            f'data_dir = "{tmp}/data"\n[[mailboxes]]\npath = "{REPO / "data/sample/sample.mbox"}"\n'
            '[notify]\nchannel = "console"\n[daemon]\nlog_level = "WARNING"\nretrain_interval_hours = 0\n'
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JEEVES_", "TWILIO_"))}
        jeeves = [PY, "-m", "jeeves", "--config", str(config)]
        timed(jeeves + ["run", "--once"], env)  # store and classify the sample: 300 messages

        cases = [
            ("reference: python -c pass", [PY, "-c", "pass"]),
            ("reference: load the serving model", [PY, "-c", "from jeeves.model.serving import load_model; load_model()"]),
            ("jeeves --version", [PY, "-m", "jeeves", "--version"]),
            ("jeeves status", jeeves + ["status"]),
            ("jeeves health", jeeves + ["health"]),
            ("jeeves label 1 0", jeeves + ["label", "1", "0"]),
            ("jeeves explain 1 (scores: loads the model)", jeeves + ["explain", "1"]),
        ]
        targets = {"jeeves --version", "jeeves status", "jeeves health", "jeeves label 1 0"}
        print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} cores; "
              f"{args.runs} runs each")
        print(f"{'command':46} {'median s':>9} {'max s':>7} {'CPU s':>6}  verdict (median wall)")
        for name, argv in cases:
            runs = [timed(argv, env) for _ in range(args.runs)]
            times = [wall for wall, _ in runs]
            cpu = statistics.median(c for _, c in runs)
            verdict = ("ok" if statistics.median(times) < TARGET_SECONDS else "OVER") + f" (< {TARGET_SECONDS} s)" if name in targets else ""
            print(f"{name:46} {statistics.median(times):9.2f} {max(times):7.2f} {cpu:6.2f}  {verdict}")
        times = [daemon_until_running(config, env) for _ in range(max(1, args.runs // 2))]
        print(f"{'jeeves run: start to its running line':46} {statistics.median(times):9.2f} {max(times):7.2f}")
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
