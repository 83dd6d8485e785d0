"""Metrics at the model's own threshold, the plots and the report."""

from __future__ import annotations

import json

import numpy as np

from jeeves.model.evaluation import evaluate, metrics
from jeeves.parsing import EmailDocument


class StubModel:
    """Scores by a keyword, so the expected metrics are known without training."""

    version = "stub"
    threshold = 0.5
    unsure_band = (0.4, 0.6)

    def score(self, documents):
        return np.array([0.9 if "lunch" in d.new_text else 0.1 for d in documents])


DOCS = [EmailDocument(subject="", new_text=t) for t in ("lunch?", "lunch!", "report", "lunch", "memo", "notes")]
LABELS = [1, 1, 1, 0, 0, 0]


def test_metrics_at_threshold():
    m = metrics(LABELS, StubModel().score(DOCS), 0.5)
    assert m["confusion_matrix"] == [[2, 1], [1, 2]]
    assert m["precision"] == m["recall"] == 2 / 3
    assert m["n"] == 6 and m["n_positive"] == 3


def test_evaluate_writes_plots_and_report(tmp_path):
    report = evaluate(StubModel(), DOCS, LABELS, out_dir=tmp_path, extra={"corpus": "x"})
    data = report.as_dict()
    for key in ("roc_auc", "pr_auc", "precision", "recall", "f1", "threshold", "n", "n_positive", "confusion_matrix"):
        assert key in data
    json.dumps(data)
    for name in ("roc.png", "pr.png", "calibration.png", "report.md"):
        assert (tmp_path / name).stat().st_size > 0
    assert (tmp_path / "roc.png").read_bytes()[:4] == b"\x89PNG"
    assert "confusion" in report.to_text()
    assert data["corpus"] == "x"


def test_single_class_evaluation_does_not_crash():
    report = evaluate(StubModel(), DOCS[:2], [1, 1])
    assert report.as_dict()["roc_auc"] is None


class _CardedModel:
    """Scores every message by its subject length: only the card matters here."""

    version = "carded"
    threshold = 0.5
    digest_threshold = None
    trade_off = None

    def __init__(self, card):
        self.card = card

    def score(self, documents):
        return np.array([min(len(d.subject or "") / 80, 1.0) for d in documents])


def test_evaluating_on_labels_the_model_was_trained_on_is_flagged_in_sample(small_corpus):
    from jeeves.model.corpus import load_corpus
    from jeeves.model.evaluation import evaluate_corpus

    trained_on = load_corpus(small_corpus).data_hash
    flagged = evaluate_corpus(_CardedModel({"data_hash": "combined", "corpus_hashes": ["other", trained_on]}), small_corpus)
    assert flagged.extra.get("in_sample") is True and "in-sample" in flagged.to_text()
    fresh = evaluate_corpus(_CardedModel({"data_hash": "combined", "corpus_hashes": ["other"]}), small_corpus)
    assert not fresh.extra.get("in_sample") and "in-sample" not in fresh.to_text()
