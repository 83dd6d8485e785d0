"""``python -m jeeves`` that SIGKILLs itself just before the Nth SQL statement it sends
(``JEEVES_TEST_KILL_AT_STATEMENT=N``): a crash at an exact point of a migration or a write, for
the crash tests. Everything else is the real CLI."""

from __future__ import annotations

import itertools
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Engine, event  # noqa: E402

KILL_AT = int(os.environ.get("JEEVES_TEST_KILL_AT_STATEMENT", "0"))
_statements = itertools.count(1)


@event.listens_for(Engine, "before_cursor_execute")
def _kill_at(*_args) -> None:
    if next(_statements) == KILL_AT:
        os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    from jeeves.cli import main

    sys.exit(main(sys.argv[1:]))
