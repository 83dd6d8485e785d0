"""The crash workers' hook: a process that SIGKILLs itself at a named step of the code under test.

``OutboxSender`` and ``ReplyPoller`` call ``on_step(step, key)`` at each point where a crash
matters; ``sigkill_at("record-uncommitted", 2)`` gives an ``on_step`` that dies, as a power cut
would, the second time that step comes.
"""

from __future__ import annotations

import os
import signal
from typing import Callable


def sigkill_at(step: str | None, nth: int = 1) -> Callable[..., None]:
    """An ``on_step`` hook that SIGKILLs this process the ``nth`` time ``step`` is reached
    (never, when ``step`` is None)."""
    seen = 0

    def on_step(name: str, *_key) -> None:
        nonlocal seen
        if name == step:
            seen += 1
            if seen >= nth:
                os.kill(os.getpid(), signal.SIGKILL)

    return on_step
