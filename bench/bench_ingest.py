"""IMAP ingest benchmark: Jeeves vs mbsync on one Dovecot folder, plus IDLE push latency.

Prints figures; it is not a test. Run from the repository root::

    .venv/bin/python bench/bench_ingest.py [--mbox PATH] [--count 20000] [--appends 50]

What it does, in one run, against a private Dovecot on loopback (the test fixture's server):

1. fills INBOX of a fresh user with ``--count`` messages from ``--mbox``. The unlabelled Enron
   pool is not shipped in the repository; the default path is
   ``../shared/data/enron-unlabeled/messages.mbox`` relative to the repository root, and any
   mbox works (messages are reused round-robin when the file holds fewer than ``--count``);
2. ``IMAPSource.sync()`` into a fresh SQLite store, in a child process so its peak RSS
   (``ru_maxrss``) is its own; RSS is also sampled while the sync runs, to show it stays flat
   as the number of fetched messages grows;
3. ``mbsync`` (isync) pulling the same folder into a fresh maildir, default settings and again
   with ``FSync no`` (Jeeves' SQLite runs with ``synchronous=NORMAL``);
4. APPEND → stored latency with the watcher in IDLE: ``--appends`` appends, one at a time.
"""

from __future__ import annotations

import argparse
import itertools
import json
import mailbox
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fixtures_dovecot import DovecotServer, start_dovecot  # noqa: E402  (the bench reuses the fixture's server)

DEFAULT_MBOX = (REPO / ".." / "shared" / "data" / "enron-unlabeled" / "messages.mbox").resolve()
USER = "bench"
PASSWORD = "bench-pw"


def _messages(path: Path, count: int):
    box = mailbox.mbox(path, create=False)
    keys = list(box.iterkeys())
    if not keys:
        raise SystemExit(f"{path} holds no messages")
    for i, key in enumerate(itertools.islice(itertools.cycle(keys), count)):
        raw = box.get_bytes(key)
        if i >= len(keys):  # reused: make it a distinct message
            raw = f"X-Bench-Copy: {i}\n".encode() + raw
        yield raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def fill_maildir(server: DovecotServer, raws) -> int:
    """Write messages straight into the user's INBOX maildir: APPENDing 20,000 takes minutes."""
    with server.client(USER) as client:
        client.select_folder("INBOX")  # creates the maildir
    cur = server.base / "mail" / USER / "cur"
    n = 0
    stamp = int(time.time())
    for n, raw in enumerate(raws, 1):
        path = cur / f"{stamp}.M{n}P{os.getpid()}.bench,S={len(raw)}:2,"
        path.write_bytes(raw)
        os.chown(path, server.uid, server.gid)
    return n


