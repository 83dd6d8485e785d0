"""A daemon killed during its very first start (mid-migration) starts again, with nothing lost.

A real ``jeeves`` process is SIGKILLed just before each SQL statement of the first migration in
turn (tests/kill_cli.py), on SQLite and PostgreSQL; the next start must migrate to head, leave
the schema equal to the models', and store every message.
"""

from __future__ import annotations

import mailbox
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text

from jeeves.cli import main
from jeeves.storage.schema import Base
from jeeves.storage import Store
from jeeves.storage.migrations import MIGRATIONS_DIR

REPO = Path(__file__).resolve().parent.parent


def _head() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config).get_current_head()


def _migration_statements(url: str) -> int:
    """How many SQL statements the first start's migration sends on this dialect."""
    count = 0

    def counter(*_args) -> None:
        nonlocal count
        count += 1

    event.listen(Engine, "before_cursor_execute", counter)
    try:
        Store(url).close()
    finally:
        event.remove(Engine, "before_cursor_execute", counter)
    return count


def _killed_first_start(tmp_path: Path, url: str, mbox: Path, kill_at: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "JEEVES_DATABASE__URL": url, "JEEVES_DATA_DIR": str(tmp_path / "data"),
           "JEEVES_TEST_KILL_AT_STATEMENT": str(kill_at)}
    return subprocess.run([sys.executable, str(REPO / "tests/kill_cli.py"), "import", str(mbox)],
                          env=env, capture_output=True, text=True, timeout=120)


def _next_start(monkeypatch, tmp_path: Path, url: str, mbox: Path, capsys) -> tuple[int, str]:
    """The next start, through the CLI's own entry point (in this process, to keep the test quick)."""
    monkeypatch.setenv("JEEVES_DATABASE__URL", url)
    monkeypatch.setenv("JEEVES_DATA_DIR", str(tmp_path / "data"))
    code = main(["import", str(mbox)])
    return code, capsys.readouterr().err


def _assert_migrated_and_complete(url: str, n_messages: int) -> None:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
            assert versions == [_head()]
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            assert connection.execute(text("SELECT count(*) FROM messages")).scalar() == n_messages
    finally:
        engine.dispose()


@pytest.fixture
def small_mbox(tmp_path) -> tuple[Path, int]:
    source = mailbox.mbox(REPO / "data/sample/sample.mbox", create=False)
    path = tmp_path / "three.mbox"
    box = mailbox.mbox(path)
    for key in list(source.iterkeys())[:3]:
        box.add(source.get_bytes(key))
    box.flush()
    box.close()
    return path, 3


def _fresh_url(kind: str, tmp_path: Path, request, point: int) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / f'kill{point}.db'}"
    server = request.getfixturevalue("postgres_server")
    return server.create_database(f"kill{os.getpid()}_{point}")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_first_start_killed_at_any_point_of_the_migration_starts_again(kind, tmp_path, request, small_mbox,
                                                                         monkeypatch, capsys):
    mbox, n_messages = small_mbox
    statements = _migration_statements(_fresh_url(kind, tmp_path, request, 0))
    assert statements > 10
    # Each kill costs a process start (~1.5 s), so about 16 points spread over the migration: the
    # first statement, the last, the one after it (the first write once migrated) and the rest
    # evenly between. Every point is a different partial schema if DDL is not transactional.
    points = sorted({1, 2, statements, statements + 1, *range(1, statements, max(1, statements // 12))})
    for point in points:
        url = _fresh_url(kind, tmp_path, request, point)
        killed = _killed_first_start(tmp_path, url, mbox, kill_at=point)
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr[-2000:])
        code, err = _next_start(monkeypatch, tmp_path, url, mbox, capsys)
        assert code == 0, (point, err)
        _assert_migrated_and_complete(url, n_messages)


def _interrupt_like_before_the_fix(url: str, at_statement: int) -> None:
    """What an earlier Jeeves left when killed mid-migration on SQLite: each CREATE committed on
    its own (the sqlite3 module's implicit transactions skip DDL), the version row never written."""
    from alembic import command

    engine = create_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    count = 0

    def crash(*_args) -> None:
        nonlocal count
        count += 1
        if count == at_statement:
            raise KeyboardInterrupt  # stands in for the kill: nothing after this runs

    event.listen(engine, "before_cursor_execute", crash)
    try:
        with pytest.raises(KeyboardInterrupt), engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        engine.dispose()


def test_a_database_left_by_an_earlier_interrupted_first_start_is_repaired(tmp_path, small_mbox, monkeypatch, capsys):
    mbox, n_messages = small_mbox
    url = f"sqlite:///{tmp_path / 'left.db'}"
    _interrupt_like_before_the_fix(url, at_statement=30)
    engine = create_engine(url)
    with engine.connect() as connection:
        tables = set(connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'").scalars())
        assert "accounts" in tables
        assert "alembic_version" not in tables or connection.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar() == 0
    engine.dispose()
    code, err = _next_start(monkeypatch, tmp_path, url, mbox, capsys)
    assert code == 0, err
    _assert_migrated_and_complete(url, n_messages)


def test_leftover_tables_holding_data_are_never_dropped(tmp_path, small_mbox, monkeypatch, capsys):
    mbox, _ = small_mbox
    url = f"sqlite:///{tmp_path / 'left.db'}"
    _interrupt_like_before_the_fix(url, at_statement=30)
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO accounts (name, kind, created_at) VALUES ('kept', 'imap', '2026-01-01')")
    engine.dispose()
    code, err = _next_start(monkeypatch, tmp_path, url, mbox, capsys)
    assert code == 2 and err.startswith("jeeves: cannot migrate the database") and "already exists" in err
    engine = create_engine(url)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT name FROM accounts").scalars().all() == ["kept"]
    engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_simultaneous_first_starts_migrate_once(kind, tmp_path, request, small_mbox):
    """A daemon and a CLI command (or several daemons) starting together on a fresh database:
    one migrates, the others wait for it, and all of them work."""
    mbox, n_messages = small_mbox
    url = _fresh_url(kind, tmp_path, request, 999)
    env = {**os.environ, "JEEVES_DATABASE__URL": url, "JEEVES_DATA_DIR": str(tmp_path / "data")}
    starts = [subprocess.Popen([sys.executable, "-m", "jeeves", "import", str(mbox)], env=env, cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in starts]
    for p in starts:
        p.stdout.close()
        p.stderr.close()
    assert [code for code, _ in results] == [0, 0, 0], results
    _assert_migrated_and_complete(url, n_messages)
