"""Evaluation protocols: anomaly labels, kNN and probes on known features, and that no
protocol changes the backbone's weights (bit for bit)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from echossl.evaluation import protocols as P
from echossl.models.vit import VideoViT


def test_abnormal_is_ef_below_45_or_above_75():
    assert P.abnormal([44.9, 45.0, 60.0, 75.0, 75.1]).tolist() == [1, 0, 0, 0, 1]


def _features(ef, k=3, dim=8, seed=0, noise=0.05):
    """Clip features whose first axis says 'abnormal' and second encodes EF."""
    rng = np.random.default_rng(seed)
    ef = np.asarray(ef, dtype=np.float64)
    base = np.zeros((len(ef), dim))
    base[:, 0] = P.abnormal(ef) * 2 - 1
    base[:, 1] = (ef - 55) / 10
    base[:, 2] = 1.0
    return base[:, None, :] + noise * rng.standard_normal((len(ef), k, dim)), ef


def test_knn_separates_separable_features_and_reports_the_chosen_k():
    rng = np.random.default_rng(0)
    train, val, test = (_features(rng.uniform(20, 85, n), seed=i) for i, n in enumerate((60, 20, 20)))
    out = P.knn_anomaly(train, val, test, ks=(1, 5))
    assert out["balanced_accuracy"] == 1.0 and out["auc"] == 1.0 and out["f1"] == 1.0
    assert out["k"] in (1, 5)


def test_any_abnormal_clip_makes_the_video_abnormal():
    pred, score = P._video_decision(np.array([0.1, 0.6, 0.2, 0.1, 0.3, 0.4]), 3)
    assert pred.tolist() == [1, 0] and score.tolist() == [0.6, 0.4]


def test_linear_probes_recover_a_linear_ef_code():
    rng = np.random.default_rng(1)
    fit, select, test = (_features(rng.uniform(20, 85, n), seed=i, noise=0.01) for i, n in enumerate((200, 40, 40)))
    out = P.linear_probes(fit, test, select, epochs=30, bootstrap=0)
    assert out["probe_mae"] < 2.0
    assert out["probe_balanced_accuracy"] > 0.9


def test_segmentation_head_upsamples_token_maps_to_frames():
    head = P.SegmentationHead(16, classes=4, width=8, ups=3)
    assert head(torch.randn(2, 16, 4, 4)).shape == (2, 4, 32, 32)


def test_label_dice_uses_camus_structures():
    truth = np.zeros((1, 4, 4), np.int64)
    truth[0, 0, :2], truth[0, 1, :2], truth[0, 2, :2] = 1, 2, 3
    pred = truth.copy()
    pred[0, 1, :2] = 1  # myocardium called cavity: endo wrong, epi (1+2) right
    d = P.label_dice(pred, truth)
    assert d["lv_epi"][0] == pytest.approx(1.0) and d["la"][0] == pytest.approx(1.0)
    assert d["lv_endo"][0] == pytest.approx(2 * 2 / (4 + 2))


def _tiny_backbone():
    torch.manual_seed(0)
    vit = VideoViT(patch=8, tubelet=2, dim=16, depth=2, heads=2)
    return P.vit_backbone(vit, length=8, period=2, size=32, mean=[30.0] * 3, std=[40.0] * 3, name="tiny")


def _assert_same_weights(before: dict, backbone) -> None:
    after = backbone.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k


def test_no_echonet_protocol_changes_the_backbone(sim_echonet):
    backbone = _tiny_backbone()
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    feats = {s: P.clip_features(backbone, sim_echonet, s, clips=2) for s in ("TRAIN", "VAL", "TEST")}
    assert feats["TEST"][0].shape[1:] == (2, 32)
    feats = {s: (x, ef) for s, (x, ef, _) in feats.items()}
    train = feats["TRAIN"]
    if len(np.unique(P.abnormal(train[1]))) == 2:
        P.knn_anomaly(train, feats["VAL"], feats["TEST"], ks=(1, 3))
    P.linear_probes(train, feats["TEST"], feats["VAL"], epochs=2, bootstrap=0)
    ft = P.partial_finetune_ef(backbone, sim_echonet, blocks=1, epochs=1, batch_size=4, test_clips=1, bootstrap=0)
    assert np.isfinite(ft["finetune_mae"])
    _assert_same_weights(before, backbone)


@pytest.mark.slow
def test_frozen_segmentation_leaves_the_backbone_unchanged(tmp_path):
    from echossl.simulate.camus import simulate_camus

    simulate_camus(tmp_path, 3, seed=0, progress=False)  # patient0002 is TEST, 0001/0003 TRAIN
    backbone = _tiny_backbone()
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    seg = P.frozen_segmentation(backbone, tmp_path, epochs=1, batch_size=16, width=8)
    assert 0.0 <= seg["dice"] <= 1.0 and seg["seg_n"] == 2
    _assert_same_weights(before, backbone)


def test_flops_are_counted_for_the_backbone():
    from echossl.pipelines.discover import inference_gflops

    vit = VideoViT(patch=8, tubelet=2, dim=16, depth=1, heads=2)
    backbone = P.vit_backbone(vit, length=4, period=1, size=16, mean=0, std=1)
    gflops = inference_gflops(backbone)
    # patch embedding alone: 2 * tokens * dim * (2*8*8*3) multiply-adds
    assert gflops * 1e9 > 2 * 8 * 16 * (2 * 8 * 8 * 3)


def test_items_give_the_per_video_values_behind_the_metrics():
    rng = np.random.default_rng(2)
    train, val, test = (_features(rng.uniform(20, 85, n), seed=i) for i, n in enumerate((60, 20, 20)))
    knn = P.knn_anomaly(train, val, test, ks=(1, 5), items=True)
    items = knn["items"]
    assert len(items["pred"]) == len(items["label"]) == 20
    assert np.mean(np.asarray(items["pred"]) == np.asarray(items["label"])) == pytest.approx(knn["accuracy"])
    probe = P.linear_probes(train, test, val, epochs=5, bootstrap=0, items=True)
    err = np.abs(np.subtract(probe["items"]["ef_pred"], probe["items"]["ef"]))
    assert err.mean() == pytest.approx(probe["probe_mae"])


@pytest.mark.slow
def test_oracles_train_a_copy_and_leave_the_backbone_unchanged(sim_echonet, tmp_path):
    from echossl.simulate.camus import simulate_camus

    simulate_camus(tmp_path, 3, seed=0, progress=False)
    backbone = _tiny_backbone()
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    ef = P.supervised_ef_backbone(backbone, sim_echonet, epochs=2, batch_size=4, lr=1e-3, head_lr=1e-2)
    seg = P.supervised_seg_backbone(backbone, tmp_path, epochs=1, batch_size=2, lr=1e-3, width=8)
    _assert_same_weights(before, backbone)
    for trained in (ef, seg):
        moved = [k for k, v in trained.state_dict().items() if not torch.equal(v, before[k])]
        assert "encoder.patch_embed.proj.weight" in moved or any("patch" in k for k in moved), moved
    out = P.frozen_segmentation(seg, tmp_path, epochs=1, batch_size=16, width=8, items=True)
    assert len(out["items"]["dice"]) == len(out["items"]["patient"]) == out["seg_n"]
