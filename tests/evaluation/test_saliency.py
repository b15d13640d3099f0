import numpy as np
import pytest
import torch
from torch import nn

from echossl.evaluation.saliency import saliency_dice, smoothgrad, top_fraction_mask


def test_smoothgrad_of_linear_model_is_abs_weight():
    torch.manual_seed(0)
    shape = (3, 2, 5, 4)
    model = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(shape)), 1))
    model.train()
    video = torch.randn(shape)
    sal = smoothgrad(model, video, n_samples=5, sigma=0.2, batch_size=2)
    expected = model[1].weight.detach().abs().reshape(shape)
    assert sal.shape == shape and sal.device == video.device
    torch.testing.assert_close(sal, expected)
    assert all(p.grad is None for p in model.parameters())
    assert model.training  # mode restored


class _Square(nn.Module):
    def forward(self, x):  # (B, C, T, H, W) -> (B,), gradient 2x
        return (x**2).flatten(1).sum(1)


def test_smoothgrad_averages_over_uneven_batches():
    video = torch.randn(1, 3, 4, 4)
    sal = smoothgrad(_Square(), video, n_samples=5, sigma=0.0, batch_size=2)
    torch.testing.assert_close(sal, 2 * video.abs())
    with torch.no_grad():  # works even when the caller disabled autograd
        torch.testing.assert_close(smoothgrad(_Square(), video, n_samples=3, sigma=0.0), 2 * video.abs())


def test_top_fraction_mask_count_and_content():
    rng = np.random.default_rng(0)
    sal = rng.random((20, 20))
    mask = top_fraction_mask(sal, 0.05)
    assert mask.dtype == bool and mask.sum() == 20
    assert sal[mask].min() > sal[~mask].max()
    assert top_fraction_mask(np.ones((20, 20)), 0.05).sum() == 20  # ties: still exactly 5 %
    assert top_fraction_mask(torch.from_numpy(sal), 0.1).sum() == 40


def test_saliency_dice_per_frame_with_channel_max_abs():
    sal = np.zeros((2, 3, 20, 20))
    lv = np.zeros((20, 20), bool)
    lv[5:9, 5:10] = True  # 20 px = 5 % of 400
    sal[1, 0][lv] = -5.0  # negative gradients count by magnitude, in any channel
    sal[0, 2, 10:14, 10:15] = 1.0  # frame 2 attends elsewhere
    out = saliency_dice(torch.from_numpy(sal), {0: lv, 2: lv})
    assert out == {0: pytest.approx(1.0), 2: pytest.approx(0.0)}
    with pytest.raises(ValueError):
        saliency_dice(sal, {5: lv})
