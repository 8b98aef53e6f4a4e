"""Generation of each process in-process (small chunks): physics content of z and x."""
import numpy as np
import pytest

from otviz.data.pythia import WJET_SELECTION, generate_chunk, get_process, pythia_settings
from otviz.physics import fourvec as fv


@pytest.fixture(scope="module")
def zee():
    return generate_chunk("zee", 600, seed=3)


@pytest.fixture(scope="module")
def ttbar():
    return generate_chunk("ttbar", 120, seed=3)


def test_zee_partons_and_reconstructed_electrons(zee):
    z, x = zee["z"], zee["x"]
    assert z.shape == x.shape == (600, 2, 4)
    # z: on-shell electrons from the Z decay at Pythia's m_e = 0.000511 GeV (its table rounds the
    # PDG 0.51099895 MeV). E² − |p|² in float64 loses ≈ k·eps·E² to cancellation, i.e.
    # δm ≈ k·eps·E²/(2 m_e) = k · 0.44 eV at E = 45 GeV (k · 54 eV at 500 GeV); Pythia's boosts
    # reach k ≈ 40 here, k = 100 is allowed: 44 eV at 45 GeV, 5 keV (1 %) at 500 GeV.
    # (The old atol of 2 MeV also passed m = 0, a massless or float32-stored record.)
    m_e = 0.000511
    tol = 100 * np.finfo(np.float64).eps * z[..., 3] ** 2 / (2 * m_e)
    assert (np.abs(fv.mass(z) - m_e) <= tol).all()
    assert abs(np.median(fv.mass(z)) / m_e - 1) < 1e-6
    assert abs(m_e / 0.51099895e-3 - 1) < 3e-6  # Pythia's value is the PDG one, rounded
    mz = fv.invariant_mass(z)
    assert (mz > 60).all() and abs(np.median(mz) - 91.2) < 1.5
    # x: massless, accepted, matched to the parton of the same charge (ordering e-, e+)
    np.testing.assert_allclose(fv.mass2(x), 0.0, atol=1e-6 * (x[..., 3] ** 2).max())
    assert (fv.pt(x) > 10).all() and (np.abs(fv.eta(x)) < 2.47).all()
    dr = fv.delta_r(fv.eta(x), fv.phi(x), fv.eta(z), fv.phi(z))
    assert np.mean(dr < 0.05) > 0.97
    assert 0.1 < 600 / zee["n_generated"] < 0.8


def test_ttbar_partons_and_detector_objects(ttbar):
    z, x = ttbar["z"], ttbar["x"]
    assert z.shape == x.shape == (120, 6, 4)
    e, nu, b, bb, u, db = (z[:, i] for i in range(6))
    assert abs(np.median(fv.invariant_mass(np.stack([e, nu], 1))) - 80.4) < 3  # W -> e nu
    assert abs(np.median(fv.invariant_mass(np.stack([u, db], 1))) - 80.4) < 3  # W -> u d~
    assert abs(np.median(fv.invariant_mass(np.stack([b, u, db], 1))) - 172.5) < 4  # t -> b u d~
    assert abs(np.median(fv.invariant_mass(np.stack([bb, e, nu], 1))) - 172.5) < 4  # t~ -> b~ e nu~
    np.testing.assert_allclose(fv.mass(b), 4.8, atol=0.2)
    jets = x[:, 2:]
    jpt = fv.pt(jets)
    assert (jpt > 20).all() and (np.abs(fv.eta(jets)) < 4.5).all()
    assert (np.diff(jpt, axis=1) <= 0).all()  # ordered by pT
    met = x[:, 1]
    assert (met[:, 2] == 0).all()
    np.testing.assert_allclose(met[:, 3], fv.pt(met), rtol=1e-12)
    # MET points along the neutrino: correlation of the x components
    assert np.corrcoef(met[:, 0], nu[:, 0])[0, 1] > 0.7


