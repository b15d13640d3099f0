"""Saliency metrics (Bylinskii et al. TPAMI 2018) against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from echossl.evaluation.saliency_metrics import (
    auc_judd, correlation_coefficient, kl_divergence, nss, per_map_metrics, saliency_metrics, similarity,
)

P = np.array([[1.0, 0.0], [0.0, 1.0]])
Q = np.array([[1.0, 0.0], [0.0, 0.0]])


def test_kl_by_hand():
    # P -> [.5, 0, 0, .5], Q -> [1, 0, 0, 0]: KL = 1 * log(1 / .5)
    assert kl_divergence(P, Q) == pytest.approx(np.log(2.0), abs=1e-9)
    assert kl_divergence(Q, Q) == pytest.approx(0.0, abs=1e-9)


def test_cc_by_hand():
    # deviations [.5,-.5,-.5,.5] and [.75,-.25,-.25,-.25]: .5 / sqrt(1 * .75)
    assert correlation_coefficient(P, Q) == pytest.approx(0.5 / np.sqrt(0.75), abs=1e-9)
    assert correlation_coefficient(Q, 3 * Q + 1) == pytest.approx(1.0)


def test_sim_by_hand():
    assert similarity(P, Q) == pytest.approx(0.5)
    assert similarity(Q, Q) == pytest.approx(1.0)


def test_sim_min_max_normalises_a_floored_map():
    # A softmax-like map with a floor: [.4, .1, .1, .4]. Min-max -> [1, 0, 0, 1] -> sum 1
    # [.5, 0, 0, .5]; Q -> [1, 0, 0, 0]; SIM = min(.5, 1) = .5. Without min-max the map
    # would be [.4, .1, .1, .4] and SIM = .4.
    floored = np.array([[0.4, 0.1], [0.1, 0.4]])
    assert similarity(floored, Q) == pytest.approx(0.5, abs=1e-12)
    # a graded floored map: [.5, .2, .2, .1] -> min-max [1, .25, .25, 0] / 1.5
    # density [.3, .3, .3, .1] -> min-max [1, 1, 1, 0] / 3
    pred = np.array([[0.5, 0.2], [0.2, 0.1]])
    dens = np.array([[0.3, 0.3], [0.3, 0.1]])
    by_hand = min(1 / 1.5, 1 / 3) + 2 * min(0.25 / 1.5, 1 / 3) + 0.0
    assert similarity(pred, dens) == pytest.approx(by_hand, abs=1e-12)
    # scale and offset of either map do not change SIM (benchmark invariance)
    assert similarity(3 * pred + 7, dens) == pytest.approx(by_hand, abs=1e-12)


def test_nss_by_hand():
    # mean .5, std (N-1) sqrt(1/3); fixation on the top-left pixel: .5 / sqrt(1/3)
    assert nss(P, Q) == pytest.approx(0.5 / np.sqrt(1 / 3), abs=1e-9)
    assert np.isnan(nss(P, np.zeros((2, 2))))


def test_auc_judd_by_hand():
    # normalised saliency [1, 0, .5, .25]; fixations at 1 and .25 -> ROC points
    # (0,0), (0,.5), (.5,1), (1,1): area .375 + .5
    s = np.array([[0.9, 0.1], [0.5, 0.3]])
    fix = np.array([[1, 0], [0, 1]])
    assert auc_judd(s, fix) == pytest.approx(0.875)
    # a perfect map: fixations hold the only high values
    assert auc_judd(np.array([[1.0, 0.0], [0.0, 0.0]]), np.array([[1, 0], [0, 0]])) == pytest.approx(1.0)


def test_batch_matches_single_maps():
    rng = np.random.default_rng(0)
    pred, dens = rng.random((3, 8, 8)), rng.random((3, 8, 8))
    fix = rng.random((3, 8, 8)) > 0.8
    per = per_map_metrics(pred, dens, fix)
    for i in range(3):
        assert per["kl"][i] == pytest.approx(kl_divergence(pred[i], dens[i]))
        assert per["auc"][i] == pytest.approx(auc_judd(pred[i], fix[i]))
        assert per["nss"][i] == pytest.approx(nss(pred[i], fix[i]))
    mean = saliency_metrics(pred, dens, fix)
    assert set(mean) == {"kl", "nss", "auc", "cc", "sim"}
    assert mean["cc"] == pytest.approx(np.mean(per["cc"]))
