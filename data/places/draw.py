"""Draw the sentences of data/places/labels.jsonl from the shared Enron corpus (re-runnable).

Sentences are the extractor's own units (``jeeves.places.sentence_spans`` plus calendar field
lines) of each message's new text (``jeeves.parsing``). Three pools, seeded:
- ``strong``: a meeting word before "at/in" + a capitalised word or digit, a room code, a
  conference room, "my/your office", or a ``Location:``/``Where:`` line — so that the set holds
  enough place mentions and near look-alikes ("meet at 3pm", "see you at Enron");
- ``weak``: any other "at/in" + capitalised word, or "office" — mostly look-alikes ("in Houston");
- ``random``: sentences with neither, for the recall the cue pools cannot see.
Writes data/places/candidates.jsonl (unlabelled); labels are added by hand (README.md).

    python data/places/draw.py /work/shared/data

The first draw (seed 15, 150/60/50; split dev/test later by a hash of the Message-ID) is the
command above. The fresh held-out draw ``test2`` leaves out every message already in
labels.jsonl (and any sentence already labelled), with a new seed and the same units and pools;
its rows carry ``split: "test2"`` and ids continuing after the last label:

    python data/places/draw.py /work/shared/data --seed 2611 --strong 160 --weak 60 --random 30 \
        --exclude data/places/labels.jsonl --split test2 --out candidates-test2.jsonl
"""

from __future__ import annotations

import argparse
import json
import mailbox
import random
import re
import sys
from pathlib import Path

from jeeves.parsing import parse_email
from jeeves.places.extract import sentence_spans

#: A meeting word before "at/in <Capital or digit>", a calendar field, a room code or a room.
STRONG = re.compile(
    r"(?im)^[ \t>]*(?:location|where|place|room|venue)[ \t]*:"
    r"|\b(?:meet|meeting|see you|lunch|dinner|breakfast|drinks|coffee|join us|held|get together)\b[^.!?]{0,60}\b(?:at|in)\s+(?:the\s+)?[A-Z0-9]"
    r"|\b(?:EB|ECN|ECS|3AC)\s*-?\s*\d{2}|\b(?:conference|conf\.?)\s+room\b|\b(?:my|your)\s+office\b"
)
#: Any "at/in <Capital>" or "office": mostly look-alikes ("at Enron", "in Houston").
WEAK = re.compile(r"\b(?:at|in)\s+(?:the\s+)?[A-Z][a-z]+|\boffice\b")


def main(shared: str, out: str = "data/places/candidates.jsonl", n_strong: int = 150, n_weak: int = 60,
         n_random: int = 50, seed: int = 15, exclude: str | None = None, split: str | None = None) -> None:
    rng = random.Random(seed)
    strong, weak, plain = [], [], []
    # A fresh draw leaves out every message (and every sentence) already labelled.
    done = [json.loads(line) for line in Path(exclude).read_text().splitlines() if line.strip()] if exclude else []
    # Rows of the split being drawn are not excluded, so the command re-draws the same sentences.
    done = [r for r in done if not split or r.get("split") != split]
    skip_messages = {r["message_id"] for r in done}
    seen: set[str] = {" ".join(r["sentence"].split()).lower() for r in done}
    first_id = max((r["id"] for r in done), default=-1) + 1
    for corpus, limit in (("enron-meetings", None), ("enron-unlabeled", 6000)):
        box = mailbox.mbox(str(Path(shared) / corpus / "messages.mbox"), create=False)
        for i, msg in enumerate(box):
            if limit and i >= limit:
                break
            parsed = parse_email(msg.as_bytes())
            if parsed.message_id in skip_messages:
                continue
            text = parsed.new_text
            if not text or len(text) > 4000:
                continue
            units = set()
            for s, e in sentence_spans(text):
                for line_unit in _field_lines(text[s:e]):
                    units.add(line_unit)
            for unit in sorted(units):
                if len(unit) < 12 or len(unit) > 400:
                    continue
                row = {"message_id": parsed.message_id, "corpus": corpus, "sentence": unit}
                (strong if STRONG.search(unit) else weak if WEAK.search(unit) else plain).append(row)
    for rows in (strong, weak, plain):
        rng.shuffle(rows)
    picked = []
    for pool, rows, n in (("strong", strong, n_strong), ("weak", weak, n_weak), ("random", plain, n_random)):
        taken = 0
        for row in rows:
            key = " ".join(row["sentence"].split()).lower()
            if key in seen:
                continue
            seen.add(key)
            picked.append({**row, "pool": pool, **({"split": split} if split else {})})
            taken += 1
            if taken == n:
                break
    with open(out, "w") as fh:
        for i, row in enumerate(picked):
            fh.write(json.dumps({"id": first_id + i, **row}) + "\n")
    print(f"{len(skip_messages)} labelled messages left out; {len(strong)} strong-cue, {len(weak)} weak-cue and "
          f"{len(plain)} other sentences; wrote {len(picked)} to {out}")


def _field_lines(sentence: str):
    """A sentence, or each of its lines when it is a block of ``Field: value`` lines."""
    lines = [ln for ln in sentence.splitlines() if ln.strip()]
    if len(lines) > 1 and any(re.match(r"^[ \t>]*[A-Za-z ]{2,15}:", ln) for ln in lines):
        yield from (ln.strip() for ln in lines)
    else:
        yield sentence.strip()


def _cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shared", help="the shared data directory (/work/shared/data)")
    parser.add_argument("--out", default="data/places/candidates.jsonl")
    parser.add_argument("--strong", type=int, default=150, help="strong-cue sentences to draw")
    parser.add_argument("--weak", type=int, default=60, help="weak-cue sentences to draw")
    parser.add_argument("--random", type=int, default=50, help="sentences with neither cue to draw")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--exclude", metavar="LABELS", help="leave out the messages and sentences of this labels.jsonl")
    parser.add_argument("--split", help="write this split on every row (e.g. test2)")
    a = parser.parse_args(argv)
    main(a.shared, a.out, a.strong, a.weak, a.random, a.seed, a.exclude, a.split)


if __name__ == "__main__":
    _cli(sys.argv[1:])
