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
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jeeves.config import SHIPPED_DATA_DIR
from jeeves.errors import ModelError
from jeeves.parsing import EmailDocument, parse_email, thread_key

log = logging.getLogger(__name__)

DEFAULT_CORPUS = SHIPPED_DATA_DIR / "enron-meetings"
EVAL_BUCKETS = 5


@dataclass
class LabelledSet:
    documents: list[EmailDocument]
    labels: np.ndarray
    groups: list[str]

    def take(self, mask: np.ndarray) -> "LabelledSet":
        idx = np.flatnonzero(mask)
        return LabelledSet([self.documents[i] for i in idx], self.labels[idx], [self.groups[i] for i in idx])


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


def gather_labels(store, corpus_dir: Path | None = DEFAULT_CORPUS) -> tuple[LabelledSet, int]:
    """Corpus labels plus the store's current labels; a user's label overrides the corpus's."""
    from jeeves.corpus import load_corpus

    by_key: dict[str, tuple[EmailDocument, int, str]] = {}
    if corpus_dir is not None:
        corpus = load_corpus(corpus_dir)
        for doc, label, group, mid in zip(corpus.documents, corpus.labels, corpus.groups, corpus.message_ids):
            by_key[mid] = (doc, int(label), group)
    user = 0
    current = store.current_labels()
    for pk, label in current.items():
        message = store.get_message(pk)
        if message is None:
            continue
        parsed = parse_email(message.raw)
        by_key[message.dedupe_key] = (EmailDocument.from_parsed(parsed), int(label.value), thread_key(parsed.subject))
        user += 1
    docs, labels, groups = zip(*by_key.values()) if by_key else ((), (), ())
    return LabelledSet(list(docs), np.asarray(labels, dtype=int), list(groups)), user


def _scores(model, data: LabelledSet) -> dict:
    from sklearn.metrics import recall_score, roc_auc_score

    scores = np.asarray(model.score(data.documents), dtype=float)
    return {
        "roc_auc": float(roc_auc_score(data.labels, scores)),
        "recall": float(recall_score(data.labels, np.asarray(model.decide(scores), dtype=bool).astype(int), zero_division=0)),
    }


def should_promote(challenger: dict, champion: dict | None) -> bool:
    """At least as good on ROC AUC *and* on recall at the threshold; anything beats no model."""
    if champion is None:
        return True
    return challenger["roc_auc"] >= champion["roc_auc"] and challenger["recall"] >= champion["recall"]


def retrain_and_maybe_promote(app, *, corpus_dir: Path | None = DEFAULT_CORPUS, quick: bool = False, progress: bool = False) -> RetrainResult:
    """Train a challenger, compare it with the serving model, promote it if it is no worse."""
    from jeeves.registry import set_current
    from jeeves.training import load_model, train

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

    with tempfile.TemporaryDirectory(prefix="jeeves-challenger-") as staging:
        card = train(
            train_set.documents, train_set.labels, train_set.groups,
            out_dir=Path(staging), target_recall=app.settings.model.target_recall, progress=progress, quick=quick,
        )
        version = card["version"] if isinstance(card, dict) else card.version
        challenger = load_model(Path(staging))
        challenger_scores = _scores(challenger, eval_set)
        champion_scores = _scores(champion, eval_set) if champion is not None else None
        models_dir.mkdir(parents=True, exist_ok=True)
        for path in Path(staging).iterdir():
            if path.name != "CURRENT":
                shutil.copy2(path, models_dir / path.name)

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
