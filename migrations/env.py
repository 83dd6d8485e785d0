"""Alembic environment. Jeeves runs migrations itself on start (``Store.migrate``), passing its
connection; the ``alembic`` command line works too, reading the URL from ``JEEVES_DATABASE__URL``
or ``alembic.ini``."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine

from jeeves.storage.schema import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection) -> None:
    # render_as_batch rebuilds tables on SQLite, which cannot ALTER most constraints in place.
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True, compare_type=True)


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = os.environ.get("JEEVES_DATABASE__URL") or config.get_main_option("sqlalchemy.url")
    engine = create_engine(url)
    with engine.begin() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()


def run_migrations_offline() -> None:
    url = os.environ.get("JEEVES_DATABASE__URL") or config.get_main_option("sqlalchemy.url")
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
