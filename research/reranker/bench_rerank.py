"""Reranker latency: one message at a time (what the daemon pays per new mail) and in batches.

    .venv/bin/python bench/bench_rerank.py RERANKER_DIR [--n 200] [--threads 1] [--json PATH]

- Reranker: ``jeeves.rerank.Reranker`` on the directory written by ``scripts/train_reranker.py``
  (the model its card names, int8 or fp32), onnxruntime with ``--threads`` intra-op threads.
  With ``--also-fp32`` the fp32 export beside it is timed too (same tokenizer, same card).
- Messages: ``--n`` real messages from the unlabelled Enron pool (the sample mailbox if absent),
  parsed once outside the timed region; tokenisation is inside it (serving pays for it).
- Per message: one ``scores([doc])`` call; wall-clock median, p90, p99 and mean, and the CPU
  time (``process_time``: less sensitive to a busy box) median and p99; plus the tokens read.
  Batch: ``scores`` on all ``--n`` at once (length-sorted batches of 16), per message.

The box is shared: run it on an idle machine for figures worth comparing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import message_pool  # noqa: E402
from jeeves.parsing import EmailDocument, parse_email  # noqa: E402
from jeeves.rerank import CARD_NAME, Reranker, document_text, file_sha256  # noqa: E402


def time_one(reranker: Reranker, docs) -> dict:
    reranker.scores(docs[:5])  # warm-up: onnxruntime allocates on first runs
    times, cpu_times = [], []
    for doc in docs:
        t0, c0 = time.perf_counter(), time.process_time()
        reranker.scores([doc])
        times.append((time.perf_counter() - t0) * 1000)
        cpu_times.append((time.process_time() - c0) * 1000)
    t, c = np.array(times), np.array(cpu_times)
    t0 = time.perf_counter()
    reranker.scores(docs)
    batch = (time.perf_counter() - t0) * 1000 / len(docs)
    return {"median_ms": round(float(np.median(t)), 2), "p90_ms": round(float(np.percentile(t, 90)), 2),
            "p99_ms": round(float(np.percentile(t, 99)), 2), "mean_ms": round(float(t.mean()), 2),
            "cpu_median_ms": round(float(np.median(c)), 2), "cpu_p99_ms": round(float(np.percentile(c, 99)), 2),
            "batch_ms_per_message": round(batch, 2)}


def fp32_twin(directory: Path, workdir: Path) -> Path:
    """A copy of the reranker directory whose card names the fp32 export instead."""
    card = json.loads((directory / CARD_NAME).read_text())
    fp32 = directory / "reranker.fp32.onnx"
    if not fp32.exists():
        sys.exit(f"bench_rerank: {fp32} not found")
    for name in (card["tokenizer"],):
        shutil.copy(directory / name, workdir / name)
    (workdir / fp32.name).symlink_to(fp32)
    card["model"] = fp32.name
    card["sha256"][fp32.name] = file_sha256(fp32)
    (workdir / CARD_NAME).write_text(json.dumps(card))
    return workdir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--also-fp32", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    docs = [EmailDocument.from_parsed(parse_email(raw)) for raw in message_pool(args.n)]
    results = {"messages": len(docs), "threads": args.threads}
    reranker = Reranker(args.directory, threads=args.threads)
    tokens = np.array([len(e.ids) for e in reranker.tokenizer.encode_batch(
        [document_text(d.subject, d.new_text) for d in docs])])
    results["tokens_read"] = {"median": float(np.median(tokens)), "mean": round(float(tokens.mean()), 1),
                              "at_max_len": round(float((tokens >= reranker.max_len).mean()), 3)}
    results[f"served ({reranker.card['model']})"] = time_one(reranker, docs)
    if args.also_fp32:
        with tempfile.TemporaryDirectory() as tmp:
            results["fp32 (reranker.fp32.onnx)"] = time_one(Reranker(fp32_twin(args.directory, Path(tmp)),
                                                              threads=args.threads), docs)
    for name, figures in results.items():
        print(f"{name}: {figures}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
