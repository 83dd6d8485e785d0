"""Which daemon watches which account: one holder at a time, freed the moment it dies.

On PostgreSQL a lease is a session advisory lock on a dedicated connection: exactly one
process holds it, it is released when that process's connection closes (crash included), and
it also dies with the connection when the server restarts, which ``Lease.still_held()`` tells
the holder. SQLite is a single-process database, so the lease is always granted there.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from jeeves.storage.engine import Database


class Lease:
    """The right to watch one account (``account_lease``); truthy while held."""

    def __init__(self, held: bool, connection=None, key: int | None = None) -> None:
        self.held = held
        self.lost = False
        self._connection = connection
        self._key = key

    def __bool__(self) -> bool:
        return self.held and not self.lost

    def still_held(self) -> bool:
        """Whether the database still holds the lock for us (False once its session is gone).

        A PostgreSQL restart or a dropped connection ends the session and frees the lock, and
        another daemon may then take the account: the holder must stop watching.
        """
        if not self.held or self.lost:
            return False
        if self._connection is None:
            return True
        hi, lo = (self._key >> 32) & 0xFFFFFFFF, self._key & 0xFFFFFFFF
        try:
            found = self._connection.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
                    " AND pid = pg_backend_pid() AND classid::bigint = :hi AND objid::bigint = :lo"
                ),
                {"hi": hi, "lo": lo},
            ).scalar()
            self._connection.commit()
        except SQLAlchemyError:
            found = 0
        if not found:
            self.lost = True
        return not self.lost


@contextmanager
def account_lease(db: Database, account: str) -> Iterator[Lease]:
    """Hold the right to watch ``account`` for the duration of the block (see the module
    docstring). The yielded ``Lease`` is truthy when held."""
    if db.dialect != "postgresql":
        yield Lease(True)
        return
    key = int.from_bytes(hashlib.sha256(f"jeeves-account:{account}".encode()).digest()[:8], "big", signed=True)
    try:
        connection = db.engine.connect()
    except DBAPIError as exc:
        raise db.error("database error", exc) from exc
    try:
        try:
            held = bool(connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
            connection.commit()
        except DBAPIError as exc:
            raise db.error("database error", exc) from exc
        lease = Lease(held, connection, key)
        try:
            yield lease
        finally:
            if held and not lease.lost:
                try:
                    connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    connection.commit()
                except SQLAlchemyError:
                    pass  # the connection is gone, and with it the lock
    finally:
        try:
            connection.close()
        except SQLAlchemyError:
            pass
