"""mrjet-jigsaw-color-ssl: permutation pool, tiles, losses (eqs. 4, 5, 8, 10), LSTM causality, CLI smoke."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from echossl.methods import mrjet as mj


# ----------------------------------------------------------------- permutations

def test_pool_beats_random_pool_in_minimum_hamming_distance():
    pool = mj.hamming_permutation_pool(100, seed=0)
    assert pool.shape == (100, 9)
    assert all(sorted(p) == list(range(9)) for p in pool.tolist())
    assert len({tuple(p) for p in pool.tolist()}) == 100
    rng = np.random.default_rng(0)
    perms = mj.all_permutations()
    random_min = max(mj.min_pairwise_hamming(perms[rng.choice(len(perms), 100, replace=False)]) for _ in range(5))
    assert mj.min_pairwise_hamming(pool) > random_min


def test_pool_is_deterministic_by_seed_and_cached(tmp_path):
    a = mj.load_permutation_pool(10, seed=3, cache_dir=tmp_path)
    assert list(tmp_path.glob("*.npy"))
    b = mj.load_permutation_pool(10, seed=3, cache_dir=tmp_path)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, mj.hamming_permutation_pool(10, seed=3))
    assert not np.array_equal(a, mj.hamming_permutation_pool(10, seed=4))


def test_greedy_step_matches_literal_definition():
    # a slow transcription of "add the permutation whose minimum distance to the chosen set is largest"
    pool = mj.hamming_permutation_pool(4, seed=1)
    perms = mj.all_permutations()
    chosen = [pool[0]]
    for _ in range(3):
        dmin = np.min([(perms != c).sum(1) for c in chosen], axis=0)
        for c in chosen:
            dmin[(perms == c).all(1)] = -1
        chosen.append(perms[int(np.argmax(dmin))])
    np.testing.assert_array_equal(np.array(chosen), pool)


# ----------------------------------------------------------------------- tiles

def test_tiles_leave_the_configured_gap():
    s, gap = 72, 6
    cols = torch.arange(s, dtype=torch.float32).view(1, 1, s).expand(3, s, s)
    rows = cols.transpose(-1, -2)
    t = mj.tile_size(s, 3, gap)
    tc, tr = mj.extract_tiles(cols, 3, gap), mj.extract_tiles(rows, 3, gap)
    assert tc.shape == (9, 3, t, t)
    for j in range(9):
        r, c = divmod(j, 3)
        assert tc[j, 0, 0, 0] == c * (t + gap) and tr[j, 0, 0, 0] == r * (t + gap)
    # right edge of tile 0 to left edge of tile 1: exactly `gap` columns skipped
    assert tc[1, 0, 0, 0] - tc[0, 0, 0, -1] - 1 == gap
    assert tr[3, 0, 0, 0] - tr[0, 0, -1, 0] - 1 == gap


def test_views_give_two_tiled_transforms():
    views = mj.JigsawViews(crop_size=48, gap=6)
    out = views(torch.randint(0, 255, (3, 90, 90), dtype=torch.uint8))
    assert out.shape == (2, 9, 3, 12, 12) and out.dtype == torch.float32


def test_shuffle_features_puts_tile_pool_s_in_slot_s():
    feats = torch.arange(9, dtype=torch.float32).view(1, 1, 9, 1).expand(2, 2, 9, 3)
    pool = torch.tensor([list(range(9)), [8, 7, 6, 5, 4, 3, 2, 1, 0]])
    out = mj.shuffle_features(feats, pool, torch.tensor([[0, 1], [1, 1]]))
    assert out[0, 0, :, 0].tolist() == list(range(9))
    assert out[0, 1, :, 0].tolist() == list(range(8, -1, -1))


# ---------------------------------------------------------------------- losses

def test_structure_recovery_loss_by_hand():
    logits = torch.tensor([[[2.0, 0.0], [0.0, 1.0]]])  # one frame, two views, H = 2
    target = torch.tensor([[0, 0]])
    hand = -math.log(math.exp(2) / (math.exp(2) + 1)) - math.log(1 / (1 + math.e))
    assert mj.structure_recovery_loss(logits, target).item() == pytest.approx(hand, rel=1e-6)


def test_color_tolerance_loss_by_hand():
    # N = 2 frames, 2 views, 1 tile, 2-D features at known angles
    f = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]], [[[1.0, 1.0]], [[-1.0, 0.0]]]])
    tau = 0.5
    z = torch.nn.functional.normalize(f[:, :, 0], dim=-1)  # (N, 2, D)
    c = lambda a, b: math.exp(float(a @ b) / tau)  # noqa: E731
    terms = []
    for i in range(2):
        for k in range(2):
            pos = c(z[i, k], z[i, 1 - k])
            neg = sum(c(z[i, k], z[p, kk]) for p in range(2) if p != i for kk in range(2))
            terms.append(-math.log(pos / neg))
    assert mj.color_tolerance_loss(f, tau).item() == pytest.approx(sum(terms) / 4, rel=1e-5)


def test_color_tolerance_loss_is_lightly_dcl_per_tile():
    from lightly.loss import DCLLoss

    f = torch.randn(6, 2, 9, 5, generator=torch.Generator().manual_seed(0))
    expected = torch.stack([DCLLoss(temperature=0.2)(f[:, 0, j], f[:, 1, j]) for j in range(9)]).mean()
    assert mj.color_tolerance_loss(f, 0.2).item() == pytest.approx(expected.item(), rel=1e-5)


def test_recognition_loss_by_hand():
    pred = torch.tensor([[0.5, 0.2, 0.9], [0.0, 1.0, 3.0]])
    target = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    valid = torch.tensor([[True, True, True], [True, True, False]])
    hand = ((0.25 + 0.04 + 0.01) + 0.0) / 2
    assert mj.recognition_loss(pred, target, valid).item() == pytest.approx(hand, rel=1e-6)


def test_max_frame_dice_loss_by_hand():
    logits = torch.full((1, 1, 2, 2), 20.0)  # sigmoid ~ 1 everywhere
    logits[0, 0, 1, 1] = -20.0
    mask = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    # soft Dice: 2 * 2 / (3 + 2) -> loss 1 - 0.8
    assert mj.max_frame_dice_loss(logits, mask).item() == pytest.approx(0.2, abs=1e-4)


def test_predict_peaks():
    e = np.array([0.0, 0.5, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.2, 0.9])
    assert mj.predict_peaks(e, height=0.3, distance=3).tolist() == [1, 10]


# ------------------------------------------------------------------ the models

def test_lstm_segmentation_gets_no_gradient_from_frames_after_k():
    torch.manual_seed(0)
    module = mj.MRJetModule(backbone="small", lstm_hidden=8, recog_hidden=8).eval()
    video = torch.randn(1, 6, 3, 32, 32, requires_grad=True)
    k = 3
    pyramid = module.net.encode(video)
    logits = module.net.segment(pyramid, torch.tensor([0]), torch.tensor([k]), video.shape[-2:])
    mj.max_frame_dice_loss(logits, (torch.rand(1, 1, 32, 32) > 0.5).float()).backward()
    per_frame = video.grad.abs().sum(dim=(0, 2, 3, 4))
    assert (per_frame[: k + 1] > 0).all()
    assert (per_frame[k + 1:] == 0).all()


def test_mrjet_module_step_and_shapes():
    torch.manual_seed(0)
    module = mj.MRJetModule(backbone="small", lstm_hidden=8, recog_hidden=8)
    e = torch.zeros(2, 5)
    e[0, 2] = 1
    batch = {"video": torch.randn(2, 5, 3, 32, 32), "e": e, "valid": torch.ones(2, 5, dtype=torch.bool),
             "jet": (torch.rand(2, 5, 1, 32, 32) > 0.8).float()}
    out = module.losses(batch)
    assert out["e_pred"].shape == (2, 5)
    out["loss"].backward()
    assert module.net.decoder.out.weight.grad is not None


def test_jigsaw_module_losses_and_pool_buffer(tmp_path, monkeypatch):
    monkeypatch.setenv("ECHOSSL_CACHE", str(tmp_path))
    module = mj.JigsawModule(backbone="small", n_permutations=10)
    assert module.permutations.shape == (10, 9)
    out = module.losses(torch.randn(3, 2, 9, 3, 20, 20))
    assert set(out) >= {"sr", "c", "loss", "acc"}
    assert out["loss"].item() == pytest.approx(out["sr"].item() + out["c"].item(), rel=1e-5)
    plain = mj.JigsawModule(backbone="small", n_permutations=10, color=False)
    assert "c" not in plain.losses(torch.randn(3, 2, 9, 3, 20, 20))


# ------------------------------------------------------------- end to end (CLI)

@pytest.fixture(scope="module")
def mrjet_data(tmp_path_factory):
    from echossl.simulate.mrjet import simulate_mrjet

    root = tmp_path_factory.mktemp("mrjet")
    simulate_mrjet(root, 10, seed=2, size=64, progress=False)
    return root


def test_cli_pretrain_then_train_then_evaluate(mrjet_data, tmp_path):
    import yaml

    from echossl.cli import main

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({"mrjet": {
        "jigsaw": {"n_permutations": 10, "crop_size": 48, "frames_per_video": 2, "batch_size": 8},
        "train": {"size": 32, "length": 8, "batch_size": 2, "samples_per_epoch": 2, "lstm_hidden": 8,
                  "recog_hidden": 8}}}))
    common = ["--data", str(mrjet_data), "--config", str(cfg), "--max-epochs", "1"]
    main(["pretrain", "jigsaw", *common, "--out", str(tmp_path / "pre")])  # returns on success
    for name in ("config.yaml", "metrics.json", "checkpoints/last.ckpt"):
        assert (tmp_path / "pre" / name).exists()
    main(["train", "mrjet", *common, "--labeled-fraction", "1.0", "--init", str(tmp_path / "pre"),
          "--out", str(tmp_path / "run")])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["task"] == "mrjet" and metrics["split"] == "TEST"
    for key in ("hit_rate_exact", "hit_rate_within2", "dice", "ratio_mae", "accuracy"):
        assert key in metrics
    from echossl.pipelines.evaluate import evaluate
    from echossl.config import load_config

    again = evaluate(tmp_path / "run", mrjet_data, "VAL", tmp_path / "val.json", cfg=load_config("cpu"))
    assert again["task"] == "mrjet" and again["split"] == "VAL"


# --------------------------------------------------------------------------- #
# issue 15: jigsaw anti-shortcut measures, colour strength, peak threshold, test windows
# --------------------------------------------------------------------------- #


def test_jittered_tiles_move_each_tile_inside_its_cell():
    s, gap = 72, 6
    cols = torch.arange(s, dtype=torch.float32).view(1, 1, s).expand(2, 3, s, s)  # two views
    rows = cols.transpose(-1, -2)
    t, cell = mj.tile_size(s, 3, gap), s // 3
    g = torch.Generator().manual_seed(0)
    tc = mj.jittered_tiles(cols, 3, gap, generator=g)
    tr = mj.jittered_tiles(rows, 3, gap, generator=torch.Generator().manual_seed(0))
    assert tc.shape == (2, 9, 3, t, t)
    x0, y0 = tc[0, :, 0, 0, 0], tr[0, :, 0, 0, 0]
    for j in range(9):
        r, c = divmod(j, 3)
        assert c * cell <= x0[j] <= c * cell + cell - t and r * cell <= y0[j] <= r * cell + cell - t
        # a contiguous t x t patch
        assert torch.equal(tc[0, j, 0, 0], x0[j] + torch.arange(t, dtype=torch.float32))
    assert torch.equal(tc[0], tc[1]), "both views of a crop share the offsets"
    # offsets vary from draw to draw and from tile to tile
    starts = torch.stack([mj.jittered_tiles(cols, 3, gap)[0, :, 0, 0, 0] for _ in range(20)])
    assert len({tuple(v.tolist()) for v in starts}) > 1
    assert (starts - starts[:, :1]).abs().sum() > 0


def test_per_tile_normalisation_removes_tile_statistics():
    torch.manual_seed(0)
    tiles = torch.randn(4, 9, 3, 12, 12) * torch.rand(4, 9, 3, 1, 1) * 5 + torch.randn(4, 9, 3, 1, 1) * 3
    out = mj.normalise_tiles(tiles)
    torch.testing.assert_close(out.mean(dim=(-2, -1)), torch.zeros(4, 9, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(dim=(-2, -1), unbiased=False), torch.ones(4, 9, 3), atol=1e-3, rtol=0)
    views = mj.JigsawViews(crop_size=48, gap=6)
    v = views(torch.randint(0, 255, (3, 90, 90), dtype=torch.uint8))
    assert v.shape == (2, 9, 3, 12, 12)
    assert v.mean(dim=(-2, -1)).abs().max() < 1e-4   # constant-colour channels give 0 too
    # the old behaviour is still available
    raw = mj.JigsawViews(crop_size=48, gap=6, tile_jitter=False, tile_norm=False)
    torch.manual_seed(0)
    ramp = torch.linspace(0, 255, 90).round().to(torch.uint8).view(1, 90, 1).expand(3, 90, 90)
    # without per-tile normalisation a tile's mean brightness tells its row
    assert raw(ramp).mean(dim=(-2, -1))[0, :, 0].std() > 0.1
    assert views(ramp).mean(dim=(-2, -1)).abs().max() < 1e-4


def test_colour_strength_sets_hue_range_and_jitter():
    assert mj.colour_from_strength(1.0) == (0.8, 0.2)
    assert mj.colour_from_strength(0.5) == (0.4, 0.1)
    assert mj.colour_from_strength(5.0)[1] == 0.5
    weak = mj.JigsawViews(crop_size=48, color_strength=0.25, grayscale=0.0)
    strong = mj.JigsawViews(crop_size=48, color_strength=1.0, grayscale=0.9)
    assert (weak.jitter, weak.hue, weak.grayscale) == (0.2, 0.05, 0.0)
    assert (strong.jitter, strong.hue, strong.grayscale) == (0.8, 0.2, 0.9)
    cj = strong.colour.transforms[0].transforms[0]
    assert cj.hue == (-0.2, 0.2) and cj.brightness == (pytest.approx(0.2), pytest.approx(1.8))
    assert strong.colour.transforms[1].p == 0.9


def test_test_windows_match_the_training_clip_length():
    from echossl.pipelines.mrjet import window_starts

    assert window_starts(10, None) == [(0, 10)]
    assert window_starts(10, 24) == [(0, 10)]
    assert window_starts(48, 24) == [(0, 24), (24, 48)]
    assert window_starts(50, 24) == [(0, 24), (24, 48), (26, 50)]
    assert all(b - a == 24 for a, b in window_starts(77, 24))


def test_windowed_inference_gives_each_window_a_fresh_lstm():
    from echossl.pipelines.mrjet import infer_video

    torch.manual_seed(0)
    norm = {"mean": [0.2] * 3, "std": [0.25] * 3, "crop": 1.0, "size": 32}
    frames = np.random.default_rng(0).integers(0, 255, (12, 32, 32, 3), dtype=np.uint8)
    whole = mj.MRJetModule(backbone="small", lstm_hidden=8, recog_hidden=8, norm=norm).eval()
    windowed = mj.MRJetModule(backbone="small", lstm_hidden=8, recog_hidden=8, norm=norm, window=6).eval()
    with torch.no_grad():  # a strong recurrence, so that earlier frames visibly change later ones
        for p in whole.net.lstm.parameters():
            p.mul_(30)
    windowed.load_state_dict(whole.state_dict())
    e_w, p_w = infer_video(windowed, frames)
    e_a, p_a = infer_video(whole, frames[:6])
    e_b, p_b = infer_video(whole, frames[6:])
    np.testing.assert_allclose(e_w, np.r_[e_a, e_b], atol=1e-5)
    np.testing.assert_allclose(p_w, np.r_[p_a, p_b], atol=1e-6)
    e_full, p_full = infer_video(whole, frames)
    assert np.abs(p_full[6:] - p_b).max() > 1e-5, "without windows frame 6 sees frames 0-5"


def test_peak_threshold_chosen_on_val(monkeypatch):
    """A weak model whose E' peaks at 0.2: a fixed 0.3 finds nothing; the VAL choice finds them."""
    from echossl.pipelines import mrjet as pm

    e = np.full(40, 0.05)
    true = np.array([5, 20, 35])
    e[true] = 0.2
    e[[12, 28]] = 0.1   # smaller distractor bumps
    assert pm.peak_counts(e, true, 0.3, 4)[1] == 0
    module = mj.MRJetModule(backbone="small", lstm_hidden=8, recog_hidden=8, peak_distance=4)
    monkeypatch.setattr(pm, "FrameCache", lambda: type("C", (), {"get": lambda self, p: np.zeros((40, 8, 8, 3))})())
    monkeypatch.setattr(pm, "load_truth", lambda data, name: {"e": np.isin(np.arange(40), true).astype(float)})
    monkeypatch.setattr(pm, "infer_video", lambda module, frames, segment=True: (e, None))
    height, f1 = pm.choose_peak_height(module, "data", ["a", "b"])
    assert 0.1 <= height < 0.2 and f1 == pytest.approx(1.0)
