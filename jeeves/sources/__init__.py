"""Mail sources: where raw messages come from (IMAP accounts, local mbox/maildir files).

A source fetches raw bytes, parses them (``jeeves.parsing``) and hands ``NewMessage`` batches to
``Store.store_batch`` together with its sync position, so storage and sync state move together.
Each source returns a ``SyncReport`` so the daemon and ``jeeves status`` can say what happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SyncReport:
    """What one sync of one source did."""

    source: str
    fetched: int = 0  # messages read from the source
    stored: int = 0  # of those, new to the database
    errors: list[str] = field(default_factory=list)

    def add(self, fetched: int, stored: int) -> None:
        self.fetched += fetched
        self.stored += stored

    def merge(self, other: "SyncReport") -> None:
        self.fetched += other.fetched
        self.stored += other.stored
        self.errors.extend(other.errors)
