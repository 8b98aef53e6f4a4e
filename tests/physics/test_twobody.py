"""Two-body decays conserve four-momentum, put daughters on their mass shells for any masses, and
return the angles they were given; against a closed form for the momentum at rest."""
import numpy as np
import pytest
import torch

from otviz.physics import fourvec as fv
from otviz.physics import twobody as tb


def _sample(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    M = rng.uniform(0.3, 10, n)
    m1 = rng.uniform(0, 0.5, n) * M
    m2 = rng.uniform(0, 1, n) * (M - m1)  # any pair below threshold M ≥ m1 + m2
    P = rng.normal(0, 20, (n, 3))
    parent = np.concatenate([P, np.sqrt(M**2 + (P**2).sum(-1))[:, None]], -1)
    return parent, M, m1, m2, rng.uniform(-1, 1, n), rng.uniform(-np.pi, np.pi, n)


def test_kallen_momentum_closed_forms():
    # equal masses: p* = sqrt(M²/4 − m²); one massless daughter: p* = (M² − m²)/(2M)
    M, m = 5.0, 0.13957
    assert tb.rest_momentum(np.array(M), m, m) == pytest.approx(np.sqrt(M**2 / 4 - m**2), rel=1e-12)
    assert tb.rest_momentum(np.array(M), m, 0.0) == pytest.approx((M**2 - m**2) / (2 * M), rel=1e-12)
    assert tb.kallen(1.0, 2.0, 3.0) == 1 + 4 + 9 - 4 - 12 - 6


@pytest.mark.parametrize("helicity", [False, True])
def test_decay_conserves_momentum_and_masses(helicity):
    parent, M, m1, m2, c, ph = _sample()
    axis = tb.helicity_axis(parent) if helicity else None
    d = tb.two_body_decay(parent, m1, m2, c, ph, axis)
    np.testing.assert_allclose(d.sum(-2), parent, atol=1e-9)
    np.testing.assert_allclose(fv.mass(d[:, 0]), m1, atol=1e-6)
    np.testing.assert_allclose(fv.mass(d[:, 1]), m2, atol=1e-6)
    c2, p2 = tb.decay_angles(d[:, 0], parent, axis)
    np.testing.assert_allclose(c2, c, atol=1e-9)
    np.testing.assert_allclose(np.angle(np.exp(1j * (p2 - ph))), 0, atol=1e-6)


def test_unequal_masses_are_not_the_p0_over_2_boost():
    # the public code's E* = M/2 for both daughters breaks energy conservation for m1 ≠ m2
    parent = np.array([[0.0, 0.0, 30.0, np.sqrt(900 + 2.0**2)]])
    d = tb.two_body_decay(parent, np.array([0.13957]), np.array([0.938]), np.array([0.3]), np.array([1.0]))
    rest = tb.boost_to_rest(d, parent[:, None, :])
    assert rest[0, 0, 3] == pytest.approx((4 + 0.13957**2 - 0.938**2) / 4, rel=1e-12)
    assert rest[0, 1, 3] == pytest.approx((4 - 0.13957**2 + 0.938**2) / 4, rel=1e-12)


def test_torch_matches_numpy_and_is_differentiable():
    parent, M, m1, m2, c, ph = _sample(50)
    axis = tb.helicity_axis(parent)
    ref = tb.two_body_decay(parent, m1, m2, c, ph, axis)
    t = [torch.tensor(a, requires_grad=True) for a in (parent, m1, m2, c, ph)]
    out = tb.two_body_decay(*t, axis=tb.helicity_axis(t[0]))
    np.testing.assert_allclose(out.detach().numpy(), ref, atol=1e-9)
    out[:, 0, 3].sum().backward()  # the lab energy of daughter 1 depends on its angle
    assert torch.isfinite(t[3].grad).all() and t[3].grad.abs().sum() > 0
