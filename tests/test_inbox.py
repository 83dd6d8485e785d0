"""The inbox estimate: what a person with an ordinary inbox gets, from weighted labelled samples."""

from __future__ import annotations

import numpy as np
import pytest

from jeeves.model.inbox import TRADE_OFFS, TradeOff, estimate, inbox_samples
from jeeves.model.selection import choose_digest_threshold, choose_text_threshold, operating_points


def _random_pool():
    """100 random messages: 4 requests (3 clear), 96 not (90 clear); scores put 2 requests and
    2 clear non-requests at the top."""
    labels = np.array([1, 1, 0, 0, 1, 1] + [0] * 94)
    confidence = np.array(["high", "low", "high", "high", "high", "high"] + ["high"] * 88 + ["low"] * 6)
    scores = np.array([0.9, 0.85, 0.8, 0.75, 0.4, 0.3] + list(np.linspace(0.2, 0.0, 94)))
    return labels, confidence, scores


def test_estimate_on_a_random_pool_is_plain_counting():
    labels, confidence, scores = _random_pool()
    samples = inbox_samples(["random"] * 100, [1.0] * 100, ["c"] * 100)
    e = estimate(labels, confidence, scores, samples, 0.7)
    assert e.texted == pytest.approx(4 / 100)
    assert e.precision == pytest.approx(2 / 4)
    assert e.recall == pytest.approx(2 / 4)
    assert e.recall_high == pytest.approx(1 / 3)  # the low-confidence request is not a clear one
    assert e.wrong == pytest.approx(2 / 4)  # two texts for clear non-requests
    assert e.request_share == pytest.approx(4 / 100)
    with_digest = estimate(labels, confidence, scores, samples, 0.7, 0.35)
    assert with_digest.digest == pytest.approx(1 / 100)
    assert with_digest.digest_precision == pytest.approx(1.0)
    assert with_digest.recall_high_with_digest == pytest.approx(2 / 3)


def test_active_draw_rows_count_as_many_inbox_messages_as_their_weight():
    # Stratum "flagged": 2 drawn of 20 in the pool (weight 10), one a request; stratum "low":
    # 2 drawn of 80 (weight 40), neither. An inbox of 100 with 10 requests, 20 flagged.
    labels = np.array([1, 0, 0, 0])
    confidence = np.array(["high"] * 4)
    scores = np.array([0.9, 0.8, 0.1, 0.05])
    samples = inbox_samples(["active"] * 4, [10, 10, 40, 40], ["enron-active"] * 4)
    e = estimate(labels, confidence, scores, samples, 0.5)
    assert e.texted == pytest.approx(20 / 100)
    assert e.precision == pytest.approx(0.5)
    assert e.request_share == pytest.approx(10 / 100)


def test_each_sample_weighs_the_same_in_the_pooled_estimate():
    # A random pool where nothing is texted and an active draw where everything is: 50 %.
    labels = np.array([0, 0, 1, 1])
    confidence = np.array(["high"] * 4)
    scores = np.array([0.1, 0.1, 0.9, 0.9])
    samples = inbox_samples(["random", "random", "active", "active"], [1, 1, 3, 1000], ["a", "a", "b", "b"])
    assert [s.name for s in samples] == ["random", "b"]
    e = estimate(labels, confidence, scores, samples, 0.5)
    assert e.texted == pytest.approx(0.5)
    assert e.samples["random"]["texted"] == 0 and e.samples["b"]["texted"] == pytest.approx(1.0)


def test_cue_pool_mail_is_no_inbox_sample():
    assert inbox_samples(["cue", "cue"], [1, 1], ["a", "a"]) == []
    with pytest.raises(ValueError):
        estimate([0, 1], ["high", "high"], [0.1, 0.9], [], 0.5)


def test_text_threshold_keeps_the_budget_and_the_precision_floor():
    labels, confidence, scores = _random_pool()
    samples = inbox_samples(["random"] * 100, [1.0] * 100, ["c"] * 100)
    # Budget 5 %: at most 5 texts. Floor 0.5: the top 4 (2 of 4 right) pass, the top 5 (3/5) too.
    t = choose_text_threshold(labels, confidence, scores, samples, TradeOff("t", 0.05, 0.5, ""))
    e = estimate(labels, confidence, scores, samples, t)
    assert e.texted <= 0.05 and e.precision >= 0.5
    assert t == pytest.approx(0.4)
    # A strict floor keeps only the two sure requests.
    t = choose_text_threshold(labels, confidence, scores, samples, TradeOff("t", 0.05, 0.99, ""))
    assert t == pytest.approx(0.85)


def test_digest_threshold_sits_below_the_text_threshold_within_its_budget():
    labels, confidence, scores = _random_pool()
    samples = inbox_samples(["random"] * 100, [1.0] * 100, ["c"] * 100)
    digest = choose_digest_threshold(labels, confidence, scores, samples, 0.7, budget=0.03, target_recall_high=0.99)
    e = estimate(labels, confidence, scores, samples, 0.7, digest)
    assert digest < 0.7
    assert e.digest <= 0.03
    assert e.recall_high_with_digest == pytest.approx(1.0)


def test_operating_points_cover_every_trade_off_and_fewer_texts_texts_less():
    rng = np.random.default_rng(0)
    n = 2000
    labels = (rng.random(n) < 0.05).astype(int)
    scores = np.clip(labels * 0.5 + rng.normal(0.25, 0.15, n), 0, 1)
    confidence = np.where(rng.random(n) < 0.8, "high", "low")
    samples = inbox_samples(["random"] * n, [1.0] * n, ["c"] * n)
    folds = [(np.flatnonzero(np.arange(n) % 4 != k), np.flatnonzero(np.arange(n) % 4 == k)) for k in range(4)]
    points = operating_points(labels, confidence, scores, samples, folds)
    assert set(points) == set(TRADE_OFFS)
    texted = [points[name].estimate["texted"] for name in ("fewer-texts", "balanced", "fewer-misses")]
    assert texted == sorted(texted)
    for name, point in points.items():
        assert point.estimate["texted"] <= TRADE_OFFS[name].budget + 1e-9
        assert point.digest_threshold <= point.text_threshold
        assert point.cross_validated["texted"] <= TRADE_OFFS[name].budget * 1.5
