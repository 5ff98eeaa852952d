"""Sequence metrics on synthetic numbers (no models)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from unlearnkit.metrics.sequence import (
    likelihood_gap,
    loss_mia_auc,
    next_token_kl,
    perplexity,
    probability_gap,
    sequence_tow,
)


def test_perplexity_token_weighted():
    assert perplexity([math.log(0.5)] * 3) == pytest.approx(2.0)
    # Two sequences: 1 token at p=1/4 and 3 tokens at p=1/2 -> exp(-(log4 + 3 log2)/4) = 2^(5/4).
    assert perplexity([math.log(0.25), math.log(0.5)], [1, 3]) == pytest.approx(2 ** 1.25)
    assert math.isnan(perplexity([]))


def test_gaps():
    gap = likelihood_gap([-1.0, -2.0], [-1.5, -1.0])
    assert gap.tolist() == [0.5, -1.0]
    with pytest.raises(ValueError, match="shapes differ"):
        likelihood_gap([-1.0], [-1.0, -2.0])
    assert probability_gap([0.0, math.log(0.5)], [math.log(0.5), math.log(0.5)]) == pytest.approx(0.25)


def test_sequence_tow():
    ll = {s: np.log(np.array([0.3, 0.6])) for s in ("forget", "retain", "test")}
    assert sequence_tow(ll, ll) == pytest.approx(1.0)
    off = dict(ll, forget=np.log(np.array([0.5, 0.8])))  # forget gap 0.2 on both
    assert sequence_tow(off, ll) == pytest.approx(0.8)
    worse = dict(off, retain=np.log(np.array([0.3, 0.1])))  # retain gap 0.25
    assert sequence_tow(worse, ll) == pytest.approx(0.8 * 0.75)


def test_loss_mia_auc_separates_and_not():
    rng = np.random.default_rng(0)
    test = rng.normal(2.0, 0.1, 200)
    assert loss_mia_auc(rng.normal(1.0, 0.1, 200), test) > 0.95  # members have lower loss
    assert abs(loss_mia_auc(rng.normal(2.0, 0.1, 200), test) - 0.5) < 0.1


def test_next_token_kl():
    p = np.array([[[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]]])  # [1, 2, 3]
    assert next_token_kl(p, np.log(np.where(p > 0, p, 1e-9))) == pytest.approx(0.0, abs=1e-12)
    q = np.log(np.array([[[0.25, 0.75, 1e-12], [0.5, 0.25, 0.25]]]))
    first = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    second = math.log(2.0)
    assert next_token_kl(p, q) == pytest.approx((first + second) / 2)
    assert next_token_kl(p, q, mask=[[False, True]]) == pytest.approx(second)
    with pytest.raises(ValueError):
        next_token_kl(p, q[:, :1])
