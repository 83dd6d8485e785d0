"""The place extractor against hand-labelled sentences (data/places/labels.jsonl), and its speed.

    python bench/bench_places.py [--split dev|test|test2|all] [--errors] [--speed N]

For each split: precision and recall of the mentions the extractor reports, at the confidence
alerts use (``SUGGEST_CONFIDENCE``) and for everything it returns; a prediction matches a
gold place *exactly* (same text once case, spacing and a leading "the" are ignored) or by
*overlap* (the spans share a character). Per kind: recall by the gold kind, precision by the
predicted kind. Tune on ``dev``; ``test`` was held out until its first look, ``test2`` is the
fresh held-out draw made after that (docs/places-report.md). With no ``--split`` each split is
reported on its own (dev, test, test2); ``all`` pools them, which mixes tuned and held-out sentences.
``--speed N`` also times extraction over the new text of N real messages.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jeeves.places.extract import KINDS, SUGGEST_CONFIDENCE, extract_places, place_key  # noqa: E402

LABELS = Path(__file__).resolve().parent.parent / "data" / "places" / "labels.jsonl"
SPLITS = ("dev", "test", "test2")


def load(split: str) -> list[dict]:
    rows = [json.loads(line) for line in LABELS.read_text().splitlines() if line.strip()]
    return [r for r in rows if split == "all" or r["split"] == split]


def _matches(pred, gold: dict, exact: bool) -> bool:
    if exact:
        return place_key(pred.place) == place_key(gold["text"])
    return pred.start < gold["end"] and gold["start"] < pred.end


def score(rows: list[dict], min_confidence: float, exact: bool) -> dict:
    tp_pred = n_pred = tp_gold = n_gold = 0
    by_kind = {k: Counter() for k in KINDS}
    errors: list[tuple[str, str, str]] = []
    for row in rows:
        preds = [p for p in extract_places(row["sentence"]) if p.confidence >= min_confidence]
        golds = row["places"]
        n_pred += len(preds)
        n_gold += len(golds)
        for p in preds:
            hit = any(_matches(p, g, exact) for g in golds)
            tp_pred += hit
            by_kind[p.kind]["pred"] += 1
            by_kind[p.kind]["pred_ok"] += hit
            if not hit:
                errors.append(("false place", p.place, row["sentence"]))
        for g in golds:
            hit = any(_matches(p, g, exact) for p in preds)
            tp_gold += hit
            by_kind[g["kind"]]["gold"] += 1
            by_kind[g["kind"]]["gold_ok"] += hit
            if not hit:
                errors.append(("missed", g["text"], row["sentence"]))
    return {
        "sentences": len(rows), "gold": n_gold, "predicted": n_pred, "correct_predictions": tp_pred, "found_gold": tp_gold,
        "precision": tp_pred / n_pred if n_pred else None, "recall": tp_gold / n_gold if n_gold else None,
        "by_kind": {k: dict(v) for k, v in by_kind.items()}, "errors": errors,
    }


def _fmt(value: float | None) -> str:
    return "  n/a" if value is None else f"{value:.3f}"


def report(split: str, show_errors: bool) -> None:
    rows = load(split)
    print(f"== {split}: {len(rows)} sentences, {sum(len(r['places']) for r in rows)} gold places "
          f"({sum(1 for r in rows if r['places'])} sentences with a place)")
    for label, conf in ((f"suggest (confidence >= {SUGGEST_CONFIDENCE})", SUGGEST_CONFIDENCE), ("all mentions", 0.0)):
        for match in ("exact", "overlap"):
            s = score(rows, conf, match == "exact")
            print(f"  {label:32s} {match:7s}  precision {_fmt(s['precision'])} ({s['correct_predictions']}/{s['predicted']})"
                  f"  recall {_fmt(s['recall'])} ({s['found_gold']}/{s['gold']})")
        s = score(rows, conf, False)
        for kind, c in s["by_kind"].items():
            if c:
                prec = f"{c.get('pred_ok', 0)}/{c.get('pred', 0)}" if c.get("pred") else "0/0"
                rec = f"{c.get('gold_ok', 0)}/{c.get('gold', 0)}" if c.get("gold") else "0/0"
                print(f"      {kind:10s} precision {prec:7s} recall {rec} (overlap)")
        if show_errors:
            for what, place, sentence in s["errors"]:
                print(f"      [{what}] {place!r}: {' '.join(sentence.split())[:160]}")


def speed(n: int) -> None:
    from bench.common import message_pool
    from jeeves.parsing import parse_email

    texts = [parse_email(raw).new_text for raw in message_pool(n)]
    start = time.perf_counter()
    extract_places("Warm-up. See you at Ninfa's.")  # imports NLTK (Punkt): once per process
    print(f"== first call (imports NLTK): {time.perf_counter() - start:.2f} s")
    start = time.perf_counter()
    found = sum(len(extract_places(t)) for t in texts)
    elapsed = time.perf_counter() - start
    chars = sum(len(t) for t in texts)
    print(f"== speed: {len(texts)} messages ({chars / 1e6:.1f} M characters of new text) in {elapsed:.2f} s: "
          f"{len(texts) / elapsed:,.0f} messages/s, {found} mentions")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=[*SPLITS, "all"], help="default: each split in turn (dev, test, test2)")
    parser.add_argument("--errors", action="store_true", help="list each false place and missed place")
    parser.add_argument("--speed", type=int, default=0, metavar="N", help="also time extraction over N messages")
    args = parser.parse_args()
    for split in [args.split] if args.split else SPLITS:
        report(split, args.errors)
    if args.speed:
        speed(args.speed)


if __name__ == "__main__":
    main()
