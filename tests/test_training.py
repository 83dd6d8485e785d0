"""Grouped splits, threshold choice, the quick search, persistence checks and explanations."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sklearn

from jeeves.errors import ModelError
from jeeves.model.evaluation import precision_recall_at
from jeeves.model.registry import current_version, file_sha256, set_current
from jeeves.model.selection import choose_threshold, cross_validated_threshold, grouped_folds, unsure_band
from jeeves.model.serving import load_model
from jeeves.model.training import train
from jeeves.parsing import EmailDocument


def test_grouped_folds_never_split_a_thread():
    rng = np.random.default_rng(0)
    groups = [f"thread{i // 3}" for i in range(300)]
    labels = rng.integers(0, 2, 300)
    folds = grouped_folds(labels, groups, n_splits=5)
    assert len(folds) == 5
    seen_test = np.concatenate([te for _, te in folds])
    assert sorted(seen_test.tolist()) == list(range(300))
    for train_idx, test_idx in folds:
        assert not {groups[i] for i in train_idx} & {groups[i] for i in test_idx}
        assert labels[test_idx].sum() > 0


def test_threshold_reaches_target_recall_with_best_precision():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 500)
    scores = np.clip(labels * 0.3 + rng.random(500) * 0.7, 0, 1)
    for target in (0.5, 0.9, 1.0):
        thr = choose_threshold(labels, scores, target)
        assert precision_recall_at(labels, scores, thr)["recall"] >= target
        # any higher threshold loses the recall target
        higher = scores[scores > thr]
        if len(higher):
            assert precision_recall_at(labels, scores, higher.min())["recall"] < target


def test_threshold_needs_positives():
    with pytest.raises(ValueError):
        choose_threshold([0, 0], [0.1, 0.2])


def test_cross_validated_threshold_and_band():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 400)
    scores = np.clip(labels * 0.4 + rng.random(400) * 0.6, 0, 1)
    folds = grouped_folds(labels, [str(i) for i in range(400)], n_splits=4)
    honest = cross_validated_threshold(labels, scores, folds, 0.9)
    assert 0.7 <= honest["recall"] <= 1.0 and 0 < honest["precision"] <= 1
    thr = choose_threshold(labels, scores, 0.9)
    low, high = unsure_band(labels, scores, thr)
    assert low <= thr <= high


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from jeeves.model.corpus import load_corpus
    from tests.conftest import CORPUS_DIR

    corpus = load_corpus(CORPUS_DIR)
    rng = np.random.default_rng(0)
    pos = np.flatnonzero(corpus.labels == 1)[:60]
    neg = rng.choice(np.flatnonzero(corpus.labels == 0), 300, replace=False)
    sub = corpus.subset(np.concatenate([pos, neg]))
    out = tmp_path_factory.mktemp("models")
    result = train(sub.documents, sub.labels, sub.groups, out_dir=out, quick=True, progress=False,
                   subsets={"high": [c == "high" for c in sub.confidence]})
    served_after_training = current_version(out)
    set_current(out, result.version)  # what `jeeves train` does next
    return out, result, sub, served_after_training


def test_train_saves_model_and_card_without_serving_them(trained):
    out, result, sub, served_after_training = trained
    card = result.card
    assert served_after_training is None  # promotion is the registry's, on the caller's word
    assert result.model_path == out / f"{card.version}.joblib" and result.model_path.is_file()
    assert result.card_path == out / f"{card.version}.json"
    assert card.sha256 == file_sha256(result.model_path)
    assert sorted(p.name for p in out.iterdir()) == sorted([result.model_path.name, result.card_path.name, "CURRENT"])
    data = json.loads(result.card_path.read_text())
    for key in ("sha256", "data_hash", "label_counts", "candidates", "baseline", "threshold", "unsure_band",
                "library_versions", "training_seconds", "cv"):
        assert key in data
    assert data["label_counts"] == {"positive": 60, "negative": 300}
    assert data["library_versions"]["scikit-learn"] == sklearn.__version__
    assert {row["name"] for row in data["candidates"]} >= {data["chosen"]}
    assert 0 <= data["cv"]["all"]["roc_auc"] <= 1 and "high" in data["cv"]
    assert "roc_auc" in data["baseline"]["all"]


def test_load_scores_decides_and_explains(trained):
    out, result, sub, _ = trained
    card = result.card
    model = load_model(models_dir=out)
    assert model.version == card.version and model.threshold == pytest.approx(card.threshold)
    scores = model.score(sub.documents[:20])
    assert scores.shape == (20,) and ((scores >= 0) & (scores <= 1)).all()
    assert model.decide(scores).dtype == bool
    assert model.score([]).shape == (0,)
    request = EmailDocument(subject="lunch", new_text="Can we meet for lunch next week? Let me know when works.")
    explanation = model.explain(request, top=5)
    assert len(explanation.up) <= 5 and len(explanation.down) <= 5
    assert all(v > 0 for _, v in explanation.up) and all(v < 0 for _, v in explanation.down)
    assert "score" in str(explanation)
    assert load_model(out / f"{card.version}.joblib").version == card.version


def test_tampered_model_is_refused(trained, tmp_path):
    import shutil

    out, result, _, _ = trained
    card = result.card
    for name in (f"{card.version}.joblib", f"{card.version}.json", "CURRENT"):
        shutil.copy(out / name, tmp_path / name)
    with open(tmp_path / f"{card.version}.joblib", "ab") as handle:
        handle.write(b"x")
    with pytest.raises(ModelError, match="does not match its model card"):
        load_model(models_dir=tmp_path)


def test_other_sklearn_version_is_refused(trained, tmp_path):
    import shutil

    out, result, _, _ = trained
    card = result.card
    for name in (f"{card.version}.joblib", "CURRENT"):
        shutil.copy(out / name, tmp_path / name)
    data = json.loads((out / f"{card.version}.json").read_text())
    data["library_versions"]["scikit-learn"] = "0.0.1"
    (tmp_path / f"{card.version}.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="retrain"):
        load_model(models_dir=tmp_path)


def test_missing_model_is_actionable(tmp_path):
    with pytest.raises(ModelError, match="jeeves train"):
        load_model(models_dir=tmp_path)
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "nope.joblib")


def test_model_that_fails_on_this_feature_code_is_refused_at_load(tmp_path):
    """A pickled pipeline whose transformers no longer match the code fails at load, not mid-pass."""
    import shutil
    from pathlib import Path

    import joblib

    source = Path(__file__).resolve().parent.parent / "models"
    version = (source / "CURRENT").read_text().strip()
    shutil.copy(source / f"{version}.json", tmp_path / f"{version}.json")
    pipeline = joblib.load(source / f"{version}.joblib")
    cues = dict(pipeline.named_steps["features"].transformer_list)["cues"].named_steps["cues"]
    del cues.count_sentences  # as pickled by older feature code that had no such parameter
    joblib.dump(pipeline, tmp_path / f"{version}.joblib")
    card = json.loads((tmp_path / f"{version}.json").read_text())
    card["sha256"] = file_sha256(tmp_path / f"{version}.joblib")
    (tmp_path / f"{version}.json").write_text(json.dumps(card))
    (tmp_path / "CURRENT").write_text(version)
    with pytest.raises(ModelError, match="retrain"):
        load_model(tmp_path)
