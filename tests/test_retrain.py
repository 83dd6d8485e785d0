"""Champion/challenger: a retrain learns from user labels and never serves a worse model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jeeves.config import Settings
from jeeves.model.registry import current_version, list_models, set_current
from jeeves.model.retrain import in_eval_split, retrain_and_maybe_promote, should_promote
from jeeves.service import Jeeves

REPO = Path(__file__).resolve().parent.parent


def test_promotion_needs_roc_auc_and_recall_at_least_as_good():
    champion = {"roc_auc": 0.90, "recall": 0.90}
    assert should_promote({"roc_auc": 0.90, "recall": 0.90}, champion)
    assert not should_promote({"roc_auc": 0.95, "recall": 0.85}, champion)
    assert not should_promote({"roc_auc": 0.89, "recall": 0.99}, champion)
    assert should_promote({"roc_auc": 0.5, "recall": 0.5}, None)


def test_a_corpus_recall_threshold_never_replaces_an_inbox_one():
    champion = {"roc_auc": 0.90, "recall": 0.60, "inbox_thresholds": True}
    # Better on both counts, but its threshold was chosen for recall on an enriched corpus.
    assert not should_promote({"roc_auc": 0.95, "recall": 0.95, "inbox_thresholds": False}, champion)
    assert should_promote({"roc_auc": 0.95, "recall": 0.95, "inbox_thresholds": True}, champion)


def test_evaluation_split_is_stable_and_about_a_fifth():
    groups = [f"thread {i}" for i in range(2000)]
    chosen = [g for g in groups if in_eval_split(g)]
    assert chosen == [g for g in groups if in_eval_split(g)]
    assert 300 < len(chosen) < 500


@pytest.fixture
def app(tmp_path) -> Jeeves:
    models = tmp_path / "models"
    shutil.copytree(REPO / "models", models)
    settings = Settings(data_dir=tmp_path, model={"dir": models}, notify={"channel": "console"})
    return Jeeves(settings)


@pytest.mark.slow
def test_retrain_keeps_every_model_and_serves_the_winner(app, small_corpus):
    champion = app.model.version
    app.import_path(REPO / "data/sample/sample.mbox")
    app.label("1", 1)
    app.label("2", 0)
    result = retrain_and_maybe_promote(app, corpus_dir=small_corpus, quick=True)

    assert result.n_user_labels == 2 and result.n_eval > 0 and result.n_train > result.n_eval
    versions = {e.version for e in list_models(app.settings.model.dir)}
    assert {champion, result.challenger} <= versions  # the challenger is kept either way
    assert result.promoted == should_promote(result.challenger_scores, result.champion_scores)
    serving = current_version(app.settings.model.dir)
    assert serving == (result.challenger if result.promoted else champion)
    # The running service follows CURRENT without a restart, both ways (promotion and rollback).
    assert app.model.version == serving
    other = champion if serving != champion else result.challenger
    set_current(app.settings.model.dir, other)
    assert app.model.version == other
