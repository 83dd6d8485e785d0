"""The serving model: a loaded, verified pipeline that scores, decides and explains.

A model is only unpickled after its card vouches for the file (``jeeves.model.registry``), and
it must score one message at load, so a model built for other feature code fails at start with
the remedy instead of on the first message of a pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import joblib
import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.pipeline import FeatureUnion, Pipeline

from jeeves.config import SHIPPED_MODELS_DIR
from jeeves.errors import ModelError
from jeeves.model.registry import verify_model
from jeeves.parsing import EmailDocument


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

    ``trade_off`` picks one of the card's operating points (``jeeves.model.inbox.TRADE_OFFS``); a card
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
        x = self.pipeline.named_steps["features"].transform([document]).tocsr()
        clf = self.pipeline.named_steps["clf"]
        score = float(clf.predict_proba(x)[0, 1])  # the features once, for the score and the reasons
        weights = _linear_weights(clf)
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
