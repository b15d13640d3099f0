"""SmoothGrad saliency and its overlap with the LV (CSS paper, Tables II and X).

The CSS paper (css-semisupervised-ef, Sec. IV) explains EF models with SmoothGrad
(Smilkov et al., arXiv:1706.03825): the absolute gradient of the prediction with
respect to each input pixel, averaged over noisy copies of the input. It then scores
attention to the LV as the Dice between the LV mask and the top 5 % of pixels by
absolute gradient, on the labelled ED and ES frames.
"""

from __future__ import annotations

import numpy as np
import torch

from echossl.evaluation.metrics import dice


def smoothgrad(
    model: torch.nn.Module,
    video: torch.Tensor,
    n_samples: int = 16,
    sigma: float = 0.15,
    batch_size: int = 8,
    seed: int | None = 0,
) -> torch.Tensor:
    """Mean absolute input gradient over noisy copies of one clip.

    Args:
        model: maps ``(B, C, T, H, W)`` to ``(B,)`` or ``(B, K)``; with K > 1 outputs
            the gradient is that of their sum. Put in eval mode for the call (so
            batch norm and dropout do not mix the noise samples) and restored after.
        video: ``(C, T, H, W)`` tensor, already normalised as the model expects; its
            device is used for the noise and the forward passes (the model must
            already be there).
        n_samples: noisy copies (Smilkov et al. suggest 10–50).
        sigma: noise standard deviation as a fraction of ``max − min`` of the input
            (Smilkov et al.'s "noise level", 10–20 % recommended).
        batch_size: copies per forward pass.
        seed: seed of the noise (drawn on the CPU, so the same on every device);
            None for fresh randomness.

    Returns:
        ``(C, T, H, W)`` float tensor on the input's device: mean over samples of
        ``|∂ output / ∂ input|``. Gradients are taken with ``torch.autograd.grad``
        on the input only, so nothing is accumulated in the parameters' ``.grad``.
    """
    if video.ndim != 4:
        raise ValueError(f"video must be (C, T, H, W), got shape {tuple(video.shape)}")
    if n_samples < 1 or batch_size < 1:
        raise ValueError("n_samples and batch_size must be at least 1")
    video = video.detach().float()
    device = video.device
    std = float(sigma) * float(video.max() - video.min())
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(int(seed))
    was_training = model.training
    model.eval()
    total = torch.zeros_like(video)
    try:
        with torch.enable_grad():
            done = 0
            while done < n_samples:
                b = min(batch_size, n_samples - done)
                noise = torch.randn((b, *video.shape), generator=generator).to(device)
                noisy = (video.unsqueeze(0) + std * noise).requires_grad_(True)
                out = model(noisy)
                # Samples are independent in eval mode, so the gradient of the sum
                # with respect to each copy is that copy's own gradient.
                (grad,) = torch.autograd.grad(out.sum(), noisy)
                total += grad.abs().sum(dim=0)
                done += b
    finally:
        model.train(was_training)
    return total / n_samples


def top_fraction_mask(saliency2d, fraction: float = 0.05) -> np.ndarray:
    """Boolean ``(H, W)`` mask of the ``fraction`` of pixels with the largest saliency.

    Exactly ``max(1, round(fraction · H · W))`` pixels are set; ties at the
    threshold are broken by position (a threshold would select more pixels on a
    flat saliency map and inflate the Dice).
    """
    s = saliency2d.detach().cpu().numpy() if isinstance(saliency2d, torch.Tensor) else np.asarray(saliency2d)
    if s.ndim != 2:
        raise ValueError(f"saliency must be (H, W), got shape {s.shape}")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    flat = np.nan_to_num(s.astype(np.float64).reshape(-1), nan=-np.inf)
    k = min(flat.size, max(1, int(round(fraction * flat.size))))
    mask = np.zeros(flat.size, dtype=bool)
    mask[np.argpartition(-flat, k - 1)[:k]] = True
    return mask.reshape(s.shape)


def saliency_dice(saliency, masks: dict, fraction: float = 0.05) -> dict:
    """Dice between each labelled frame's LV mask and its top-``fraction`` saliency.

    Args:
        saliency: ``(C, T, H, W)`` (tensor or array), e.g. from :func:`smoothgrad`;
            channels are combined by the maximum of absolute values.
        masks: ``{frame_index: (H, W) bool}``, frame indices into the clip's T axis
            (e.g. the traced ED and ES frames).
        fraction: 0.05 as in the CSS paper.

    Returns:
        ``{frame_index: dice}`` as floats.
    """
    s = saliency.detach().cpu().numpy() if isinstance(saliency, torch.Tensor) else np.asarray(saliency)
    if s.ndim != 4:
        raise ValueError(f"saliency must be (C, T, H, W), got shape {s.shape}")
    per_frame = np.abs(s).max(axis=0)
    out = {}
    for frame, mask in masks.items():
        f = int(frame)
        if not -per_frame.shape[0] <= f < per_frame.shape[0]:
            raise ValueError(f"frame {f} is outside the clip's {per_frame.shape[0]} frames")
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != per_frame.shape[1:]:
            raise ValueError(f"mask of frame {f} is {mask.shape}, saliency frames are {per_frame.shape[1:]}")
        out[frame] = float(dice(top_fraction_mask(per_frame[f], fraction), mask))
    return out
