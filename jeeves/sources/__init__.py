"""Mail sources: where raw messages come from (IMAP accounts, local mbox/maildir files).

A source reads raw bytes, parses them (``jeeves.parsing``, through ``jeeves.sources.backlog``)
and hands ``NewMessage`` batches to ``Store.store_batch`` together with its sync position, so
storage and sync state move together. Every source is a ``Source``: ``sync()`` returns a
``SyncReport``; one that can push (IMAP IDLE) also has ``watch()``.

Every sync, by ``jeeves run --once`` and by the daemon alike, goes through ``guarded_sync``,
which applies the one error policy:

- **A source's own failure** (``SourceError``: a refused login, a lost connection, a TLS
  failure, a missing or unreadable mail file, a folder that does not exist) belongs to that
  source. The source has recorded it for ``jeeves status``; it is logged and returned in
  ``SyncReport.errors`` (and ``failure``), and the other sources go on.
- **A database failure** (``StoreError``, outage or full disk) belongs to everyone: it is
  raised. ``run --once`` fails the pass (the next run retries it); in the daemon the mail-file
  job logs it once per outage and retries on its interval, and an IMAP watcher backs off for at
  most ``imap.watch.STORE_BACKOFF_SECONDS`` (the server side is fine). Nothing is lost either
  way: a sync position only moves in the transaction that stores the messages it covers.
- **A bad message** (unreadable mbox entry, a body expunged mid-fetch, broken MIME) is skipped
  with a warning or stored as well as it parses; it never fails the sync.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Callable, Protocol, runtime_checkable

from jeeves.errors import JeevesError, StoreError

log = logging.getLogger(__name__)


@dataclass
class SyncReport:
    """What one sync of one source did."""

    source: str
    fetched: int = 0  # messages read from the source
    stored: int = 0  # of those, new to the database
    errors: list[str] = field(default_factory=list)
    #: The source-wide failure that ended this sync early, if any (see ``guarded_sync``).
    failure: JeevesError | None = None

    def add(self, fetched: int, stored: int) -> None:
        self.fetched += fetched
        self.stored += stored

    def merge(self, other: "SyncReport") -> None:
        self.fetched += other.fetched
        self.stored += other.stored
        self.errors.extend(other.errors)


@runtime_checkable
class Source(Protocol):
    """Anything mail comes from. ``sync`` stores what is new and says what it did; it raises
    ``SourceError`` for its own failures (after recording them) and ``StoreError`` for the
    database's. ``close`` releases connections and workers."""

    name: str

    def sync(self) -> SyncReport: ...

    def close(self) -> None: ...


@runtime_checkable
class WatchableSource(Source, Protocol):
    """A source that can push: ``watch`` keeps it synced until ``stop`` is set, calling
    ``on_stored`` (quickly: it runs on the watching thread) after each sync that stored mail."""

    def watch(self, stop: threading.Event, on_stored: Callable[[SyncReport], None]) -> None: ...


def guarded_sync(source: Source, *, log_failure: bool = True) -> SyncReport:
    """Sync ``source`` under the one error policy (module docstring); raises only ``StoreError``.

    ``log_failure=False`` is for a caller that logs the failure itself with more to say (the
    IMAP watcher adds when it retries).
    """
    try:
        report = source.sync()
    except StoreError:
        raise
    except JeevesError as exc:
        if log_failure:
            log.error("sync of %s failed: %s", source.name, exc)
        return SyncReport(source.name, errors=[str(exc)], failure=exc)
    if report.stored:
        log.info("synced %s: %d fetched, %d new", source.name, report.fetched, report.stored)
    return report
