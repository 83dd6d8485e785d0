"""Champion/challenger: a retrain learns from user labels and never serves a worse model."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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


def test_evaluation_split_is_the_same_in_another_process_and_about_a_fifth():
    """The split must not move between runs (a label would hop between training and evaluation):
    another interpreter, with another string-hash seed, picks the very same threads."""
    groups = [f"thread {i}" for i in range(2000)]
    chosen = [g for g in groups if in_eval_split(g)]
    code = ("from jeeves.model.retrain import in_eval_split\n"
            "print('\\n'.join(g for g in (f'thread {i}' for i in range(2000)) if in_eval_split(g)))")
    other = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": "12345"},
                           capture_output=True, text=True, check=True, cwd=REPO)
    assert other.stdout.split("\n")[:-1] == chosen
    assert 300 < len(chosen) < 500


@pytest.fixture
def app(tmp_path) -> Jeeves:
    models = tmp_path / "models"
    shutil.copytree(REPO / "models", models)
    settings = Settings(data_dir=tmp_path, model={"dir": models}, notify={"channel": "console"})
    return Jeeves(settings)


def _label_two_sample_messages(app) -> None:
    app.import_path(REPO / "data/sample/sample.mbox")
    app.label("1", 1)
    app.label("2", 0)


@pytest.mark.slow
def test_a_challenger_that_must_lose_is_kept_but_not_served(app, small_corpus):
    # small_corpus has no pool column, so the challenger's thresholds can only be chosen for
    # recall on a corpus, while the shipped champion's were chosen for an ordinary inbox: the
    # challenger must not be promoted, whatever its scores.
    champion = app.model.version
    assert app.model.card["operating_points"]
    _label_two_sample_messages(app)
    result = retrain_and_maybe_promote(app, corpus_dir=small_corpus, quick=True)

    assert result.n_user_labels == 2 and result.n_eval > 0 and result.n_train > result.n_eval
    assert not result.promoted and result.champion == champion
    assert result.challenger_scores["inbox_thresholds"] is False
    assert current_version(app.settings.model.dir) == champion and app.model.version == champion
    versions = {e.version for e in list_models(app.settings.model.dir)}
    assert {champion, result.challenger} <= versions  # kept, so it can be served by hand
    # The running service follows CURRENT without a restart.
    set_current(app.settings.model.dir, result.challenger)
    assert app.model.version == result.challenger


@pytest.mark.slow
def test_a_challenger_that_must_win_replaces_a_broken_champion(app, small_corpus):
    # A served model whose file no longer matches its card cannot serve: anything beats no model.
    champion = current_version(app.settings.model.dir)
    with open(app.settings.model.dir / f"{champion}.joblib", "ab") as handle:
        handle.write(b"x")
    _label_two_sample_messages(app)
    result = retrain_and_maybe_promote(app, corpus_dir=small_corpus, quick=True)

    assert result.promoted and result.champion is None and result.champion_scores is None
    assert current_version(app.settings.model.dir) == result.challenger
    assert app.model.version == result.challenger
    assert {e.version for e in list_models(app.settings.model.dir)} >= {champion, result.challenger}
