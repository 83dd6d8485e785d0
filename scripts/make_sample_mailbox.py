"""Build data/sample/: the demo mailbox (real Enron mail: unlabelled noise plus planted labelled
messages), reproducibly from ../shared/data. Run once by a maintainer; the output is committed.

    python scripts/make_sample_mailbox.py [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import csv
import mailbox
import random
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--noise", type=int, default=280)
    parser.add_argument("--positives", type=int, default=12)
    parser.add_argument("--negatives", type=int, default=8)
    args = parser.parse_args()
    rng = random.Random(20261123)

    labels = list(csv.DictReader(open(REPO / "data/enron-meetings/labels.csv")))
    positives = rng.sample([r for r in labels if r["label"] == "1" and r["confidence"] == "high"], args.positives)
    negatives = rng.sample([r for r in labels if r["label"] == "0" and r["confidence"] == "high" and r["pool"] == "cue"], args.negatives)
    planted = {r["message_id"]: r for r in positives + negatives}

    corpus = mailbox.mbox(REPO / "data/enron-meetings/messages.mbox", create=False)
    planted_raw = {}
    for key in corpus.iterkeys():
        msg = corpus.get(key)
        if msg["Message-ID"] in planted:
            planted_raw[msg["Message-ID"]] = corpus.get_bytes(key)

    pool = mailbox.mbox(args.shared / "enron-unlabeled/messages.mbox", create=False)
    keys = list(pool.iterkeys())
    noise = [pool.get_bytes(k) for k in sorted(rng.sample(keys, args.noise))]

    items = noise + [planted_raw[m] for m in planted]
    rng.shuffle(items)
    out_dir = REPO / "data/sample"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / "sample.mbox"
    out.unlink(missing_ok=True)
    box = mailbox.mbox(out)
    for raw in items:
        box.add(raw)
    box.flush()
    box.close()
    with open(out_dir / "planted.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["message_id", "label", "confidence", "pool"])
        for r in positives + negatives:
            writer.writerow([r["message_id"], r["label"], r["confidence"], r["pool"]])
    print(f"wrote {out} ({len(items)} messages: {args.noise} unlabelled, {len(planted)} planted)")


if __name__ == "__main__":
    main()
