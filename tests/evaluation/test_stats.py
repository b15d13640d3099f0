"""Paired bootstrap, verdicts and claims (evaluation/stats.py)."""

import numpy as np
import pytest
from scipy import stats as sps

from echossl.errors import EchosslError
from echossl.evaluation import stats


def test_paired_mean_matches_scipy_paired_bootstrap():
    rng = np.random.default_rng(1)
    base = rng.gamma(2.0, 3.0, 120)  # per-video difficulty shared by both rows: pairing matters
    a = base + rng.normal(0.0, 0.5, 120)
    b = base + 0.4 + rng.normal(0.0, 0.5, 120)
    diff, ci = stats.paired_bootstrap(a, b, n_boot=20000, seed=0)
    ref = sps.bootstrap((a, b), lambda x, y, axis=-1: np.mean(x - y, axis=axis), paired=True,
                        n_resamples=20000, method="percentile", random_state=0).confidence_interval
    assert diff == pytest.approx(np.mean(a - b))
    assert ci[0] == pytest.approx(ref.low, abs=0.02) and ci[1] == pytest.approx(ref.high, abs=0.02)
    # unpaired resampling would be far wider: the shared difficulty must cancel
    assert ci[1] - ci[0] < 0.5 * 2 * 1.96 * np.sqrt(np.var(a) / 120 + np.var(b) / 120)


def test_hand_case_two_items():
    # two items, differences 0 and 2: replicates are {0,0}, {0,2}, {2,0}, {2,2} -> means 0, 1, 1, 2
    diff, ci = stats.paired_bootstrap([1.0, 5.0], [1.0, 3.0], n_boot=4000, seed=3)
    assert diff == 1.0
    assert ci == [0.0, 2.0]


def test_groups_resample_units_not_frames():
    rng = np.random.default_rng(0)
    n_units, per = 10, 50
    unit_effect = rng.normal(0.0, 1.0, n_units)  # frames of one scan share their error
    d = np.repeat(unit_effect, per) + rng.normal(0.0, 0.05, n_units * per)
    groups = np.repeat(np.arange(n_units), per)
    _, by_frame = stats.paired_bootstrap(d, np.zeros_like(d), n_boot=4000, seed=0)
    _, by_unit = stats.paired_bootstrap(d, np.zeros_like(d), groups=groups, n_boot=4000, seed=0)
    assert (by_unit[1] - by_unit[0]) > 4 * (by_frame[1] - by_frame[0])
    # the unit bootstrap equals bootstrapping the 10 unit means (equal unit sizes)
    means = d.reshape(n_units, per).mean(1)
    _, direct = stats.paired_bootstrap(means, np.zeros(n_units), n_boot=4000, seed=0)
    assert by_unit == pytest.approx(direct, abs=1e-9)


def test_generic_statistic_median():
    a = np.arange(11, dtype=float)
    diff, ci = stats.paired_bootstrap(a + 2.0, a, statistic=np.median, n_boot=500, seed=0)
    assert diff == 2.0 and ci[0] <= 2.0 <= ci[1]


def test_verdicts_and_claim_format():
    assert stats.verdict(-1.0, [-2.0, -0.1]) == "holds"
    assert stats.verdict(1.0, [0.1, 2.0]) == "fails"
    assert stats.verdict(0.2, [-0.5, 0.9]) == "inconclusive"
    assert stats.verdict(0.6, [0.5, 0.7], better="higher", threshold=0.48) == "holds"
    assert stats.verdict(0.3, [0.1, 0.4], better="higher", threshold=0.48) == "fails"
    c = stats.claim("x", -1.0, (-2.0, -0.5))
    assert set(c) == {"claim", "difference", "ci95", "verdict"} and c["verdict"] == "holds"
    with pytest.raises(EchosslError):
        stats.verdict(0.0, [0, 1], better="smaller")


def test_informative_and_combine_seeds():
    rng = np.random.default_rng(2)
    floor = rng.gamma(2.0, 4.0, 100)
    oracle = 0.5 * floor
    assert stats.informative(oracle, floor, n_boot=2000)["informative"]
    assert not stats.informative(floor + rng.normal(0, 0.1, 100), floor, n_boot=2000)["informative"]
    errors = np.array([[1.0, 2.0], [3.0, 6.0], [2.0, 1.0]])
    assert stats.combine_seeds(errors).tolist() == [2.0, 3.0]


def test_gap_fraction_function():
    rng = np.random.default_rng(4)
    low = rng.gamma(2.0, 4.0, 200)  # 1/8 labels
    high = 0.5 * low                 # all labels
    mid = 0.75 * low                 # recovers half of the gap
    value, ci = stats.bootstrap_function([low, mid, high], lambda m: (m[..., 0] - m[..., 1]) / (m[..., 0] - m[..., 2]),
                                         n_boot=2000)
    assert value == pytest.approx(0.5) and ci[0] <= 0.5 <= ci[1]


def test_bad_input():
    with pytest.raises(EchosslError):
        stats.paired_bootstrap([1.0, 2.0], [1.0])
    with pytest.raises(EchosslError):
        stats.paired_bootstrap([1.0, np.nan], [1.0, 2.0])
