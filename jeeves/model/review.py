"""Interactive labelling of the messages the model is least sure about (``jeeves label --review``)."""

from __future__ import annotations

import textwrap
from typing import Callable


def review_uncertain(app, *, limit: int, ask: Callable[[str], str], show: Callable[[str], None]) -> int:
    """Show each uncertain message and record the answer; returns how many were labelled.

    ``ask``/``show`` are injected so tests can drive it without a terminal.
    """
    labelled = 0
    candidates = app.store.least_certain_unlabelled(limit)
    if not candidates:
        show("nothing to review: every classified message is labelled")
        return 0
    for i, (message, score, threshold) in enumerate(candidates, 1):
        show(f"\n[{i}/{len(candidates)}] #{message.id}  score {score:.2f} (threshold {threshold:.2f})")
        show(f"From:    {message.sender}\nSubject: {message.subject}")
        show(textwrap.indent(textwrap.shorten(message.new_text, 800, placeholder=" …") or "(no new text)", "  "))
        while True:
            answer = ask("needs a place? [1/0, s=skip, q=quit] ").strip().lower()
            if answer in {"1", "0"}:
                app.store.add_label(message.id, int(answer), "review")
                labelled += 1
                break
            if answer in {"s", ""}:
                break
            if answer == "q":
                return labelled
    return labelled