def warm_up(server: DovecotServer) -> None:
    """Let Dovecot index the folder and the page cache hold it, so neither tool pays for it."""
    with server.client(USER) as client:
        client.select_folder("INBOX", readonly=True)
        uids = client.search(["ALL"])
        for i in range(0, len(uids), 500):
            client.fetch(uids[i:i + 500], ["RFC822.SIZE", "FLAGS", "INTERNALDATE", "BODY.PEEK[]"])


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child_sync(args: argparse.Namespace) -> None:
    """Runs in a child process: one full sync, then prints a JSON line of figures."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    from pydantic import SecretStr

    from jeeves.config import AccountSettings
    from jeeves.sources.imap import IMAPSource
    from jeeves.storage import Store

    store = Store(f"sqlite:///{args.db}")
    account = AccountSettings(
        name="bench", host="127.0.0.1", port=args.port, tls="none", username=USER,
        password=SecretStr(PASSWORD), first_sync="all", fetch_batch=args.batch,
    )
    samples: list[tuple[int, float]] = []
    done = threading.Event()
    counted = {"n": 0}
    real = store.store_batch

    def counting(messages, **kw):
        refs = real(messages, **kw)
        counted["n"] += len(messages)
        return refs

    store.store_batch = counting  # type: ignore[method-assign]

    def sample() -> None:
        while not done.wait(0.25):
            samples.append((counted["n"], _rss_mb()))

    rss_before = _rss_mb()
    threading.Thread(target=sample, daemon=True).start()
    start = time.perf_counter()
    with IMAPSource(account, store) as source:
        report = source.sync()
    elapsed = time.perf_counter() - start
    done.set()
    print(json.dumps({
        "fetched": report.fetched, "stored": report.stored, "errors": report.errors,
        "seconds": elapsed, "rss_before_mb": rss_before,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "samples": samples,
        "workers_maxrss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }))


def run_jeeves(server: DovecotServer, work: Path, batch: int) -> dict:
    db = work / "jeeves.db"
    out = subprocess.run(
        [sys.executable, __file__, "--child-sync", "--port", str(server.port), "--db", str(db), "--batch", str(batch)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_mbsync(server: DovecotServer, work: Path, fsync: bool) -> float:
    maildir = work / f"mbsync-{'fsync' if fsync else 'nofsync'}"
    if maildir.exists():
        shutil.rmtree(maildir)
    maildir.mkdir()
    rc = work / "mbsyncrc"
    rc.write_text(f"""FSync {'yes' if fsync else 'no'}

IMAPAccount bench
Host 127.0.0.1
Port {server.port}
User {USER}
Pass {PASSWORD}
SSLType None
AuthMechs LOGIN

IMAPStore bench-remote
Account bench

MaildirStore bench-local
Path {maildir}/
Inbox {maildir}/INBOX

Channel bench
Far :bench-remote:
Near :bench-local:
Patterns INBOX
Create Near
Sync Pull
SyncState *
""")
    start = time.perf_counter()
    result = subprocess.run(["mbsync", "-q", "-c", str(rc), "bench"], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"mbsync failed: {result.stderr.strip()}")
    got = len(os.listdir(maildir / "INBOX" / "cur")) + len(os.listdir(maildir / "INBOX" / "new"))
    return elapsed, got


def server_idle_latency(server: DovecotServer, appends: int) -> list[float]:
    """Dovecot's own APPEND → untagged EXISTS delay seen by a bare IDLE client: the floor."""
    out = []
    watcher = server.client(USER)
    writer = server.client(USER)
    try:
        watcher.select_folder("Latency", readonly=True)
        watcher.idle()
        time.sleep(0.3)
        for i in range(appends):
            start = time.perf_counter()
            writer.append("Latency", f"Subject: floor {i}\r\n\r\nx\r\n".encode())
            while not any(r[1:2] == (b"EXISTS",) for r in watcher.idle_check(timeout=5)):
                pass
            out.append(time.perf_counter() - start)
        watcher.idle_done()
    finally:
        watcher.logout()
        writer.logout()
    return out


