"""Training: fit the selected pipeline on every label, save it with its model card, unserved.

``jeeves.model.selection`` picks the classifier and the thresholds on cross-validated scores;
this module fits the winner on everything and writes the card that vouches for the file: its
hash, the data it was trained on, the figures that chose it and the library versions it needs.
The model is saved through ``jeeves.model.registry`` and *not* served: whoever trains decides
whether to promote it (``jeeves train`` does at once; ``jeeves retrain`` only if it is no worse).
"""

from __future__ import annotations

import hashlib
import logging
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import joblib
import numpy as np
import scipy
import sklearn
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from jeeves.errors import ModelError
from jeeves.model import registry
from jeeves.model.evaluation import precision_recall_at
from jeeves.model.features import build_features
from jeeves.model.selection import (candidates, choose_threshold, cross_validated_threshold, format_table,
                                    operating_points, ranking_scores, search, unsure_band)
from jeeves.resources import default_models_dir

logger = logging.getLogger(__name__)

CARD_SCHEMA = 1
#: Weight given to ``low``-confidence labels by :func:`train_corpus`; chosen on CV (see the report).
LOW_CONFIDENCE_WEIGHT = 0.3


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
    #: Per trade-off (``jeeves.model.inbox.TRADE_OFFS``): text and digest thresholds and the inbox estimate.
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


@dataclass(frozen=True)
class TrainingResult:
    """A trained model as saved: its card, the card's file and the model file. Not served yet."""

    card: ModelCard
    card_path: Path
    model_path: Path

    @property
    def version(self) -> str:
        return self.card.version


def library_versions() -> dict[str, str]:
    import nltk

    return {"scikit-learn": sklearn.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "nltk": nltk.__version__, "joblib": joblib.__version__, "python": platform.python_version()}


def train(documents: Sequence, labels, groups, *, out_dir: Path = default_models_dir(), target_recall: float = 0.9,
          sample_weight=None, progress: bool = True, quick: bool = False, subsets: dict[str, Any] | None = None,
          sample_weighting: str | None = None, confidence: Sequence[str] | None = None,
          inbox_samples: Sequence | None = None, data_hash: str | None = None,
          corpus_hashes: Sequence[str] = ()) -> TrainingResult:
    """Search, pick the winner, fit it on everything, save it with its card in ``out_dir``.

    The model is not made current: promote it with ``registry.set_current(out_dir, result.version)``.

    ``subsets`` maps a name (e.g. ``"high"``, ``"random"``) to a boolean mask; the card then
    also gives CV scores on those subsets, for Jeeves and the baseline. With ``inbox_samples``
    (``jeeves.model.inbox.InboxSample``) and ``confidence``, thresholds are chosen for an inbox.
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
    cv = {name: ranking_scores(labels, oof, mask) for name, mask in masks.items()}
    cv["n_splits"] = len(result.folds)
    cv["grouped_by"] = "thread_key(subject)"
    cv["at_threshold_in_sample"] = at_threshold
    cv["at_threshold_cross_validated"] = honest
    cv["in_unsure_band"] = int(np.sum((oof >= band[0]) & (oof <= band[1])))
    points: dict[str, Any] = {}
    trade_off, digest_threshold = None, None
    if inbox_samples:
        from jeeves.model.inbox import DEFAULT_TRADE_OFF

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
    baseline = {name: ranking_scores(labels, result.baseline_oof, mask) for name, mask in masks.items()}
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

    saved = registry.save_model(out_dir, model)
    card = ModelCard(
        version=saved.version, model_file=saved.path.name, sha256=saved.sha256,
        created=saved.created.isoformat(timespec="seconds"),
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
    card_path = registry.write_card(out_dir, card.to_dict())
    logger.info("saved model %s (%s) to %s", saved.version, result.best, out_dir)
    return TrainingResult(card, card_path, saved.path)


def _summary(estimate: dict[str, Any] | None) -> str:
    if not estimate:
        return "n/a"
    return (f"texts {estimate['texted']:.1%} of mail, precision {estimate['precision']:.2f}, clear requests texted "
            f"{estimate['recall_high']:.2f}, plainly wrong {estimate['wrong']:.0%} of texts; digest "
            f"{estimate['digest']:.1%} of mail, texts + digest reach {estimate['recall_high_with_digest']:.2f}")


def train_corpus(corpus_dir, out_dir: Path = default_models_dir(), *, low_weight: float = LOW_CONFIDENCE_WEIGHT,
                 **kwargs) -> TrainingResult:
    """Train on one or several corpus directories; ``low``-confidence labels weigh ``low_weight``.

    The card records the corpus's own hashes (``data_hash``, ``corpus_hashes``), so ``jeeves
    evaluate`` can tell in-sample figures; the model is saved, not served (see :func:`train`)."""
    from jeeves.model.corpus import load_corpora

    corpus = load_corpora(corpus_dir)
    weight = np.array([low_weight if c == "low" else 1.0 for c in corpus.confidence])
    subsets = {"high": [c == "high" for c in corpus.confidence], "random": [p == "random" for p in corpus.pool]}
    if any(p == "active" for p in corpus.pool):
        subsets["active"] = [p == "active" for p in corpus.pool]
    return train(corpus.documents, corpus.labels, corpus.groups, out_dir=out_dir, sample_weight=weight,
                 subsets=subsets, sample_weighting=f"low-confidence labels weigh {low_weight:g}",
                 confidence=corpus.confidence, inbox_samples=corpus.inbox_samples(),
                 data_hash=corpus.data_hash, corpus_hashes=corpus.part_hashes, **kwargs)


def _data_hash(documents, labels) -> str:
    digest = hashlib.sha256()
    for doc, label in zip(documents, labels):
        digest.update(f"{doc.subject}\0{doc.new_text}\0{int(label)}\n".encode("utf-8", "replace"))
    return digest.hexdigest()

