"""DISCOVER verdict table: paired balanced accuracy and the claims wiring of ``reproduce discover``."""

from __future__ import annotations

import numpy as np
import pytest


def test_paired_balanced_accuracy_matches_a_hand_case():
    from sklearn.metrics import balanced_accuracy_score

    from echossl.evaluation.stats import paired_balanced_accuracy

    labels = np.array([0, 0, 1, 1, 0, 1])
    pred_a = np.array([0, 0, 0, 1, 0, 1])  # recall 1 (class 0), 2/3 (class 1): 5/6
    pred_b = np.array([1, 0, 1, 1, 0, 0])  # 2/3 and 2/3: 2/3
    diff, ci = paired_balanced_accuracy(pred_a == labels, pred_b == labels, labels, n_boot=2000)
    expected = balanced_accuracy_score(labels, pred_a) - balanced_accuracy_score(labels, pred_b)
    assert diff == pytest.approx(expected) == pytest.approx(5 / 6 - 2 / 3)
    assert ci[0] <= diff <= ci[1]
    # identical rows: a difference of exactly 0 in every replicate
    d0, ci0 = paired_balanced_accuracy(pred_a == labels, pred_a == labels, labels, n_boot=200)
    assert d0 == 0.0 and ci0 == [0.0, 0.0]


def _items(n=20, patients=5):
    label = np.arange(n) % 2
    patient = np.repeat([f"p{i}" for i in range(patients)], 2)
    base = {"label": label, "seg_patient": patient}
    return {
        "random init": {**base, "knn_correct": (label == 0).astype(float), "probe_abs_error": np.full(n, 9.0),
                        "seg_dice": np.full(2 * patients, 0.5)},
        # the oracle equals the floor: nothing to tell apart, so "inconclusive"
        "oracle": {**base, "knn_correct": (label == 0).astype(float), "probe_abs_error": np.full(n, 9.0),
                   "seg_dice": np.full(2 * patients, 0.5)},
        "videomae": {**base, "knn_correct": np.zeros(n), "probe_abs_error": np.full(n, 5.0),
                     "seg_dice": np.full(2 * patients, 0.8)},
        "discover": {**base, "knn_correct": np.ones(n), "probe_abs_error": np.full(n, 1.0),
                     "seg_dice": np.full(2 * patients, 0.9)},
    }


def test_claims_have_the_contract_schema_and_the_hand_verdicts():
    from echossl.pipelines.discover import discover_claims

    claims, info = discover_claims(_items(), n_boot=500)
    assert all(set(c) == {"claim", "difference", "ci95", "verdict"} for c in claims)
    by = {c["claim"]: c for c in claims}
    assert len(by) == 9  # 3 metrics x (DISCOVER vs VideoMAE, DISCOVER vs random, oracle vs random)
    knn = by["DISCOVER beats VideoMAE-style on kNN balanced accuracy (DISCOVER - VideoMAE-style)"]
    assert knn["difference"] == pytest.approx(1.0) and knn["verdict"] == "holds"
    mae = by["DISCOVER beats VideoMAE-style on linear-probe EF MAE (DISCOVER - VideoMAE-style)"]
    assert mae["difference"] == pytest.approx(-4.0) and mae["verdict"] == "holds"
    # DISCOVER 1.0 bAcc vs random init 0.5 (right on class 0 only)
    rnd = by["DISCOVER beats random init on kNN balanced accuracy (DISCOVER - random init)"]
    assert rnd["difference"] == pytest.approx(0.5) and rnd["verdict"] == "holds"
    seg = by["DISCOVER beats VideoMAE-style on frozen CAMUS Dice (DISCOVER - VideoMAE-style)"]
    assert seg["difference"] == pytest.approx(0.1) and seg["verdict"] == "holds"
    informative = [c for c in claims if c["claim"].startswith("protocol informative")]
    assert len(informative) == 3 and all(c["verdict"] == "inconclusive" for c in informative)
    assert set(info) == {"knn_bacc", "probe_mae", "seg_dice"} and not any(v["informative"] for v in info.values())


def test_a_worse_discover_fails_and_missing_rows_are_skipped():
    from echossl.pipelines.discover import discover_claims

    items = _items()
    items["discover"], items["videomae"] = items["videomae"], items["discover"]
    del items["oracle"]
    claims, info = discover_claims(items, n_boot=500)
    assert info == {} and len(claims) == 6
    assert all(c["verdict"] == "fails" for c in claims if "VideoMAE" in c["claim"])


def test_combine_items_averages_errors_over_seeds():
    from echossl.pipelines.discover import combine_items

    recs = [{"items": {"label": [0, 1], "knn_pred": [0, 0], "probe_abs_error": [1.0, 3.0]}},
            {"items": {"label": [0, 1], "knn_pred": [1, 1], "probe_abs_error": [3.0, 5.0]}}]
    out = combine_items(recs)
    np.testing.assert_allclose(out["knn_correct"], [0.5, 0.5])
    np.testing.assert_allclose(out["probe_abs_error"], [2.0, 4.0])
