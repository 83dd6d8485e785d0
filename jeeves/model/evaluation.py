"""Score a served model on labelled mail: metrics at its own threshold, curves, a short report.

The threshold is the model's (chosen at training time on other data), never re-tuned on the
evaluation set, so the precision/recall printed here are what a user would see.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from sklearn.metrics import (average_precision_score, brier_score_loss, confusion_matrix, precision_recall_curve,
                             precision_recall_fscore_support, roc_auc_score, roc_curve)

logger = logging.getLogger(__name__)


@dataclass
class EvaluationReport:
    roc_auc: float
    pr_auc: float
    precision: float
    recall: float
    f1: float
    threshold: float
    n: int
    n_positive: int
    confusion_matrix: list[list[int]]  # [[tn, fp], [fn, tp]]
    model_version: str = ""
    brier: float = float("nan")
    in_unsure_band: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in ("roc_auc", "pr_auc", "precision", "recall", "f1", "threshold", "n",
                                              "n_positive", "confusion_matrix", "model_version", "brier",
                                              "in_unsure_band", "files")}
        data.update(self.extra)
        return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in data.items()}

    def to_text(self) -> str:
        (tn, fp), (fn, tp) = self.confusion_matrix
        return "\n".join([
            f"model {self.model_version}: {self.n} messages, {self.n_positive} positive",
            f"ROC AUC {_fmt(self.roc_auc)}   PR AUC {_fmt(self.pr_auc)}   Brier {_fmt(self.brier)}",
            f"at threshold {self.threshold:.3f}: precision {self.precision:.3f}  recall {self.recall:.3f}  "
            f"F1 {self.f1:.3f}",
            "confusion matrix    predicted 0  predicted 1",
            f"  actual 0          {tn:11d}  {fp:11d}",
            f"  actual 1          {fn:11d}  {tp:11d}",
            f"in the unsure band: {self.in_unsure_band}",
        ] + _inbox_lines(self.extra) + [f"wrote {path}" for path in self.files])


def _inbox_lines(extra: dict[str, Any]) -> list[str]:
    """What a person with an ordinary inbox would get, in words."""
    lines = []
    if extra.get("in_sample"):
        lines.append("in-sample: the model was trained on these labels; quote the model card's cross-validated figures")
    for key, what in (("inbox", "on this corpus's inbox mail"),
                      ("card_inbox", "model card, cross-validated on its training labels")):
        e = extra.get(key)
        if not e:
            continue
        lines.append(f"ordinary inbox ({what}, trade-off {extra.get('trade_off') or '-'}):")
        lines.append(f"  texts {e['texted']:.1%} of mail; precision {e['precision']:.2f}; recall {e['recall']:.2f}; "
                     f"clear requests texted {e['recall_high']:.2f}; plainly wrong {e['wrong']:.0%} of texts")
        if e.get("digest_threshold") is not None:
            lines.append(f"  digest lists {e['digest']:.1%} of mail (precision {e['digest_precision']:.2f}); texts + "
                         f"digest reach {e['recall_with_digest']:.2f} of requests, {e['recall_high_with_digest']:.2f} "
                         "of clear ones")
    return lines


def _fmt(value: float) -> str:
    return "n/a" if value is None or np.isnan(value) else f"{value:.3f}"


def precision_recall_at(labels, scores, threshold: float) -> dict[str, float]:
    """Precision, recall and F1 (scikit-learn's, 0 where undefined) when ``scores >= threshold``
    means positive, with the counts behind them."""
    labels = np.asarray(labels, dtype=int)
    predicted = (np.asarray(scores, dtype=float) >= threshold).astype(int)
    precision, recall, f1, _ = precision_recall_fscore_support(labels, predicted, average="binary", pos_label=1,
                                                               zero_division=0)
    (_, fp), (fn, tp) = confusion_matrix(labels, predicted, labels=[0, 1]).tolist()
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1), "tp": tp, "fp": fp, "fn": fn}


def metrics(labels, scores, threshold: float) -> dict[str, Any]:
    labels = np.asarray(labels, dtype=int)
    scores = np.asarray(scores, dtype=float)
    both = len(set(labels.tolist())) == 2
    at = precision_recall_at(labels, scores, threshold)
    return {
        "roc_auc": float(roc_auc_score(labels, scores)) if both else float("nan"),
        "pr_auc": float(average_precision_score(labels, scores)) if both else float("nan"),
        "precision": at["precision"], "recall": at["recall"], "f1": at["f1"],
        "threshold": float(threshold), "n": int(len(labels)), "n_positive": int(labels.sum()),
        "confusion_matrix": [[len(labels) - at["tp"] - at["fp"] - at["fn"], at["fp"]], [at["fn"], at["tp"]]],
        "brier": float(brier_score_loss(labels, scores)) if len(labels) else float("nan"),
    }


def evaluate(model, documents: Sequence, labels, *, out_dir: Path | None = None,
             extra: dict | None = None) -> EvaluationReport:
    """Score ``documents`` with ``model`` (a ``ServingModel``) and compare with ``labels``."""
    labels = np.asarray(labels, dtype=int)
    scores = model.score(list(documents))
    values = metrics(labels, scores, model.threshold)
    band = getattr(model, "unsure_band", (model.threshold, model.threshold))
    report = EvaluationReport(**values, model_version=getattr(model, "version", ""),
                              in_unsure_band=int(np.sum((scores >= band[0]) & (scores <= band[1]))),
                              extra=dict(extra or {}))
    if out_dir is not None:
        report.files = write_plots(labels, scores, model.threshold, Path(out_dir))
        report_path = Path(out_dir) / "report.md"
        report_path.write_text(markdown_report(report))
        report.files.append(str(report_path))
    return report


def evaluate_corpus(model, corpus_dir, out_dir: Path | None = None) -> EvaluationReport:
    """Evaluate on one or several corpus directories.

    Adds scores on ``high`` labels and the ``random`` pool, and — where the corpus holds mail
    that stands for an inbox (a random pool, weighted active draws) — the inbox estimate at the
    model's text and digest thresholds. The model card's own cross-validated inbox estimate is
    reported beside it (``card_inbox``): on the corpus the model was trained on, that is the
    honest figure.
    """
    from jeeves.model.corpus import load_corpora
    from jeeves.model.inbox import estimate

    corpus = load_corpora(corpus_dir)
    scores = model.score(corpus.documents)
    dirs = [corpus_dir] if isinstance(corpus_dir, (str, Path)) else list(corpus_dir)
    extra: dict[str, Any] = {"corpus": ", ".join(str(d) for d in dirs), "data_hash": corpus.data_hash,
                             "digest_threshold": getattr(model, "digest_threshold", None),
                             "trade_off": getattr(model, "trade_off", None)}
    samples = corpus.inbox_samples()
    if samples:
        extra["inbox"] = estimate(corpus.labels, corpus.confidence, scores, samples, model.threshold,
                                  getattr(model, "digest_threshold", None)).as_dict()
    card_points = (getattr(model, "card", {}) or {}).get("operating_points") or {}
    point = card_points.get(getattr(model, "trade_off", None) or "")
    if point and point.get("cross_validated"):
        extra["card_inbox"] = point["cross_validated"]
    for name, mask in (("high", [c == "high" for c in corpus.confidence]),
                       ("random", [p == "random" for p in corpus.pool])):
        mask = np.asarray(mask)
        if mask.any() and not mask.all():
            sub = metrics(corpus.labels[mask], scores[mask], model.threshold)
            extra[name] = {k: sub[k] for k in ("roc_auc", "pr_auc", "precision", "recall", "n", "n_positive")}
            extra[name] = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in extra[name].items()}
    card = getattr(model, "card", {}) or {}
    trained_on = set(card.get("corpus_hashes") or ()) | ({card["data_hash"]} if card.get("data_hash") else set())
    if corpus.data_hash in trained_on or trained_on & set(corpus.part_hashes):
        logger.warning("evaluating on labels the model was trained on: these scores are in-sample; "
                       "the model card's cross-validated figures are the honest ones")
        extra["in_sample"] = True
    return evaluate(_Precomputed(model, scores), corpus.documents, corpus.labels, out_dir=out_dir, extra=extra)


class _Precomputed:
    """Wraps a model so a corpus is scored once for the main and subset metrics."""

    def __init__(self, model, scores):
        self._model, self._scores = model, scores
        self.threshold = model.threshold
        self.version = getattr(model, "version", "")
        self.unsure_band = getattr(model, "unsure_band", (model.threshold, model.threshold))

    def score(self, documents):
        return self._scores


def write_plots(labels, scores, threshold: float, out_dir: Path) -> list[str]:
    """ROC, PR and calibration plots as PNG; Agg so it works on a headless server."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve

    out_dir.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(labels)
    files = []
    if len(set(labels.tolist())) == 2:
        fpr, tpr, _ = roc_curve(labels, scores)
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.plot(fpr, tpr, label=f"ROC AUC {roc_auc_score(labels, scores):.3f}")
        ax.plot([0, 1], [0, 1], "--", color="grey")
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
        ax.legend(loc="lower right")
        files.append(_save(fig, out_dir / "roc.png"))

        precision, recall, _ = precision_recall_curve(labels, scores)
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.plot(recall, precision, label=f"PR AUC {average_precision_score(labels, scores):.3f}")
        at = metrics(labels, scores, threshold)
        ax.scatter([at["recall"]], [at["precision"]], color="red", zorder=3, label=f"threshold {threshold:.3f}")
        ax.axhline(labels.mean(), ls="--", color="grey", label="prevalence")
        ax.set(xlabel="recall", ylabel="precision", title="Precision-recall", xlim=(0, 1), ylim=(0, 1.02))
        ax.legend(loc="lower left")
        files.append(_save(fig, out_dir / "pr.png"))

        prob_true, prob_pred = calibration_curve(labels, scores, n_bins=10, strategy="quantile")
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.plot(prob_pred, prob_true, "o-", label="model")
        ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect")
        ax.set(xlabel="mean predicted score", ylabel="share positive", title="Calibration")
        ax.legend(loc="upper left")
        files.append(_save(fig, out_dir / "calibration.png"))
    return files


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return str(path)


def markdown_report(report: EvaluationReport) -> str:
    d = report.as_dict()
    (tn, fp), (fn, tp) = report.confusion_matrix
    lines = [f"# Evaluation of model {report.model_version}", "",
             f"{report.n} messages, {report.n_positive} positive.", "",
             "| metric | value |", "| --- | --- |"]
    for key in ("roc_auc", "pr_auc", "precision", "recall", "f1", "threshold", "brier", "in_unsure_band"):
        value = d[key]
        lines.append(f"| {key} | {value:.3f} |" if isinstance(value, float) else f"| {key} | {value} |")
    lines += ["", "| | predicted 0 | predicted 1 |", "| --- | --- | --- |",
              f"| actual 0 | {tn} | {fp} |", f"| actual 1 | {fn} | {tp} |", ""]
    for name in ("high", "random"):
        if name in report.extra:
            sub = report.extra[name]
            lines.append(f"- `{name}` subset: n={sub['n']}, ROC AUC {sub['roc_auc']}, PR AUC {sub['pr_auc']}, "
                         f"precision {sub['precision']:.3f}, recall {sub['recall']:.3f}")
    lines += [f"- {line.strip()}" for line in _inbox_lines(report.extra)]
    lines += ["", "![ROC](roc.png) ![PR](pr.png) ![Calibration](calibration.png)", ""]
    return "\n".join(lines)
