"""Backlogs: a long run of raw messages parsed in worker processes and stored by a writer thread.

Every source reads mail in groups (an IMAP fetch, a slice of an mbox), parses each group and
stores it with its sync position in one transaction. That stays the rule here; a backlog of at
least ``PARALLEL_PARSE_MIN`` messages (a first sync, a rescan, an archive import) only overlaps
the three steps:

- **Parsing** costs more than fetching and storing together (~500 msg/s per core), so a group is
  parsed in worker processes while the next one is read: at most two groups are in flight and
  memory stays bounded. Workers are spawned (not forked: the daemon has threads) for the backlog
  and stopped after it; when they cannot start, parsing falls back to this process for good.
- **Storing** happens in one writer thread while the next group is read and parsed (SQLite and
  psycopg2 release the GIL, and storing was half of a long sync's time). One group at most is in
  the writer and groups are stored in order, so a failure still leaves a safe position behind:
  the writer's error is raised at the next hand-off and reading stops.

Small syncs (the daemon's everyday case) do all of it inline, in order, with no extra thread.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Generic, Iterable, Iterator, Sequence, TypeVar

from jeeves.parsing import ParsedEmail, parse_email
from jeeves.sources.parse_worker import exit_with_parent, parse_many

log = logging.getLogger(__name__)

#: Backlogs at least this long are parsed in worker processes (spawning them costs ~0.3 s) and
#: stored by a writer thread.
PARALLEL_PARSE_MIN = 1000

G = TypeVar("G")
R = TypeVar("R")


@dataclass
class Fetched:
    """One raw message as a source read it, with what the source knows beside the bytes.

    ``uid`` is the IMAP UID, or the message's position in an mbox; the other fields are what an
    IMAP server reports (a local file leaves them at their defaults).
    """

    raw: bytes
    uid: int | None = None
    #: Size on the server; larger than ``len(raw)`` when the body was cut at the size limit.
    size: int | None = None
    truncated: bool = False
    flags: tuple[str, ...] = ()
    internal_date: datetime | None = None
    gmail_msgid: int | None = None


def is_backlog(count: int) -> bool:
    """Whether ``count`` messages are worth worker processes and a writer thread."""
    return count >= PARALLEL_PARSE_MIN


def default_parse_workers() -> int:
    # Two workers: more buy little (storing becomes the limit) and cost ~85 MB each.
    return min(2, os.cpu_count() or 1)


def _raws(group: Sequence[Fetched]) -> list[bytes]:
    return [item.raw for item in group]


class ParsePool:
    """Parse worker processes for one backlog at a time; one per source, not thread-safe."""

    def __init__(self, workers: int | None = None, *, label: str = "source") -> None:
        self.workers = default_parse_workers() if workers is None else workers
        self.label = label
        self.pool: ProcessPoolExecutor | None = None  # only while a backlog is being parsed

    def parsed(self, groups: Iterable[G], *, count: int,
               raws: Callable[[G], list[bytes]] = _raws) -> Iterator[tuple[G, list[ParsedEmail]]]:  # type: ignore[assignment]
        """Each group with its parsed messages, in order; ``count`` is the backlog's length."""
        if not is_backlog(count) or self.workers < 2:
            for group in groups:
                yield group, [parse_email(raw) for raw in raws(group)]
            return
        pending: tuple[G, list[bytes], list[Future] | None] | None = None
        try:
            for group in groups:
                group_raws = raws(group)
                futures = self._submit(group_raws)
                if pending is not None:
                    yield pending[0], self._collect(pending[1], pending[2])
                pending = (group, group_raws, futures)
            if pending is not None:
                group, group_raws, futures = pending
                pending = None
                yield group, self._collect(group_raws, futures)
        finally:
            # Backlogs are rare (first sync, rescan, import): give the workers' memory back
            # (shutting the pool down also cancels the group still queued).
            self.close(wait=True)

    def close(self, *, wait: bool = False) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=True)

    def _submit(self, raws: list[bytes]) -> list[Future] | None:
        if self.workers < 2:
            return None
        if self.pool is None:
            # spawn, not fork: the daemon has threads, and forking them is unsafe.
            self.pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=exit_with_parent, initargs=(os.getpid(),))
        step = max(1, -(-len(raws) // (2 * self.workers)))
        try:
            return [self.pool.submit(parse_many, raws[i:i + step]) for i in range(0, len(raws), step)]
        except (BrokenProcessPool, RuntimeError) as exc:
            self._disable(exc)
            return None

    def _collect(self, raws: list[bytes], futures: list[Future] | None) -> list[ParsedEmail]:
        if futures is not None:
            try:
                return [parsed for future in futures for parsed in future.result()]
            except (BrokenProcessPool, CancelledError) as exc:
                self._disable(exc)
        return [parse_email(raw) for raw in raws]

    def _disable(self, exc: BaseException) -> None:
        # E.g. a script without an ``if __name__ == "__main__"`` guard cannot spawn workers.
        log.warning("%s: parse workers unavailable (%s); parsing in-process", self.label, exc, extra={"source": self.label})
        self.workers = 0
        self.close()


class Writer(Generic[R]):
    """Stores groups in order: inline for a small sync, in one thread for a backlog.

    ``store(fn, ...)`` returns the results that are final now: for a backlog the previous
    group's (raising its error, so reading stops), inline the group's own. ``drain`` returns the
    last one. Leaving the ``with`` block waits for a group being stored: never abandoned.
    """

    def __init__(self, count: int, *, name: str) -> None:
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"jeeves-store-{name}") if is_backlog(count) else None
        self._pending: Future | None = None

    def store(self, fn: Callable[..., R], *args: object) -> list[R]:
        done = self.drain()
        if self._thread is None:
            return done + [fn(*args)]
        self._pending = self._thread.submit(fn, *args)
        return done

    def drain(self) -> list[R]:
        pending, self._pending = self._pending, None
        return [pending.result()] if pending is not None else []

    def __enter__(self) -> "Writer[R]":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=True)
