"""Champion/challenger retraining: learn from the user's labels without ever serving a worse model.

A challenger is trained on every label (the shipped corpus plus the user's, the newest label of
a message winning) minus a fixed evaluation split: the threads whose stable hash falls in one
bucket of five. Champion and challenger are both scored on that split; the challenger is
promoted only if it is at least as good on ROC AUC and on recall at its threshold. Every
challenger is kept under ``models/`` with its card, promoted or not, so ``jeeves models`` can
list them and roll back.

The champion may have seen part of the evaluation split in training, which flatters it: the
comparison errs on the side of keeping the serving model.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jeeves.errors import ModelError
from jeeves.model.corpus import DEFAULT_CORPORA
from jeeves.parsing import EmailDocument, parse_email, thread_key

log = logging.getLogger(__name__)

EVAL_BUCKETS = 5


@dataclass
class LabelledSet:
    """Documents and labels, with what the inbox estimate needs (``jeeves.model.inbox``)."""

    documents: list[EmailDocument]
    labels: np.ndarray
    groups: list[str]
    confidence: list[str] = field(default_factory=list)
    pool: list[str] = field(default_factory=list)
    weight: list[float] = field(default_factory=list)
    source: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.documents)
        self.confidence = self.confidence or ["high"] * n
        self.pool = self.pool or ["user"] * n
        self.weight = self.weight or [1.0] * n
        self.source = self.source or ["user"] * n

    def take(self, mask: np.ndarray) -> "LabelledSet":
        idx = np.flatnonzero(mask)
        pick = lambda seq: [seq[i] for i in idx]  # noqa: E731
        return LabelledSet(pick(self.documents), self.labels[idx], pick(self.groups), pick(self.confidence),
                           pick(self.pool), pick(self.weight), pick(self.source))

    def inbox_samples(self):
        from jeeves.model.inbox import inbox_samples

        return inbox_samples(self.pool, self.weight, self.source)


@dataclass
class RetrainResult:
    challenger: str
    champion: str | None
    promoted: bool
    challenger_scores: dict
    champion_scores: dict | None
    n_train: int
    n_eval: int
    n_user_labels: int


def in_eval_split(group: str) -> bool:
    """Whether a thread belongs to the fixed evaluation split (stable across runs and hosts)."""
    return hashlib.sha256(group.encode("utf-8")).digest()[0] % EVAL_BUCKETS == 0


def gather_labels(store, corpus_dir=DEFAULT_CORPORA) -> tuple[LabelledSet, int]:
    """Corpus labels plus the store's current labels; a user's label overrides the corpus's.

    ``corpus_dir`` is one directory or several. A user's label counts as ``high`` confidence
    and outside any inbox sample (the user's own labels are not drawn at random).
    """
    from jeeves.model.corpus import load_corpora

    by_key: dict[str, tuple] = {}
    if corpus_dir is not None:
        corpus = load_corpora(corpus_dir)
        for i, mid in enumerate(corpus.message_ids):
            by_key[mid] = (corpus.documents[i], int(corpus.labels[i]), corpus.groups[i], corpus.confidence[i],
                           corpus.pool[i], float(corpus.weight[i]), corpus.source[i])
    user = 0
    current = store.current_labels()
    for pk, label in current.items():
        message = store.get_message(pk)
        if message is None:
            continue
        parsed = parse_email(message.raw)
        by_key[message.dedupe_key] = (EmailDocument.from_parsed(parsed), int(label.value), thread_key(parsed.subject),
                                      label.confidence or "high", "user", 1.0, "user")
        user += 1
    columns = list(zip(*by_key.values())) if by_key else [()] * 7
    docs, labels, groups, confidence, pool, weight, source = (list(c) for c in columns)
    return LabelledSet(docs, np.asarray(labels, dtype=int), groups, confidence, pool, weight, source), user


def _scores(model, data: LabelledSet) -> dict:
    from sklearn.metrics import recall_score, roc_auc_score

    scores = np.asarray(model.score(data.documents), dtype=float)
    return {
        # Thresholds chosen for an ordinary inbox (jeeves.model.inbox), or only for recall on a corpus.
        "inbox_thresholds": bool((getattr(model, "card", None) or {}).get("operating_points")),
        "roc_auc": float(roc_auc_score(data.labels, scores)),
        "recall": float(recall_score(data.labels, np.asarray(model.decide(scores), dtype=bool).astype(int), zero_division=0)),
    }


def should_promote(challenger: dict, champion: dict | None) -> bool:
    """At least as good on ROC AUC *and* on recall at the threshold; anything beats no model.

    A challenger whose threshold was only chosen for recall on a corpus (its labels held no
    inbox sample) never replaces one chosen for an ordinary inbox: it would text a fifth of
    all mail, and its higher recall is exactly that.
    """
    if champion is None:
        return True
    if champion.get("inbox_thresholds") and not challenger.get("inbox_thresholds"):
        return False
    return challenger["roc_auc"] >= champion["roc_auc"] and challenger["recall"] >= champion["recall"]


def retrain_and_maybe_promote(app, *, corpus_dir=DEFAULT_CORPORA, quick: bool = False, progress: bool = False) -> RetrainResult:
    """Train a challenger, compare it with the serving model, promote it if it is no worse."""
    from jeeves.model.registry import set_current
    from jeeves.model.serving import load_model
    from jeeves.model.training import LOW_CONFIDENCE_WEIGHT, train

    models_dir = Path(app.settings.model.dir)
    data, n_user = gather_labels(app.store, corpus_dir)
    if len(set(data.labels.tolist())) < 2:
        raise ModelError("retraining needs both positive and negative labels")
    evaluation = np.array([in_eval_split(g) for g in data.groups])
    train_set, eval_set = data.take(~evaluation), data.take(evaluation)
    if len(set(eval_set.labels.tolist())) < 2:
        raise ModelError("the evaluation split has a single class; label more messages before retraining")

    try:
        champion = app.model
    except ModelError as exc:
        log.warning("no usable serving model (%s); the challenger is promoted if it trains", exc)
        champion = None

    # Saved beside the champion but not served: only ``set_current`` below promotes it.
    weight = np.array([LOW_CONFIDENCE_WEIGHT if c == "low" else 1.0 for c in train_set.confidence])
    trained = train(
        train_set.documents, train_set.labels, train_set.groups,
        out_dir=models_dir, target_recall=app.settings.model.target_recall, progress=progress, quick=quick,
        sample_weight=weight, sample_weighting=f"low-confidence labels weigh {LOW_CONFIDENCE_WEIGHT:g}",
        confidence=train_set.confidence, inbox_samples=train_set.inbox_samples(),
    )
    version = trained.version
    challenger = load_model(trained.model_path, trade_off=app.settings.notify.trade_off)
    challenger_scores = _scores(challenger, eval_set)
    champion_scores = _scores(champion, eval_set) if champion is not None else None

    promoted = should_promote(challenger_scores, champion_scores)
    if promoted:
        set_current(models_dir, version)
    log.info(
        "retrained challenger %s: %s",
        version,
        "promoted" if promoted else "kept the champion",
        extra={
            "challenger_roc_auc": round(challenger_scores["roc_auc"], 4),
            "challenger_recall": round(challenger_scores["recall"], 4),
            "champion_roc_auc": round(champion_scores["roc_auc"], 4) if champion_scores else None,
            "champion_recall": round(champion_scores["recall"], 4) if champion_scores else None,
            "user_labels": n_user,
        },
    )
    return RetrainResult(
        challenger=version,
        champion=champion.version if champion is not None else None,
        promoted=promoted,
        challenger_scores=challenger_scores,
        champion_scores=champion_scores,
        n_train=len(train_set.labels),
        n_eval=len(eval_set.labels),
        n_user_labels=n_user,
    )
