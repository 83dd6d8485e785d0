"""Model selection: the grouped grid search, the recall threshold and the inbox operating points.

Selection is honest by construction: folds are grouped by thread (quoted copies of one
conversation never sit on both sides), the feature union is re-fitted inside every training
fold, and thresholds are picked on out-of-fold scores. Their precision/recall are reported with
a second level of honesty: the threshold applied to fold *k* is chosen on the out-of-fold scores
of the *other* folds only.

Thresholds are chosen for an ordinary inbox, not for the enriched corpus: where the labels
include mail that stands for an inbox (a random pool, weighted active-learning draws;
``jeeves.model.inbox``), each trade-off gets an operating point: a text threshold, a digest
threshold and what a person would get at them. Without such mail, the threshold falls back to
a target recall on the corpus.

The search fits the feature union once per fold and then every classifier candidate on the
same matrices. That is exactly a grid search over the whole pipeline (features are fitted on
training folds only) without re-lemmatising the corpus for every candidate, which keeps
``jeeves train`` within minutes on two cores.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.naive_bayes import ComplementNB
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

from jeeves.model.evaluation import precision_recall_at
from jeeves.model.features import baseline_features, build_features
from jeeves.model.inbox import (DIGEST_BUDGET, DIGEST_TARGET_RECALL_HIGH, TRADE_OFFS, InboxEstimate, InboxSample, TradeOff,
                                estimate)


# --- candidates ------------------------------------------------------------------------------


def candidates(quick: bool = False) -> list[tuple[str, Any]]:
    """The classifier grid, searched over the same fold-fitted features."""
    grid: list[tuple[str, Any]] = []
    for C in ([4.0] if quick else [1.0, 4.0, 16.0]):
        grid.append((f"logreg(C={C:g})", LogisticRegression(C=C, class_weight="balanced", max_iter=5000)))
    for alpha in ([0.3] if quick else [0.1, 0.3, 1.0]):
        grid.append((f"complement_nb(alpha={alpha:g})", ComplementNB(alpha=alpha)))
    if not quick:
        for C in (0.03, 0.1):
            grid.append((f"linear_svm_calibrated(C={C:g})",
                         CalibratedClassifierCV(LinearSVC(C=C, class_weight="balanced"), cv=3, method="sigmoid")))
    return grid


def baseline_pipeline() -> Pipeline:
    """TF-IDF word 1–2-grams + balanced logistic regression on subject + body (issue #4's yardstick)."""
    return Pipeline([("features", baseline_features()),
                     ("clf", LogisticRegression(class_weight="balanced", max_iter=5000))])


# --- splitting and thresholds ------------------------------------------------------------------


def grouped_folds(labels, groups, n_splits: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds where one thread never sits on both sides."""
    labels = np.asarray(labels)
    n_splits = max(2, min(n_splits, int(labels.sum()), int((1 - labels).sum())))
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(labels)), labels, np.asarray(groups)))


def choose_threshold(labels, scores, target_recall: float = 0.9) -> float:
    """The highest score threshold whose recall still reaches ``target_recall``.

    The highest such threshold gives the best precision for that recall; a missed request costs
    more than a false alarm, so recall is the constraint and precision what we maximise.
    """
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    positives = np.sort(scores[labels == 1])[::-1]
    if len(positives) == 0:
        raise ValueError("cannot choose a threshold without positive examples")
    k = int(np.ceil(target_recall * len(positives))) - 1
    return float(positives[min(max(k, 0), len(positives) - 1)])


def cross_validated_threshold(labels, scores, folds, target_recall: float) -> dict[str, float]:
    """Precision/recall when fold k's threshold comes from the other folds' scores only."""
    labels, scores = np.asarray(labels), np.asarray(scores)
    predicted = np.zeros(len(labels), dtype=bool)
    for _, test in folds:
        others = np.setdiff1d(np.arange(len(labels)), test)
        thr = choose_threshold(labels[others], scores[others], target_recall)
        predicted[test] = scores[test] >= thr
    return precision_recall_at(labels, predicted.astype(float), 0.5)


def unsure_band(labels, scores, threshold: float) -> tuple[float, float]:
    """Scores between the thresholds for 95 % and 80 % recall: where a reviewer's label helps most."""
    low = min(choose_threshold(labels, scores, 0.95), threshold)
    high = max(choose_threshold(labels, scores, 0.80), threshold)
    return float(low), float(high)


# --- search ----------------------------------------------------------------------------------


def _fit_fold(features, documents, labels, train, test):
    fitted = clone(features)
    x_train = fitted.fit_transform([documents[i] for i in train], labels[train]).tocsr()
    x_test = fitted.transform([documents[i] for i in test]).tocsr()
    return x_train, x_test


def _baseline_fold(documents, labels, train, test):
    model = baseline_pipeline()
    model.fit([documents[i] for i in train], labels[train])
    return model.predict_proba([documents[i] for i in test])[:, 1]


def ranking_scores(labels, scores, mask=None) -> dict[str, float]:
    """ROC and PR AUC of ``scores`` (on the rows of ``mask``); NaN where one class is missing."""
    if mask is not None:
        labels, scores = labels[mask], scores[mask]
    if len(set(labels.tolist())) < 2:
        return {"roc_auc": float("nan"), "pr_auc": float("nan"), "n": int(len(labels))}
    return {"roc_auc": float(roc_auc_score(labels, scores)), "pr_auc": float(average_precision_score(labels, scores)),
            "n": int(len(labels)), "n_positive": int(labels.sum())}


@dataclass
class SearchResult:
    folds: list
    oof: dict[str, np.ndarray]  # candidate name -> out-of-fold probabilities
    baseline_oof: np.ndarray | None
    table: list[dict[str, Any]]
    best: str
    matrices: list = field(default_factory=list, repr=False)  # per fold (x_train, x_test), for analyses


def search(documents, labels, groups, *, sample_weight=None, n_splits: int = 5, quick: bool = False,
           progress: bool = True, with_baseline: bool = True, n_jobs: int = 2, features=None) -> SearchResult:
    """Cross-validate every candidate (and the baseline) on the same thread-grouped folds."""
    from tqdm.auto import tqdm

    labels = np.asarray(labels, dtype=int)
    weight = np.ones(len(labels)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    folds = grouped_folds(labels, groups, n_splits=3 if quick and n_splits == 5 else n_splits)
    features = features if features is not None else build_features(use_char=not quick)
    grid = candidates(quick)

    bar = tqdm(total=len(folds) * (len(grid) + 1 + int(with_baseline)), desc="model search", disable=not progress,
               unit="fit")
    matrices = []
    for result in Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(_fit_fold)(features, documents, labels, tr, te) for tr, te in folds):
        matrices.append(result)
        bar.update(1)
    baseline_oof = None
    if with_baseline:
        baseline_oof = np.zeros(len(labels))
        for (tr, te), proba in zip(folds, Parallel(n_jobs=n_jobs, return_as="generator")(
                delayed(_baseline_fold)(documents, labels, tr, te) for tr, te in folds)):
            baseline_oof[te] = proba
            bar.update(1)

    oof: dict[str, np.ndarray] = {}
    table = []
    for name, estimator in grid:
        started = time.perf_counter()
        scores = np.zeros(len(labels))
        for (tr, te), (x_train, x_test) in zip(folds, matrices):
            model = clone(estimator).fit(x_train, labels[tr], sample_weight=weight[tr])
            scores[te] = model.predict_proba(x_test)[:, 1]
            bar.update(1)
        oof[name] = scores
        fold_auc = [roc_auc_score(labels[te], scores[te]) for _, te in folds if 0 < labels[te].sum() < len(te)]
        table.append({"name": name, **ranking_scores(labels, scores), "fold_roc_auc_std": float(np.std(fold_auc)),
                      "seconds": round(time.perf_counter() - started, 2)})
    bar.close()
    best = max(table, key=lambda row: (round(row["roc_auc"], 3), row["pr_auc"]))["name"]
    return SearchResult(folds, oof, baseline_oof, table, best, matrices)


def format_table(table: list[dict[str, Any]], baseline: dict[str, Any] | None = None, best: str | None = None) -> str:
    lines = [f"{'model':34s} {'ROC AUC':>8s} {'PR AUC':>8s} {'±fold':>7s}"]
    for row in sorted(table, key=lambda r: -r["roc_auc"]):
        mark = " *" if row["name"] == best else ""
        lines.append(f"{row['name']:34s} {row['roc_auc']:8.3f} {row['pr_auc']:8.3f} {row['fold_roc_auc_std']:7.3f}{mark}")
    if baseline:
        lines.append(f"{'baseline (tfidf 1-2 + logreg)':34s} {baseline['roc_auc']:8.3f} {baseline['pr_auc']:8.3f}")
    return "\n".join(lines)


# --- operating points for an ordinary inbox ----------------------------------------------------


def _distinct_thresholds(scores) -> np.ndarray:
    """Distinct scores, highest first: every threshold that changes a decision."""
    return np.unique(np.asarray(scores, dtype=float))[::-1]


def choose_text_threshold(labels, confidence, scores, samples: Sequence[InboxSample], trade_off: TradeOff) -> float:
    """The lowest threshold (most requests texted) that keeps the trade-off's budget and floor.

    Thresholds are tried from the top; the texted share only grows as the threshold falls, so
    the search stops at the first one past the budget. Where no threshold inside the budget
    reaches the floor, the most precise one that still texts a quarter of the budget is
    returned (a threshold that texts nothing is no answer).
    """
    labels, scores = np.asarray(labels, dtype=int), np.asarray(scores, dtype=float)
    inside = np.zeros(len(labels), dtype=bool)
    for s in samples:
        inside |= s.mask
    chosen, fallback, best_precision = None, None, -1.0
    for t in _distinct_thresholds(scores[inside]):
        e = estimate(labels, confidence, scores, samples, t)
        if e.texted > trade_off.budget:
            break
        if e.precision >= trade_off.precision_floor:
            chosen = t
        if e.texted >= trade_off.budget / 4 and e.precision > best_precision:
            fallback, best_precision = t, e.precision
    if chosen is not None:
        return float(chosen)
    if fallback is not None:
        return float(fallback)
    return float(np.max(scores))


def choose_digest_threshold(labels, confidence, scores, samples: Sequence[InboxSample], text_threshold: float,
                            *, budget: float = DIGEST_BUDGET,
                            target_recall_high: float = DIGEST_TARGET_RECALL_HIGH) -> float:
    """The highest threshold below the text's that lets texts + digest reach ``target_recall_high``
    of clear requests, without listing more than ``budget`` of all mail (the budget wins)."""
    labels, scores = np.asarray(labels, dtype=int), np.asarray(scores, dtype=float)
    inside = np.zeros(len(labels), dtype=bool)
    for s in samples:
        inside |= s.mask
    chosen = text_threshold
    for t in _distinct_thresholds(scores[inside]):
        if t >= text_threshold:
            continue
        e = estimate(labels, confidence, scores, samples, text_threshold, t)
        if e.digest > budget:
            break
        chosen = t
        if e.recall_high_with_digest >= target_recall_high:
            break
    return float(chosen)


@dataclass
class OperatingPoint:
    """One trade-off's thresholds and what they give, as stored in a model card."""

    trade_off: str
    text_threshold: float
    digest_threshold: float
    estimate: dict[str, Any]
    #: The same figures when each fold's thresholds come from the other folds only.
    cross_validated: dict[str, Any] | None = None


def operating_points(labels, confidence, scores, samples: Sequence[InboxSample], folds=None,
                     trade_offs: Mapping[str, TradeOff] = TRADE_OFFS) -> dict[str, OperatingPoint]:
    """Thresholds and inbox estimates for every trade-off; with ``folds``, an honest second figure.

    The in-sample figure picks thresholds on the same out-of-fold scores it reports; the
    cross-validated one applies to each fold thresholds chosen on the other folds' scores, so
    it also pays for the thresholds' own noise.
    """
    labels, scores = np.asarray(labels, dtype=int), np.asarray(scores, dtype=float)
    confidence = np.asarray(confidence)
    points = {}
    for name, trade_off in trade_offs.items():
        text = choose_text_threshold(labels, confidence, scores, samples, trade_off)
        digest = choose_digest_threshold(labels, confidence, scores, samples, text)
        point = OperatingPoint(name, text, digest, estimate(labels, confidence, scores, samples, text, digest).as_dict())
        if folds is not None:
            point.cross_validated = _cross_validated(labels, confidence, scores, samples, folds, trade_off).as_dict()
        points[name] = point
    return points


def _cross_validated(labels, confidence, scores, samples, folds, trade_off: TradeOff) -> InboxEstimate:
    """Decisions for fold k made with thresholds chosen on the other folds' scores."""
    texted = np.zeros(len(labels), dtype=bool)
    listed = np.zeros(len(labels), dtype=bool)
    for _, test in folds:
        others = np.ones(len(labels), dtype=bool)
        others[test] = False
        sub = [InboxSample(s.name, s.mask[others], s.weight[others]) for s in samples if s.mask[others].any()]
        text = choose_text_threshold(labels[others], confidence[others], scores[others], sub, trade_off)
        digest = choose_digest_threshold(labels[others], confidence[others], scores[others], sub, text)
        texted[test] = scores[test] >= text
        listed[test] = (scores[test] >= digest) & ~texted[test]
    # Encode the decisions as scores so the same estimator reports them: 2 texted, 1 listed.
    decided = np.where(texted, 2.0, np.where(listed, 1.0, 0.0))
    return estimate(labels, confidence, decided, samples, 2.0, 1.0)
