"""The SmoothGrad attention clip and its ED/ES positions come from one computation (issue 13 item 5)."""

import numpy as np
import pytest

from echossl.data import sampling
from echossl.pipelines.demo import attention_clips


def _check(n, targets, length, period):
    clips = attention_clips(n, targets, length, period)
    starts = sampling.all_starts(n, length, period)
    seen = {}
    for start, positions in clips:
        assert start in starts  # a clip the dataset can actually cut
        frames = sampling.clip_indices(n, length, period, start)
        for f, k in positions.items():
            assert 0 <= k < length and frames[k] == f  # the position scores exactly that frame
            seen[f] = k
    assert set(seen) == set(targets)
    return clips


@pytest.mark.parametrize("period", [1, 2, 3])
def test_ed_near_the_video_end(period):
    n, length = 100, 32
    clips = _check(n, (97, 85), length, period)  # the unclamped start would run past the last start
    assert all(s <= sampling.all_starts(n, length, period)[-1] for s, _ in clips)


def test_odd_gap_at_period_2_gets_exact_frames():
    clips = _check(120, (40, 53), 32, 2)  # gap 13 is odd: one clip cannot hold both on its grid
    assert len(clips) == 2


def test_even_gap_shares_one_clip_starting_one_period_before():
    clips = _check(120, (40, 54), 32, 2)
    assert clips == [(38, {40: 1, 54: 8})]


def test_short_video_and_first_frame():
    _check(20, (0, 9), 32, 2)  # shorter than a clip: start 0, padding after the end
    _check(50, (0, 2), 16, 2)


def test_random_cases():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(10, 200))
        period = int(rng.integers(1, 4))
        length = int(rng.integers(4, 40))
        targets = tuple(int(v) for v in rng.choice(n, size=2, replace=False))
        _check(n, targets, length, period)
