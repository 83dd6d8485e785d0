"""Classifier benchmark: CV scores (Jeeves vs the baseline, same folds, same run), latency, throughput.

    .venv/bin/python bench/bench_classifier.py            # search + latency (~5 min on 2 cores)
    .venv/bin/python bench/bench_classifier.py --analysis # + low-label weighting, learning curve, errors
    .venv/bin/python bench/bench_classifier.py --latency-only

Scores are out-of-fold over thread-grouped 5-fold CV; feature unions are fitted inside each
training fold. The latency figures use the shipped model (models/CURRENT).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sklearn.base import clone  # noqa: E402
from sklearn.metrics import average_precision_score, roc_auc_score  # noqa: E402

from jeeves.model.corpus import load_corpus  # noqa: E402
from jeeves.model.cues import CUES  # noqa: E402
from jeeves.model.evaluation import precision_recall_at  # noqa: E402
from jeeves.model.selection import (candidates, choose_threshold, cross_validated_threshold, format_table,  # noqa: E402
                                    search)
from jeeves.model.serving import load_model  # noqa: E402
from jeeves.model.text_fields import new_text_of  # noqa: E402
from jeeves.model.training import LOW_CONFIDENCE_WEIGHT  # noqa: E402

CORPUS = REPO / "data" / "enron-meetings"


def scores_line(name, labels, scores, masks):
    parts = []
    for subset, mask in masks.items():
        y, s = labels[mask], scores[mask]
        parts.append(f"{subset} {roc_auc_score(y, s):.3f}/{average_precision_score(y, s):.3f}")
    return f"{name:34s} " + "   ".join(parts)


def latency(corpus, n=300):
    model = load_model()
    docs = corpus.documents
    model.score(docs[:5])  # warm caches
    rng = np.random.default_rng(0)
    pick = rng.choice(len(docs), n, replace=False)
    times = []
    for i in pick:
        t = time.perf_counter()
        model.score([docs[i]])
        times.append((time.perf_counter() - t) * 1000)
    t = time.perf_counter()
    model.score(docs)
    batch = time.perf_counter() - t
    print(f"\nmodel {model.version} ({model.card['chosen']}), threshold {model.threshold:.4f}")
    print(f"per-message latency over {n} messages: median {np.median(times):.2f} ms, "
          f"p99 {np.percentile(times, 99):.2f} ms, max {np.max(times):.2f} ms")
    print(f"batch throughput: {len(docs) / batch:.0f} messages/s ({len(docs)} messages in {batch:.2f} s)")


def analysis(corpus, result, weight):
    labels = corpus.labels
    best = dict(candidates())[result.best]
    masks = {"all": np.ones(len(labels), bool), "high": np.array([c == "high" for c in corpus.confidence]),
             "random": np.array([p == "random" for p in corpus.pool])}

    def oof(train_weight, fraction=1.0, seed=0):
        scores = np.zeros(len(labels))
        rng = np.random.default_rng(seed)
        for (tr, te), (xtr, xte) in zip(result.folds, result.matrices):
            keep = np.sort(rng.choice(len(tr), int(round(fraction * len(tr))), replace=False))
            model = clone(best).fit(xtr[keep], labels[tr][keep], sample_weight=train_weight[tr][keep])
            scores[te] = model.predict_proba(xte)[:, 1]
        return scores

    print("\n== low-confidence label weighting (chosen classifier, same folds) ==")
    for w in (1.0, 0.5, 0.3, 0.1, 0.0):
        tw = np.array([w if c == "low" else 1.0 for c in corpus.confidence])
        print(scores_line(f"low labels weigh {w:g}", labels, oof(tw), masks))

    print("\n== learning curve (share of each training fold; vocabulary from the fold's text) ==")
    print(f"{'fraction':>8s} {'n_train':>8s} {'ROC AUC':>8s} {'PR AUC':>8s} {'high ROC/PR':>12s}")
    for fraction in (0.1, 0.2, 0.4, 0.6, 0.8, 1.0):
        runs = [oof(weight, fraction, seed) for seed in range(3 if fraction < 1 else 1)]
        roc = np.mean([roc_auc_score(labels, s) for s in runs])
        pr = np.mean([average_precision_score(labels, s) for s in runs])
        hm = masks["high"]
        hroc = np.mean([roc_auc_score(labels[hm], s[hm]) for s in runs])
        hpr = np.mean([average_precision_score(labels[hm], s[hm]) for s in runs])
        print(f"{fraction:8.1f} {int(fraction * len(labels) * 0.8):8d} {roc:8.3f} {pr:8.3f} {hroc:6.3f}/{hpr:.3f}")

    scores = result.oof[result.best]
    thr = choose_threshold(labels, scores, 0.9)
    pred = scores >= thr
    print(f"\n== errors of the chosen model at the recall-0.90 threshold {thr:.4f} (out-of-fold) ==")
    fn = np.flatnonzero(~pred & (labels == 1))
    fp = np.flatnonzero(pred & (labels == 0))

    def kinds(i):
        d = corpus.documents[i]
        text = new_text_of(d)
        out = []
        if corpus.confidence[i] == "low":
            out.append("low-confidence label")
        if len(text.strip()) < 120:
            out.append("very short new text")
        if d.is_forward:
            out.append("forward")
        if not (CUES["meet_noun"].search(text) or CUES["meet_verb"].search(text) or CUES["schedule_req"].search(text)):
            out.append("no meeting word in new text")
        if CUES["place_named"].search(text) or CUES["my_office"].search(text) or CUES["place_proper"].search(text):
            out.append("place-like phrase present")
        if CUES["call"].search(text):
            out.append("call/phone mentioned")
        if CUES["past"].search(text):
            out.append("past-tense cue")
        if CUES["announce"].search(text) or d.n_recipients > 10:
            out.append("announcement / many recipients")
        if not CUES["request"].search(text) and "?" not in text:
            out.append("no request or question")
        return out or ["none of the above"]

    for name, idx in (("missed positives (FN)", fn), ("false alarms (FP)", fp)):
        counter = Counter(k for i in idx for k in kinds(i))
        print(f"{name}: {len(idx)}")
        for kind, count in counter.most_common():
            print(f"  {count:4d}  {kind}")
    return fn, fp


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--analysis", action="store_true")
    parser.add_argument("--latency-only", action="store_true")
    parser.add_argument("--dump-errors", type=Path, help="write the misclassified emails' new text here")
    args = parser.parse_args(argv)

    corpus = load_corpus(CORPUS)
    if not args.latency_only:
        weight = np.array([LOW_CONFIDENCE_WEIGHT if c == "low" else 1.0 for c in corpus.confidence])
        started = time.perf_counter()
        result = search(corpus.documents, corpus.labels, corpus.groups, sample_weight=weight, progress=True)
        print(f"\nsearch took {time.perf_counter() - started:.0f} s")
        labels = corpus.labels
        masks = {"all": np.ones(len(labels), bool), "high": np.array([c == "high" for c in corpus.confidence]),
                 "random": np.array([p == "random" for p in corpus.pool])}
        print("\n== candidates (thread-grouped 5-fold CV, out-of-fold) ==")
        print(format_table(result.table, {"roc_auc": roc_auc_score(labels, result.baseline_oof),
                                          "pr_auc": average_precision_score(labels, result.baseline_oof)},
                           result.best))
        print("\n== Jeeves vs baseline, ROC AUC/PR AUC by subset ==")
        print(f"{'':34s} " + "   ".join(f"{k} (n={m.sum()}, pos={labels[m].sum()})" for k, m in masks.items()))
        print(scores_line(f"jeeves: {result.best}", labels, result.oof[result.best], masks))
        print(scores_line("baseline: tfidf 1-2 + logreg", labels, result.baseline_oof, masks))
        print("\n== at the threshold for target recall 0.90 ==")
        for name, s in (("jeeves", result.oof[result.best]), ("baseline", result.baseline_oof)):
            thr = choose_threshold(labels, s, 0.9)
            ins = precision_recall_at(labels, s, thr)
            cv = cross_validated_threshold(labels, s, result.folds, 0.9)
            print(f"{name:9s} threshold {thr:.4f}: in-sample P {ins['precision']:.3f} R {ins['recall']:.3f}; "
                  f"threshold chosen on other folds: P {cv['precision']:.3f} R {cv['recall']:.3f} F1 {cv['f1']:.3f}")
            for subset in ("high", "random"):
                m = masks[subset]
                position = np.full(len(labels), -1)
                position[m] = np.arange(m.sum())
                sub_folds = [(position[tr][m[tr]], position[te][m[te]]) for tr, te in result.folds]
                cvs = cross_validated_threshold(labels[m], s[m], sub_folds, 0.9)
                print(f"{'':9s} {subset} labels only (threshold from other folds' {subset} labels): "
                      f"P {cvs['precision']:.3f} R {cvs['recall']:.3f}")
        if args.analysis:
            fn, fp = analysis(corpus, result, weight)
            if args.dump_errors:
                np.save(args.dump_errors.with_suffix(".oof.npy"), result.oof[result.best])
                with open(args.dump_errors, "w") as out:
                    s = result.oof[result.best]
                    for kind, idx in (("FN", fn), ("FP", fp)):
                        for i in idx:
                            d = corpus.documents[i]
                            out.write(f"===== {kind} {s[i]:.3f} {corpus.confidence[i]} {corpus.pool[i]} "
                                      f"{corpus.message_ids[i]} | {d.subject}\n{new_text_of(d)[:600]}\n")
    latency(corpus)


if __name__ == "__main__":
    main()
