"""What a person with an ordinary inbox gets: inbox estimate, error classes, learning curve.

Prints, for the shipped recipe (``jeeves.model.training``) on all default labels with thread-grouped
5-fold CV (the same folds ``jeeves train`` uses):
- ROC/PR AUC on all labels, on ``high`` labels and on the random pool;
- each trade-off's thresholds and inbox estimate (texts and digest), cross-validated;
- the false alarms at the default trade-off sorted into the error classes of issue 12, with
  counts and the share of inbox mail each stands for; and the same for an earlier model's scores
  when ``--before`` names a saved array of out-of-fold scores (``--save`` writes one);
- with ``--learning-curve``, the inbox figures when each training fold keeps only a share of
  its labels (the vocabulary still comes from the whole training fold).

    .venv/bin/python bench/bench_inbox.py [--save oof.npy] [--before old_oof.npy] [--learning-curve]

Takes ~5 min on 2 idle cores (~15 with the learning curve).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sklearn.base import clone  # noqa: E402
from sklearn.metrics import average_precision_score, roc_auc_score  # noqa: E402

from jeeves.model.corpus import DEFAULT_CORPORA, load_corpora  # noqa: E402
from jeeves.model.cues import CONTEXT_CUES, CUES  # noqa: E402
from jeeves.model.inbox import DEFAULT_TRADE_OFF, TRADE_OFFS, estimate  # noqa: E402
from jeeves.model.selection import candidates, operating_points, search  # noqa: E402
from jeeves.model.text_fields import new_text_of  # noqa: E402
from jeeves.model.training import LOW_CONFIDENCE_WEIGHT  # noqa: E402

#: Issue 12's false-alarm classes, tested in this order; a message is counted in its first match.
ERROR_CLASSES = (
    ("set up a book/account/report", lambda d, t: bool(CONTEXT_CUES["setup_object"].search(t))
     and not CONTEXT_CUES["setup_meeting"].search(t)),
    ("calendar notice or a place stated", lambda d, t: bool(CONTEXT_CUES["calendar_field"].search(t)
     or CONTEXT_CUES["calendar_subject"].search(d.subject or "") or CUES["place_named"].search(t)
     or CUES["my_office"].search(t) or CUES["place_proper"].search(t))),
    ("routine or standing meeting", lambda d, t: bool(CONTEXT_CUES["recurring"].search(t))),
    ("newsletter or announcement", lambda d, t: bool(CONTEXT_CUES["bulk"].search(t)) or d.n_recipients > 10),
    ("forward or reply adding little", lambda d, t: len(new_text_of(d).strip()) < 120
     or bool(CONTEXT_CUES["fyi"].search(t))),
    ("meeting in the past", lambda d, t: bool(CONTEXT_CUES["past"].search(t))),
    ("'let me check' / acceptance", lambda d, t: bool(CONTEXT_CUES["reply_accept"].search(t))),
    ("call or 'let's discuss'", lambda d, t: bool(CONTEXT_CUES["call_words"].search(t))),
    ("someone else's meeting", lambda d, t: not re.search(r"\b(?:you|your|we|us|let'?s)\b", t, re.IGNORECASE)),
    ("other (meeting talk, no request)", lambda d, t: True),
)


def error_class(document) -> str:
    text = f"{document.subject or ''}\n{new_text_of(document)}"
    return next(name for name, test in ERROR_CLASSES if test(document, text))


def auc_line(labels, confidence, pool, scores) -> str:
    out = []
    for name, mask in (("all", np.ones(len(labels), bool)), ("high", confidence == "high"), ("random", pool == "random")):
        out.append(f"{name} {roc_auc_score(labels[mask], scores[mask]):.3f} / "
                   f"{average_precision_score(labels[mask], scores[mask]):.3f}")
    return "ROC / PR AUC: " + ", ".join(out)


def error_table(corpus, scores, samples, threshold: float) -> list[tuple[str, int, float]]:
    """False alarms (texted, ``high``-confidence 0) per class: count and inbox share."""
    weights = np.zeros(len(scores))
    for s in samples:
        weights += np.where(s.mask, s.weight / s.weight.sum() / len(samples), 0.0)
    count, share = Counter(), Counter()
    for i in np.flatnonzero((scores >= threshold) & (corpus.labels == 0) & (np.asarray(corpus.confidence) == "high")):
        name = error_class(corpus.documents[i])
        count[name] += 1
        share[name] += weights[i]
    return [(name, count[name], share[name]) for name, _ in ERROR_CLASSES]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, action="append", help="default: the shipped corpora")
    parser.add_argument("--save", type=Path, help="write the out-of-fold scores here (.npy)")
    parser.add_argument("--before", type=Path, help="out-of-fold scores of an earlier model, same corpora (.npy)")
    parser.add_argument("--before-threshold", type=float, help="the earlier model's text threshold")
    parser.add_argument("--learning-curve", action="store_true")
    args = parser.parse_args()

    started = time.perf_counter()
    corpus = load_corpora(args.corpus or DEFAULT_CORPORA)
    labels, confidence, pool = corpus.labels, np.asarray(corpus.confidence), np.asarray(corpus.pool)
    weight = np.where(confidence == "low", LOW_CONFIDENCE_WEIGHT, 1.0)
    samples = corpus.inbox_samples()
    print(f"{len(labels)} labels ({labels.sum()} requests), inbox samples: "
          + ", ".join(f"{s.name} ({int(s.mask.sum())})" for s in samples))
    result = search(corpus.documents, labels, corpus.groups, sample_weight=weight, progress=False, with_baseline=False)
    scores = result.oof[result.best]
    print(f"chosen {result.best}; CV took {time.perf_counter() - started:.0f} s")
    print(auc_line(labels, confidence, pool, scores))
    if args.save:
        np.save(args.save, scores)

    points = operating_points(labels, confidence, scores, samples, result.folds)
    print("\ntrade-off       text thr  digest thr | texted  precision  recall  clear  wrong | digest  dig.prec  "
          "clear w/ digest  (cross-validated)")
    for name, point in points.items():
        e = point.cross_validated
        print(f"{name:15s} {point.text_threshold:8.3f}  {point.digest_threshold:9.3f} | {e['texted']:6.1%}  "
              f"{e['precision']:9.2f}  {e['recall']:6.2f}  {e['recall_high']:5.2f}  {e['wrong']:5.0%} | "
              f"{e['digest']:6.1%}  {e['digest_precision']:8.2f}  {e['recall_high_with_digest']:15.2f}")

    default = points[DEFAULT_TRADE_OFF]
    rows = error_table(corpus, scores, samples, default.text_threshold)
    before = None
    if args.before:
        old = np.load(args.before)
        old_t = args.before_threshold if args.before_threshold is not None else default.text_threshold
        before = error_table(corpus, old, samples, old_t)
        print(f"\nbefore ({args.before.name} at {old_t:.3f}): "
              + estimate(labels, confidence, old, samples, old_t).summary())
        print(auc_line(labels, confidence, pool, old))
    print(f"\nplainly wrong texts at '{DEFAULT_TRADE_OFF}' by class (count of labelled messages; share of inbox mail)")
    for i, (name, n, share) in enumerate(rows):
        extra = f"   before: {before[i][1]:4d}  {before[i][2]:6.2%}" if before else ""
        print(f"  {name:36s} {n:4d}  {share:6.2%}{extra}")

    if args.learning_curve:
        print("\nlearning curve (share of each training fold's labels; thresholds re-chosen on the curve's own OOF)")
        estimator = dict(candidates())[result.best]
        rng = np.random.default_rng(0)
        for share in (0.25, 0.5, 0.75, 1.0):
            curve = np.zeros(len(labels))
            for (tr, te), (x_train, x_test) in zip(result.folds, result.matrices):
                sel = np.arange(len(tr)) if share == 1.0 else np.sort(rng.choice(len(tr), int(share * len(tr)), replace=False))
                model = clone(estimator).fit(x_train[sel], labels[tr][sel], sample_weight=weight[tr][sel])
                curve[te] = model.predict_proba(x_test)[:, 1]
            p = operating_points(labels, confidence, curve, samples, None, {DEFAULT_TRADE_OFF: TRADE_OFFS[DEFAULT_TRADE_OFF]})
            e = p[DEFAULT_TRADE_OFF].estimate
            print(f"  {share:4.0%} ({int(share * len(labels) * 0.8)} labels): {auc_line(labels, confidence, pool, curve)}; "
                  f"at {DEFAULT_TRADE_OFF}: precision {e['precision']:.2f}, clear {e['recall_high']:.2f}, "
                  f"wrong {e['wrong']:.0%}")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