def test_wjets_selection_and_constituents():
    out = generate_chunk("wjets", 40, seed=4)
    cen = generate_chunk("wjets", 40, seed=4, centre=True)
    s = WJET_SELECTION
    jpt, jeta, jphi, jm = out["jet"].T
    assert ((jpt > s["pt_min"]) & (jpt < s["pt_max"]) & (np.abs(jeta) < s["eta_max"])).all()
    assert ((jm > s["m_min"]) & (jm < s["m_max"])).all()
    c = out["x"]
    assert c.shape == (40, 50, 3)
    pt = c[..., 0]
    assert (np.diff(pt, axis=1) <= 0).all()  # leading first, zero padding last
    # constituents sum back to the jet: reclustering conserves 3-momentum; storing the R = 0.07
    # subjets as massless (pT, η, φ) keeps px, py, pz and lowers only E, hence the jet mass a little
    p4 = fv.from_ptetaphim(pt, c[..., 1], c[..., 2], 0.0) * (pt > 0)[..., None]
    np.testing.assert_allclose(fv.pt(p4.sum(1)), jpt, rtol=1e-6)
    mj = fv.invariant_mass(p4)
    assert (mj <= jm * (1 + 1e-6)).all() and (mj > 0.9 * jm).all()
    # the quarks from the W decay reconstruct the W and sit inside the jet
    q = out["z"]
    assert abs(np.median(fv.invariant_mass(q)) - 80.4) < 3
    assert (fv.delta_r(fv.eta(q), fv.phi(q), jeta[:, None], jphi[:, None]) < 1.0).mean() > 0.95
    # centred variant: same events, constituents shifted so the jet axis is at (0, 0)
    np.testing.assert_allclose(cen["jet"], out["jet"])
    p4c = fv.from_ptetaphim(cen["x"][..., 0], cen["x"][..., 1], cen["x"][..., 2], 0.0)
    p4c *= (cen["x"][..., 0] > 0)[..., None]
    tot = p4c.sum(1)
    np.testing.assert_allclose(fv.eta(tot), 0.0, atol=1e-5)
    np.testing.assert_allclose(fv.phi(tot), 0.0, atol=1e-5)


def test_same_seed_same_events_and_chunks_independent():
    a = generate_chunk("zee", 200, seed=9, chunk=0)
    b = generate_chunk("zee", 200, seed=9, chunk=0)
    c = generate_chunk("zee", 200, seed=9, chunk=1)
    np.testing.assert_array_equal(a["z"], b["z"])
    np.testing.assert_array_equal(a["x"], b["x"])
    assert not np.allclose(a["z"][:10], c["z"][:10])


def test_settings_and_errors():
    s = pythia_settings("zee", seed=5, fast=True)
    assert "Random:seed = 5" in s and "HadronLevel:all = off" in s
    assert "HadronLevel:all = off" not in pythia_settings("zee", seed=5, fast=False)
    with pytest.raises(ValueError, match="unknown process 'foo'"):
        get_process("foo")


def test_each_pythia_copies_the_process_defaults_and_gives_a_fresh_pythias_events():
    import awkward as ak
    import pythia8mc

    from otviz.data import pythia as gen

    settings = pythia_settings("zee", 4321, fast=True)
    fresh = pythia8mc.Pythia("", False)  # the reference: Pythia's XML database read anew
    for s in settings:
        assert fresh.readString(s)
    assert fresh.init()
    copies = [gen.make_pythia(settings) for _ in range(2)]
    ref = fresh.nextBatch(40).prt.p
    for py in copies:
        got = py.nextBatch(40).prt.p
        for k in ("px", "py", "pz", "e"):
            assert ak.all(got[k] == ref[k])
        assert py.rndm.getState().sequence == fresh.rndm.getState().sequence
    # the defaults are read once per process and stay pristine (a chunk's settings go to its copy)
    assert gen._defaults() is gen._defaults()
    assert gen._defaults().settings.mode("Random:seed") == -1
    assert not gen._defaults().settings.flag("WeakSingleBoson:ffbar2gmZ")
    assert copies[0].settings.mode("Random:seed") == 4321
