"""The samples shipped in data/ load, validate, and carry the expected physics."""
import json
from pathlib import Path

import numpy as np
import pytest

from otviz.data import load
from otviz.data.pythia import WJET_SELECTION
from otviz.metrics import fit_peak
from otviz.physics import fourvec as fv

DATA = Path(__file__).resolve().parents[2] / "data"
EXPECTED = {
    "zee_train.nc": ("zee", 100_000),
    "zee_test.nc": ("zee", 50_000),
    "ttbar_train.nc": ("ttbar", 50_000),
    "ttbar_test.nc": ("ttbar", 25_000),
    "wjets.nc": ("wjets", 30_000),
    "wjets_centred.nc": ("wjets", 30_000),
}


@pytest.fixture(scope="module", params=sorted(EXPECTED))
def shipped(request):
    return request.param, load(DATA / request.param)


def test_loads_with_expected_counts_and_provenance(shipped):
    name, ds = shipped
    process, n = EXPECTED[name]
    assert ds.attrs["process"] == process
    assert ds.sizes["event"] >= n
    assert json.loads(ds.attrs["versions"])["pythia8mc"]
    assert ds.attrs["command"].startswith(f"otviz generate {process}")


def test_train_and_test_are_independent():
    seeds = {load(DATA / f).attrs["seed"] for f in EXPECTED}
    assert len(seeds) == len(EXPECTED)


@pytest.mark.parametrize("name", ["zee_train.nc", "zee_test.nc"])
def test_z_peak(name):
    ds = load(DATA / name)
    z = fit_peak(fv.invariant_mass(ds["z"].values.astype(np.float64)))
    assert abs(z.mass - 91.2) < 0.5
    assert 2.0 < z.gamma < 3.0  # Γ_Z = 2.495 GeV at parton level
    x = fit_peak(fv.invariant_mass(ds["x"].values.astype(np.float64)))
    assert abs(x.mass - 91.2) < 0.5 and x.sigma > z.sigma  # the detector smears


def test_ttbar_objects():
    ds = load(DATA / "ttbar_test.nc")
    jets = ds["x"].sel(x_particle=["jet1", "jet2", "jet3", "jet4"]).values.astype(np.float64)
    jpt = fv.pt(jets)
    assert (jpt > 20).all() and (np.diff(jpt, axis=1) <= 1e-3).all()
    w = ds["z"].sel(z_particle=["u", "d~"]).values.astype(np.float64)
    assert abs(np.median(fv.invariant_mass(w)) - 80.4) < 1.0


@pytest.mark.parametrize("name", ["wjets.nc", "wjets_centred.nc"])
def test_wjets(name):
    ds = load(DATA / name)
    s = WJET_SELECTION
    jet = ds["jet"].values.astype(np.float64)
    tol = 1e-3  # stored as float32
    assert ((jet[:, 0] > s["pt_min"] - tol) & (jet[:, 0] < s["pt_max"] + tol)).all()
    assert ((jet[:, 3] > s["m_min"] - tol) & (jet[:, 3] < s["m_max"] + tol)).all()
    c = ds["x"].values.astype(np.float64)
    p4 = fv.from_ptetaphim(c[..., 0], c[..., 1], c[..., 2], 0.0) * (c[..., 0] > 0)[..., None]
    tot = p4.sum(1)
    if ds.attrs["centred"]:
        np.testing.assert_allclose(fv.eta(tot), 0, atol=1e-3)
        np.testing.assert_allclose(fv.phi(tot), 0, atol=1e-3)
    else:
        assert fv.eta(tot).std() > 0.5
