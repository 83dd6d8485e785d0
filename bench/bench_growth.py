"""Growth: time and peak memory to ingest and classify N messages, on SQLite and PostgreSQL.

    python bench/bench_growth.py [--sizes 10000,50000,100000] [--dialects sqlite,postgresql]

Each (dialect, size) runs in a fresh child process, so its peak RSS is its own. The messages
are real Enron mail (the 25,000-message pool, repeated with a distinguishing header beyond
that). Cost should grow linearly (flat µs/message) and memory stay flat.
"""

from __future__ import annotations

import argparse
import json
import mailbox
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def child(dialect_url: str, mbox_path: str) -> None:
    """Ingest + classify everything in ``mbox_path`` into ``dialect_url``; print JSON figures."""
    from bench.common import peak_rss_mb
    from jeeves.config import Settings
    from jeeves.service import Jeeves

    settings = Settings(database={"url": dialect_url}, notify={"channel": "console", "dry_run": True})
    app = Jeeves(settings)
    app.model  # load outside the timed region
    start = time.perf_counter()
    report = app.import_path(mbox_path, notify=False)
    ingested = time.perf_counter()
    classified = app.classify()
    done = time.perf_counter()
    print(json.dumps({
        "stored": report.stored,
        "classified": classified.classified,
        "ingest_s": ingested - start,
        "classify_s": done - ingested,
        "peak_rss_mb": peak_rss_mb(),
        "children_peak_rss_mb": __import__("resource").getrusage(__import__("resource").RUSAGE_CHILDREN).ru_maxrss / 1024,
    }))


def write_mbox(path: Path, n: int) -> None:
    from bench.common import unique_messages

    box = mailbox.mbox(path)
    box.lock()
    for raw in unique_messages(n):
        box.add(raw)
    box.flush()
    box.unlock()
    box.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,50000,100000")
    parser.add_argument("--dialects", default="sqlite,postgresql")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    dialects = args.dialects.split(",")

    workdir = Path(tempfile.mkdtemp(prefix="jeeves-growth-"))
    pg = None
    if "postgresql" in dialects:
        from tests.fixtures_postgres import PostgresServer, _pg_bindir, free_port
        import os
        import shutil

        datadir = workdir / "pg"
        datadir.mkdir()
        run_as = "postgres" if os.geteuid() == 0 else None
        if run_as:
            os.chmod(workdir, 0o755)
            shutil.chown(datadir, run_as, run_as)
        pg = PostgresServer(_pg_bindir(), datadir, free_port(), run_as)
        subprocess.run(pg._cmd("initdb", "-D", str(datadir), "-U", "jeeves", "--auth=trust", "-E", "UTF8", "--no-sync"),
                       check=True, capture_output=True)
        pg.start()

    rows = []
    try:
        for n in sizes:
            mbox_path = workdir / f"m{n}.mbox"
            write_mbox(mbox_path, n)
            for dialect in dialects:
                url = f"sqlite:///{workdir / f'g{n}.db'}" if dialect == "sqlite" else pg.create_database(f"g{n}")
                out = subprocess.run([sys.executable, __file__, "--child", url, str(mbox_path)],
                                     capture_output=True, text=True, cwd=REPO)
                if out.returncode != 0:
                    print(f"{dialect} {n}: child failed (exit {out.returncode}):\n{out.stderr[-3000:]}", flush=True)
                    continue
                figures = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append((dialect, n, figures))
                print_row(dialect, n, figures, flush=True)
            mbox_path.unlink()
            for db in workdir.glob(f"g{n}.db*"):
                db.unlink()
    finally:
        if pg is not None:
            pg.stop("immediate")
        shutil.rmtree(workdir, ignore_errors=True)


def print_row(dialect: str, n: int, f: dict, flush: bool = False) -> None:
    if not hasattr(print_row, "header"):
        print(f"{'dialect':11} {'messages':>9} {'ingest s':>9} {'msg/s':>7} {'µs/msg':>7} {'classify s':>11} {'msg/s':>7} {'µs/msg':>7} {'peak MB':>8} {'stored':>8} {'classified':>10}")
        print_row.header = True
    print(
        f"{dialect:11} {n:9d} {f['ingest_s']:9.1f} {n / f['ingest_s']:7.0f} {1e6 * f['ingest_s'] / n:7.0f} "
        f"{f['classify_s']:11.1f} {n / f['classify_s']:7.0f} {1e6 * f['classify_s'] / n:7.0f} {f['peak_rss_mb']:8.0f} {f['stored']:8d} {f['classified']:10d}",
        flush=flush,
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
