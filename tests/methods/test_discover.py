"""DISCOVER losses and module: Sinkhorn marginals, SCD (eqs. 7-9), masked self-distillation
(eqs. 3-6), EMA (eq. 2), masking ratio, tube targets, and the three variants' training steps."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from echossl.methods.discover import (
    DiscoverModule,
    MaskedViewDistillation,
    ema_update,
    pixel_targets,
    semantic_cluster_distillation,
    sinkhorn_targets,
    tube_targets,
)
from echossl.models.vit import VideoViT, random_token_mask

TINY = dict(video={"patch": 8, "tubelet": 2, "dim": 32, "depth": 1, "heads": 2},
            image={"patch": 8, "dim": 24, "depth": 1, "heads": 2},
            decoder={"dim": 16, "depth": 1, "heads": 2},
            head={"hidden_dim": 32, "bottleneck_dim": 16, "output_dim": 20},
            views=3, image_frames=2, temps={"warmup_epochs": 2}, scd={"prototypes": 10})


def test_sinkhorn_rows_sum_to_one_and_prototypes_share_mass_equally():
    torch.manual_seed(0)
    scores = F.normalize(torch.randn(40, 64), dim=1) @ F.normalize(torch.randn(8, 64), dim=1).t()
    q = sinkhorn_targets(scores, iterations=10, epsilon=0.05)
    assert q.shape == (40, 8) and (q >= 0).all()
    # the last Sinkhorn step normalises each token's codes: exact
    torch.testing.assert_close(q.sum(1), torch.ones(40))
    # equipartition: each of K prototypes gets N / K of the mass once converged
    q = sinkhorn_targets(scores, iterations=500, epsilon=0.05)
    torch.testing.assert_close(q.sum(0), torch.full((8,), 40 / 8), atol=1e-3, rtol=1e-3)


def _scd_literal(z_v, z_i, protos, tau, eps, iters):
    """Slow transcription of eqs. 7-9 (SwaV-style Sinkhorn written out with loops)."""
    p = protos / protos.norm(dim=1, keepdim=True)

    def codes(cos):
        q = torch.exp(cos / eps).t().clone()  # (K, N)
        q /= q.sum()
        k, n = q.shape
        for _ in range(iters):
            for r in range(k):
                q[r] /= q[r].sum()
            for c in range(n):
                q[:, c] /= q[:, c].sum()
            q /= n
        return (q * n).t()

    total = 0.0
    cos_v = torch.stack([z / z.norm() @ p.t() for z in z_v])
    cos_i = torch.stack([z / z.norm() @ p.t() for z in z_i])
    q_v, q_i = codes(cos_v), codes(cos_i)
    for n in range(len(z_v)):
        total -= (q_i[n] * torch.log_softmax(cos_v[n] / tau, 0)).sum() / len(z_v)
        total -= (q_v[n] * torch.log_softmax(cos_i[n] / tau, 0)).sum() / len(z_v)
    return total


def test_scd_matches_a_literal_transcription_and_routes_gradients():
    torch.manual_seed(1)
    z_v = torch.randn(12, 6, requires_grad=True)
    z_i = torch.randn(12, 6, requires_grad=True)
    protos = torch.randn(5, 6, requires_grad=True)
    loss = semantic_cluster_distillation(z_v, z_i, protos, tau=0.1, epsilon=0.05, iterations=3)
    expected = _scd_literal(z_v.detach(), z_i.detach(), protos.detach(), 0.1, 0.05, 3)
    torch.testing.assert_close(loss.detach(), expected, atol=1e-4, rtol=1e-4)
    loss.backward()
    assert z_v.grad.abs().sum() > 0 and protos.grad.abs().sum() > 0
    assert z_i.grad is None  # the image features are targets only (stop-gradient)


def test_masked_view_distillation_equals_hand_computed_cross_entropy():
    torch.manual_seed(2)
    loss_fn = MaskedViewDistillation(7, teacher_temp_start=0.04, teacher_temp=0.07, warmup_epochs=3,
                                     student_temp=0.1)
    teacher, students = torch.randn(4, 7), torch.randn(3, 4, 7)
    loss = loss_fn(teacher, students, epoch=1, update_center=False)
    tau_t = 0.04 + (0.07 - 0.04) / 2  # linear warm-up, epoch 1 of 3
    p_t = torch.softmax(teacher / tau_t, dim=-1)  # centre is still zero
    expected = -(p_t[None] * torch.log_softmax(students / 0.1, dim=-1)).sum(-1).mean()  # mean over views and clips
    torch.testing.assert_close(loss, expected)
    assert torch.count_nonzero(loss_fn.dino.center) == 0
    loss_fn(teacher, students, epoch=1)
    assert torch.count_nonzero(loss_fn.dino.center) > 0  # the teacher centre moves in training


def test_ema_update_is_eq_2():
    student, teacher = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    before = [p.detach().clone() for p in teacher.parameters()]
    ema_update(student, teacher, 0.9)
    for t_old, t_new, s in zip(before, teacher.parameters(), student.parameters()):
        torch.testing.assert_close(t_new, 0.9 * t_old + 0.1 * s.detach())


def test_masking_ratio_is_honoured_and_masks_differ_per_view():
    keep, masked = random_token_mask(5, 200, 0.9)
    assert keep.shape == (5, 20) and masked.shape == (5, 180)
    for k, m in zip(keep, masked):
        assert sorted(torch.cat([k, m]).tolist()) == list(range(200))
    assert not torch.equal(keep[0], keep[1])
    vit = VideoViT(patch=8, tubelet=2, dim=16, depth=1, heads=2)
    video = torch.randn(2, 3, 8, 32, 32)  # 4 x 4 x 4 = 64 tokens
    keep, _ = random_token_mask(2, 64, 0.9)
    assert vit(video, keep).shape == (2, 1 + 6, 16)  # the student sees 10% of the tokens (+ CLS)


def test_tube_targets_average_a_tubes_frames_at_the_same_patch_in_token_order():
    b, t, p = 1, 4, 3
    frame = torch.arange(t, dtype=torch.float32).view(1, t, 1, 1).expand(b, t, p, 1)
    patch = torch.arange(p, dtype=torch.float32).view(1, 1, p, 1).expand(b, t, p, 1)
    targets = tube_targets(torch.cat([frame, patch], -1), tubelet=2)  # (1, 2*3, 2)
    # token t'*P + p: frames 2t', 2t'+1 -> mean 2t' + 0.5; patch p unchanged
    expected = torch.tensor([[2 * tt + 0.5, pp] for tt in range(2) for pp in range(p)])
    torch.testing.assert_close(targets[0], expected)


def test_pixel_targets_are_per_tube_standardised():
    video = torch.randn(2, 3, 4, 16, 16)
    target = pixel_targets(video, tubelet=2, patch=8)
    assert target.shape == (2, 2 * 2 * 2, 2 * 8 * 8 * 3)
    torch.testing.assert_close(target.mean(-1), torch.zeros(2, 8), atol=1e-5, rtol=0)
    # the first tube holds frames 0-1, rows 0-7, columns 0-7 of every channel
    first = video[0, :, :2, :8, :8].permute(1, 2, 3, 0).reshape(-1)
    torch.testing.assert_close(target[0, 0], (first - first.mean()) / first.std(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("variant", ["videomae", "video-dino", "discover"])
def test_each_variant_trains_one_step(variant):
    torch.manual_seed(0)
    module = DiscoverModule(variant=variant, **TINY)
    video = torch.randn(2, 3, 8, 32, 32)
    out = module.losses(video)
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    assert module.net.embed(video).shape == (2, 64)
    if variant != "videomae":
        # the teacher learns only through EMA, never by gradient
        assert all(p.grad is None for p in module.net.parameters())


def test_scd_gradient_reaches_video_student_and_prototypes_not_the_image_encoder():
    torch.manual_seed(0)
    module = DiscoverModule(variant="discover", **TINY)
    module.losses(torch.randn(2, 3, 8, 32, 32))["loss_scd"].backward()
    assert module.prototypes.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.student.parameters())
    assert all(p.grad is None for p in module.image_student.parameters())
    assert all(p.grad is None for p in module.image_teacher.parameters())


def test_validation_losses_are_deterministic_and_leave_the_centre_alone():
    torch.manual_seed(0)
    module = DiscoverModule(variant="discover", **TINY).eval()
    video = torch.randn(2, 3, 8, 32, 32)
    centre = module.video_loss.dino.center.clone()
    with torch.no_grad():
        a = module.losses(video, generator=torch.Generator().manual_seed(5), update_center=False)["loss"]
        b = module.losses(video, generator=torch.Generator().manual_seed(5), update_center=False)["loss"]
    torch.testing.assert_close(a, b)
    assert torch.equal(centre, module.video_loss.dino.center)


@pytest.mark.parametrize("image_ratio,visible", [(None, 2), (0.5, 8)])
def test_image_mask_ratio_sets_the_image_students_visible_tokens(image_ratio, visible, monkeypatch):
    """16 patches per 32x32 frame: 0.9 (the video ratio) leaves 2 visible, 0.5 leaves 8."""
    import echossl.methods.discover as discover

    seen = []
    original = discover.random_token_mask

    def spy(n, tokens, ratio, *args, **kwargs):
        seen.append((tokens, ratio))
        return original(n, tokens, ratio, *args, **kwargs)

    monkeypatch.setattr(discover, "random_token_mask", spy)
    torch.manual_seed(0)
    module = DiscoverModule(variant="discover", mask_ratio=0.9, image_mask_ratio=image_ratio, **TINY)
    module.losses(torch.randn(2, 3, 8, 32, 32))
    tokens, ratio = seen[-1]  # the image student's mask is drawn last
    assert tokens == 16 and tokens - int(round(tokens * ratio)) == visible


# --------------------------------------------------------------------------- #
# issue 15: tube masking, position shortcut, optimiser stabilisers, collapse monitors, FLOPs
# --------------------------------------------------------------------------- #


def test_tube_mask_hides_the_same_patches_in_every_time_step():
    from echossl.models.vit import tube_token_mask

    grid = (4, 3, 5)  # T' x h x w = 60 tokens, 15 spatial positions
    keep, masked = tube_token_mask(6, grid, 0.8)
    assert keep.shape == (6, 4 * 3) and masked.shape == (6, 4 * 12)
    for k, m in zip(keep, masked):
        assert sorted(torch.cat([k, m]).tolist()) == list(range(60))
        spatial = (k % 15).reshape(4, -1)
        assert (spatial == spatial[0]).all(), "one spatial mask shared by all time steps"
        assert torch.equal(k, k.sort().values)
    assert not torch.equal(keep[0], keep[1])
    # i.i.d. masking (the old behaviour) would almost surely differ between time steps
    iid, _ = random_token_mask(1, 60, 0.8, generator=torch.Generator().manual_seed(0))
    assert not ((iid[0] % 15).reshape(-1)[:3] == (iid[0] % 15).reshape(-1)[3:6]).all()


def test_the_students_use_tube_masks(monkeypatch):
    import echossl.methods.discover as discover

    seen = []
    original = discover.tube_token_mask

    def spy(n, grid, ratio, *args, **kwargs):
        seen.append(grid)
        return original(n, grid, ratio, *args, **kwargs)

    monkeypatch.setattr(discover, "tube_token_mask", spy)
    for variant in ("discover", "videomae"):
        DiscoverModule(variant=variant, **TINY).losses(torch.randn(2, 3, 8, 32, 32))
    assert seen == [(4, 4, 4), (4, 4, 4)]


def test_position_mean_removal_takes_the_position_shortcut_out_of_the_scd_targets():
    from echossl.methods.discover import position_variance_share, remove_position_mean
    from echossl.models.vit import ImageViT

    torch.manual_seed(0)
    vit = ImageViT(patch=8, dim=48, depth=2, heads=2).eval()
    with torch.no_grad():
        feats = vit(torch.randn(12, 3, 32, 32))[:, 1:].reshape(3, 4, 16, 48)
    before = position_variance_share(feats)
    after = position_variance_share(remove_position_mean(feats))
    # noise frames (no shared anatomy): position still sets a clear share at initialisation
    assert before > 0.05, f"position share at initialisation {before:.2f}"
    assert after < 1e-6
    # a pure position signal is all position; pure noise almost none
    pos = torch.randn(1, 1, 16, 8).expand(3, 4, 16, 8)
    assert position_variance_share(pos + 1e-4 * torch.randn(3, 4, 16, 8)) > 0.99
    assert position_variance_share(torch.randn(50, 4, 16, 8)) < 0.1


def test_scaled_lr_and_weight_decay_groups():
    module = DiscoverModule(variant="discover", base_lr=1.5e-4, batch_size=64, **TINY)
    assert module.peak_lr() == pytest.approx(1.5e-4 * 64 / 256)
    assert DiscoverModule(variant="video-dino", lr=3e-4, **TINY).peak_lr() == pytest.approx(3e-4)
    decay, no_decay = module.parameter_groups()
    decayed = {id(p) for p in decay["params"]}
    assert decay["weight_decay"] > 0 and no_decay["weight_decay"] == 0
    assert id(module.prototypes) not in decayed
    for head in (module.student_head, module.image_student_head):
        assert not any(id(p) in decayed for p in head.last_layer.parameters())
    for name, p in module.named_parameters():
        if p.requires_grad and (name.endswith(".bias") or "norm" in name):
            assert id(p) not in decayed, name
    assert id(module.student.blocks[0].attn.qkv.weight) in decayed
    n_trainable = sum(1 for p in module.parameters() if p.requires_grad)
    assert len(decay["params"]) + len(no_decay["params"]) == n_trainable


def test_last_layer_and_prototypes_frozen_in_the_first_epoch_and_clipping():
    torch.manual_seed(0)
    module = DiscoverModule(variant="discover", freeze_last_layer=1, grad_clip=0.5, **TINY)
    module.losses(torch.randn(2, 3, 8, 32, 32))["loss"].backward()
    assert module.prototypes.grad is not None
    module.on_after_backward()  # current_epoch is 0 outside a Trainer
    assert module.prototypes.grad is None
    assert all(p.grad is None for p in module.student_head.last_layer.parameters())
    assert any(p.grad is not None for p in module.student_head.layers.parameters())
    assert module.hparams.grad_clip == 0.5


def test_collapse_statistics_by_hand():
    from echossl.methods.discover import collapse_statistics, collapse_warnings

    k = 8
    uniform = collapse_statistics(torch.zeros(4, k), torch.zeros(k), 0.1)
    assert uniform["target_entropy_ratio"] == pytest.approx(1.0)
    assert uniform["batch_entropy_ratio"] == pytest.approx(1.0)
    one_hot = torch.full((4, k), -100.0)
    one_hot[:, 2] = 100.0
    dominated = collapse_statistics(one_hot, torch.zeros(k), 0.1)
    assert dominated["target_entropy_ratio"] < 1e-3 and dominated["batch_entropy_ratio"] < 1e-3
    spread = torch.full((k, k), -100.0)
    spread[torch.arange(k), torch.arange(k)] = 100.0   # each sample sure, a different dimension each
    healthy = collapse_statistics(spread, torch.zeros(k), 0.1)
    assert healthy["target_entropy_ratio"] < 1e-3 and healthy["batch_entropy_ratio"] == pytest.approx(1.0)
    assert collapse_warnings({"video_target_entropy_ratio": 0.99, "image_batch_entropy_ratio": 0.1,
                              "video_batch_entropy_ratio": 0.5}) == [
        "video_target_entropy_ratio = 0.990 (healthy <= 0.95)", "image_batch_entropy_ratio = 0.100 (healthy >= 0.3)"]


def test_vit_flops_include_attention():
    from echossl.engine.cost import count_flops

    n_tok, d, heads = 1 + 2 * 4 * 4, 32, 2
    vit = VideoViT(patch=8, tubelet=2, dim=d, depth=1, heads=heads, mlp_ratio=4.0).eval()
    video = torch.randn(1, 3, 4, 32, 32)
    n = n_tok - 1
    by_hand = (2 * n * d * (3 * 8 * 8 * 2)          # Conv3d patch embedding
               + 2 * n_tok * d * 3 * d               # qkv
               + 2 * 2 * n_tok * n_tok * d           # Q K^T and A V over all heads
               + 2 * n_tok * d * d                   # output projection
               + 2 * 2 * n_tok * d * 4 * d)          # MLP
    assert count_flops(vit, video) == by_hand
    # without the math kernel the fused CPU attention is counted as 0
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        vit(video)
    assert counter.get_total_flops() <= by_hand
