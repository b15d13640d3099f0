"""cyclical_loss against a literal transcription of eqs. 2-7, and on periodic features."""

import math

import pytest
import torch

from echossl.methods.css import cyclical_loss, cyclical_logits


def literal_css(z, p_star, template=15, search=21, s=3, c=2, tau=10.0):
    """Slow, loop-by-loop transcription of the paper's equations (0-based indices)."""
    t, d = z.shape
    P = range(0, template)
    Q = range(template, template + search)

    def gamma(e1, e2):  # eq. 3, e1/e2 lists of s embeddings
        return -sum(float(((e1[k] - e2[k]) ** 2).sum()) for k in range(s)) / (d * s)

    def phase(t0):  # eq. 1
        return [z[t0 + k] for k in range(s)]

    num = {q: math.exp(gamma(phase(p_star), phase(q)) * tau) for q in Q}  # eq. 2
    den = sum(num.values())
    alpha = {q: num[q] / den for q in Q}

    def z_tilde(theta):  # eq. 4
        return sum(alpha[j] * z[j + theta] for j in Q)

    e_tilde = [z_tilde(c + k) for k in range(s)]  # eq. 5
    num_b = {p: math.exp(gamma(e_tilde, phase(p)) * tau) for p in P}  # eq. 6
    den_b = sum(num_b.values())
    beta = {p: num_b[p] / den_b for p in P}
    return -math.log(beta[p_star + c])  # eq. 7 for one clip


@pytest.mark.parametrize("p_star", [0, 5, 12])
def test_matches_literal_transcription(p_star):
    torch.manual_seed(p_star)
    z = torch.randn(40, 8, dtype=torch.float64) * 0.3
    fast = cyclical_loss(z, p_star).item()
    slow = literal_css(z, p_star)
    assert fast == pytest.approx(slow, rel=1e-9, abs=1e-9)


def test_batched_equals_per_clip_mean():
    torch.manual_seed(0)
    z = torch.randn(4, 40, 16, dtype=torch.float64) * 0.2
    p = torch.tensor([0, 3, 7, 12])
    batched = cyclical_loss(z, p).item()
    single = sum(literal_css(z[i], int(p[i])) for i in range(4)) / 4
    assert batched == pytest.approx(single, rel=1e-9)


def test_beta_peaks_at_p_star_plus_c_on_periodic_features():
    # A feature sequence that repeats every 17 frames: the phase found in the
    # search region, shifted by c, must point back at p* + c.
    t = torch.arange(40, dtype=torch.float64)
    period = 17.0  # longer than P, so p*+c has no alias inside the template region
    z = torch.stack([torch.sin(2 * math.pi * t / period), torch.cos(2 * math.pi * t / period),
                     torch.sin(4 * math.pi * t / period), torch.cos(4 * math.pi * t / period)], dim=1)
    for p_star in range(0, 13):
        beta = torch.softmax(cyclical_logits(z, p_star), dim=1)[0]
        assert int(beta.argmax()) == p_star + 2
    # and the loss is low there, far lower than for aperiodic noise of the same scale
    periodic = cyclical_loss(z, 4).item()
    noise = cyclical_loss(torch.randn(40, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1)), 4).item()
    assert periodic < 0.5 * noise


def test_stable_for_large_distances():
    z = torch.randn(40, 32) * 1e4
    loss = cyclical_loss(z, 3)
    assert torch.isfinite(loss)
    z.requires_grad_(True)
    cyclical_loss(z, 3).backward()
    assert torch.isfinite(z.grad).all()


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        cyclical_loss(torch.randn(30, 4), 0)
    with pytest.raises(ValueError):
        cyclical_loss(torch.randn(40, 4), 13)
