"""Corpus loading: the shipped corpus and broken corpus directories."""

from __future__ import annotations


import pytest

from jeeves.errors import CorpusError
from jeeves.model.corpus import load_corpus
from jeeves.parsing import thread_key


@pytest.fixture
def small_corpus(tmp_path, corpus_raw_messages):
    """Three real messages with made-up labels, written as a corpus directory."""
    import re

    raws = corpus_raw_messages[:3]
    ids = [re.search(rb"(?im)^message-id:\s*(\S+)", r).group(1).decode() for r in raws]
    with open(tmp_path / "messages.mbox", "wb") as handle:
        for raw in raws:
            handle.write(b"From x@y Mon Jan  1 00:00:00 2001\n" + raw.rstrip(b"\n") + b"\n\n")
    (tmp_path / "labels.csv").write_text("message_id,label,confidence,pool\n"
                                         f"{ids[0]},1,high,cue\n{ids[2]},0,low,random\n")
    return tmp_path, ids


def test_loads_labelled_messages_in_label_order(small_corpus):
    path, ids = small_corpus
    corpus = load_corpus(path)
    assert corpus.message_ids == [ids[0], ids[2]]
    assert corpus.labels.tolist() == [1, 0]
    assert corpus.confidence == ["high", "low"] and corpus.pool == ["cue", "random"]
    assert corpus.groups[0] == thread_key(corpus.documents[0].subject) or corpus.groups[0].startswith("<no subject")
    assert len(corpus.raw) == 2 and len(corpus.data_hash) == 64


def test_missing_files_are_a_clear_error(tmp_path):
    with pytest.raises(CorpusError, match="messages.mbox"):
        load_corpus(tmp_path)


def test_unknown_message_id_is_refused(small_corpus):
    path, ids = small_corpus
    with open(path / "labels.csv", "a") as handle:
        handle.write("<nope@nowhere>,1,high,cue\n")
    with pytest.raises(CorpusError, match="not found"):
        load_corpus(path)


def test_bad_label_is_refused(small_corpus):
    path, ids = small_corpus
    (path / "labels.csv").write_text(f"message_id,label\n{ids[0]},yes\n")
    with pytest.raises(CorpusError, match="0 or 1"):
        load_corpus(path)


def test_minimal_labels_csv_defaults_confidence_and_pool(small_corpus):
    path, ids = small_corpus
    (path / "labels.csv").write_text(f"message_id,label\n{ids[1]},0\n")
    corpus = load_corpus(path)
    assert corpus.confidence == ["high"] and corpus.pool == ["unknown"]


def test_shipped_corpus_loads(corpus_dir):
    corpus = load_corpus(corpus_dir)
    assert len(corpus) == len(corpus.labels) == len(corpus.groups) > 3000
    assert 0 < corpus.labels.sum() < len(corpus)
    assert set(corpus.confidence) <= {"high", "low"}
