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
