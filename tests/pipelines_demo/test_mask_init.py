"""The teacher's mask-channel initialisation (ef.mask_init)."""

import pytest
import torch

from echossl.errors import EchosslError
from echossl.models.video import build_video_regressor
from echossl.pipelines.semisupervised_ef import init_mask_channel


def _net(channels=4):
    torch.manual_seed(0)
    return build_video_regressor("small_r2plus1d", channels, 55.0, widths=(8, 8, 8, 8))


def test_mean_negated_random():
    net = _net()
    w = net.stem[0].weight
    rgb = w[:, :3].clone()
    init_mask_channel(net, "mean")
    assert torch.allclose(w[:, 3:], rgb.mean(1, keepdim=True))
    init_mask_channel(net, "negated")
    assert torch.allclose(w[:, 3:], -rgb.sum(1, keepdim=True))
    init_mask_channel(net, "random", seed=1)
    first = w[:, 3:].clone()
    assert torch.equal(w[:, :3], rgb)  # the RGB filters are never touched
    assert not torch.allclose(first, -rgb.sum(1, keepdim=True))
    init_mask_channel(net, "random", seed=1)
    assert torch.equal(w[:, 3:], first)  # seeded
    assert float(first.detach().abs().max()) <= 3.0**0.5 / w[0].numel() ** 0.5 + 1e-6


def test_three_channels_untouched_and_bad_name():
    net = _net(3)
    before = net.stem[0].weight.clone()
    init_mask_channel(net, "negated")
    assert torch.equal(net.stem[0].weight, before)
    with pytest.raises(EchosslError):
        init_mask_channel(_net(), "zeros")
