"""UniLVSeg clips: placed around a traced frame, labels only where a tracing exists."""

from __future__ import annotations

import numpy as np
import torch

from echossl.data.echonet import trace_mask, validate_full
from echossl.pipelines.unilvseg import UniLVSegClips

NORM = {"mean": [0.0] * 3, "std": [1.0] * 3, "size": None}


def _names(root):
    return sorted(validate_full(root)["usable"])[:3]


def test_eval_clip_is_centred_on_the_traced_frame(sim_echonet):
    ds = UniLVSegClips(sim_echonet, _names(sim_echonet), frames=8, period=2, norm=NORM, anchored=True, train=False)
    assert len(ds) == 6  # ED and ES of each video
    for i in range(len(ds)):
        item = ds[i]
        assert item["video"].shape == (3, 8, 112, 112) and item["mask"].shape == (1, 8, 112, 112)
        assert item["labeled"][4]  # position F // 2
        name, frame = item["filename"], item["frame"]
        expected = trace_mask(ds.traces[name][frame], 112, 112)
        assert torch.equal(item["mask"][0, 4].bool(), torch.from_numpy(expected))
        # frames without a tracing carry no label and an empty mask
        assert item["mask"][0, ~item["labeled"]].sum() == 0


def test_training_clip_contains_the_traced_frame_at_a_random_place(sim_echonet):
    torch.manual_seed(0)
    ds = UniLVSegClips(sim_echonet, _names(sim_echonet), frames=6, period=3, norm={**NORM, "size": 48},
                       anchored=True, train=True,
                       augment={"clahe": 1.0, "brightness": 0.2, "contrast": 0.2, "rotation": 10, "pad": 4})
    positions = set()
    for _ in range(4):
        for i in range(len(ds)):
            item = ds[i]
            assert item["labeled"].any()
            positions.add(int(np.flatnonzero(item["labeled"].numpy())[0]))
            assert torch.isfinite(item["video"]).all()
    assert len(positions) > 2


def test_pretraining_clips_have_no_labels(sim_echonet):
    ds = UniLVSegClips(sim_echonet, _names(sim_echonet), frames=5, period=1, norm={**NORM, "size": 40},
                       anchored=False, train=True, augment={"pad": 2})
    item = ds[0]
    assert len(ds) == 3 and item["video"].shape == (3, 5, 40, 40) and "mask" not in item
