"""The Turbo-Sim KS table: values and floors against scipy's ks_2samp on the evaluation splits,
a closed-form KS for a shifted Gaussian, the published rows and the text formatter."""
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from scipy import stats
from scipy.special import ndtr

from otviz.metrics.fidelity import split_halves
from otviz.metrics.ks_table import OBSERVABLES, PUBLISHED_KS, format_ks_table, ks_table
from otviz.physics.ttbar import reconstruct_ttbar

TEST = Path(__file__).resolve().parents[2] / "data" / "ttbar_test.nc"
N = 4000


@pytest.fixture(scope="module")
def outputs():
    """Truth = the first N shipped test events; 'model' outputs = other shipped events, with the b
    quark's p_y shifted by +20 GeV in z̃ and jet1's energy scaled by 1.2 in x̃′."""
    with xr.open_dataset(TEST) as ds:
        z, x = ds.z.values[:N], ds.x.values[:N]
        z_other, x_other = ds.z.values[N:2 * N].copy(), ds.x.values[N:2 * N].copy()
    z_other[:, 2, 1] += 20.0
    x_other[:, 2, 3] *= 1.2
    return {"z": z, "x": x, "z_tilde": z_other, "x_tilde_prime": x_other}


def test_values_and_floors_are_scipy_ks_on_the_evaluation_splits(outputs):
    tab = ks_table(outputs, n_splits=3, seed=5)
    assert list(tab.observable.values) == list(OBSERVABLES)
    zi, xi = {"py": 1, "pz": 2, "E": 3}, {"py": 1, "pz": 2, "E": 3}
    cols = {}
    for k, c in zi.items():
        cols[f"b.{k}"] = outputs["z"][:, 2, c], outputs["z_tilde"][:, 2, c]
    for k, c in xi.items():
        cols[f"jet1.{k}"] = outputs["x"][:, 2, c], outputs["x_tilde_prime"][:, 2, c]
    rx, rp = reconstruct_ttbar(outputs["x"]), reconstruct_ttbar(outputs["x_tilde_prime"])
    for m in ("m_tt", "m_W_had", "m_t_lep", "m_t_had"):
        cols[m] = rx[m], rp[m]
    splits = list(split_halves(N, 3, 5))
    for obs, (truth, other) in cols.items():
        truth, other = np.float64(truth), np.float64(other)
        ref = np.mean([stats.ks_2samp(truth[a], other[b]).statistic for a, b in splits])
        ref_floor = np.mean([stats.ks_2samp(truth[a], truth[b]).statistic for a, b in splits])
        assert float(tab.ks.sel(observable=obs)) == pytest.approx(ref, rel=1e-12), obs
        assert float(tab.ks_floor.sel(observable=obs)) == pytest.approx(ref_floor, rel=1e-12), obs
    np.testing.assert_allclose(tab.ks_ratio, tab.ks / tab.ks_floor)
    # the shifted and scaled observables stand out, the others do not
    ratio = tab.ks_ratio.to_series()
    assert ratio["b.py"] > 3 and ratio["jet1.E"] > 3
    assert ratio[["b.pz", "b.E", "jet1.py", "jet1.pz"]].max() < 2  # (a heavier jet1 moves the masses)


def test_shifted_gaussian_has_the_closed_form_ks():
    """For N(0, 1) against N(δ, 1) KS = 2Φ(δ/2) − 1; the floor of two halves of h events is the
    mean of the Kolmogorov distribution, √(π/2)·ln 2, over √(h/2)."""
    rng = np.random.default_rng(11)
    n, delta = 20_000, 0.5  # halves of 10,000: KS scatter 0.007, bias +0.003
    z = rng.normal(size=(n, 6, 4))
    x = np.abs(rng.normal(50, 5, size=(n, 6, 4)))  # any x: only the b rows are checked here
    z_tilde = z.copy()
    z_tilde[:, 2, 1] = rng.normal(delta, 1.0, size=n)
    tab = ks_table({"z": z, "x": x, "z_tilde": z_tilde, "x_tilde_prime": x}, n_splits=2)
    ks, floor = float(tab.ks.sel(observable="b.py")), float(tab.ks_floor.sel(observable="b.py"))
    assert ks == pytest.approx(2 * ndtr(delta / 2) - 1, abs=0.02)
    assert floor == pytest.approx(np.sqrt(np.pi / 2) * np.log(2) / np.sqrt(n / 4), rel=0.3)


def test_published_rows_and_goal(outputs):
    tab = ks_table(outputs, n_splits=1)
    pub = tab.published.to_pandas()
    # the slide, ×10⁻²: OTUS m_t^had 24.9, Turbo-Sim p_y^b 2.06
    assert pub.loc["OTUS", "m_t_had"] == pytest.approx(0.249)
    assert pub.loc["Turbo-Sim", "b.py"] == pytest.approx(0.0206)
    assert len(PUBLISHED_KS["OTUS"]) == len(PUBLISHED_KS["Turbo-Sim"]) == len(OBSERVABLES) == 10
    floor, otus = tab.ks_floor.values, pub.loc["OTUS"].values
    comp = np.array(["." in o for o in OBSERVABLES])
    np.testing.assert_allclose(tab.goal[~comp], np.maximum(otus, 1.5 * floor)[~comp])
    np.testing.assert_allclose(tab.goal[comp], np.minimum(np.maximum(otus, 1.5 * floor), 3 * floor)[comp])


def test_formatter_prints_every_row_in_percent(outputs):
    tab = ks_table(outputs, n_splits=1)
    text = format_ks_table(tab)
    lines = text.splitlines()
    assert len(lines) == 2 + 10
    assert "OTUS" in lines[1] and "Turbo-Sim" in lines[1] and "floor" in lines[1]
    row = next(line for line in lines if "m_t^had" in line)
    assert row.split()[-2:] == ["24.90", "8.19"]
    assert f"{100 * float(tab.ks.sel(observable='m_t_had')):.2f}" in row
    assert lines[2].startswith("Z space") and "p_y(b)" in lines[2]
    assert sum(line.startswith(("Z space", "X space", "Reconstructed physics")) for line in lines) == 3
