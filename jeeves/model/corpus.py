"""Labelled corpus directories (``messages.mbox`` + ``labels.csv``) read into training arrays.

The format is the one of ``data/enron-meetings``: ``labels.csv`` has ``message_id,label`` and
optionally ``confidence``, ``pool`` and, for an active-learning draw, ``stratum`` and ``weight``
(how many inbox messages each labelled one stands for; ``jeeves.model.inbox`` uses it). Only labelled
messages are returned, in the order of ``labels.csv``, so a corpus can carry unlabelled mail
without confusing training. Several directories load as one corpus (``load_corpora``); a
message labelled in two of them is kept once, from the first.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import mailbox
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jeeves.config import SHIPPED_DATA_DIR
from jeeves.errors import CorpusError
from jeeves.model.registry import file_sha256
from jeeves.parsing import EmailDocument, parse_email, thread_key

logger = logging.getLogger(__name__)

#: The labels the shipped model is trained on: the cue-enriched corpus with its random pool, and
#: two active-learning draws whose weights make them stand for an inbox (data/README.md).
DEFAULT_CORPORA = tuple(SHIPPED_DATA_DIR / name for name in ("enron-meetings", "enron-active", "enron-active2"))


@dataclass
class Corpus:
    documents: list[EmailDocument]
    labels: np.ndarray
    confidence: list[str]
    pool: list[str]
    groups: list[str]
    message_ids: list[str]
    raw: list[bytes] = field(repr=False)
    data_hash: str = ""
    #: Inbox weight of each row (1 unless the labels say otherwise; see ``jeeves.model.inbox``).
    weight: np.ndarray | None = None
    #: The directory name each row came from (active draws are told apart by it).
    source: list[str] = field(default_factory=list)
    #: ``data_hash`` of each directory read, so a model card can tell which files it was trained on.
    part_hashes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.part_hashes and self.data_hash:
            self.part_hashes = [self.data_hash]
        if self.weight is None:
            self.weight = np.ones(len(self.documents))
        if not self.source:
            self.source = ["corpus"] * len(self.documents)

    def __len__(self) -> int:
        return len(self.documents)

    def subset(self, index) -> "Corpus":
        idx = np.asarray(index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        pick = lambda seq: [seq[i] for i in idx]  # noqa: E731
        return Corpus(pick(self.documents), self.labels[idx], pick(self.confidence), pick(self.pool),
                      pick(self.groups), pick(self.message_ids), pick(self.raw), self.data_hash,
                      self.weight[idx], pick(self.source))

    def inbox_samples(self):
        """The rows that, weighted, stand for an ordinary inbox (``jeeves.model.inbox``)."""
        from jeeves.model.inbox import inbox_samples

        return inbox_samples(self.pool, self.weight, self.source)


def load_corpus(corpus_dir: Path) -> Corpus:
    """Read and parse a corpus directory; raise ``CorpusError`` naming what is wrong with it."""
    corpus_dir = Path(corpus_dir)
    mbox_path, labels_path = corpus_dir / "messages.mbox", corpus_dir / "labels.csv"
    for path in (mbox_path, labels_path):
        if not path.is_file():
            raise CorpusError(f"{corpus_dir} is not a corpus directory: {path.name} is missing "
                              "(a corpus holds messages.mbox and labels.csv with message_id,label)")
    rows = _read_labels(labels_path)

    by_id: dict[str, bytes] = {}
    box = mailbox.mbox(str(mbox_path), create=False)
    try:
        for key in box.iterkeys():
            raw = box.get_bytes(key)
            msgid = _message_id(raw)
            if msgid and msgid not in by_id:
                by_id[msgid] = raw
    finally:
        box.close()

    missing = [r["message_id"] for r in rows if r["message_id"] not in by_id]
    if missing:
        raise CorpusError(f"{labels_path} labels {len(missing)} message(s) not found in {mbox_path.name}, "
                          f"e.g. {missing[0]}")

    documents, groups, raws = [], [], []
    for row in rows:
        raw = by_id[row["message_id"]]
        parsed = parse_email(raw)
        documents.append(EmailDocument.from_parsed(parsed))
        groups.append(thread_key(parsed.subject) or f"<no subject {row['message_id']}>")
        raws.append(raw)
    labels = np.array([r["label"] for r in rows], dtype=int)
    logger.info("loaded %d labelled messages (%d positive) from %s", len(rows), labels.sum(), corpus_dir)
    return Corpus(
        documents=documents,
        labels=labels,
        confidence=[r["confidence"] for r in rows],
        pool=[r["pool"] for r in rows],
        groups=groups,
        message_ids=[r["message_id"] for r in rows],
        raw=raws,
        data_hash=file_sha256(mbox_path, labels_path),
        weight=np.array([r["weight"] for r in rows], dtype=float),
        source=[corpus_dir.name] * len(rows),
    )


def load_corpora(corpus_dirs) -> Corpus:
    """Several corpus directories as one; a message labelled twice keeps its first label."""
    dirs = [Path(d) for d in ([corpus_dirs] if isinstance(corpus_dirs, (str, Path)) else corpus_dirs)]
    if not dirs:
        raise CorpusError("no corpus directory given")
    parts = [load_corpus(d) for d in dirs]
    if len(parts) == 1:
        return parts[0]
    seen: set[str] = set()
    keep: list[tuple[Corpus, int]] = []
    for part in parts:
        for i, msgid in enumerate(part.message_ids):
            if msgid in seen:
                logger.warning("%s is labelled in more than one corpus; keeping the first label", msgid)
                continue
            seen.add(msgid)
            keep.append((part, i))
    digest = hashlib.sha256("".join(p.data_hash for p in parts).encode()).hexdigest()
    return Corpus(
        documents=[p.documents[i] for p, i in keep],
        labels=np.array([p.labels[i] for p, i in keep], dtype=int),
        confidence=[p.confidence[i] for p, i in keep],
        pool=[p.pool[i] for p, i in keep],
        groups=[p.groups[i] for p, i in keep],
        message_ids=[p.message_ids[i] for p, i in keep],
        raw=[p.raw[i] for p, i in keep],
        data_hash=digest,
        weight=np.array([p.weight[i] for p, i in keep], dtype=float),
        source=[p.source[i] for p, i in keep],
        part_hashes=[h for p in parts for h in p.part_hashes],
    )


def _read_labels(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"message_id", "label"} <= set(reader.fieldnames):
            raise CorpusError(f"{path} must have a header with at least message_id,label")
        rows, seen = [], set()
        for lineno, row in enumerate(reader, start=2):
            msgid = (row.get("message_id") or "").strip()
            label = (row.get("label") or "").strip()
            if label not in {"0", "1"}:
                raise CorpusError(f"{path}:{lineno}: label must be 0 or 1, got {label!r}")
            if msgid in seen:
                logger.warning("%s:%d: duplicate label for %s; keeping the first", path, lineno, msgid)
                continue
            seen.add(msgid)
            raw_weight = (row.get("weight") or "").strip()
            try:
                weight = float(raw_weight) if raw_weight else 1.0
            except ValueError:
                raise CorpusError(f"{path}:{lineno}: weight must be a number, got {raw_weight!r}") from None
            if not weight > 0:
                raise CorpusError(f"{path}:{lineno}: weight must be positive, got {raw_weight!r}")
            rows.append({"message_id": msgid, "label": int(label),
                         "confidence": (row.get("confidence") or "high").strip() or "high",
                         "pool": (row.get("pool") or "unknown").strip() or "unknown", "weight": weight})
    if not rows:
        raise CorpusError(f"{path} holds no labels")
    return rows


def _message_id(raw: bytes) -> str | None:
    """The Message-ID header without a full parse (the corpus is read before parsing)."""
    head = raw.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    for line in head.splitlines():
        if line[:11].lower() == b"message-id:":
            value = line[11:].strip().decode("ascii", "replace")
            return value or None
    return None
