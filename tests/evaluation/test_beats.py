import numpy as np
import pytest

from echossl.evaluation.beats import beat_ef, find_beats, high_frequency_power, segmentation_ef


def _cycle(knots, values, length):
    return np.interp(np.arange(length), knots, values)


def test_find_beats_asymmetric_cycle_exact_frames():
    # fast systole (15 frames down), slow diastole (25 frames up), period 40
    area = _cycle([0, 5, 20, 45, 60, 85, 100, 125, 139],
                  [90, 100, 40, 100, 42, 98, 40, 100, 95], 140)
    ed, es = find_beats(area)
    assert es.tolist() == [20, 60, 100]
    assert ed.tolist() == [5, 45, 85, 125]
    assert ed.dtype.kind == "i" and es.dtype.kind == "i"


def test_find_beats_skips_truncated_half_beats():
    # starts mid-systole (ES at frame 8) and ends 10 frames after the last ES
    area = _cycle([0, 8, 33, 48, 73, 88, 98], [70, 40, 100, 40, 100, 40, 80], 99)
    ed, es = find_beats(area)
    assert es.tolist() == [8, 48, 88]
    assert ed.tolist() == [33, 73]


def test_find_beats_min_distance_scales_with_fps():
    # a 16-frame beat: a 25 fps clip (50 fps video at period 2)
    t = np.arange(80)
    area = 100 + 30 * np.cos(2 * np.pi * t / 16)
    _, es_frames = find_beats(area, min_distance=20)
    _, es_scaled = find_beats(area, min_distance=20, fps=25)
    assert len(es_frames) < len(es_scaled)
    assert es_scaled.tolist() == [8, 24, 40, 56, 72]


def test_find_beats_flat_or_short_falls_back():
    ed, es = find_beats(np.full(30, 5.0))
    assert len(ed) == 1 and len(es) == 1
    ed, es = find_beats([3.0, 1.0])
    assert ed.tolist() == [0] and es.tolist() == [1]


def test_beat_ef_from_volume_curve():
    volume = _cycle([0, 5, 20, 45, 60, 85, 100, 125, 139],
                    [90, 100, 40, 100, 50, 100, 40, 100, 95], 140)
    out = beat_ef(volume)
    assert out["ed_frames"] == [5, 45, 85] and out["es_frames"] == [20, 60, 100]
    np.testing.assert_allclose(out["ef_per_beat"], [60.0, 50.0, 60.0])
    assert out["ef"] == pytest.approx(170 / 3)


def _discs(radii, size=64):
    yy, xx = np.mgrid[:size, :size]
    c = (size - 1) / 2
    return np.stack([(yy - c) ** 2 + (xx - c) ** 2 <= r**2 for r in radii])


def test_segmentation_ef_on_shrinking_discs():
    r_ed, r_es = 20.0, 14.0
    # 3 beats of 20 frames: 6-frame systole (1 px/frame), 14-frame diastole
    knots = [0, 4, 10, 24, 30, 44, 50, 64, 69]
    radii = _cycle(knots, [18, r_ed, r_es, r_ed, r_es, r_ed, r_es, r_ed, 18], 70)
    out = segmentation_ef(_discs(radii), min_distance=10)
    assert out["es_frames"] == [10, 30, 50]
    assert out["ed_frames"] == [4, 24, 44]
    assert (out["ed_frame"], out["es_frame"]) == (4, 10)
    assert out["volume"].shape == (70,) and out["area"].shape == (70,)
    # a disc's method-of-disks volume is a sphere's: EF = 1 - (r_es / r_ed)^3
    assert out["ef"] == pytest.approx(100 * (1 - (r_es / r_ed) ** 3), abs=3.0)


def test_high_frequency_power_larger_for_noisy_curve():
    rng = np.random.default_rng(0)
    t = np.arange(200)
    clean = 100 + 30 * np.sin(2 * np.pi * t / 40)
    noisy = clean + rng.normal(0, 10, t.size)
    assert high_frequency_power(clean) < 0.01
    assert high_frequency_power(noisy) > 10 * high_frequency_power(clean)
    # white noise spreads evenly: 75 % of its power is above a quarter of Nyquist
    assert high_frequency_power(rng.normal(size=4000)) == pytest.approx(0.75, abs=0.05)
    assert high_frequency_power(np.full(50, 3.0)) == 0.0
