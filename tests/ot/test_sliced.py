import ot
import pytest
import torch

from otviz.ot import random_directions, sliced_wasserstein
from otviz.ot.sliced import sliced_wasserstein_reference


def samples(m=500, d=8, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, d, generator=g, dtype=dtype)
    y = 1.5 * torch.randn(m, d, generator=g, dtype=dtype) + 0.3
    return x, y


def test_matches_pot_with_the_same_directions():
    x, y = samples(m=2000, d=24)
    theta = random_directions(300, 24, torch.Generator().manual_seed(1), dtype=torch.float64)
    ours = sliced_wasserstein(x, y, theta=theta)
    # POT returns sqrt(mean_l W_2^2); it projects on its own directions unless given ``projections`` (d, L)
    pot = ot.sliced_wasserstein_distance(x.numpy(), y.numpy(), projections=theta.T.numpy(), p=2)
    assert float(ours) == pytest.approx(float(pot) ** 2, rel=1e-10)
    assert float(ours) == pytest.approx(float(sliced_wasserstein_reference(x, y, theta)), rel=1e-12)


def test_float32_and_fresh_directions_per_call():
    x, y = samples(m=1000, d=8, dtype=torch.float32)
    g = torch.Generator().manual_seed(3)
    a = sliced_wasserstein(x, y, 200, generator=g)
    b = sliced_wasserstein(x, y, 200, generator=g)
    assert a.dtype == torch.float32 and float(a) != float(b)  # directions redrawn each call
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert float(sliced_wasserstein(x, y, 200, g1)) == float(sliced_wasserstein(x, y, 200, g2))


def test_closed_form_for_a_shift():
    """X + c vs X: every 1-D projection is a shift by θ·c, so SW² = mean_l (θ_l·c)² ≈ |c|²/d."""
    x, _ = samples(m=3000, d=6)
    c = torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0, 1.0], dtype=torch.float64)
    theta = random_directions(2000, 6, torch.Generator().manual_seed(2), dtype=torch.float64)
    sw = sliced_wasserstein(x + c, x, theta=theta)
    assert float(sw) == pytest.approx(float(((theta @ c) ** 2).mean()), rel=1e-10)
    assert float(sw) == pytest.approx(float(c @ c) / 6, rel=0.1)
    assert float(sliced_wasserstein(x, x, 100)) == 0.0


def test_gradients_match_autograd_reference_and_gradcheck():
    x, y = samples(m=60, d=5)
    theta = random_directions(40, 5, torch.Generator().manual_seed(4), dtype=torch.float64)
    x1, y1 = x.clone().requires_grad_(), y.clone().requires_grad_()
    x2, y2 = x.clone().requires_grad_(), y.clone().requires_grad_()
    sliced_wasserstein(x1, y1, theta=theta).backward()
    sliced_wasserstein_reference(x2, y2, theta).backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    torch.testing.assert_close(y1.grad, y2.grad)
    assert torch.autograd.gradcheck(lambda a, b: sliced_wasserstein(a, b, theta=theta),
                                    (x.clone().requires_grad_(), y.clone().requires_grad_()))


def test_errors_and_shapes():
    x, y = samples(m=10, d=4)
    with pytest.raises(ValueError, match="equal-size"):
        sliced_wasserstein(x, y[:5])
    # (events, particles, 4) input is flattened per event
    sw = sliced_wasserstein(x.reshape(10, 1, 4), y.reshape(10, 1, 4), 50)
    assert sw.ndim == 0
