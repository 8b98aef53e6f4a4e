"""Closure metrics of a calibration (otviz.metrics.calibration) against closed forms."""
import numpy as np
import pytest
from scipy.stats import norm

from otviz.metrics.calibration import (auc_standard_error, discriminator_auc, efficiency_at_mistag, fit_pca,
                                       project, transport_cost)
from otviz.metrics.roc import roc_auc


def test_discriminator_reaches_the_bayes_auc_of_two_shifted_gaussians():
    """N(Δ·e₁, I) vs N(0, I) in 8-d: the best AUC is Φ(Δ/√2); identical samples give 0.5."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4000, 8))
    a[:, 0] += 1.0
    b = rng.standard_normal((4000, 8))
    auc = discriminator_auc(a, b, hidden=(32,), max_iter=100)
    assert auc == pytest.approx(norm.cdf(1 / np.sqrt(2)), abs=0.02)
    same = discriminator_auc(rng.standard_normal((4000, 8)), b, hidden=(32,), max_iter=100)
    assert abs(same - 0.5) < 3 * auc_standard_error(0.5, 2000, 2000) + 0.01


def test_auc_standard_error_matches_the_spread_of_random_aucs():
    rng = np.random.default_rng(1)
    aucs = [roc_auc(rng.standard_normal(2000) + 0.5 * np.r_[np.ones(1000), np.zeros(1000)],
                    np.r_[np.ones(1000), np.zeros(1000)]) for _ in range(300)]
    assert auc_standard_error(np.mean(aucs), 1000, 1000) == pytest.approx(np.std(aucs), rel=0.15)
    assert auc_standard_error(0.5, 1000, 1000) == pytest.approx(0.01291, abs=1e-4)


def test_efficiency_at_fixed_mistag_of_gaussian_scores():
    """Signal N(1, 1), background N(0, 1): at 10 % mistag the cut is Φ⁻¹(0.9) and ε_S = 1 − Φ(cut − 1)."""
    rng = np.random.default_rng(2)
    eff, err, cut = efficiency_at_mistag(rng.normal(1, 1, 50_000), rng.normal(0, 1, 50_000), 0.1, n_boot=100)
    assert cut == pytest.approx(norm.ppf(0.9), abs=0.02)
    assert eff == pytest.approx(1 - norm.cdf(norm.ppf(0.9) - 1), abs=3 * err + 0.002)
    assert 0.001 < err < 0.01


def test_rates_at_a_fixed_cut_of_gaussian_scores():
    """Signal N(1, 1), background N(0, 1) above the cut 1.2816 (= Φ⁻¹(0.9)): ε_B = 0.1 and
    ε_S = 1 − Φ(0.2816), with binomial errors √(ε(1 − ε)/n)."""
    from otviz.metrics.calibration import rates_at_cut

    rng = np.random.default_rng(4)
    es, ss, eb, sb = rates_at_cut(rng.normal(1, 1, 40_000), rng.normal(0, 1, 40_000), norm.ppf(0.9))
    assert eb == pytest.approx(0.1, abs=3 * sb) and sb == pytest.approx(np.sqrt(0.09 / 40_000), rel=0.05)
    assert es == pytest.approx(1 - norm.cdf(norm.ppf(0.9) - 1), abs=3 * ss)


def test_pca_is_whitened_on_the_target_and_cost_is_the_mean_squared_move():
    rng = np.random.default_rng(3)
    t = rng.standard_normal((5000, 6)) @ rng.standard_normal((6, 6)) + 3.0
    mean, proj = fit_pca(t, 3)
    u = project(t, mean, proj)
    np.testing.assert_allclose(u.mean(0), 0, atol=1e-10)
    np.testing.assert_allclose(np.cov(u.T), np.eye(3), atol=1e-10)
    assert transport_cost(np.zeros((3, 2)), np.ones((3, 2))) == 2.0


def test_whitened_view_sees_errors_across_a_thin_sheet_that_the_standardised_view_misses():
    """Points on a thin curved sheet in 16-d (one axis of spread 1, the rest 10⁻³): 'calibrated'
    copies of the data moved 2·10⁻³ (rms per axis) across the sheet. Per-feature standardisation leaves that move
    far below each feature's spread; in whitened coordinates the across-sheet spread more than doubles."""
    from otviz.metrics.calibration import fit_whitening

    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(16, 16)))

    def sheet(n, across):
        t = rng.normal(size=n)
        local = np.c_[t, np.zeros((n, 15))] + across * np.c_[np.zeros(n), rng.normal(size=(n, 15))]
        local[:, 1] += 0.3 * t ** 2  # curved, thin
        return local @ q.T

    data, calibrated = sheet(4000, 1e-3), sheet(4000, 1e-3) + 2e-3 * rng.normal(size=(4000, 15)) @ q[:, 1:].T
    mean, w = fit_whitening(data)
    u = (data - mean) @ w
    np.testing.assert_allclose(np.cov(u, rowvar=False), np.eye(16), atol=1e-8)
    plain = discriminator_auc(calibrated, data, seed=0, hidden=(32,), max_iter=100)
    white = discriminator_auc((calibrated - mean) @ w, u, seed=0, hidden=(32,), max_iter=100)
    assert plain < 0.6 and white > 0.9, (plain, white)


