"""Opening a database and explaining its failures: engines, sessions and error messages.

A ``Database`` is the engine plus the one way to run a transaction on it (``session``), which
commits on success, rolls back on any error and turns driver errors into ``StoreError`` (or
``DatabaseUnreachable`` when the server is not there), each a one-line message that names the
database but never its password, with a hint for the causes users meet most.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from jeeves.errors import DatabaseUnreachable, StoreError


class Database:
    """One database URL: its engine, transactions, and how its errors read."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.where = describe(url)
        self.engine: Engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction; commits on success, rolls back on error, maps DB errors to StoreError."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except DBAPIError as exc:
            session.rollback()
            raise self.error("database error", exc) from exc
        except SQLAlchemyError as exc:
            session.rollback()
            raise StoreError(f"database error ({self.where}): {exc}") from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def error(self, what: str, exc: DBAPIError) -> StoreError:
        """``what`` failed because of ``exc``: the right ``StoreError`` with a one-line reason."""
        cause = _cause(exc, self.url)
        # SQLAlchemy flags a connection lost in use (server restarted, backend terminated); a
        # connect that failed carries no such flag, nor a SQLSTATE, so libpq's words tell there.
        unreachable = exc.connection_invalidated or any(needle in cause for needle in _UNREACHABLE)
        kind = DatabaseUnreachable if unreachable else StoreError
        return kind(f"{what} ({self.where}): {cause}")

    def insert(self, table):
        """The dialect's INSERT, which knows ``ON CONFLICT DO NOTHING``."""
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table)


def _set_sqlite_pragmas(dbapi_connection, _record) -> None:  # pragma: no cover - exercised via engine
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _set_sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, connect_args={"connect_timeout": 10})


def safe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return "<database url>"


def describe(url: str) -> str:
    """Which database, for error messages: the SQLite file's path, or the URL without password."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001
        return "<database url>"
    if parsed.get_backend_name() == "sqlite":
        return f"SQLite file {Path(parsed.database).resolve()}" if parsed.database and parsed.database != ":memory:" else "SQLite in memory"
    return safe_url(url)


#: What to do about the causes users meet most, appended to the driver's own words.
_HINTS = (
    ("database or disk is full", "free disk space where the database lives"),
    ("Connection refused", "is the database server running?"),
)
#: PostgreSQL/libpq words, when a connect fails, for a server that is not (yet) there, as opposed
#: to one that refuses us (a lost connection is ``DBAPIError.connection_invalidated``).
_UNREACHABLE = (
    "Connection refused", "could not connect", "timeout expired", "Connection timed out",
    "the database system is starting up", "the database system is shutting down",
    "the database system is in recovery mode", "No route to host",
    "could not translate host name", "Temporary failure in name resolution",
)
#: SQLite's words when it cannot write the file, its journal or its directory.
_SQLITE_WRITE_ERRORS = ("readonly database", "unable to open database file", "disk I/O error")


def _cause(exc: DBAPIError, url: str | None = None) -> str:
    cause = _short(exc)
    hint = next((h for needle, h in _HINTS if needle in cause), None)
    if hint is None and url is not None and any(e in cause for e in _SQLITE_WRITE_ERRORS):
        hint = _sqlite_write_hint(url)
    return f"{cause} ({hint})" if hint else cause


def _sqlite_write_hint(url: str) -> str | None:
    """Why SQLite cannot write: a missing directory, or a read-only file, directory or disk."""
    from sqlalchemy.engine import make_url

    try:
        database = make_url(url).database
    except Exception:  # noqa: BLE001
        return None
    if not database or database == ":memory:":
        return None
    path = Path(database).resolve()
    if not path.parent.is_dir():
        return f"the directory {path.parent} does not exist"
    # access(2) also answers EROFS for a read-only file system, even to root.
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return "the file or its directory is read-only; Jeeves must write both the database and its WAL journal"
    return None


def _short(exc: DBAPIError) -> str:
    return str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
