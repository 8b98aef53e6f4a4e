"""Closed-form Gaussian OT (otviz.ot.gaussian) against POT's Bures–Wasserstein functions."""
import numpy as np
import ot
import pytest

from otviz.ot.gaussian import (gaussian_ot_map, gaussian_w2_squared, l2_uvp, random_gaussian,
                               sample_gaussian)


@pytest.mark.parametrize("d", [1, 3, 16])
def test_map_and_distance_match_pot(d):
    rng = np.random.default_rng(d)
    m1, c1 = random_gaussian(d, rng, eig_range=(0.1, 5.0))
    m2, c2 = random_gaussian(d, rng, eig_range=(0.1, 5.0))
    a, b = gaussian_ot_map(m1, c1, m2, c2)
    a_pot, b_pot = ot.gaussian.bures_wasserstein_mapping(m1, m2, c1, c2)
    np.testing.assert_allclose(a, a_pot, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(b, b_pot.ravel(), rtol=1e-6, atol=1e-8)
    w_pot = float(ot.gaussian.bures_wasserstein_distance(m1, m2, c1, c2))
    assert gaussian_w2_squared(m1, c1, m2, c2) == pytest.approx(w_pot ** 2, rel=1e-6)


def test_map_is_symmetric_positive_and_pushes_source_onto_target():
    rng = np.random.default_rng(0)
    m1, c1 = random_gaussian(8, rng)
    m2, c2 = random_gaussian(8, rng)
    a, b = gaussian_ot_map(m1, c1, m2, c2)
    np.testing.assert_allclose(a, a.T, atol=1e-12)  # a gradient of a convex quadratic
    assert np.linalg.eigvalsh(a).min() > 0
    np.testing.assert_allclose(a @ c1 @ a, c2, atol=1e-9)  # A Σ₁ A = Σ₂
    np.testing.assert_allclose(a @ m1 + b, m2, atol=1e-12)
    # its transport cost is W₂²
    x = sample_gaussian(m1, c1, 200_000, rng)
    cost = np.mean(np.sum((x @ a.T + b - x) ** 2, 1))
    assert cost == pytest.approx(gaussian_w2_squared(m1, c1, m2, c2), rel=0.01)


def test_identity_and_scaling_closed_forms():
    eye = np.eye(3)
    a, b = gaussian_ot_map(np.zeros(3), eye, np.ones(3), 4 * eye)
    np.testing.assert_allclose(a, 2 * eye, atol=1e-12)  # N(0, I) → N(1, 4I): x ↦ 1 + 2x
    np.testing.assert_allclose(b, np.ones(3))
    assert gaussian_w2_squared(np.zeros(3), eye, np.ones(3), 4 * eye) == pytest.approx(3 + 3 * (1 + 4 - 4))


def test_l2_uvp():
    exact = np.zeros((4, 2))
    mapped = np.ones((4, 2))
    assert l2_uvp(mapped, exact, target_variance=4.0) == pytest.approx(50.0)
    with pytest.raises(ValueError, match="shapes"):
        l2_uvp(mapped, exact[:, :1], 1.0)
    with pytest.raises(ValueError, match="variance"):
        l2_uvp(mapped, exact, 0.0)
