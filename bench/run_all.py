"""Run every benchmark and print one table: figure, Jeeves, reference, ratio, target, verdict.

    .venv/bin/python bench/run_all.py --quick     # small sizes, a few minutes
    .venv/bin/python bench/run_all.py             # the sizes of issue #8 (an hour or more on 2 cores)
    .venv/bin/python bench/run_all.py --only e2e,train
    .venv/bin/python bench/run_all.py --from-log growth=/tmp/growth.log   # reuse a bench's saved output

Each benchmark runs as its own subprocess (one failure or timeout does not stop the rest); its
full output is kept in ``--logs`` (a temporary directory by default) and quoted in the report.
The table is printed and written, with the date, the machine (cores, RAM, load average) and
the versions, to ``bench/RESULTS.md`` (``--out``; ``--no-write`` to skip).

Every figure is measured side by side with its reference in the same run, because this machine
is shared and absolute figures move with the load; compare ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable


@dataclass
class Row:
    figure: str
    jeeves: str
    reference: str = "–"
    ratio: str = "–"
    target: str = "–"
    verdict: str = "info"


@dataclass
class Bench:
    name: str
    title: str
    full: list[str]
    quick: list[str]
    timeout_full: float
    timeout_quick: float
    parse: object = None
    rows: list[Row] = field(default_factory=list)


def _f(x: float, digits: int = 0) -> str:
    if x != x:  # NaN
        return "n/a"
    return f"{x:,.{digits}f}"


def _json_line(out: str) -> dict:
    for line in reversed(out.splitlines()):
        if line.startswith("JSON: "):
            return json.loads(line[6:])
    raise ValueError("no JSON line in the output")


def _num(pattern: str, out: str, group: int = 1) -> float:
    m = re.search(pattern, out, re.MULTILINE)
    if not m:
        raise ValueError(f"not found in the output: {pattern}")
    return float(m.group(group).replace(",", ""))


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


# --- parsers: a bench's stdout -> table rows ------------------------------------------------


def parse_parse(out: str) -> list[Row]:
    n = int(_num(r"^parse: (\d+) real messages", out))
    bare = _num(r"^email\.message_from_bytes \(reference\)\s+([\d.]+)", out)
    jeeves = _num(r"^jeeves\.parsing\.parse_email\s+([\d.]+)", out)
    return [Row(f"Parse: messages/s ({n:,} real Enron messages)", _f(jeeves), f"{_f(bare)} (email.message_from_bytes)",
                f"{jeeves / bare:.2f}x", "– (price of decoding, HTML, quote split)", "info")]


def parse_classify(out: str) -> list[Row]:
    d = _json_line(out)
    j, b = d["jeeves"], d["baseline"]
    rows = [
        Row(f"Classify: median latency per message, ms ({d['n']:,} msgs, 1 at a time)", _f(j["median_ms"], 2),
            f"{_f(b['median_ms'], 2)} (TF-IDF 1-2 + LR baseline)", f"{j['median_ms'] / b['median_ms']:.1f}x",
            f"< {d['target_median_ms']:g} ms", _verdict(j["median_ms"] < d["target_median_ms"])),
        Row("Classify: median CPU time per message, ms (this thread; independent of the machine's load, "
            f"which was {d.get('loadavg', float('nan')):.1f})", _f(j["cpu_median_ms"], 2), _f(b["cpu_median_ms"], 2),
            f"{j['cpu_median_ms'] / b['cpu_median_ms']:.1f}x", f"< {d['target_median_ms']:g} ms",
            _verdict(j["cpu_median_ms"] < d["target_median_ms"])),
        Row("Classify: p99 latency per message, ms", _f(j["p99_ms"], 1), _f(b["p99_ms"], 1),
            f"{j['p99_ms'] / b['p99_ms']:.1f}x"),
        Row("Classify: messages/s, batches of 256", _f(j["batch_msg_per_s"]), _f(b["batch_msg_per_s"]),
            f"{j['batch_msg_per_s'] / b['batch_msg_per_s']:.3f}x"),
    ]
    total = sum(s["us_per_msg_batch"] for s in d["steps"])
    for s in d["steps"]:
        rows.append(Row(f"Classify: feature step `{s['step']}`, µs/msg (batch)", _f(s["us_per_msg_batch"]),
                        f"{_f(total)} (whole pipeline)", f"{100 * s['share']:.0f}% of it"))
    return rows


def parse_classifier_latency(out: str) -> list[Row]:
    med = _num(r"per-message latency over \d+ messages: median ([\d.]+) ms", out)
    p99 = _num(r"per-message latency over \d+ messages: median [\d.]+ ms, p99 ([\d.]+) ms", out)
    rate = _num(r"batch throughput: (\d+) messages/s", out)
    return [Row("Classify (bench_classifier.py --latency-only, corpus messages): median / p99 ms, batch msg/s",
                f"{med:.2f} / {p99:.2f}; {rate:,.0f}/s", "–", "–", "< 10 ms median", _verdict(med < 10))]


def parse_ingest(out: str) -> list[Row]:
    fetched = int(_num(r"^jeeves IMAPSource\.sync\(\):\s+(\d+) fetched", out))
    j_rate = _num(r"^jeeves IMAPSource\.sync\(\):.*= ([\d,]+) msg/s", out)
    mb = _num(r"^mbsync \(FSync yes, default\):.*= ([\d,]+) msg/s", out)
    mb_no = _num(r"^mbsync \(FSync no\):.*= ([\d,]+) msg/s", out)
    rss = _num(r"^jeeves peak RSS \(child ru_maxrss\): (\d+) MB", out)
    worker = _num(r"largest parse worker (\d+) MB", out)
    lat = _num(r"APPEND → stored with IDLE over \d+ appends: median (\d+) ms", out)
    lat99 = _num(r"APPEND → stored with IDLE over \d+ appends: median \d+ ms, p99 (\d+) ms", out)
    floor = _num(r"IDLE notification delay .*: median (\d+) ms", out)
    rss_marks = re.search(r"^jeeves RSS as the sync proceeds: (.*)$", out, re.MULTILINE)
    rows = [
        Row(f"Ingest: messages/s from a local Dovecot folder ({fetched:,} msgs)", _f(j_rate),
            f"{_f(mb)} (mbsync, FSync yes = default)", f"{j_rate / mb:.2f}x", "≥ 1.0x mbsync", _verdict(j_rate >= mb)),
        Row("Ingest: same, vs mbsync with FSync no", _f(j_rate), f"{_f(mb_no)} (mbsync, FSync no)",
            f"{j_rate / mb_no:.2f}x", "– (no fsync: a byte copy)", "info"),
        Row("Ingest: peak RSS while syncing, MB", f"{rss:.0f} (+ {worker:.0f} per parse worker)", "–", "–",
            "< 300 MB, flat", _verdict(rss < 300)),
        Row("Ingest: APPEND → stored with IDLE, median / p99 ms", f"{lat:.0f} / {lat99:.0f}",
            f"{floor:.0f} (Dovecot's own IDLE notice, bare client)", f"{lat / floor:.2f}x", "median < 1000 ms",
            _verdict(lat < 1000)),
    ]
    if rss_marks:
        rows[2].jeeves += f"; {rss_marks.group(1).split(';')[0].strip()} … {rss_marks.group(1).split(';')[-1].strip()}"
    return rows


def parse_e2e(out: str) -> list[Row]:
    d = _json_line(out)
    load = f"{d['rate_target']:g}/s for {d['messages'] / d['rate_target']:.0f} s"
    return [
        Row(f"End to end: APPEND → SMS at local Twilio, median s ({load}, {d['flagged']} texts)",
            _f(d["sms_median_s"], 3), f"{_f(d['exists_median_s'], 3)} (APPEND → IDLE EXISTS, bare client)",
            f"{d['sms_median_s'] / d['exists_median_s']:.2f}x", "< 1 s (issue 5's IDLE target)",
            _verdict(d["sms_median_s"] < d["target_median_s"])),
        Row("End to end: APPEND → SMS, p99 s", _f(d["sms_p99_s"], 3), _f(d["exists_p99_s"], 3),
            f"{d['sms_p99_s'] / d['exists_p99_s']:.2f}x"),
        Row("End to end: texts missing / duplicated / unexpected", f"{d['missing']} / {d['duplicates']} / {d['unexpected']}",
            f"{d['flagged']} flagged by the model", "–", "0 / 0 / 0",
            _verdict(d["missing"] == 0 and d["duplicates"] == 0 and d["unexpected"] == 0)),
        Row("End to end: load achieved, APPENDs/s", _f(d["rate_achieved"], 2), _f(d["rate_target"], 2),
            f"{d['rate_achieved'] / d['rate_target']:.2f}x", "≥ 0.98x", _verdict(d["rate_achieved"] >= 0.98 * d["rate_target"])),
    ]


def parse_growth(out: str) -> list[Row]:
    data: dict[str, list[tuple]] = {}
    for m in re.finditer(r"^(sqlite|postgresql)\s+(\d+)\s+([\d.]+)\s+\d+\s+(\d+)\s+([\d.]+)\s+\d+\s+(\d+)\s+(\d+)"
                         r"(?:\s+(\d+)\s+(\d+))?", out, re.MULTILINE):
        data.setdefault(m.group(1), []).append((int(m.group(2)), float(m.group(4)), float(m.group(6)),
                                                float(m.group(7)), m.group(8), m.group(9)))
    rows = []
    for dialect, points in data.items():
        points.sort()
        (n0, ing0, cls0, mem0, *_), (n1, ing1, cls1, mem1, st1, cl1) = points[0], points[-1]
        sizes = "/".join(f"{p[0] // 1000}k" for p in points)
        rows.append(Row(f"Growth {dialect}: ingest µs/msg at {n1:,} vs {n0:,} ({sizes}: "
                        + ", ".join(f"{p[1]:.0f}" for p in points) + ")",
                        _f(ing1), _f(ing0), f"{ing1 / ing0:.2f}x", "≤ 1.5x (linear)", _verdict(ing1 / ing0 <= 1.5)))
        rows.append(Row(f"Growth {dialect}: classify µs/msg at {n1:,} vs {n0:,} ("
                        + ", ".join(f"{p[2]:.0f}" for p in points) + ")",
                        _f(cls1), _f(cls0), f"{cls1 / cls0:.2f}x", "≤ 1.5x (linear)", _verdict(cls1 / cls0 <= 1.5)))
        rows.append(Row(f"Growth {dialect}: peak RSS MB at {n1:,} vs {n0:,} ("
                        + ", ".join(f"{p[3]:.0f}" for p in points) + ")",
                        _f(mem1), _f(mem0), f"{mem1 / mem0:.2f}x", "≤ 1.2x (flat)", _verdict(mem1 / mem0 <= 1.2)))
        if st1 is not None and (int(st1) != n1 or int(cl1) != n1):
            rows.append(Row(f"Growth {dialect}: stored / classified at {n1:,}", f"{st1} / {cl1}", str(n1), "–",
                            "all", "MISS"))
    failed = re.findall(r"^(\w+) (\d+): child failed", out, re.MULTILINE)
    for dialect, n in failed:
        rows.append(Row(f"Growth {dialect}: {int(n):,} messages", "child failed (see log)", "–", "–", "–", "FAIL"))
    if not rows:
        raise ValueError("no growth rows in the output")
    return rows


def parse_train(out: str) -> list[Row]:
    d = _json_line(out)
    rows = []
    for r in d["rows"]:
        label = "all" if r["size"] == "all" else f"{r['n']:,}"
        is_all = r["size"] == "all"
        rows.append(Row(f"Train: `train()` seconds, {label} messages ({r['n']:,}, {r['positives']} positive)",
                        _f(r["train_s"], 1), f"{_f(r['baseline_fit_s'], 2)} (one baseline fit)",
                        f"{r['train_s'] / r['baseline_fit_s']:.0f}x", "< 600 s" if is_all else "–",
                        _verdict(r["train_s"] < 600) if is_all else "info"))
        rows.append(Row(f"Train: peak RSS MB, {label} messages (main process; main + joblib workers)",
                        f"{r['maxrss_mb']:.0f}; {r['tree_peak_mb']:.0f}", f"{r['rss_after_corpus_mb']:.0f} (corpus loaded)",
                        f"{r['maxrss_mb'] / r['rss_after_corpus_mb']:.2f}x"))
    for note in d.get("notes", []):
        rows.append(Row(f"Train: {note}", "–"))
    return rows


def benches(logs: Path) -> list[Bench]:
    b = "bench/"
    return [
        Bench("parse", "Parse", [PY, b + "bench_parse.py", "20000"], [PY, b + "bench_parse.py", "2000"], 1800, 300,
              parse_parse),
        Bench("classify", "Classify (cost, latency, feature steps)",
              [PY, b + "bench_classify_cost.py", "--n", "1000"], [PY, b + "bench_classify_cost.py", "--n", "300"],
              1800, 600, parse_classify),
        Bench("classifier_latency", "Classify (the ML engineer's bench_classifier.py --latency-only)",
              [PY, b + "bench_classifier.py", "--latency-only"], [PY, b + "bench_classifier.py", "--latency-only"],
              900, 600, parse_classifier_latency),
        Bench("ingest", "Ingest (Dovecot → Jeeves vs mbsync)",
              [PY, b + "bench_ingest.py", "--count", "20000", "--appends", "50"],
              [PY, b + "bench_ingest.py", "--count", "2000", "--appends", "10"], 3600, 600, parse_ingest),
        Bench("e2e", "End to end (APPEND → SMS under load)",
              [PY, b + "bench_e2e.py", "--rate", "10", "--seconds", "120"],
              [PY, b + "bench_e2e.py", "--rate", "10", "--seconds", "20", "--drain", "30"], 1200, 600, parse_e2e),
        Bench("growth", "Growth (ingest + classify, SQLite and PostgreSQL)",
              [PY, b + "bench_growth.py", "--sizes", "10000,50000,100000"],
              [PY, b + "bench_growth.py", "--sizes", "2000,5000"], 4 * 3600, 900, parse_growth),
        Bench("train", "Train (time and memory vs corpus size)",
              [PY, b + "bench_train.py", "--sizes", "1000,5000,all"],
              [PY, b + "bench_train.py", "--sizes", "1000", "--quick-grid"], 3600, 600, parse_train),
    ]


# --- machine and versions ---------------------------------------------------------------------


def _run(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except Exception:  # noqa: BLE001
        return "n/a"


def machine() -> dict[str, str]:
    mem = "n/a"
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f"{kb / 2**20:.0f} GiB"
    except Exception:  # noqa: BLE001
        pass
    cpu = "n/a"
    try:
        cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text()).group(1).strip()
    except Exception:  # noqa: BLE001
        pass
    return {"cores": str(os.cpu_count()), "ram": mem, "cpu": cpu, "load": "%.2f %.2f %.2f" % os.getloadavg(),
            "kernel": platform.release()}


def versions() -> dict[str, str]:
    code = ("import json, sklearn, numpy, scipy, sqlalchemy, nltk, jeeves; print(json.dumps({'scikit-learn': "
            "sklearn.__version__, 'numpy': numpy.__version__, 'scipy': scipy.__version__, 'SQLAlchemy': "
            "sqlalchemy.__version__, 'nltk': nltk.__version__, 'jeeves': getattr(jeeves, '__version__', '?')}))")
    v = {"python": platform.python_version()}
    try:
        v.update(json.loads(subprocess.run([PY, "-c", code], capture_output=True, text=True, cwd=REPO).stdout))
    except Exception:  # noqa: BLE001
        pass
    v["dovecot"] = _run(["/usr/sbin/dovecot", "--version"])
    v["mbsync"] = _run(["mbsync", "--version"])
    pg = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    v["postgresql"] = _run([str(pg[-1]), "--version"]) if pg else "n/a"
    commit = _run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "jeeves"], capture_output=True,
                           text=True).stdout.split("\n")
    changed = [line[3:] for line in dirty if line.strip()]
    v["git"] = commit + (f" + uncommitted changes in {', '.join(changed)}" if changed else "")
    try:
        v["model"] = (REPO / "models" / "CURRENT").read_text().strip()
    except OSError:
        v["model"] = "n/a"
    return v


# --- table ------------------------------------------------------------------------------------


HEAD = ("figure", "Jeeves", "reference", "ratio", "target", "verdict")


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEAD) + " |", "|" + "|".join(["---"] * len(HEAD)) + "|"]
    for r in rows:
        cells = [r.figure, r.jeeves, r.reference, r.ratio, r.target, r.verdict]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def text_table(rows: list[Row]) -> str:
    cells = [HEAD] + [(r.figure, r.jeeves, r.reference, r.ratio, r.target, r.verdict) for r in rows]
    widths = [min(max(len(c[i]) for c in cells), 80) for i in range(len(HEAD))]
    out = []
    for k, c in enumerate(cells):
        out.append("  ".join(c[i][:80].ljust(widths[i]) for i in range(len(HEAD))))
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a few minutes in all")
    parser.add_argument("--only", help="comma-separated bench names")
    parser.add_argument("--skip", help="comma-separated bench names")
    parser.add_argument("--from-log", action="append", default=[], metavar="NAME=PATH",
                        help="use the saved output of a bench (e.g. a long run done earlier) instead of running it")
    parser.add_argument("--logs", type=Path, help="where each bench's output is kept (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "RESULTS.md")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--note", action="append", default=[], help="a line to add under the table in RESULTS.md")
    args = parser.parse_args(argv)

    logs = args.logs or Path(tempfile.mkdtemp(prefix="jeeves-bench-logs-"))
    logs.mkdir(parents=True, exist_ok=True)
    reuse = dict(item.split("=", 1) for item in args.from_log)
    selected = benches(logs)
    names = [b.name for b in selected]
    for opt in (args.only, args.skip):
        for name in (opt or "").split(","):
            if name and name not in names:
                parser.error(f"unknown bench {name!r}; known: {', '.join(names)}")
    if args.only:
        keep = args.only.split(",")
        selected = [b for b in selected if b.name in keep]
    if args.skip:
        drop = args.skip.split(",")
        selected = [b for b in selected if b.name not in drop]

    started = datetime.now(timezone.utc)
    host = machine()
    print(f"jeeves benchmarks ({'quick' if args.quick else 'full'}), {started:%Y-%m-%d %H:%M} UTC, "
          f"{host['cores']} cores, {host['ram']}, load {host['load']}; logs in {logs}", flush=True)
    all_rows: list[Row] = []
    details: list[tuple[Bench, str, str]] = []
    for bench in selected:
        cmd = bench.quick if args.quick else bench.full
        timeout = bench.timeout_quick if args.quick else bench.timeout_full
        log = logs / f"{bench.name}.log"
        load_before = "%.2f" % os.getloadavg()[0]
        t = time.monotonic()
        begun = datetime.now(timezone.utc)
        status = "ok"
        if bench.name in reuse:
            out = Path(reuse[bench.name]).read_text(errors="replace")
            log.write_text(out)
            status = f"reused from {reuse[bench.name]}"
            print(f"\n== {bench.name}: {status}", flush=True)
        else:
            print(f"\n== {bench.name}: {' '.join(c if c != PY else 'python' for c in cmd)}", flush=True)
            try:
                proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
                out = proc.stdout + (f"\n[stderr]\n{proc.stderr[-4000:]}" if proc.returncode else "")
                if proc.returncode:
                    status = f"exit {proc.returncode}"
            except subprocess.TimeoutExpired as exc:
                out = (exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or "")
                status = f"timed out after {timeout:.0f} s"
            out = (f"[run_all] {bench.name} started {begun:%Y-%m-%d %H:%M:%S} UTC, load average {load_before}\n"
                   + out.rstrip("\n") + f"\n[run_all] ended {datetime.now(timezone.utc):%H:%M:%S} UTC after "
                   f"{time.monotonic() - t:.0f} s ({status}), load average {os.getloadavg()[0]:.2f}\n")
            log.write_text(out)
        elapsed = time.monotonic() - t
        try:
            rows = bench.parse(out)
        except Exception as exc:  # noqa: BLE001
            rows = [Row(f"{bench.title}", f"no figures ({status}; {type(exc).__name__}: {exc})", "–", "–", "–", "FAIL")]
        if status != "ok" and not status.startswith("reused") and all(r.verdict != "FAIL" for r in rows):
            rows.append(Row(f"{bench.title}: bench ended with {status}", "see log", "–", "–", "–", "FAIL"))
        all_rows.extend(rows)
        details.append((bench, status + (f", {elapsed:.0f} s" if not status.startswith("reused") else ""),
                        out.replace("\nJSON: ", "\n[json] ")))
        print(text_table(rows), flush=True)
        print(f"({status}; {elapsed:.0f} s; load average before {load_before}, after {os.getloadavg()[0]:.2f})",
              flush=True)

    finished = datetime.now(timezone.utc)
    host_end = machine()
    vers = versions()
    print("\n" + text_table(all_rows))
    if args.no_write:
        return 0
    verdicts = [r.verdict for r in all_rows]
    summary = ", ".join(f"{verdicts.count(v)} {v}" for v in ("PASS", "MISS", "FAIL", "info") if v in verdicts)
    md = [
        "# Benchmark results",
        "",
        f"`.venv/bin/python bench/run_all.py{' --quick' if args.quick else ''}` — "
        f"{'quick sizes' if args.quick else 'full sizes (issue #8)'}; {summary}.",
        "",
        f"- Date: {started:%Y-%m-%d %H:%M} – {finished:%H:%M} UTC"
        + (" (table assembled then; benches marked *reused* ran earlier, their logs below give the times)"
           if reuse else ""),
        f"- Machine: {host['cores']} cores ({host['cpu']}), {host['ram']} RAM, Linux {host['kernel']}; "
        f"load average at start {host['load']}, at end {host_end['load']} (the machine is shared: other "
        "engineers' tests and training ran at the same time; compare ratios, not absolute figures)",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()),
        "",
        markdown_table(all_rows),
        "",
        "Reference = the same measurement, in the same run, of the yardstick named in the cell; ratio = "
        "Jeeves / reference. Verdict `info` = the issue sets no target for that figure. See "
        "[README.md](README.md) for what each bench does.",
        "",
        *[f"- {note}" for note in args.note],
        "",
        "## Output of each bench",
        "",
    ]
    for bench, status, out in details:
        md += [f"### {bench.title} — `{bench.name}` ({status})", "", "```", out.strip(), "```", ""]
    args.out.write_text("\n".join(md) + "\n")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
