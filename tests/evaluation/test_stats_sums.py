"""stats.paired_bootstrap_sums (cluster bootstrap of ratio/confusion metrics) and macro_f1_from_confusion."""

from __future__ import annotations

import numpy as np
import pytest

from echossl.errors import EchosslError
from echossl.evaluation import stats


def _ratio(x):
    return x[..., 0] / x[..., 1]


def test_sums_of_equal_counts_equal_the_mean_bootstrap():
    """One item per unit with count 1: the ratio of sums is the mean, and the replicates are the
    same draws as :func:`paired_bootstrap` (same seed), so difference and CI agree exactly."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(1, 1, 30), rng.normal(0.5, 1, 30)
    pa = np.stack([a, np.ones(30)], -1)[None]
    pb = np.stack([b, np.ones(30)], -1)[None]
    d, ci = stats.paired_bootstrap_sums(pa, pb, _ratio, n_boot=2000, seed=3)
    d2, ci2 = stats.paired_bootstrap(a, b, n_boot=2000, seed=3)
    assert d == pytest.approx(d2)
    assert ci == pytest.approx(ci2)


def test_sums_weight_units_by_their_counts_and_average_seeds():
    # unit 0: 1 hit of 4, unit 1: 3 of 4 -> pooled 0.5; the other row: 2 of 4 twice -> 0.5
    a = np.array([[[1, 4], [3, 4]], [[1, 4], [3, 4]]], float)  # 2 seeds
    b = np.array([[[2, 4], [2, 4]]], float)                     # 1 seed
    d, ci = stats.paired_bootstrap_sums(a, b, _ratio, n_boot=500)
    assert d == pytest.approx(0.0)
    assert ci[0] < 0 < ci[1]
    # seeds are averaged per replicate: a row whose seeds score 1.0 and 0.0 has mean 0.5
    c = np.array([[[4, 4], [4, 4]], [[0, 4], [0, 4]]], float)
    assert stats.paired_bootstrap_sums(c, b, _ratio, n_boot=100)[0] == pytest.approx(0.0)
    with pytest.raises(EchosslError):
        stats.paired_bootstrap_sums(a, np.ones((1, 3, 2)), _ratio)


def test_macro_f1_from_confusion_matches_sklearn():
    from sklearn.metrics import confusion_matrix, f1_score

    rng = np.random.default_rng(1)
    true = rng.integers(0, 5, 200)
    true[true == 3] = 4  # class 3 absent from the truth
    pred = np.where(rng.random(200) < 0.6, true, rng.integers(0, 5, 200))
    conf = confusion_matrix(true, pred, labels=np.arange(5))
    want = f1_score(true, pred, labels=np.unique(true), average="macro", zero_division=0)
    assert stats.macro_f1_from_confusion(conf) == pytest.approx(want)
    assert stats.macro_f1_from_confusion(np.stack([conf, conf])).shape == (2,)
