"""Classify cost: Jeeves' serving pipeline vs the plain baseline, per message and in batches,
plus the cost of each feature step of the pipeline's FeatureUnion.

    .venv/bin/python bench/bench_classify_cost.py [--n 1000] [--json PATH]

- Jeeves: the shipped model, ``jeeves.model.serving.load_model()`` (whatever ``models/CURRENT`` names
  when the bench starts).
- Reference: the plain baseline of issue #4 (TF-IDF word 1–2-grams + balanced logistic
  regression on subject + whole body, ``jeeves.model.selection.baseline_pipeline``), fitted on the
  shipped corpus ``data/enron-meetings`` in this run.
- Messages: ``--n`` real messages from the unlabelled Enron pool (not training data), parsed to
  ``EmailDocument`` once, outside the timed region. Both models score the same documents in the
  same order; per-message latency is one ``predict_proba([doc])`` call (what the daemon pays for
  a single new mail), throughput is batches of 256 (what ``classify_pending`` does).
- Feature steps: each transformer of the FeatureUnion, ``transform`` alone on the same
  documents (batch, and one message at a time), so their costs add up to the union's.

Target (issue #4): classifying one message takes < 10 ms at the median once the model is loaded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import message_pool, peak_rss_mb  # noqa: E402

CORPUS = REPO / "data" / "enron-meetings"
TARGET_MEDIAN_MS = 10.0


def per_message(fn, docs, cpu: list | None = None) -> np.ndarray:
    """Wall-clock ms per one-message call; CPU ms of this thread appended to ``cpu`` if given."""
    times = np.empty(len(docs))
    for i, doc in enumerate(docs):
        c = time.thread_time()
        t = time.perf_counter()
        fn([doc])
        times[i] = time.perf_counter() - t
        if cpu is not None:
            cpu.append((time.thread_time() - c) * 1000)
    return times * 1000


def batched(fn, docs, size: int = 256) -> float:
    t = time.perf_counter()
    for i in range(0, docs.shape[0] if hasattr(docs, "shape") else len(docs), size):
        fn(docs[i:i + size])
    return time.perf_counter() - t


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="messages from the unlabelled pool")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    from jeeves.model.corpus import load_corpus
    from jeeves.model.selection import baseline_pipeline
    from jeeves.model.serving import load_model
    from jeeves.parsing import EmailDocument, parse_email

    t = time.perf_counter()
    model = load_model()
    load_s = time.perf_counter() - t
    rss_model = peak_rss_mb()
    t = time.perf_counter()
    corpus = load_corpus(CORPUS)
    baseline = baseline_pipeline().fit(corpus.documents, corpus.labels)
    baseline_fit_s = time.perf_counter() - t

    docs = [EmailDocument.from_parsed(parse_email(raw)) for raw in message_pool(args.n)]
    jeeves_score = model.score
    base_score = lambda d: baseline.predict_proba(d)[:, 1]  # noqa: E731
    # warm both (first-call imports, WordNet loading, caches)
    jeeves_score(docs[:20])
    base_score(docs[:20])

    # Interleave the two so load changes on the shared machine hit both alike.
    # CPU time of the thread is reported too: it does not depend on what else the machine runs.
    j_cpu: list[float] = []
    b_cpu: list[float] = []
    half = len(docs) // 2
    j_lat = np.concatenate([per_message(jeeves_score, docs[:half], j_cpu)])
    b_lat = per_message(base_score, docs[:half], b_cpu)
    j_lat = np.concatenate([j_lat, per_message(jeeves_score, docs[half:], j_cpu)])
    b_lat = np.concatenate([b_lat, per_message(base_score, docs[half:], b_cpu)])
    j_cpu, b_cpu = np.array(j_cpu), np.array(b_cpu)
    j_batch = batched(jeeves_score, docs)
    b_batch = batched(base_score, docs)

    union = model.pipeline.named_steps["features"]
    steps = []
    for name, transformer in union.transformer_list:
        if transformer == "drop":
            continue
        batch_s = batched(transformer.transform, docs)
        single = per_message(transformer.transform, docs[: min(len(docs), 300)])
        steps.append({"step": name, "batch_s": batch_s, "us_per_msg_batch": 1e6 * batch_s / len(docs),
                      "median_ms_single": float(np.median(single)), "share": 0.0})
    x = union.transform(docs)
    clf = model.pipeline.named_steps["clf"]
    clf_s = batched(clf.predict_proba, x.tocsr() if hasattr(x, "tocsr") else x)
    steps.append({"step": "clf (" + type(clf).__name__ + ")", "batch_s": clf_s,
                  "us_per_msg_batch": 1e6 * clf_s / len(docs), "median_ms_single": float("nan"), "share": 0.0})
    total = sum(s["batch_s"] for s in steps)
    for s in steps:
        s["share"] = s["batch_s"] / total

    pct = lambda a, q: float(np.percentile(a, q))  # noqa: E731
    fig = {
        "n": len(docs), "model": model.version, "chosen": model.card.get("chosen"),
        "model_load_s": load_s, "rss_after_load_mb": rss_model, "baseline_fit_s": baseline_fit_s,
        "jeeves": {"cpu_median_ms": pct(j_cpu, 50), "cpu_p99_ms": pct(j_cpu, 99), "median_ms": pct(j_lat, 50), "p99_ms": pct(j_lat, 99), "max_ms": float(j_lat.max()),
                   "single_msg_per_s": 1000 / float(np.mean(j_lat)), "batch_msg_per_s": len(docs) / j_batch},
        "baseline": {"cpu_median_ms": pct(b_cpu, 50), "cpu_p99_ms": pct(b_cpu, 99), "median_ms": pct(b_lat, 50), "p99_ms": pct(b_lat, 99), "max_ms": float(b_lat.max()),
                     "single_msg_per_s": 1000 / float(np.mean(b_lat)), "batch_msg_per_s": len(docs) / b_batch},
        "steps": steps, "target_median_ms": TARGET_MEDIAN_MS, "loadavg": __import__("os").getloadavg()[0], "peak_rss_mb": peak_rss_mb(),
    }

    j, b = fig["jeeves"], fig["baseline"]
    print(f"classify: {len(docs)} unlabelled Enron messages; model {model.version} ({fig['chosen']}), "
          f"loaded in {load_s:.1f} s; baseline fitted on {len(corpus)} corpus messages in {baseline_fit_s:.1f} s")
    print(f"{'':34s} {'median ms':>10s} {'p99 ms':>8s} {'max ms':>8s} {'CPU median':>11s} {'CPU p99':>8s} "
          f"{'msg/s (1 by 1)':>15s} {'msg/s (256)':>12s}")
    for name, r in (("jeeves (shipped pipeline)", j), ("baseline tfidf 1-2 + logreg (ref)", b)):
        print(f"{name:34s} {r['median_ms']:10.2f} {r['p99_ms']:8.2f} {r['max_ms']:8.1f} {r['cpu_median_ms']:11.2f} "
              f"{r['cpu_p99_ms']:8.2f} {r['single_msg_per_s']:15.0f} {r['batch_msg_per_s']:12.0f}")
    print(f"ratio jeeves/baseline: median latency {j['median_ms'] / b['median_ms']:.1f}x, "
          f"batch throughput {j['batch_msg_per_s'] / b['batch_msg_per_s']:.3f}x")
    verdict = "PASS" if j["median_ms"] < TARGET_MEDIAN_MS else "MISS"
    print(f"target median < {TARGET_MEDIAN_MS:g} ms per message: {verdict} (wall clock, load average "
          f"{__import__('os').getloadavg()[0]:.1f} on {__import__('os').cpu_count()} cores); CPU time median "
          f"{j['cpu_median_ms']:.2f} ms: {'PASS' if j['cpu_median_ms'] < TARGET_MEDIAN_MS else 'MISS'}")
    print("\nfeature steps (transform alone, same messages):")
    print(f"{'step':28s} {'batch s':>8s} {'µs/msg':>8s} {'1-msg median ms':>16s} {'share':>6s}")
    for s in steps:
        print(f"{s['step']:28s} {s['batch_s']:8.2f} {s['us_per_msg_batch']:8.0f} {s['median_ms_single']:16.2f} "
              f"{100 * s['share']:5.1f}%")
    print(f"peak RSS {fig['peak_rss_mb']:.0f} MB (after loading the model: {rss_model:.0f} MB)")
    if args.json:
        args.json.write_text(json.dumps(fig, indent=2))
    print("JSON: " + json.dumps(fig))
    return fig


if __name__ == "__main__":
    main()