def test_unclosed_lists_the_cells_far_above_their_floor():
    import xarray as xr

    from otviz.metrics.calibration import COMPARISONS, unclosed

    auc = np.array([[[0.55, 0.52, 0.50, 0.51], [0.54, 0.99, 0.50, 0.52]]])  # (label, space, comparison)
    m = xr.Dataset({"auc": (("label", "space", "comparison"), auc),
                    "auc_error": (("label", "space", "comparison"), np.full_like(auc, 0.008))},
                   coords={"label": ["W"], "space": ["z128", "z128w"], "comparison": list(COMPARISONS)})
    assert unclosed(m) == [("W", "z128w", 0.99, 0.50)]  # 0.52 is 1.8σ above its floor: closed
    assert [c[1] for c in unclosed(m, n_sigma=1.0)] == ["z128", "z128w"]


def test_frozen_discriminator_sees_the_gap_close_under_the_exact_map_and_not_under_none():
    """The paper's Fig. 4a protocol: sim = N(Δ·e₁, I), data = N(0, I) in 6-d, Δ = 0.6. The sim-vs-data
    discriminator reaches the Bayes AUC Φ(Δ/√2); frozen, it scores the exactly calibrated held-out
    simulation (x − Δ·e₁) at 0.5, and an uncalibrated "calibrated" sample exactly as simulation."""
    from otviz.metrics.calibration import FROZEN, calibration_metrics, displayed_comparisons

    rng = np.random.default_rng(5)
    delta = 0.6
    sim = {lab: rng.standard_normal((3000, 6)) + delta * np.eye(6)[0] for lab in (1, 0)}
    data = {lab: rng.standard_normal((6000, 6)) for lab in (1, 0)}
    exact = {1: sim[1] - delta * np.eye(6)[0], 0: sim[0]}  # class 1 calibrated exactly, class 0 not at all
    lat = {"sim": sim, "data": data, "calibrated": exact}
    outs = {dom: {lab: {"z128p": z, "score": z[:, 0]} for lab, z in lat[dom].items()} for dom in lat}
    m = calibration_metrics(lat, outs, {1: "W", 0: "QCD"}, hidden=(16,), max_iter=100, seed=1)
    a = m["auc"].sel(space="z128")
    err = float(m["auc_error"].sel(label="W", space="z128", comparison=FROZEN))
    bayes = norm.cdf(delta / np.sqrt(2))
    assert float(a.sel(label="W", comparison="sim vs data")) == pytest.approx(bayes, abs=0.025)
    assert abs(float(a.sel(label="W", comparison=FROZEN)) - 0.5) < 3 * err + 0.005
    assert float(a.sel(label="QCD", comparison=FROZEN)) == float(a.sel(label="QCD", comparison="sim vs data"))
    assert displayed_comparisons(m) == ["sim vs data", FROZEN, "calibrated vs data", "data vs data"]
