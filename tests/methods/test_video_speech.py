"""Video-speech pieces: VAD, hard-pair sampling, order labels, L_cls, L_cont, spectrogram, module."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from echossl.data.sweep import Scan, VideoSpeechIntervals, sample_pairs
from echossl.methods.video_speech import (
    ORDER_CLASSES, VideoSpeechPretraining, correlation_loss, cross_modal_contrast, energy_vad, log_spectrogram,
    order_label, voicing_control,
)
from echossl.simulate.sweep import LANGUAGE, SAMPLE_RATE, phrase

SR = SAMPLE_RATE


def _background(rng, seconds: float) -> np.ndarray:
    """Air-con rumble, mains hum and button clicks, as in the simulator."""
    from scipy import ndimage

    n = int(seconds * SR)
    t = np.arange(n) / SR
    x = 0.004 * np.sin(2 * np.pi * 50 * t) + 0.002 * np.sin(2 * np.pi * 100 * t)
    air = ndimage.gaussian_filter1d(rng.normal(0, 1, n), 6)
    x += 0.004 * air / air.std()
    for c in rng.integers(0, n - 100, int(seconds)):  # one click per second
        k = np.arange(96)
        x[c:c + 96] += 0.3 * np.exp(-k / 19.2) * rng.choice([-1, 1], 96)
    return x


def test_vad_separates_narration_from_noise():
    rng = np.random.default_rng(0)
    audio = _background(rng, 9.0)
    voc = LANGUAGE[3]
    speech = phrase(rng, 140.0, voc["vowels"], voc["consonants"], 8)[: 3 * SR]
    audio[3 * SR: 3 * SR + len(speech)] += 0.1 * speech
    voiced = energy_vad(torch.from_numpy(audio), SR).numpy()
    assert voiced.shape == (900,)
    noise = np.r_[voiced[:290], voiced[3 * 100 + len(speech) // 240 + 10:]]
    talk = voiced[300:300 + len(speech) // 240]
    assert noise.mean() < 0.03, "clicks and hum must not count as speech"
    assert talk.mean() > 0.6
    # pure background: (almost) nothing is speech
    assert energy_vad(torch.from_numpy(_background(rng, 5.0)), SR).float().mean() < 0.03


def test_hard_negatives_fall_inside_the_shift_range():
    rng = np.random.default_rng(1)
    for _ in range(2000):
        n = int(rng.integers(2, 40))
        t = int(rng.integers(0, n))
        d = int(rng.integers(2, 7))
        p = sample_pairs(rng, n, t, groups=2, shift_range=d)
        assert 0 <= p["neg_interval"] < n
        assert p["neg_interval"] - t == p["delta"]
        assert 0 < abs(p["delta"]) < max(d, 2)
        assert p["video_pos"].shape == p["speech_pos"].shape == (2,)
        assert ((0 <= p["speech_pos"]) & (p["speech_pos"] < 1)).all()


def test_interval_dataset_items():
    rng = np.random.default_rng(2)
    fps, seconds = 10.0, 12.0
    scan = Scan("a", rng.integers(0, 255, (int(fps * seconds), 32, 32), dtype=np.uint8),
                rng.normal(0, 0.1, int(seconds * SR)).astype(np.float32), np.zeros(120, np.int64),
                np.zeros((120, 2), np.float32), fps, voiced=np.ones(int(seconds * 100), bool))
    ds = VideoSpeechIntervals([scan], interval_seconds=2.0, excerpt_seconds=0.6, groups=2, shift_range=3, size=32,
                              order_step=2, order_crop=0.5, min_voiced=0.5, seed=0)
    assert len(ds) == 6
    for i in range(len(ds)):
        item = ds[i]
        assert item["frames"].shape == (2, 1, 32, 32)
        assert item["speech_pos"].shape == item["speech_neg"].shape == (2, int(0.6 * SR))
        assert item["order_frames"].shape == (4, 1, 16, 16)
        assert 0 < abs(int(item["delta"])) < 3
        assert 0 <= int(item["order_label"]) < 12
        assert item["high_affinity"].all()
    # deterministic with a seed
    assert torch.equal(ds[3]["speech_neg"], ds[3]["speech_neg"])


def test_vad_filter_applies_to_negatives_as_well():
    """A voiced mask that is not all true: the first half of the scan is speech, the second not.

    A pair is high-affinity only when both excerpts are voiced, so every pair used for the
    correlation losses has a voiced negative and the speech-only control is at chance there."""
    rng = np.random.default_rng(3)
    fps, seconds = 10.0, 16.0
    voiced = np.zeros(int(seconds * 100), bool)
    voiced[: int(seconds * 50)] = True                      # 0-8 s voiced, 8-16 s silent
    scan = Scan("a", rng.integers(0, 255, (int(fps * seconds), 32, 32), dtype=np.uint8),
                rng.normal(0, 0.1, int(seconds * SR)).astype(np.float32), np.zeros(160, np.int64),
                np.zeros((160, 2), np.float32), fps, voiced=voiced)
    ds = VideoSpeechIntervals([scan], interval_seconds=2.0, excerpt_seconds=0.4, groups=4, shift_range=3, size=32,
                              order_step=2, order_crop=0.5, min_voiced=0.5, seed=0, voiced_sampling=False)
    items = [ds[i] for i in range(len(ds))]
    pos = torch.cat([it["pos_voiced"] for it in items])
    neg = torch.cat([it["neg_voiced"] for it in items])
    high = torch.cat([it["high_affinity"] for it in items])
    assert torch.equal(high, pos & neg)
    # the boundary interval pairs a voiced positive with silent negatives: the old filter kept them
    assert (pos & ~neg).any(), "test scan must produce voiced positives with unvoiced negatives"
    assert neg[high].all() and pos[high].all()
    assert 0 < high.float().mean() < 1
    control = voicing_control(pos, neg)
    assert control[pos].mean() > 0.5, "on the positive-only filter, voicing alone beats chance"
    assert torch.allclose(control[high], torch.full_like(control[high], 0.5))
    assert voicing_control(torch.tensor([True, False]), torch.tensor([False, True])).tolist() == [1.0, 0.0]


def test_order_labels_identify_each_permutation_with_its_reverse():
    assert len(ORDER_CLASSES) == 12
    labels = {p: order_label(p) for p in itertools.permutations(range(4))}
    assert set(labels.values()) == set(range(12))
    for p, c in labels.items():
        assert labels[p[::-1]] == c
        same = [q for q, d in labels.items() if d == c]
        assert sorted(same) == sorted({p, p[::-1]}), "exactly a permutation and its reverse share a class"
    assert order_label((0, 1, 2, 3)) == order_label((3, 2, 1, 0))
    assert order_label((0, 1, 2, 3)) != order_label((1, 0, 2, 3))


def test_correlation_loss_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0)], [math.log(3.0), 0.0]])
    # both pairs get probability 3/4 on their true class
    loss = correlation_loss(logits, torch.tensor([1, 0]))
    assert loss.item() == pytest.approx(-math.log(0.75), abs=1e-6)


def _contrast_literal(y_v, y_s, y_n, tau):
    """Slow transcription of the safe eq. (2): -log(e^a sigmoid(a - b) / sum_{k != v} e^{s_k})."""
    y_v, y_s, y_n = (torch.nn.functional.normalize(y.double(), dim=-1) for y in (y_v, y_s, y_n))
    cand = torch.cat([y_v, y_s, y_n])
    m, total = len(y_v), 0.0
    for i in range(m):
        a = float(y_v[i] @ y_s[i]) / tau
        b = float(y_v[i] @ y_n[i]) / tau
        denom = sum(math.exp(float(y_v[i] @ cand[k]) / tau) for k in range(3 * m) if k != i)
        numer = math.exp(a) / (1 + math.exp(b - a))
        total += -math.log(numer / denom)
    return total / m


def test_cross_modal_contrast_matches_literal_form():
    g = torch.Generator().manual_seed(0)
    y_v, y_s, y_n = (torch.randn(5, 8, generator=g) for _ in range(3))
    for tau in (1.0, 0.2):
        assert cross_modal_contrast(y_v, y_s, y_n, tau).item() == pytest.approx(_contrast_literal(y_v, y_s, y_n, tau),
                                                                                 rel=1e-5)


def test_cross_modal_contrast_is_safe_where_the_paper_form_is_not():
    y_v = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    y_s = torch.tensor([[0.0, 1.0], [1.0, 0.0]])   # positives dissimilar
    y_n = y_v.clone()                               # hard negatives identical: e^a - e^b < 0
    loss = cross_modal_contrast(y_v, y_s, y_n, 0.05)
    assert torch.isfinite(loss)
    # with a large margin a >> b the safe form agrees with the paper's eq. (2)
    y_v = y_v.double()
    y_s, y_n = y_v.clone(), -y_v
    tau = 0.1
    a, b = 1 / tau, -1 / tau
    sims = [1 / tau, 0.0, 1 / tau, 0.0, -1 / tau, 0.0]  # to v's own row excluded below
    denom = sum(math.exp(s) for s in sims[1:])
    paper = -math.log((math.exp(a) - math.exp(b)) / denom)
    assert cross_modal_contrast(y_v, y_s, y_n, tau).item() == pytest.approx(paper, rel=1e-6)


def test_log_spectrogram_bands_and_a_tone():
    t = torch.arange(int(0.6 * SR)) / SR
    tone = torch.sin(2 * torch.pi * 1000 * t)[None].repeat(2, 1)
    spec = log_spectrogram(tone, SR, size=None)
    assert spec.shape == (2, 1, 256, 121)   # 256 bands, 5 ms hops over 0.6 s
    peak = int(spec[0, 0].mean(1).argmax())
    assert abs(peak - 1000 / (SR / 512)) <= 1
    assert log_spectrogram(tone, SR, size=64).shape == (2, 1, 64, 64)


def _batch(b=4, k=2, s=32, high=None):
    g = torch.Generator().manual_seed(0)
    return {"frames": torch.randn(b, k, 1, s, s, generator=g), "speech_pos": torch.randn(b, k, 4800, generator=g),
            "speech_neg": torch.randn(b, k, 4800, generator=g),
            "high_affinity": high if high is not None else torch.tensor([[1, 1], [1, 0], [0, 0], [1, 1]]).bool(),
            "order_frames": torch.randn(b, 4, 1, 16, 16, generator=g), "order_label": torch.tensor([0, 3, 7, 11]),
            "interval_high": torch.tensor([True, True, False, False])}


def test_pretraining_variants_use_the_right_fragments():
    torch.manual_seed(0)
    module = VideoSpeechPretraining(width=4, proj_hidden=16, proj_dim=8, spec_size=16)
    batch = _batch(s=16)
    expected = {"full": (5, 2), "contrast": (8, 0), "baseline": (8, 0), "video-only": (0, 4)}
    for variant, counts in expected.items():
        module.hparams.variant = variant  # same network, another choice of fragments and losses
        out = module.losses(batch)
        assert torch.isfinite(out["loss"])
        assert (out["n_pairs"], out["n_order"]) == counts, variant
        assert (out["l_cont"].item() != 0) == (variant in ("full", "contrast"))
        assert (out["l_ord"].item() != 0) == (variant in ("full", "video-only"))
    out["loss"].backward()


@pytest.mark.slow
def test_paper_backbone_is_se_resnext50_dilated():
    from echossl.models.video_speech import SEResNeXt50, SqueezeExcitation

    net = SEResNeXt50()
    assert sum(isinstance(m, SqueezeExcitation) for m in net.modules()) == 16  # 3 + 4 + 6 + 3 bottlenecks
    with torch.no_grad():
        assert net.features(torch.zeros(1, 1, 64, 64)).shape == (1, 2048, 4, 4)  # output stride 16


def test_evaluate_pretext_reports_the_speech_only_control(tmp_path):
    from echossl.config import load_config
    from echossl.pipelines.video_speech import evaluate_pretext

    rng = np.random.default_rng(4)
    fps, seconds = 10.0, 16.0
    voiced = np.zeros(int(seconds * 100), bool)
    voiced[: int(seconds * 50)] = True
    scan = Scan("a", rng.integers(0, 255, (int(fps * seconds), 32, 32), dtype=np.uint8),
                rng.normal(0, 0.1, int(seconds * SR)).astype(np.float32), np.zeros(160, np.int64),
                np.zeros((160, 2), np.float32), fps, voiced=voiced)
    cfg = load_config("cpu")
    vs = cfg["video_speech"]
    module = VideoSpeechPretraining(backbone=vs["backbone"] if "backbone" in vs else "small_se", width=4,
                                    spec_size=32, proj_hidden=16, proj_dim=8)
    ckpt = tmp_path / "m.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                "pytorch-lightning_version": "2"}, ckpt)
    blind = {**cfg, "video_speech": {**vs, "data": {**vs["data"], "voiced_sampling": False}}}
    m = evaluate_pretext(ckpt, [scan], blind, tmp_path / "metrics.json")
    assert m["voicing_control_accuracy_high"] == pytest.approx(0.5)
    assert m["voiced_negative_fraction_high"] == pytest.approx(1.0)
    assert m["voicing_control_accuracy_positive_filter"] > 0.5
    assert m["voiced_negative_fraction_positive_filter"] < 1.0
    # drawn among voiced excerpts (the default, for the full variant): the control is at chance
    # on every pair with a voiced positive, and more pairs are high-affinity
    v = evaluate_pretext(ckpt, [scan], cfg, tmp_path / "metrics2.json")
    assert v["voiced_negative_fraction_positive_filter"] == pytest.approx(1.0)
    assert v["voicing_control_accuracy_positive_filter"] == pytest.approx(0.5)
    assert v["high_affinity_fraction"] > m["high_affinity_fraction"]


def _striped_scan(seed: int = 5):
    """A 24-s scan whose VAD marks intervals 0, 3, 6, 9 (2 s each) voiced and the rest silent."""
    rng = np.random.default_rng(seed)
    fps, seconds = 10.0, 24.0
    voiced = np.zeros(int(seconds * 100), bool)
    for k in (0, 3, 6, 9):
        voiced[k * 200:(k + 1) * 200] = True
    n = int(fps * seconds)
    return Scan("a", rng.integers(0, 255, (n, 32, 32), dtype=np.uint8),
                rng.normal(0, 0.1, int(seconds * SR)).astype(np.float32), np.zeros(n, np.int64),
                np.zeros((n, 2), np.float32), fps, voiced=voiced)


def test_t_prime_is_drawn_among_voiced_intervals():
    """With voiced sampling, T' = T + delta (0 < |delta| < D) is an interval that holds voiced speech
    and both excerpts are voiced wherever one can be; blind draws + mask keep far fewer pairs."""
    scan = _striped_scan()
    # min_voiced 0.6: an excerpt straddling a voiced/silent boundary is not voiced (no spill-over)
    kw = dict(interval_seconds=2.0, excerpt_seconds=0.4, groups=4, shift_range=4, size=32, order_step=2,
              order_crop=0.5, min_voiced=0.6, seed=0)
    ds = VideoSpeechIntervals([scan], **kw)
    blind = VideoSpeechIntervals([scan], **kw, voiced_sampling=False)
    voiced_intervals = {0, 3, 6, 9}
    high_new, high_old = [], []
    for i in range(len(ds)):
        it = ds[i]
        t, delta = ds.index[i][1], int(it["delta"])
        assert 0 < abs(delta) < 4 and 0 <= t + delta < 12
        reachable = {t + d for d in range(-3, 4) if d and 0 <= t + d < 12} & voiced_intervals
        if reachable:
            assert t + delta in reachable, f"interval {t}: T' = {t + delta} holds no speech"
            assert it["neg_voiced"].all()
        if t in voiced_intervals:
            assert it["pos_voiced"].all() and it["high_affinity"].all()
        else:
            assert not it["pos_voiced"].any() and not it["high_affinity"].any()
        assert torch.equal(it["high_affinity"], it["pos_voiced"] & it["neg_voiced"])
        high_new.append(it["high_affinity"])
        high_old.append(blind[i]["high_affinity"])
    new, old = torch.cat(high_new).float().mean(), torch.cat(high_old).float().mean()
    assert new == pytest.approx(4 / 12)  # every pair of a voiced interval
    assert old < new
    # the speech-only control cannot beat chance on the pairs used
    pos = torch.cat([ds[i]["pos_voiced"] for i in range(len(ds))])
    neg = torch.cat([ds[i]["neg_voiced"] for i in range(len(ds))])
    assert torch.allclose(voicing_control(pos, neg)[pos], torch.full((int(pos.sum()),), 0.5))


def test_voiced_sampling_is_deterministic_with_a_seed_and_only_for_full():
    from echossl.config import load_config
    from echossl.pipelines.video_speech import _intervals

    scan = _striped_scan()
    vs = load_config("cpu")["video_speech"]
    full = _intervals([scan], vs, seed=3, variant="full")
    base = _intervals([scan], vs, seed=3, variant="baseline")
    assert full.voiced_sampling and not base.voiced_sampling
    assert torch.equal(full[5]["speech_neg"], full[5]["speech_neg"])
    assert int(full[5]["delta"]) == int(full[5]["delta"])
