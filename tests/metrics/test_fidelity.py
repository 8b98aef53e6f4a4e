import numpy as np
import pytest
from scipy import stats

from otviz.data import make_dataset
from otviz.metrics.fidelity import chi2_reduced, evaluate_otus, metrics_to_json, one_d_stats
from otviz.metrics.peak import fit_peak
from otviz.physics import fourvec as fv


class FakeModel:
    """encode/decode as fixed functions of the input (no training): a 'perfect' or biased model."""

    def __init__(self, shift=0.0):
        self.shift = shift

    def cpu(self):
        return self

    def eval(self):
        return self

    def encode(self, x, gen=None):
        return x.clone()

    def decode(self, z, gen=None):
        out = z.clone()
        out[..., 0] += self.shift
        return fv.minkowski(out[..., :3], 0.0)


def identity_sample(n=6000, seed=0):
    rng = np.random.default_rng(seed)
    p = fv.from_ptetaphim(rng.uniform(20, 60, (n, 2)), rng.normal(0, 1.5, (n, 2)), rng.uniform(-3, 3, (n, 2)), 0.0)
    return make_dataset(p, p, ("e-", "e+"), ("e-", "e+"), attrs={"process": "zee"})


def test_one_d_statistics_against_scipy_and_null():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=20000), rng.normal(size=20000)
    s = one_d_stats(a, b)
    assert s["ks"] == pytest.approx(stats.ks_2samp(a, b).statistic)
    assert s["w1"] == pytest.approx(stats.wasserstein_distance(a, b))
    chi2, dof = chi2_reduced(a, b)
    assert dof == 50 and 0.5 < chi2 < 1.6  # same distribution: χ²/dof ≈ 1
    assert chi2_reduced(a, b + 0.2)[0] > 5


def test_perfect_model_sits_on_the_floor_and_bias_is_seen():
    ds = identity_sample()
    perfect = evaluate_otus(FakeModel(), ds, n_projections=200, n_splits=2)
    # identical samples up to float32 re-computation of E: every ratio is 1
    np.testing.assert_allclose(perfect["ratio"].sel(comparison="x_vs_x_tilde_prime").values, 1.0, rtol=1e-4)
    np.testing.assert_allclose(perfect["sw_ratio"].values, 1.0, rtol=0.2)
    np.testing.assert_allclose(perfect["closure_mean_pull"].values, 0.0, atol=1e-4)
    np.testing.assert_allclose(perfect["closure_width_ratio"].values, 1.0, rtol=1e-4)
    pk = perfect["m_ee_peak"].sel(comparison="x_vs_x_tilde_prime")
    np.testing.assert_allclose(pk.sel(peak_sample="model"), pk.sel(peak_sample="truth"), rtol=1e-4)
    biased = evaluate_otus(FakeModel(shift=15.0), ds, n_projections=200, n_splits=2)
    r = biased["ratio"].sel(comparison="x_vs_x_tilde_prime", statistic="ks")
    assert float(r.sel(quantity="e-.px")) > 5 and float(r.sel(quantity="e+.px")) > 5
    assert float(r.sel(quantity="e-.py")) == pytest.approx(1.0)
    assert float(biased["closure_mean_pull"].sel(closure_quantity="e-.px")) > 0.3
    js = metrics_to_json(biased)
    q = js["comparisons"]["x_vs_x_tilde_prime"]["quantities"]["e-.px"]["ks"]
    assert set(q) == {"value", "floor", "ratio"} and q["ratio"] > 5


def test_peak_fit_recovers_breit_wigner_and_resolution():
    rng = np.random.default_rng(2)
    m = 91.19 + 2.5 / 2 * rng.standard_cauchy(400_000) + rng.normal(0, 1.0, 400_000)
    f = fit_peak(m)
    assert f.mass == pytest.approx(91.19, abs=0.03)
    assert f.gamma == pytest.approx(2.5, rel=0.05) and f.sigma == pytest.approx(1.0, rel=0.1)
    with pytest.raises(ValueError, match="too few"):
        fit_peak(np.array([90.0, 91.0]))


def test_ttbar_samples_offer_the_four_masses_as_quantities():
    """z and x of the shipped tt̄ test sample list m_tt, m_W^had, m_t^lep, m_t^had after their components;
    on z they peak at the W and top masses of the table."""
    import warnings

    import xarray as xr

    from otviz.metrics.fidelity import derived_masses, quantities
    from otviz.physics.masses import mass_of
    from otviz.physics.ttbar import reconstruct_ttbar

    with xr.open_dataset("data/ttbar_test.nc") as ds:
        z, x = ds["z"].values[:5000], ds["x"].values[:5000]
        zp = [str(p) for p in ds["z_particle"].values]
        xp = [str(p) for p in ds["x_particle"].values]
    masses = ["m_tt", "m_W_had", "m_t_lep", "m_t_had"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # listing names on an all-zero event warns nothing
        assert list(quantities(np.zeros((1, 6, 4)), zp, derived_masses(zp)))[-4:] == masses
    qz = quantities(z, zp, derived_masses(zp))
    assert abs(np.median(qz["m_W_had"]) - mass_of("W")) < 0.5
    assert abs(np.median(qz["m_t_had"]) - mass_of("t")) < 1.0
    qx = quantities(x, xp, derived_masses(xp))
    np.testing.assert_allclose(qx["m_t_lep"], reconstruct_ttbar(x.astype(np.float64))["m_t_lep"])


def test_restricted_decoder_outputs_are_drawn_in_the_region_per_event():
    """A decoder D(z) = z + N(0, 1) with S = {x₀ > 0}: on z = 0, P_D(S) = 1/2 and x̃′ given S is the
    half-normal, mean √(2/π); every x̃′ and x̃ lies in S; the pairing with z is kept."""
    from types import SimpleNamespace

    import torch

    from otviz.metrics.fidelity import model_outputs

    class Toy(torch.nn.Module):
        cfg = SimpleNamespace(acceptance="x0 > 0")

        def encode(self, x, gen=None):
            return x.clone()

        def decode(self, z, gen=None):
            return z + torch.randn(z.shape, generator=gen)

        def accepts(self, x):
            return x[:, 0, 0] > 0

    n = 40_000
    z = np.zeros((n, 1, 4), dtype=np.float32)
    z[n // 2:, 0, 1] = 100.0  # a second half told apart by another component
    out = model_outputs(Toy(), z, z.copy(), seed=3)
    for name in ("x_tilde_prime", "x_tilde"):
        assert (out[name][:, 0, 0] > 0).all()
    assert abs(out["p_accept"] - 0.5) < 4 * 0.5 / np.sqrt(n)
    x0 = out["x_tilde_prime"][:, 0, 0]
    assert abs(x0.mean() - np.sqrt(2 / np.pi)) < 4 * np.sqrt(1 - 2 / np.pi) / np.sqrt(n)
    np.testing.assert_allclose(out["x_tilde_prime"][:, 0, 1], z[:, 0, 1], atol=6)  # still D(z_i) of its own z_i
    plain = model_outputs(type("Free", (Toy,), {"cfg": SimpleNamespace(acceptance=None)})(), z, z.copy(), seed=3)
    assert "p_accept" not in plain and (plain["x_tilde_prime"][:, 0, 0] < 0).mean() > 0.45  # no cuts: untouched
