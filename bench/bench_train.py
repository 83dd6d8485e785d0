"""Train: time and peak memory of ``jeeves.model.training.train`` vs corpus size, with the baseline
fitted on the same messages as the reference.

    .venv/bin/python bench/bench_train.py [--sizes 1000,5000,all] [--quick-grid] [--json PATH]

Each size runs in a fresh child process (so its memory is its own), which:

1. loads the shipped corpus ``data/enron-meetings`` (3,508 labelled messages; parsing is not
   timed) and takes a random subset of ``size`` messages (seed 0; "all" = the whole corpus; a
   size larger than the corpus is reported and replaced by the whole corpus, once);
2. fits the reference — the plain baseline (TF-IDF word 1–2-grams + balanced logistic
   regression, ``jeeves.model.selection.baseline_pipeline``) once on the subset;
3. runs ``train()`` exactly as ``jeeves train`` does (full grid unless ``--quick-grid``;
   low-confidence labels weigh ``LOW_CONFIDENCE_WEIGHT``), writing the model to a temporary
   directory — never to ``models/``.

Peak memory is the child's ``ru_maxrss`` and the largest sampled RSS of the child plus its
joblib worker processes (the search fits folds in 2 processes). Target (issue #4): training on
the shipped corpus finishes in under 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import TreeRssSampler  # noqa: E402

CORPUS = REPO / "data" / "enron-meetings"
TARGET_S = 600.0


def child(size: str, quick_grid: bool) -> None:
    import logging

    logging.disable(logging.WARNING)
    import numpy as np

    from jeeves.model.corpus import load_corpus
    from jeeves.model.selection import baseline_pipeline
    from jeeves.model.training import LOW_CONFIDENCE_WEIGHT, train

    corpus = load_corpus(CORPUS)
    full = len(corpus)
    if size != "all" and int(size) < full:
        idx = np.sort(np.random.default_rng(0).choice(full, int(size), replace=False))
        corpus = corpus.subset(idx)
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    baseline_pipeline().fit(corpus.documents, corpus.labels)
    baseline_s = time.perf_counter() - t
    weight = np.array([LOW_CONFIDENCE_WEIGHT if c == "low" else 1.0 for c in corpus.confidence])
    with tempfile.TemporaryDirectory(prefix="jeeves-bench-train-") as out:
        t = time.perf_counter()
        card = train(corpus.documents, corpus.labels, corpus.groups, out_dir=Path(out), sample_weight=weight,
                     progress=False, quick=quick_grid).card
        train_s = time.perf_counter() - t
    print(json.dumps({
        "n": len(corpus), "positives": int(corpus.labels.sum()), "corpus_size": full,
        "train_s": train_s, "baseline_fit_s": baseline_s, "chosen": card.chosen,
        "cv_roc_auc": card.cv["all"]["roc_auc"], "cv_pr_auc": card.cv["all"]["pr_auc"],
        "baseline_cv_roc_auc": card.baseline["all"]["roc_auc"], "baseline_cv_pr_auc": card.baseline["all"]["pr_auc"],
        "rss_after_corpus_mb": rss_loaded,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "children_maxrss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }))


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,all")
    parser.add_argument("--quick-grid", action="store_true", help="train(quick=True): the small grid, 3 folds")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from jeeves.model.corpus import load_corpus

    corpus_size = len(load_corpus(CORPUS).labels)
    sizes, notes = [], []
    for s in args.sizes.split(","):
        if s != "all" and int(s) >= corpus_size:
            notes.append(f"size {s}: the shipped corpus has only {corpus_size} labelled messages; using all of them")
            s = "all"
        if s not in sizes:
            sizes.append(s)
    for note in notes:
        print(note)
    print(f"train: shipped corpus {CORPUS.relative_to(REPO)} ({corpus_size} messages); grid: "
          f"{'quick (train(quick=True))' if args.quick_grid else 'full, as `jeeves train`'}")
    print(f"{'size':>6} {'pos':>5} {'train s':>8} {'baseline fit s':>15} {'ratio':>7} {'peak MB (main)':>15} "
          f"{'peak MB (+workers)':>19} {'CV ROC/PR jeeves':>17} {'baseline':>12}", flush=True)
    rows = []
    for size in sizes:
        cmd = [sys.executable, __file__, "--child", size] + (["--quick-grid"] if args.quick_grid else [])
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
        with TreeRssSampler(proc.pid) as sampler:
            out, err = proc.communicate()
        if proc.returncode != 0:
            print(f"size {size}: child failed (exit {proc.returncode}):\n{err[-3000:]}", flush=True)
            continue
        r = json.loads(out.strip().splitlines()[-1])
        r["size"] = size
        r["tree_peak_mb"] = sampler.peak
        rows.append(r)
        print(f"{r['n']:6d} {r['positives']:5d} {r['train_s']:8.1f} {r['baseline_fit_s']:15.2f} "
              f"{r['train_s'] / r['baseline_fit_s']:7.0f} {r['maxrss_mb']:15.0f} {r['tree_peak_mb']:19.0f} "
              f"{r['cv_roc_auc']:8.3f}/{r['cv_pr_auc']:.3f} {r['baseline_cv_roc_auc']:6.3f}/{r['baseline_cv_pr_auc']:.3f}",
              flush=True)
    full = [r for r in rows if r["size"] == "all"]
    if full:
        verdict = "PASS" if full[0]["train_s"] < TARGET_S else "MISS"
        print(f"target: training on the whole shipped corpus < {TARGET_S / 60:.0f} min: {full[0]['train_s']:.0f} s, {verdict}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "notes": notes}, indent=2))
    print("JSON: " + json.dumps({"rows": rows, "notes": notes}))
    return rows


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], "--quick-grid" in sys.argv[3:])
    else:
        main()
