"""UniLVSeg: sparse Dice loss (eqs. 2-6), temporal masking (eq. 1), super-image tiling, padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from echossl.methods.unilvseg import (
    TemporalMaskingModule,
    VideoSegModule,
    mask_frames,
    masked_count,
    reconstruction_loss,
    sparse_dice_loss,
)
from echossl.models.video_seg import (
    SuperImageUNet,
    UNet3DVideo,
    build_video_net,
    crop_to,
    grid_side,
    pad_to_multiple,
    tile,
    untile,
)

SMOOTH = 1e-5  # MONAI DiceLoss's default smooth_nr and smooth_dr


def literal_sparse_dice(logits, target, labeled):
    """Eqs. 3 and 6 written out with loops: sum over labeled frames, mean over clips."""
    total = 0.0
    for n in range(logits.shape[0]):
        for i in range(logits.shape[2]):
            if labeled[n, i]:
                p = torch.sigmoid(logits[n, 0, i])
                y = target[n, 0, i]
                total = total + 1 - (2 * (p * y).sum() + SMOOTH) / (p.sum() + y.sum() + SMOOTH)
    return total / logits.shape[0]


def _batch(seed=0, b=3, t=6, h=8, w=9):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, 1, t, h, w, generator=g)
    target = (torch.rand(b, 1, t, h, w, generator=g) > 0.5).float()
    labeled = torch.zeros(b, t, dtype=torch.bool)
    labeled[0, 1] = labeled[1, 4] = labeled[1, 5] = True  # clip 2 has no label at all
    return logits, target, labeled


def test_sparse_dice_matches_literal_transcription():
    logits, target, labeled = _batch()
    got = sparse_dice_loss(logits, target, labeled)
    assert torch.allclose(got, literal_sparse_dice(logits, target, labeled), atol=1e-6)


def test_sparse_dice_hand_computed_value():
    # one clip, two frames, the second labeled: p = sigmoid(0) = 0.5 on 4 pixels, y = 1 on 2 of them
    logits = torch.zeros(1, 1, 2, 2, 2)
    target = torch.tensor([[1.0, 1.0], [0.0, 0.0]]).expand(1, 1, 2, 2, 2).clone()
    labeled = torch.tensor([[False, True]])
    expected = 1 - (2 * 1.0 + SMOOTH) / (2.0 + 2.0 + SMOOTH)  # inter = 0.5*2, sum p = 2, sum y = 2
    assert sparse_dice_loss(logits, target, labeled).item() == pytest.approx(expected, abs=1e-6)


def test_unlabeled_frames_get_exactly_zero_gradient():
    logits, target, labeled = _batch()
    logits.requires_grad_(True)
    sparse_dice_loss(logits, target, labeled).backward()
    grad = logits.grad.transpose(1, 2)  # (B, T, 1, H, W)
    assert torch.count_nonzero(grad[~labeled]) == 0
    assert all(torch.count_nonzero(g) > 0 for g in grad[labeled])


def test_unlabeled_targets_do_not_change_the_loss():
    logits, target, labeled = _batch()
    other = target.clone()
    other.transpose(1, 2)[~labeled] = 1.0 - other.transpose(1, 2)[~labeled]
    assert sparse_dice_loss(logits, target, labeled) == sparse_dice_loss(logits, other, labeled)


def test_shared_weights_learn_from_labeled_frames_only():
    """Eq. 5: a 3D conv gets a gradient through the labeled frame alone."""
    net = torch.nn.Conv3d(3, 1, 3, padding=1)
    video = torch.randn(2, 3, 5, 8, 8)
    labeled = torch.zeros(2, 5, dtype=torch.bool)
    labeled[:, 2] = True
    sparse_dice_loss(net(video), (torch.rand(2, 1, 5, 8, 8) > 0.5).float(), labeled).backward()
    assert net.weight.grad.abs().sum() > 0


def test_no_labeled_frame_gives_zero_loss_and_zero_gradient():
    logits, target, _ = _batch()
    logits.requires_grad_(True)
    loss = sparse_dice_loss(logits, target, torch.zeros(3, 6, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and torch.count_nonzero(logits.grad) == 0


@pytest.mark.parametrize("t,ratio,expected", [(32, 0.6, 19), (16, 0.6, 10), (10, 0.0, 0), (2, 0.9, 1), (1, 0.5, 0)])
def test_masked_count(t, ratio, expected):
    assert masked_count(t, ratio) == expected


def test_masked_count_rejects_ratio_one():
    with pytest.raises(ValueError):
        masked_count(8, 1.0)


def test_masking_hides_exactly_the_ratio_of_whole_frames():
    video = torch.randn(5, 3, 20, 4, 4) + 10.0  # no pixel equals the fill by chance
    fill = torch.tensor([-1.0, -2.0, -3.0])
    masked, hidden = mask_frames(video, 0.6, fill, torch.Generator().manual_seed(1))
    assert hidden.shape == (5, 20)
    assert (hidden.sum(dim=1) == 12).all()
    per_frame = masked.transpose(1, 2)  # (B, T, C, H, W)
    assert torch.equal(per_frame[hidden], fill.view(1, 3, 1, 1).expand(60, 3, 4, 4))
    assert torch.equal(per_frame[~hidden], video.transpose(1, 2)[~hidden])
    # different clips get different masks
    assert not all(torch.equal(hidden[0], hidden[i]) for i in range(1, 5))


def test_mask_is_uniform_over_frames():
    hidden = mask_frames(torch.zeros(4000, 1, 10, 1, 1), 0.3, 1.0, torch.Generator().manual_seed(0))[1]
    share = hidden.float().mean(dim=0)
    assert torch.allclose(share, torch.full((10,), 0.3), atol=0.03)


def test_reconstruction_loss_is_the_batch_mean_of_per_clip_mse():
    a, b = torch.randn(3, 3, 4, 5, 5), torch.randn(3, 3, 4, 5, 5)
    literal = sum(((a[n] - b[n]) ** 2).mean() for n in range(3)) / 3
    assert torch.allclose(reconstruction_loss(a, b), literal)


def test_hidden_frame_is_a_zero_frame_before_normalisation():
    norm = {"mean": [30.0, 40.0, 50.0], "std": [2.0, 4.0, 5.0], "size": None}
    module = TemporalMaskingModule(net={"channels": [4, 8], "strides": [2], "features": 4}, norm=norm, frames=4)
    assert torch.allclose(module.fill, torch.tensor([-15.0, -10.0, -10.0]))


@pytest.mark.parametrize("frames", [1, 4, 5, 9, 16, 17])
def test_tile_and_untile_are_exact_inverses(frames):
    video = torch.randn(2, 3, frames, 6, 7)
    image = tile(video)
    g = grid_side(frames)
    assert image.shape == (2, 3, g * 6, g * 7)
    assert torch.equal(untile(image, frames), video)
    # frame i sits at grid row i // g, column i % g; unused cells are zeros
    i = frames - 1
    r, c = divmod(i, g)
    assert torch.equal(image[:, :, r * 6:(r + 1) * 6, c * 7:(c + 1) * 7], video[:, :, i])
    if g * g > frames:
        assert image[:, :, -6:, -7:].abs().sum() == 0


def test_untile_of_tile_and_tile_of_untile():
    image = torch.randn(1, 2, 12, 8)  # a 4x4 grid of 3x2 frames
    assert torch.equal(tile(untile(image, 16)), image)


@pytest.mark.parametrize("shape,multiples", [((2, 3, 7, 33, 35), (8, 8, 8)), ((1, 1, 5, 5), (4, 16)),
                                             ((3, 16, 32), (16, 32))])
def test_pad_and_crop_round_trip(shape, multiples):
    x = torch.randn(*shape)
    padded, sizes = pad_to_multiple(x, multiples)
    assert all(s % m == 0 for s, m in zip(padded.shape[-len(multiples):], multiples))
    assert torch.equal(crop_to(padded, sizes), x)
    assert padded.sum() == pytest.approx(x.sum().item(), rel=1e-5)  # zero padding


@pytest.mark.parametrize("net", [
    lambda: UNet3DVideo(out_channels=1, channels=(4, 8, 16), strides=(2, 2), features=4),
    lambda: SuperImageUNet(out_channels=3, encoder="small", channels=(4, 8, 16), strides=(2, 2), features=4),
])
def test_nets_take_odd_frame_counts_and_sizes(net):
    model = net()
    for shape in [(1, 3, 7, 33, 35), (2, 3, 1, 17, 20)]:
        out = model(torch.randn(*shape))
        assert out.shape[2:] == shape[2:]


def test_torchvision_superimage_encoder_handles_odd_sizes():
    model = build_video_net("superimage", 1, encoder="resnet18", decoder=(32, 16, 16, 8), features=4)
    assert model(torch.randn(1, 3, 3, 21, 19)).shape == (1, 1, 3, 21, 19)


def test_pretrained_body_transfers_to_the_segmentation_net():
    from echossl.engine import load_module_weights

    net = {"channels": [4, 8], "strides": [2], "features": 4}
    pre = TemporalMaskingModule(net=net, frames=4)
    seg = VideoSegModule(net=net, frames=4)
    assert pre.net.head[1].out_channels == 3 and seg.net.head[1].out_channels == 1
    pre_state = {f"net.{k}": v for k, v in pre.net.state_dict().items()}
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pre.ckpt"
        torch.save({"state_dict": pre_state}, path)
        load_module_weights(seg.net, path, prefix="net.")
    for key, value in seg.net.body.state_dict().items():
        assert torch.equal(value, pre.net.body.state_dict()[key])


def test_video_seg_module_step_is_finite():
    module = VideoSegModule(net={"channels": [4, 8], "strides": [2], "features": 4}, frames=5)
    labeled = torch.zeros(2, 5, dtype=torch.bool)
    labeled[:, 2] = True
    batch = {"video": torch.randn(2, 3, 5, 16, 16), "mask": (torch.rand(2, 1, 5, 16, 16) > 0.5).float(),
             "labeled": labeled}
    loss = module.training_step(batch, 0)
    assert torch.isfinite(loss)


def test_sliding_windows_cover_every_frame():
    from echossl.pipelines.unilvseg import window_indices

    for n, f, t in [(100, 32, 1), (100, 16, 5), (7, 16, 5), (3, 4, 1), (50, 8, 3)]:
        idx = window_indices(n, f, t)
        assert idx.shape[1] == f
        assert set(range(n)) <= set(idx.ravel().tolist())
        assert idx.max() <= n  # n = padding
        steps = np.diff(idx, axis=1)
        assert ((steps == t) | (idx[:, 1:] == n)).all()  # each clip samples at period T


def test_whole_video_inference_averages_back_to_each_frame():
    """With a per-frame 'net', averaging overlapping clips returns each frame's own value."""
    from echossl.pipelines.unilvseg import segment_video

    class PerFrame(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))

        def forward(self, x):  # (B, 3, F, H, W) -> (B, 1, F, H, W)
            return x[:, :1] * self.w

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (23, 8, 8, 3), dtype=np.uint8)
    norm = {"mean": [128.0] * 3, "std": [64.0] * 3, "size": None}
    probs = segment_video(PerFrame(), frames, norm, clip_frames=4, period=3, stride=1, batch_size=3)
    expected = 1 / (1 + np.exp(-(frames[..., 0].astype(np.float64) - 128) / 64))
    assert probs.shape == (23, 8, 8)
    assert np.allclose(probs, expected, atol=1e-5)
