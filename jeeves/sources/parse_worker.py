"""What runs inside a parse worker process, kept apart so workers import only ``jeeves.parsing``.

Workers are spawned (not forked: the daemon has threads), so each one imports this module and
nothing else of Jeeves; ``jeeves.sources.backlog`` owns the pool that starts them.
"""

from __future__ import annotations

import os
import threading
import time

from jeeves.parsing import ParsedEmail, parse_email


def parse_many(raws: list[bytes]) -> list[ParsedEmail]:
    return [parse_email(raw) for raw in raws]


def exit_with_parent(parent_pid: int) -> None:
    """Worker initializer: leave as soon as the process that spawned the worker is gone.

    A ``ProcessPoolExecutor`` worker waits on its task queue, whose write end it holds itself,
    so when the daemon is killed (SIGKILL, OOM killer) the workers would live on as orphans
    (~85 MB each, two per crash). A daemon thread polls the parent instead.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="jeeves-parent-watch", daemon=True).start()
