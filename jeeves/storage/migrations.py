"""Bringing a database to the newest schema: all of a migration or none of it, even on SQLite.

Alembic's scripts (``migrations/`` of the repository, shipped in the package) own the schema.
``schema_is_current`` answers the usual "nothing to do" with one SELECT instead of importing
Alembic (about half a second on every command); ``migrate`` runs the pending scripts in one
transaction, serialised between processes starting together.
"""

from __future__ import annotations

import functools
import logging
import re
from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from jeeves import resources
from jeeves.storage.engine import Database

log = logging.getLogger(__name__)

#: The Alembic scripts shipped in the package (``migrations/`` of the repository).
MIGRATIONS_DIR = resources.migrations_dir()
#: PostgreSQL advisory lock taken by every migrating process (one migrates at a time).
_MIGRATION_LOCK = 7271001


def schema_is_current(db: Database) -> bool:
    """Whether the database is already at the newest migration, asked without Alembic.

    Any doubt (no table, no answer) means "migrate", which then reports a real problem with
    its own clear error.
    """
    head = head_revision()
    if head is None:
        return False
    try:
        with db.engine.connect() as connection:
            current = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except SQLAlchemyError:
        return False
    return current == [head]


def migrate(db: Database) -> None:
    """Bring the schema to the newest Alembic revision: all of it or none of it.

    Every pending migration runs in one transaction together with the ``alembic_version``
    update, so a process killed at any point (the very first start included) leaves either
    the old schema or the new one, and the next start simply migrates again. Concurrent
    starts are serialised: by an advisory lock on PostgreSQL, by ``BEGIN IMMEDIATE`` (the
    write lock, waited for up to the busy timeout) on SQLite.
    """
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = db.engine
    try:
        with db.engine.connect() as connection, _transactional_ddl(connection):
            if db.dialect == "postgresql":
                # Several daemons may start together; only one may run migrations at a time.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            else:
                _drop_interrupted_first_migration(connection)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            connection.commit()
    except DBAPIError as exc:
        raise db.error("cannot migrate the database", exc) from exc


@functools.lru_cache(maxsize=1)
def head_revision() -> str | None:
    """The newest migration's revision id, from the migration files' ``revision`` and
    ``down_revision`` lines (the revision no other one revises); None when that is not one
    clear answer. tests/test_storage.py checks it against Alembic's own."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        source = path.read_text()
        found = re.search(r"^revision\s*=\s*['\"]([^'\"]+)['\"]", source, re.M)
        if found is None:
            return None
        revisions.add(found.group(1))
        revised.update(re.findall(r"['\"]([^'\"]+)['\"]", (re.search(r"^down_revision\s*=\s*(.*)$", source, re.M) or [None, ""])[1]))
    heads = revisions - revised
    return heads.pop() if len(heads) == 1 else None


@contextmanager
def _transactional_ddl(connection) -> Iterator[None]:
    """Make DDL on ``connection`` part of its transaction, as it is on PostgreSQL.

    Python's sqlite3 module only opens a transaction before INSERT/UPDATE/DELETE, so CREATE and
    ALTER TABLE would each commit on their own: a crash mid-migration would leave tables behind
    without their ``alembic_version`` row, and every later start would fail on "table already
    exists". With the module's implicit transactions off, the explicit BEGIN covers everything
    until the connection commits (SQLAlchemy's documented recipe for SQLite transactional DDL).
    """
    if connection.dialect.name != "sqlite":
        yield
        return
    dbapi_connection = connection.connection.driver_connection
    saved = dbapi_connection.isolation_level
    dbapi_connection.isolation_level = None
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        yield
    finally:
        if dbapi_connection.in_transaction:
            dbapi_connection.rollback()
        dbapi_connection.isolation_level = saved


def _drop_interrupted_first_migration(connection) -> None:
    """Clear what a first start killed mid-migration by an earlier Jeeves left in an SQLite file.

    Before migrations were transactional on SQLite, such a crash left some tables and no
    ``alembic_version`` row, and every later start failed on "table ... already exists". Those
    tables are recognisable (only Jeeves's, all empty, no version recorded) and hold nothing, so
    they are dropped and the migration runs afresh; anything else is left for the error to name.
    """
    from sqlalchemy import inspect

    from jeeves.storage.schema import Base

    tables = set(inspect(connection).get_table_names())
    if not tables & set(Base.metadata.tables):
        return
    if "alembic_version" in tables and connection.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar():
        return
    leftovers = tables - {"alembic_version"}
    if any(t not in Base.metadata.tables and not t.startswith("_alembic_tmp_") for t in leftovers):
        return
    if any(connection.exec_driver_sql(f'SELECT 1 FROM "{t}" LIMIT 1').first() for t in leftovers):
        return
    # Children before parents: with foreign keys on, SQLite checks a dropped parent's references.
    ordered = [t.name for t in reversed(Base.metadata.sorted_tables) if t.name in leftovers]
    for table in ordered + sorted(leftovers - set(ordered)):
        connection.exec_driver_sql(f'DROP TABLE "{table}"')
    log.warning("dropped %d empty tables left by an interrupted first start; migrating afresh", len(leftovers))
