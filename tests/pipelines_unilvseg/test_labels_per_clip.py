"""``unilvseg.labels_per_clip``: one labeled (anchor) frame per training clip, as the paper,
and the paper's centred-clip TEST protocol."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from echossl.config import load_config
from echossl.data.echonet import trace_mask, validate_full
from echossl.errors import EchosslError
from echossl.evaluation.metrics import pooled_dice
from echossl.methods.unilvseg import VideoSegModule, sparse_dice_loss
from echossl.pipelines.unilvseg import UniLVSegClips, as_whole_video, centred_clip_scores

NORM = {"mean": [0.0] * 3, "std": [1.0] * 3, "size": 48}


def _clips(root, mode, train=True):
    names = sorted(validate_full(root)["usable"])[:4]
    # a long clip at period 1: both traced frames often fall inside it
    return UniLVSegClips(root, names, frames=48, period=1, norm=NORM, anchored=True, train=train,
                         labels_per_clip=mode)


def test_one_labels_only_the_anchor_frame(sim_echonet):
    torch.manual_seed(0)
    one, both = _clips(sim_echonet, "one"), _clips(sim_echonet, "all")
    saw_two = False
    for i in range(len(one)):
        torch.manual_seed(i)
        a = one[i]
        torch.manual_seed(i)
        b = both[i]  # the same clip (same draws)
        assert torch.equal(a["video"], b["video"])
        assert int(a["labeled"].sum()) == 1
        pos = int(torch.nonzero(a["labeled"])[0])
        assert b["labeled"][pos]
        assert torch.equal(a["mask"][0, pos], b["mask"][0, pos]) and a["mask"][0, pos].sum() > 0
        assert a["mask"][0, ~a["labeled"]].sum() == 0  # nothing to learn from elsewhere
        saw_two |= int(b["labeled"].sum()) == 2
    assert saw_two  # so "all" really is a different setting here


def test_loss_reaches_only_the_labeled_frame(sim_echonet):
    item = _clips(sim_echonet, "one")[0]
    logits = torch.zeros(1, 1, 48, 48, 48, requires_grad=True)
    loss = sparse_dice_loss(logits, item["mask"][None], item["labeled"][None])
    loss.backward()
    per_frame = logits.grad.abs().sum(dim=(0, 1, 3, 4))
    assert per_frame[item["labeled"]].sum() > 0
    assert per_frame[~item["labeled"]].sum() == 0


def test_bad_value_is_refused(sim_echonet):
    with pytest.raises(EchosslError, match="labels_per_clip"):
        _clips(sim_echonet, "some")


def test_presets_use_one():
    for preset in ("cpu", "paper"):
        assert load_config(preset)["unilvseg"]["labels_per_clip"] == "one"


class _CentreOnly(torch.nn.Module):
    """Predicts LV everywhere on the clip's centre frame and nowhere else."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, video):  # (B, 3, F, S, S) -> (B, 1, F, S, S)
        out = torch.full_like(video[:, :1], -10.0)
        out[:, :, video.shape[2] // 2] = 10.0
        return out + self.dummy


def test_centred_clip_protocol_scores_the_traced_frame_at_the_centre(sim_echonet):
    names = sorted(validate_full(sim_echonet)["usable"])[:3]
    module = VideoSegModule(arch="unet3d", net={"channels": [4, 8], "strides": [2], "features": 4},
                            norm=NORM, frames=5, period=2)
    module.net = _CentreOnly()
    metrics, per_video = centred_clip_scores(module, sim_echonet, names, batch_size=4, bootstrap=100)
    # all-foreground prediction of each traced frame: Dice = 2|T| / (HW + |T|), pooled by hand
    res = validate_full(sim_echonet)
    inter, total = [], []
    for name in names:
        for frame in res["ed_es"][name]:
            t = trace_mask(res["traces"][name][frame], 112, 112).sum()
            inter.append(t)
            total.append(112 * 112 + t)
    assert metrics["dice"] == pytest.approx(pooled_dice(inter, total))
    assert metrics["dice_frame_mean"] == pytest.approx(np.mean(2 * np.array(inter) / np.array(total)))
    assert metrics["dice"] > 0.1  # a protocol that looked at another frame would score 0
    assert {"dice_ci95", "dice_ed", "dice_es", "dice_frame_mean_ci95"} <= set(metrics)
    assert set(per_video) == set(names) and set(per_video[names[0]]) == {"Dice_ED_Clip", "Dice_ES_Clip"}


def test_whole_video_keys_are_renamed_not_lost():
    m = as_whole_video({"dice": 0.9, "dice_ci95": [0.8, 1.0], "dice_frame_mean": 0.85, "dice_unlabeled": 0.7,
                        "hf_power": 0.1})
    assert m == {"dice_whole_video": 0.9, "dice_whole_video_ci95": [0.8, 1.0],
                 "dice_whole_video_frame_mean": 0.85, "dice_unlabeled": 0.7, "hf_power": 0.1}
