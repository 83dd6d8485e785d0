"""Helpers shared by the benchmarks: where the message pools are, and peak-memory probes."""

from __future__ import annotations

import mailbox
import resource
from itertools import cycle, islice
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parent.parent
#: The 25,000-message unlabelled Enron pool; it is not shipped in the repo (64 MB).
UNLABELLED = REPO.parent / "shared" / "data" / "enron-unlabeled" / "messages.mbox"
SAMPLE = REPO / "data" / "sample" / "sample.mbox"


def message_pool(n: int, path: Path | None = None) -> list[bytes]:
    """``n`` real messages as raw bytes, repeating the pool when ``n`` exceeds it."""
    source = path or (UNLABELLED if UNLABELLED.exists() else SAMPLE)
    box = mailbox.mbox(source, create=False)
    raws = [box.get_bytes(k) for k in islice(box.iterkeys(), n)]
    return list(islice(cycle(raws), n))


def unique_messages(n: int, path: Path | None = None) -> Iterator[bytes]:
    """``n`` distinct messages: the pool, repeated with a distinguishing header added."""
    pool = message_pool(min(n, 25_000), path)
    for i in range(n):
        raw = pool[i % len(pool)]
        yield raw if i < len(pool) else b"X-Jeeves-Bench-Copy: %d\n" % i + raw


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _children_of() -> dict[int, list[int]]:
    import os

    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    return children


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants (e.g. joblib/loky workers), in MB."""
    import os

    children = _children_of()
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, ()))
        try:
            with open(f"/proc/{p}/statm") as handle:
                total += int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            pass
    return total / 2**20


class TreeRssSampler:
    """Samples :func:`tree_rss_mb` in a thread; ``peak`` is the largest sample."""

    def __init__(self, pid: int, interval: float = 0.2):
        import threading

        self.pid, self.interval, self.peak = pid, interval, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_mb(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> "TreeRssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
