"""Signal pieces the data layer needs: voice activity (speech) and frame-order labels.

* :func:`energy_vad` — the energy-based voice activity detector that splits
  fragments into high and low affinity (video-speech-contrastive.md Sec. 2.3, after Sakhnov et al. [14]).
* :func:`order_label` / :data:`ORDER_CLASSES` — 4-frame order prediction where a
  permutation and its reverse are the same class: 24 / 2 = 12 classes (Sec. 2.3).
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F


def energy_vad(audio: torch.Tensor, sample_rate: int = 24_000, *, hop_seconds: float = 0.010,
               margin_db: float = 10.0, floor_percentile: float = 10.0, smooth_seconds: float = 0.05) -> torch.Tensor:
    """Energy-based voice activity: ``(N,)`` samples -> ``(M,)`` bool, one decision per ``hop_seconds`` frame.

    After Sakhnov et al. (IAENG 2009), cited as [14]: a frame is speech when its
    energy exceeds the background-noise energy by a scaling factor. The noise
    reference is estimated by minimum statistics, as the ``floor_percentile``
    percentile of the recording's frame energies (dB), instead of Sakhnov's
    recursive update, so that the whole decision is vectorised; the scaling
    factor is ``margin_db`` above it. A majority filter over
    ``smooth_seconds`` removes isolated loud frames (button clicks are a few
    ms long) and bridges short dips inside words.
    """
    hop = int(round(hop_seconds * sample_rate))
    n = audio.shape[-1] // hop
    if n == 0:
        return torch.zeros(0, dtype=torch.bool, device=audio.device)
    frames = audio[: n * hop].float().reshape(n, hop)
    db = 10 * torch.log10(frames.pow(2).mean(1) + 1e-12)
    floor = torch.quantile(db, floor_percentile / 100.0)
    raw = (db > floor + margin_db).float()
    k = max(1, int(round(smooth_seconds / hop_seconds)) | 1)  # odd window
    votes = F.avg_pool1d(raw[None, None], k, stride=1, padding=k // 2, count_include_pad=False)[0, 0]
    return votes > 0.5


# --------------------------------------------------------------------------- #
# Frame order (Sec. 2.3)
# --------------------------------------------------------------------------- #

def _canonical(perm) -> tuple:
    perm = tuple(int(p) for p in perm)
    return min(perm, perm[::-1])


ORDER_CLASSES: tuple[tuple, ...] = tuple(sorted({_canonical(p) for p in itertools.permutations(range(4))}))
_ORDER_INDEX = {c: i for i, c in enumerate(ORDER_CLASSES)}


def order_label(perm) -> int:
    """Class in 0..11 of the shuffled order ``perm`` (frames shown as ``clip[perm]``); ``perm`` and its
    reverse (0-1-2-3 and 3-2-1-0) get the same class."""
    return _ORDER_INDEX[_canonical(perm)]