def idle_latency(server: DovecotServer, work: Path, appends: int) -> list[float]:
    from pydantic import SecretStr

    from jeeves.config import AccountSettings
    from jeeves.sources.imap import IMAPSource
    from jeeves.storage import Store

    store = Store(f"sqlite:///{work / 'latency.db'}")
    account = AccountSettings(
        name="latency", host="127.0.0.1", port=server.port, tls="none", username=USER,
        password=SecretStr(PASSWORD), first_sync="new", poll_interval=600, folders=["Latency"],
    )
    server.create_folder(USER, "Latency")
    stored = threading.Event()
    stop = threading.Event()
    source = IMAPSource(account, store)
    thread = threading.Thread(target=source.watch, args=(stop, lambda report: stored.set()), daemon=True)
    thread.start()
    while store.folder_state("latency", "Latency").uidvalidity is None:
        time.sleep(0.05)
    time.sleep(0.5)
    latencies = []
    client = server.client(USER)
    try:
        for i in range(appends):
            raw = (f"From: x@example.com\r\nSubject: latency {i}\r\nMessage-ID: <lat{i}.{time.time_ns()}@bench>\r\n\r\n"
                   f"Lunch tomorrow? Where shall we meet? {i}\r\n").encode()
            stored.clear()
            start = time.perf_counter()
            client.append("Latency", raw)
            if not stored.wait(30):
                raise SystemExit(f"append {i} was not stored within 30 s")
            latencies.append(time.perf_counter() - start)
            time.sleep(0.05)
    finally:
        client.logout()
        stop.set()
        thread.join(10)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mbox", type=Path, default=DEFAULT_MBOX)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=200, help="fetch_batch for Jeeves")
    parser.add_argument("--appends", type=int, default=50)
    parser.add_argument("--child-sync", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_sync:
        child_sync(args)
        return
    if not args.mbox.exists():
        raise SystemExit(f"{args.mbox} not found: pass --mbox PATH (any mbox file)")

    work = Path(tempfile.mkdtemp(prefix="jeeves-bench-"))
    work.chmod(0o755)  # Dovecot's mail user must reach the maildir below it
    server = start_dovecot(work / "dovecot", users={USER: PASSWORD})
    try:
        t = time.perf_counter()
        n = fill_maildir(server, _messages(args.mbox, args.count))
        fill = time.perf_counter() - t
        t = time.perf_counter()
        warm_up(server)
        print(f"server warm-up (index + page cache, one full read) {time.perf_counter() - t:.1f} s")
        total_bytes = sum((p.stat().st_size for p in (server.base / "mail" / USER).rglob("*") if p.is_file()))
        print(f"filled INBOX with {n} messages from {args.mbox} in {fill:.1f} s ({total_bytes / 2**20:.0f} MiB on disk)")

        j = run_jeeves(server, work, args.batch)
        print(f"jeeves IMAPSource.sync():    {j['fetched']} fetched, {j['stored']} stored in {j['seconds']:.2f} s "
              f"= {j['fetched'] / j['seconds']:,.0f} msg/s (errors: {j['errors'] or 'none'})")
        print(f"jeeves peak RSS (child ru_maxrss): {j['maxrss_mb']:.0f} MB (before sync {j['rss_before_mb']:.0f} MB); "
              f"largest parse worker {j['workers_maxrss_mb']:.0f} MB")
        mb_time, mb_got = run_mbsync(server, work, fsync=True)
        print(f"mbsync (FSync yes, default): {mb_got} messages in {mb_time:.2f} s = {mb_got / mb_time:,.0f} msg/s")
        mb2_time, mb2_got = run_mbsync(server, work, fsync=False)
        print(f"mbsync (FSync no):           {mb2_got} messages in {mb2_time:.2f} s = {mb2_got / mb2_time:,.0f} msg/s")

        samples = j["samples"]
        if samples:
            marks = []
            for frac in (0.1, 0.25, 0.5, 0.75, 1.0):
                target = frac * j["fetched"]
                hit = next((s for s in samples if s[0] >= target), samples[-1])
                marks.append(f"{hit[0]:>6} msgs: {hit[1]:.0f} MB")
            print("jeeves RSS as the sync proceeds: " + "; ".join(marks))
        rate = j["fetched"] / j["seconds"]
        print(f"ratio jeeves / mbsync: {rate / (mb_got / mb_time):.2f}x vs FSync yes, "
              f"{rate / (mb2_got / mb2_time):.2f}x vs FSync no")

        lat = sorted(idle_latency(server, work, args.appends))
        p99 = lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))]
        print(f"APPEND → stored with IDLE over {len(lat)} appends: median {statistics.median(lat) * 1000:.0f} ms, "
              f"p99 {p99 * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms")
        floor = sorted(server_idle_latency(server, 10))
        print(f"  of which Dovecot's own IDLE notification delay (bare client, 10 appends): median "
              f"{statistics.median(floor) * 1000:.0f} ms")
    finally:
        server.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
