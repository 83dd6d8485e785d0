"""Model selection, threshold choice, persistence with a model card, and the serving model.

Selection is honest by construction: folds are grouped by thread (quoted copies of one
conversation never sit on both sides), the feature union is re-fitted inside every training
fold, and the decision threshold is picked on out-of-fold scores. Its precision/recall are
reported with a second level of honesty: the threshold applied to fold *k* is chosen on the
out-of-fold scores of the *other* folds only.

Thresholds are chosen for an ordinary inbox, not for the enriched corpus: where the labels
include mail that stands for an inbox (a random pool, weighted active-learning draws), the
card carries one operating point per trade-off (``jeeves.inbox``): a text threshold, a digest
threshold and what a person would get at them. Without such mail, the threshold falls back to
a target recall on the corpus.

The search fits the feature union once per fold and then every classifier candidate on the
same matrices. That is exactly a grid search over the whole pipeline (features are fitted on
training folds only) without re-lemmatising the corpus for every candidate, which keeps
``jeeves train`` within minutes on two cores.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import joblib
import numpy as np
import scipy.sparse as sp
import sklearn
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.naive_bayes import ComplementNB
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

from jeeves.config import SHIPPED_MODELS_DIR
from jeeves.resources import default_models_dir
from jeeves.errors import ModelError
from jeeves.parsing import EmailDocument
from jeeves.registry import file_sha256 as _sha256, resolve_model_path, verify_model  # noqa: F401 - re-exported
from jeeves.features import baseline_features, build_features

logger = logging.getLogger(__name__)

CARD_SCHEMA = 1
#: Weight given to ``low``-confidence labels by :func:`train_corpus`; chosen on CV (see the report).
LOW_CONFIDENCE_WEIGHT = 0.3


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


def precision_recall_at(labels, scores, threshold: float) -> dict[str, float]:
    labels, predicted = np.asarray(labels), np.asarray(scores) >= threshold
    tp = int(np.sum(predicted & (labels == 1)))
    fp = int(np.sum(predicted & (labels == 0)))
    fn = int(np.sum(~predicted & (labels == 1)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


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


@dataclass
class ModelCard:
    version: str
    model_file: str
    sha256: str
    created: str
    chosen: str
    threshold: float
    unsure_band: tuple[float, float]
    target_recall: float
    data_hash: str
    n: int
    label_counts: dict[str, int]
    cv: dict[str, Any]
    candidates: list[dict[str, Any]]
    baseline: dict[str, Any]
    library_versions: dict[str, str]
    training_seconds: float
    sample_weighting: str = "none"
    schema: int = CARD_SCHEMA
    notes: list[str] = field(default_factory=list)
    #: Per trade-off (``jeeves.inbox.TRADE_OFFS``): text and digest thresholds and the inbox estimate.
    operating_points: dict[str, Any] = field(default_factory=dict)
    #: The trade-off whose text threshold is ``threshold``.
    trade_off: str | None = None
    digest_threshold: float | None = None
    #: ``data_hash`` of each corpus directory trained on (``jeeves evaluate`` flags in-sample figures).
    corpus_hashes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["unsure_band"] = list(self.unsure_band)
        return data


def library_versions() -> dict[str, str]:
    import nltk

    return {"scikit-learn": sklearn.__version__, "numpy": np.__version__, "scipy": sp.__name__ and
            __import__("scipy").__version__, "nltk": nltk.__version__, "joblib": joblib.__version__,
            "python": platform.python_version()}


def _fit_fold(features, documents, labels, train, test):
    fitted = clone(features)
    x_train = fitted.fit_transform([documents[i] for i in train], labels[train]).tocsr()
    x_test = fitted.transform([documents[i] for i in test]).tocsr()
    return x_train, x_test


def _baseline_fold(documents, labels, weight, train, test):
    model = baseline_pipeline()
    model.fit([documents[i] for i in train], labels[train])
    return model.predict_proba([documents[i] for i in test])[:, 1]


def _scores(labels, scores, mask=None) -> dict[str, float]:
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
                delayed(_baseline_fold)(documents, labels, weight, tr, te) for tr, te in folds)):
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
        table.append({"name": name, **_scores(labels, scores), "fold_roc_auc_std": float(np.std(fold_auc)),
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


def train(documents: Sequence, labels, groups, *, out_dir: Path = default_models_dir(), target_recall: float = 0.9,
          sample_weight=None, progress: bool = True, quick: bool = False, subsets: dict[str, Any] | None = None,
          sample_weighting: str | None = None, confidence: Sequence[str] | None = None,
          inbox_samples: Sequence | None = None, data_hash: str | None = None,
          corpus_hashes: Sequence[str] = ()) -> ModelCard:
    """Search, pick the winner, fit it on everything, save it with its card, make it current.

    ``subsets`` maps a name (e.g. ``"high"``, ``"random"``) to a boolean mask; the card then
    also gives CV scores on those subsets, for Jeeves and the baseline. With ``inbox_samples``
    (``jeeves.inbox.InboxSample``) and ``confidence``, thresholds are chosen for an inbox.
    """
    started = time.perf_counter()
    documents = list(documents)
    labels = np.asarray(labels, dtype=int)
    if len(documents) != len(labels) or len(groups) != len(labels):
        raise ValueError("documents, labels and groups must have the same length")
    if labels.sum() < 2 or (1 - labels).sum() < 2:
        raise ModelError("training needs at least two positive and two negative labels")
    weight = np.ones(len(labels)) if sample_weight is None else np.asarray(sample_weight, dtype=float)

    features = build_features(use_char=not quick)
    result = search(documents, labels, groups, sample_weight=weight, quick=quick, progress=progress,
                    features=features)
    oof = result.oof[result.best]
    threshold = choose_threshold(labels, oof, target_recall)
    band = unsure_band(labels, oof, threshold)
    at_threshold = precision_recall_at(labels, oof, threshold)
    honest = cross_validated_threshold(labels, oof, result.folds, target_recall)

    masks = {"all": np.ones(len(labels), dtype=bool)}
    masks.update({k: np.asarray(v, dtype=bool) for k, v in (subsets or {}).items()})
    cv = {name: _scores(labels, oof, mask) for name, mask in masks.items()}
    cv["n_splits"] = len(result.folds)
    cv["grouped_by"] = "thread_key(subject)"
    cv["at_threshold_in_sample"] = at_threshold
    cv["at_threshold_cross_validated"] = honest
    cv["in_unsure_band"] = int(np.sum((oof >= band[0]) & (oof <= band[1])))
    points: dict[str, Any] = {}
    trade_off, digest_threshold = None, None
    if inbox_samples:
        from jeeves.inbox import DEFAULT_TRADE_OFF, operating_points

        conf = np.asarray(confidence if confidence is not None else ["high"] * len(labels))
        chosen = operating_points(labels, conf, oof, inbox_samples, result.folds)
        points = {name: asdict(point) for name, point in chosen.items()}
        trade_off = DEFAULT_TRADE_OFF
        threshold = chosen[trade_off].text_threshold
        digest_threshold = chosen[trade_off].digest_threshold
        band = (digest_threshold, threshold)
        at_threshold = precision_recall_at(labels, oof, threshold)
        cv["at_threshold_in_sample"] = at_threshold
        cv["inbox"] = chosen[trade_off].cross_validated
        for name, point in chosen.items():
            logger.info("inbox estimate, %s: %s", name, _summary(point.cross_validated))
    baseline = {name: _scores(labels, result.baseline_oof, mask) for name, mask in masks.items()}
    baseline_threshold = choose_threshold(labels, result.baseline_oof, target_recall)
    baseline["at_threshold_cross_validated"] = cross_validated_threshold(labels, result.baseline_oof, result.folds,
                                                                         target_recall)
    baseline["description"] = "TF-IDF word 1-2-grams + balanced logistic regression on subject + whole body"
    baseline["threshold"] = baseline_threshold
    logger.info("model search:\n%s", format_table(result.table, baseline["all"], result.best))
    if progress:
        # The comparison table is the point of ``jeeves train``; tqdm already owns the terminal.
        from tqdm.auto import tqdm

        tqdm.write(format_table(result.table, baseline["all"], result.best))

    estimator = dict(candidates(quick))[result.best]
    model = Pipeline([("features", features), ("clf", clone(estimator))])
    model.fit(documents, labels, clf__sample_weight=weight)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    created = datetime.now(timezone.utc)
    tmp = out_dir / f".tmp-{created:%Y%m%d%H%M%S%f}.joblib"
    joblib.dump(model, tmp, compress=("xz", 3))
    digest = _sha256(tmp)
    version = f"{created:%Y%m%d-%H%M%S}-{digest[:8]}"
    model_path = out_dir / f"{version}.joblib"
    tmp.replace(model_path)

    card = ModelCard(
        version=version, model_file=model_path.name, sha256=digest, created=created.isoformat(timespec="seconds"),
        chosen=result.best, threshold=threshold, unsure_band=band, target_recall=target_recall,
        data_hash=data_hash or _data_hash(documents, labels), n=int(len(labels)),
        label_counts={"positive": int(labels.sum()), "negative": int((1 - labels).sum())},
        cv=cv, candidates=result.table, baseline=baseline, library_versions=library_versions(),
        training_seconds=round(time.perf_counter() - started, 1),
        sample_weighting=sample_weighting or ("none" if sample_weight is None else "custom"),
        notes=["Model chosen by out-of-fold ROC AUC over all candidates; figures are cross-validated, "
               "grouped by thread, features re-fitted in every training fold.",
               "at_threshold_cross_validated: each fold's threshold chosen on the other folds' scores.",
               "operating_points: thresholds chosen for an ordinary inbox (random pool + weighted active draws); "
               "'estimate' picks them on the same out-of-fold scores, 'cross_validated' on the other folds only."],
        operating_points=points, trade_off=trade_off, digest_threshold=digest_threshold,
        corpus_hashes=list(corpus_hashes),
    )
    _write_card(out_dir, card)
    from jeeves.registry import set_current

    set_current(out_dir, version)
    logger.info("saved model %s (%s) to %s", version, result.best, out_dir)
    return card


def _summary(estimate: dict[str, Any] | None) -> str:
    if not estimate:
        return "n/a"
    return (f"texts {estimate['texted']:.1%} of mail, precision {estimate['precision']:.2f}, clear requests texted "
            f"{estimate['recall_high']:.2f}, plainly wrong {estimate['wrong']:.0%} of texts; digest "
            f"{estimate['digest']:.1%} of mail, texts + digest reach {estimate['recall_high_with_digest']:.2f}")


def _write_card(out_dir: Path, card: ModelCard) -> None:
    """Write the card atomically (a reader never sees half a card)."""
    path = Path(out_dir) / f"{card.version}.json"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(card.to_dict(), indent=2, default=_json_default) + "\n")
    tmp.replace(path)


def train_corpus(corpus_dir, out_dir: Path = default_models_dir(), *, low_weight: float = LOW_CONFIDENCE_WEIGHT,
                 **kwargs) -> ModelCard:
    """Train on one or several corpus directories; ``low``-confidence labels weigh ``low_weight``."""
    from jeeves.corpus import load_corpora

    corpus = load_corpora(corpus_dir)
    weight = np.array([low_weight if c == "low" else 1.0 for c in corpus.confidence])
    subsets = {"high": [c == "high" for c in corpus.confidence], "random": [p == "random" for p in corpus.pool]}
    if any(p == "active" for p in corpus.pool):
        subsets["active"] = [p == "active" for p in corpus.pool]
    return train(corpus.documents, corpus.labels, corpus.groups, out_dir=out_dir, sample_weight=weight,
                 subsets=subsets, sample_weighting=f"low-confidence labels weigh {low_weight:g}",
                 confidence=corpus.confidence, inbox_samples=corpus.inbox_samples(),
                 data_hash=corpus.data_hash, corpus_hashes=corpus.part_hashes, **kwargs)


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(type(value))


def _data_hash(documents, labels) -> str:
    digest = hashlib.sha256()
    for doc, label in zip(documents, labels):
        digest.update(f"{doc.subject}\0{doc.new_text}\0{int(label)}\n".encode("utf-8", "replace"))
    return digest.hexdigest()


# --- serving ---------------------------------------------------------------------------------


@dataclass
class Explanation:
    score: float
    decision: bool
    threshold: float
    up: list[tuple[str, float]]
    down: list[tuple[str, float]]

    def __str__(self) -> str:
        verdict = "needs a place" if self.decision else "no alert"
        lines = [f"score {self.score:.3f} (threshold {self.threshold:.3f}): {verdict}"]
        if self.up:
            lines.append("pushed up by:")
            lines += [f"  +{value:7.3f}  {name}" for name, value in self.up]
        if self.down:
            lines.append("pushed down by:")
            lines += [f"  {value:8.3f}  {name}" for name, value in self.down]
        return "\n".join(lines)


def _linear_weights(clf) -> np.ndarray | None:
    """Per-feature weights of the log-odds, for the classifier families the search uses."""
    if hasattr(clf, "coef_"):
        return np.ravel(clf.coef_)
    if hasattr(clf, "feature_log_prob_"):
        return clf.feature_log_prob_[1] - clf.feature_log_prob_[0]
    if hasattr(clf, "calibrated_classifiers_"):
        coefs = [np.ravel(c.estimator.coef_) for c in clf.calibrated_classifiers_ if hasattr(c.estimator, "coef_")]
        return np.mean(coefs, axis=0) if coefs else None
    return None


class ServingModel:
    """A loaded, verified model: scores documents, decides (text, digest or nothing), explains.

    ``trade_off`` picks one of the card's operating points (``jeeves.inbox.TRADE_OFFS``); a card
    without them (older models) has one threshold and no digest.
    """

    def __init__(self, pipeline: Pipeline, card: dict[str, Any], trade_off: str | None = None):
        self.pipeline = pipeline
        self.card = card
        self.version: str = card["version"]
        points = card.get("operating_points") or {}
        if trade_off and points and trade_off not in points:
            raise ModelError(f"model {self.version} has no trade-off {trade_off!r} (it has: {', '.join(points)})")
        self.trade_off: str | None = trade_off if points and trade_off else card.get("trade_off")
        point = points.get(self.trade_off) if self.trade_off else None
        if point:
            self.threshold: float = float(point["text_threshold"])
            self.digest_threshold: float | None = float(point["digest_threshold"])
        else:
            self.threshold = float(card["threshold"])
            self.digest_threshold = None
        self.unsure_band: tuple[float, float] = tuple(card.get("unsure_band", (self.threshold, self.threshold)))
        self._names: np.ndarray | None = None

    def score(self, documents: Sequence) -> np.ndarray:
        documents = list(documents)
        if not documents:
            return np.zeros(0)
        union, clf = self.pipeline.steps[0][1], self.pipeline.steps[-1][1]
        if not isinstance(union, FeatureUnion) or union.transformer_weights or len(self.pipeline.steps) != 2:
            return self.pipeline.predict_proba(documents)[:, 1]
        # Same matrix as the FeatureUnion builds, without its per-call validation and joblib
        # dispatch: that fixed overhead was half the time of scoring one message.
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            parts = [t.transform(documents) for _, t in union.transformer_list if t not in ("drop", None)]
            return clf.predict_proba(sp.hstack(parts, format="csr"))[:, 1]

    def decide(self, scores) -> np.ndarray:
        """Which scores are sure enough for a text."""
        return np.asarray(scores) >= self.threshold

    def for_digest(self, scores) -> np.ndarray:
        """Which scores are unsure: below the text threshold, at or above the digest's."""
        scores = np.asarray(scores)
        if self.digest_threshold is None:
            return np.zeros(scores.shape, dtype=bool)
        return (scores >= self.digest_threshold) & (scores < self.threshold)

    def feature_names(self) -> np.ndarray:
        if self._names is None:
            self._names = np.asarray(self.pipeline.named_steps["features"].get_feature_names_out(), dtype=object)
        return self._names

    def explain(self, document, top: int = 8) -> Explanation:
        score = float(self.score([document])[0])
        x = self.pipeline.named_steps["features"].transform([document]).tocsr()
        weights = _linear_weights(self.pipeline.named_steps["clf"])
        up: list[tuple[str, float]] = []
        down: list[tuple[str, float]] = []
        if weights is not None:
            names = self.feature_names()
            contrib = x.data * weights[x.indices]
            order = np.argsort(contrib)
            up = [(str(names[x.indices[i]]), float(contrib[i])) for i in order[::-1][:top] if contrib[i] > 0]
            down = [(str(names[x.indices[i]]), float(contrib[i])) for i in order[:top] if contrib[i] < 0]
        return Explanation(score, bool(score >= self.threshold), self.threshold, up, down)

    def __repr__(self) -> str:
        return f"ServingModel(version={self.version!r}, chosen={self.card.get('chosen')!r}, threshold={self.threshold:.3f})"


def load_model(path: Path | None = None, models_dir: Path = SHIPPED_MODELS_DIR, *,
               trade_off: str | None = None) -> ServingModel:
    """Load a model only after its card vouches for it (hash and scikit-learn version).

    The checks run *before* unpickling, because a joblib file is code: a tampered or foreign
    file is refused without being executed.
    """
    model_path, card = verify_model(path, models_dir)
    try:
        pipeline = joblib.load(model_path)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is the same story for the user
        raise ModelError(f"cannot load {model_path}: {type(exc).__name__}: {exc}; retrain with `jeeves train`") from exc
    model = ServingModel(pipeline, card, trade_off)
    try:
        # A pickle holds objects, not code: a model built with other feature code can unpickle
        # and then fail on the first message. Fail here, at load, with the remedy instead.
        model.score([EmailDocument(subject="Lunch?", new_text="Can we meet on Tuesday? Where suits you?")])
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"model {card.get('version')} does not run with this version of Jeeves' feature code "
                         f"({type(exc).__name__}: {exc}); retrain it with `jeeves train`") from exc
    return model
