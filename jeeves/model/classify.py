"""Score stored messages that have no prediction yet with the serving model.

Each batch's predictions, the outbox rows of its texted positives and the digest entries of its
unsure messages are written in one transaction (``Store.record_predictions``), so a crash
leaves a message either unclassified (it is scored again next pass) or classified with its
alert or digest entry queued — never in between.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np

from jeeves.notify.conversations import conversation_key
from jeeves.parsing import EmailDocument
from jeeves.storage import PredictionInput, Store

log = logging.getLogger(__name__)


class ScoringModel(Protocol):
    """What classification needs of a model. ``for_digest`` is optional: without it, no digest."""

    version: str
    threshold: float

    def score(self, documents: Sequence[EmailDocument]) -> np.ndarray: ...

    def decide(self, scores: np.ndarray) -> np.ndarray: ...


@dataclass
class ClassifyReport:
    classified: int = 0
    positives: int = 0
    queued: int = 0  # outbox rows created (texted positives not seen before)
    unsure: int = 0  # scored for the digest rather than a text
    model_version: str = ""
    outbox_ids: list[int] = field(default_factory=list)


def classify_pending(store: Store, model: ScoringModel, *, batch_size: int = 256, limit: int | None = None,
                     log_summary: bool = True) -> ClassifyReport:
    """Classify every stored message without a prediction (up to ``limit``).

    ``log_summary=False`` leaves the one-line summary to a caller that classifies in steps.
    """
    report = ClassifyReport(model_version=model.version)
    while limit is None or report.classified < limit:
        size = batch_size if limit is None else min(batch_size, limit - report.classified)
        pending = store.documents_to_classify(size)
        if not pending:
            break
        pks = [pk for pk, _ in pending]
        scores = np.asarray(model.score([doc for _, doc in pending]), dtype=float)
        decisions = np.asarray(model.decide(scores), dtype=bool)
        for_digest = getattr(model, "for_digest", None)
        unsure = np.asarray(for_digest(scores), dtype=bool) if for_digest else np.zeros(len(pks), dtype=bool)
        created = store.record_predictions(
            model.version,
            [PredictionInput(pk, float(s), float(model.threshold), bool(d), bool(u))
             for pk, s, d, u in zip(pks, scores, decisions, unsure)],
            conversation_of=conversation_key,
        )
        report.classified += len(pks)
        report.positives += int(decisions.sum())
        report.unsure += int((unsure & ~decisions).sum())
        report.queued += len(created)
        report.outbox_ids.extend(created)
        if len(pending) < size:
            break
    if report.classified and log_summary:
        log.info(
            "classified %d messages: %d positive, %d alerts queued, %d for the digest (model %s)",
            report.classified, report.positives, report.queued, report.unsure, model.version,
        )
    return report
