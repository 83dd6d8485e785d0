"""The optional second stage: a small fine-tuned transformer that re-scores what the first stage found.

Promise: given a reranker directory written by ``scripts/train_reranker.py`` (an ONNX model, its
``tokenizer.json`` and a ``reranker.json`` card), ``Reranker`` scores documents (anything with
``.subject`` and ``.new_text``) with onnxruntime on one intra-op thread, reading exactly what
training read (``subject + "\\n" + new_text``, truncated to the card's ``max_len`` tokens), and
turns a first-stage probability and its own score into one probability with the stack weights
stored in the card. Files whose sha256 differs from the card's are refused, so a reranker is
never served with weights it was not measured with. It needs only onnxruntime and tokenizers
(the ``rerank`` extra): no torch at serving time.

The first stage's false alarms are mostly semantic (a meeting that already happened, a
confirmation, someone else's meeting); word and cue features cannot see them, a transformer
reading the sender's own words can.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from jeeves.errors import ModelError
from jeeves.model.registry import file_sha256

log = logging.getLogger(__name__)

CARD_NAME = "reranker.json"
CARD_KIND = "jeeves-reranker"
CARD_FORMAT = 1
EXTRA_HINT = "pip install 'jeeves[rerank]'"
#: Probabilities are clipped to this distance from 0 and 1 before their logit is taken.
PROBABILITY_EPSILON = 1e-6


class Document(Protocol):
    subject: str
    new_text: str


def document_text(subject: str | None, new_text: str | None) -> str:
    """What the reranker reads: the subject, then the sender's own new text (as in training)."""
    return f"{subject or ''}\n{new_text or ''}"


def logit(p: np.ndarray | Sequence[float]) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), PROBABILITY_EPSILON, 1 - PROBABILITY_EPSILON)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class Stack:
    """``P(request) = sigmoid(first_stage * logit(p_first) + reranker * score + intercept)``."""

    first_stage: float
    reranker: float
    intercept: float

    def combine(self, first_stage_probability, reranker_score) -> np.ndarray:
        z = (self.first_stage * logit(first_stage_probability)
             + self.reranker * np.asarray(reranker_score, dtype=float) + self.intercept)
        return 1.0 / (1.0 + np.exp(-z))


def _import_runtime():
    try:
        import onnxruntime
        from tokenizers import Tokenizer
    except ImportError as e:
        raise ModelError(f"the reranker needs onnxruntime and tokenizers ({e.name} is missing): {EXTRA_HINT}") from e
    return onnxruntime, Tokenizer


def read_card(directory: Path) -> dict[str, Any]:
    path = Path(directory) / CARD_NAME
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{directory} is not a reranker directory: {CARD_NAME} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"{path} is not a readable reranker card ({e})") from None
    if not isinstance(card, dict) or card.get("kind") != CARD_KIND:
        raise ModelError(f"{path} is not a reranker card (kind {card.get('kind') if isinstance(card, dict) else None!r})")
    if card.get("format") != CARD_FORMAT:
        raise ModelError(f"{path} has card format {card.get('format')!r}; this Jeeves reads format {CARD_FORMAT}: "
                         "retrain the reranker with this version's scripts/train_reranker.py")
    missing = [k for k in ("model", "tokenizer", "max_len", "sha256", "stack") if k not in card]
    if missing:
        raise ModelError(f"{path} lacks {', '.join(missing)}")
    return card


class Reranker:
    """An exported reranker, ready to score documents and combine with the first stage."""

    def __init__(self, directory: str | Path, *, threads: int = 1, batch_size: int = 16):
        onnxruntime, Tokenizer = _import_runtime()
        self.directory = Path(directory)
        self.card = read_card(self.directory)
        self.max_len = int(self.card["max_len"])
        self.batch_size = batch_size
        stack = self.card["stack"]
        try:
            self.stack = Stack(float(stack["first_stage"]), float(stack["reranker"]), float(stack["intercept"]))
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"{self.directory / CARD_NAME}: stack needs numbers first_stage, reranker, intercept") from None
        model_path = self._verified(self.card["model"])
        tokenizer_path = self._verified(self.card["tokenizer"])
        try:
            self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        except Exception as e:  # tokenizers raises a bare Exception on malformed files
            raise ModelError(f"{tokenizer_path} is not a tokenizers file ({e})") from None
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=self.max_len)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = onnxruntime.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime's own error types vary between releases
            raise ModelError(f"{model_path} could not be loaded by onnxruntime ({e})") from None
        self._input_names = {i.name for i in self.session.get_inputs()}
        if not {"input_ids", "attention_mask"} <= self._input_names:
            raise ModelError(f"{model_path} does not take input_ids and attention_mask")
        log.info("reranker loaded from %s (%s, max %d tokens)", self.directory, self.card["model"], self.max_len)

    def _verified(self, name: str) -> Path:
        path = self.directory / name
        if not path.is_file():
            raise ModelError(f"{path} is missing (named in {CARD_NAME})")
        expected = (self.card["sha256"] or {}).get(name)
        if expected is None:
            raise ModelError(f"{CARD_NAME} has no sha256 for {name}")
        if file_sha256(path) != expected:
            raise ModelError(f"{path} does not match the sha256 in {CARD_NAME}: the file was changed or damaged; "
                             "copy the reranker directory again")
        return path

    def scores(self, documents: Sequence[Document]) -> np.ndarray:
        """The reranker's raw score (a logit) per document; higher means more likely a request."""
        out = np.zeros(len(documents), dtype=float)
        if not documents:
            return out
        encodings = self.tokenizer.encode_batch([document_text(d.subject, d.new_text) for d in documents])
        # Similar lengths share a batch, so little is padded.
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), self.batch_size):
            batch = order[start: start + self.batch_size]
            width = max(len(encodings[i].ids) for i in batch)
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._input_names:
                feed["token_type_ids"] = np.zeros_like(ids)
            (logits,) = self.session.run(None, feed)
            out[batch] = np.asarray(logits, dtype=float).reshape(-1)
        return out

    def combine(self, first_stage_probabilities, reranker_scores) -> np.ndarray:
        """One probability per document from the two stages (the card's stack weights)."""
        first = np.asarray(first_stage_probabilities, dtype=float)
        second = np.asarray(reranker_scores, dtype=float)
        if first.shape != second.shape:
            raise ValueError(f"{first.shape[0] if first.ndim else 1} first-stage probabilities for "
                             f"{second.shape[0] if second.ndim else 1} reranker scores")
        return self.stack.combine(first, second)

    def probabilities(self, documents: Sequence[Document], first_stage_probabilities) -> np.ndarray:
        """Score ``documents`` and combine with their first-stage probabilities."""
        first = np.asarray(first_stage_probabilities, dtype=float)
        if len(first) != len(documents):
            raise ValueError(f"{len(first)} first-stage probabilities for {len(documents)} documents")
        return self.combine(first, self.scores(documents))
