"""``python -m jeeves`` with SQLite's page count capped: a disk-full stand-in for the fault tests
where a small tmpfs cannot be mounted. ``JEEVES_TEST_MAX_PAGES`` sets ``PRAGMA max_page_count``
on every SQLite connection; everything else is the real CLI."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Engine, event  # noqa: E402

PAGES = int(os.environ.get("JEEVES_TEST_MAX_PAGES", "0"))


@event.listens_for(Engine, "connect")
def _cap(dbapi_connection, _record) -> None:
    if PAGES and type(dbapi_connection).__module__.startswith("sqlite3"):
        dbapi_connection.execute(f"PRAGMA max_page_count={PAGES}")


if __name__ == "__main__":
    from jeeves.cli import main

    sys.exit(main(sys.argv[1:]))
