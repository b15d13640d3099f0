"""Pooled Dice (the reference's) beside the per-frame mean, with intervals over videos."""

from __future__ import annotations

import json

import numpy as np
import pytest

from echossl.evaluation.metrics import dice, dice_parts, dice_summary, pooled_dice


def _frames():
    """Two hand-made frames: a big one predicted well, a small one badly."""
    big_t = np.zeros((10, 10), bool)
    big_t[:, :5] = True  # 50 px
    big_p = np.zeros((10, 10), bool)
    big_p[:, :4] = True  # 40 px, all inside: I = 40
    small_t = np.zeros((10, 10), bool)
    small_t[0, :2] = True  # 2 px
    small_p = np.zeros((10, 10), bool)
    small_p[0, 2:4] = True  # 2 px, disjoint: I = 0
    return np.stack([big_p, small_p]), np.stack([big_t, small_t])


def test_pooled_and_frame_mean_differ_on_a_hand_case():
    pred, truth = _frames()
    inter, total = dice_parts(pred, truth)
    assert inter.tolist() == [40.0, 0.0] and total.tolist() == [90.0, 4.0]
    # per frame: 80/90 and 0 -> mean 0.4444; pooled: 2*40 / 94 = 0.8511
    assert pooled_dice(inter, total) == pytest.approx(80 / 94)
    np.testing.assert_allclose(dice(pred, truth), [80 / 90, 0.0])
    out = dice_summary(inter, total, ["a", "b"], bootstrap=0)
    assert out["dice"] == pytest.approx(80 / 94)
    assert out["dice_frame_mean"] == pytest.approx((80 / 90) / 2)
    assert "dice_ci95" not in out


def test_empty_masks_score_one_and_empty_input_is_nan():
    z = np.zeros((3, 4, 4), bool)
    inter, total = dice_parts(z, z)
    assert pooled_dice(inter, total) == 1.0
    assert dice_summary(inter, total)["dice_frame_mean"] == 1.0
    out = dice_summary([], [], prefix="dice_unlabeled")
    assert np.isnan(out["dice_unlabeled"]) and np.isnan(out["dice_unlabeled_frame_mean"])


def test_interval_resamples_videos_not_frames():
    # video "a": 3 perfect frames; video "b": one frame with Dice 0
    inter = np.array([10.0, 10.0, 10.0, 0.0])
    total = np.array([20.0, 20.0, 20.0, 20.0])
    by_video = dice_summary(inter, total, ["a", "a", "a", "b"], bootstrap=2000)
    by_frame = dice_summary(inter, total, None, bootstrap=2000)
    assert by_video["dice"] == by_frame["dice"] == pytest.approx(0.75)
    # a resample of two videos is {a,a}, {a,b} or {b,b}: pooled 1, 0.75 or 0
    lo, hi = by_video["dice_ci95"]
    assert lo == 0.0 and hi == 1.0
    # resampling four frames reaches values (e.g. 0.5) that no resample of videos gives
    assert by_frame["dice_ci95"][0] > 0.0
    assert by_video["dice_frame_mean_ci95"][1] == 1.0


def test_groups_must_match_frames():
    with pytest.raises(ValueError):
        dice_summary([1.0, 2.0], [2.0, 4.0], ["a"])


def test_evaluate_seg_writes_pooled_and_frame_mean(sim_echonet, tmp_path):
    from echossl.data.echonet import ed_es_frames, read_tracings, trace_mask, validate
    from echossl.pipelines.semisupervised_ef import evaluate_seg

    traces = read_tracings(sim_echonet)
    names = sorted(validate(sim_echonet)[0])[:3]
    masks = tmp_path / "masks"
    masks.mkdir()
    expected_i, expected_t = [], []
    for k, name in enumerate(names):
        ed, es = ed_es_frames(traces[name])
        n = max(traces[name]) + 5
        pred = np.zeros((n, 112, 112), np.uint8)
        for f in (ed, es):
            truth = trace_mask(traces[name][f], 112, 112)
            guess = np.roll(truth, 3 * k, axis=1)  # worse with k
            pred[f] = guess * 255
            i, t = dice_parts(guess, truth)
            expected_i.append(i)
            expected_t.append(t)
        np.save(masks / f"{name}.npy", pred)
    out = evaluate_seg(masks, sim_echonet, names, tmp_path / "metrics.json", bootstrap=200)
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["dice"] == pytest.approx(pooled_dice(expected_i, expected_t))
    per = 2 * np.array(expected_i) / np.array(expected_t)
    assert written["dice_frame_mean"] == pytest.approx(per.mean())
    assert written["dice"] != pytest.approx(written["dice_frame_mean"], abs=1e-9)
    lo, hi = written["dice_ci95"]
    assert lo <= written["dice"] <= hi
    assert out["dice_ed"] == pytest.approx(pooled_dice(expected_i[0::2], expected_t[0::2]))
