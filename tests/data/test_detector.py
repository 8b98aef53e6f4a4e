import dataclasses

import numpy as np
import pytest

from otviz.data import detector as det
from otviz.data.pythia import make_pythia, pythia_settings
from otviz.physics import fourvec as fv


@pytest.mark.parametrize("energy", [10.0, 50.0, 300.0])
def test_smeared_energy_resolution_matches_config(energy):
    res = det.Resolution(a=0.10, b=0.007, c=0.25)
    expected = np.sqrt(0.10**2 / energy + 0.007**2 + (0.25 / energy) ** 2)
    assert res.relative(energy) == pytest.approx(expected)
    n = 200_000
    e = det.smear_energy(np.full(n, energy), res, np.random.default_rng(7))
    rel = e / energy - 1
    # standard error of a Gaussian standard deviation: σ / sqrt(2n)
    assert rel.std() == pytest.approx(expected, abs=4 * expected / np.sqrt(2 * n))
    assert abs(rel.mean()) < 4 * expected / np.sqrt(n)


def test_jet_resolution_and_angles_from_calorimeter_object():
    cfg = det.DetectorConfig()
    rng = np.random.default_rng(3)
    true = fv.from_ptetaphim(np.full(100_000, 80.0), np.full(100_000, 0.4), np.full(100_000, 1.0), 0.0)
    reco = det.calorimeter_object(true, cfg.jet_energy, cfg.jet_angle, rng)
    e_true = true[0, 3]
    sig = cfg.jet_energy.relative(e_true)
    assert (fv.pt(reco) / 80.0 - 1).std() == pytest.approx(sig, rel=0.02)  # pT scales with E'/E
    assert (fv.eta(reco) - 0.4).std() == pytest.approx(cfg.jet_angle, rel=0.02)
    assert (fv.phi(reco) - 1.0).std() == pytest.approx(cfg.jet_angle, rel=0.02)
    np.testing.assert_allclose(fv.mass2(reco), 0.0, atol=1e-6 * reco[:, 3].max() ** 2)  # massless


def test_track_resolution():
    rng = np.random.default_rng(4)
    pt = np.full(100_000, 100.0)
    out = det.smear_pt_track(pt, 0.0005, 0.01, rng)
    assert (out / 100 - 1).std() == pytest.approx(np.hypot(0.05, 0.01), rel=0.02)


def test_config_json_round_trip():
    cfg = det.DetectorConfig(jet_energy=det.Resolution(0.8, 0.05, 1.0), electron_efficiency=0.9)
    back = det.DetectorConfig.from_json(cfg.to_json())
    assert back == cfg
    # a partial override keeps the defaults for everything else
    part = det.DetectorConfig.from_json('{"jet_r": 0.4}')
    assert part.jet_r == 0.4 and part.electron_energy == det.DetectorConfig().electron_energy


def test_met_balances_neutrinos_with_perfect_detector():
    """With zero resolution, full coverage and no efficiency loss, −(e + Σ jets) in the
    transverse plane equals the summed neutrino pT: transverse momentum is conserved."""
    perfect = dataclasses.replace(
        det.DetectorConfig(),
        electron_energy=det.Resolution(0, 0),
        jet_energy=det.Resolution(0, 0),
        electron_angle=0.0,
        jet_angle=0.0,
        calo_eta_max=det.ETA_FULL,
        electron_efficiency=1.0,
        electron_eta_max=det.ETA_FULL,
        electron_pt_min=0.0,
    )
    py = make_pythia(pythia_settings("ttbar", seed=11))
    prt = py.nextBatch(40).prt
    rng = np.random.default_rng(0)
    e, ok, used = det.reconstruct_electron(prt, 11, perfect, rng)
    jets, njets, jet_sum = det.reconstruct_jets(prt, used, perfect, rng)
    met = det.missing_momentum(jet_sum + e)
    import awkward as ak

    aid = abs(prt.id)
    nu = (prt.status > 0) & ((aid == 12) | (aid == 14) | (aid == 16))
    nu_px = ak.to_numpy(ak.sum(prt.p.px[nu], axis=1))
    nu_py = ak.to_numpy(ak.sum(prt.p.py[nu], axis=1))
    assert ok.sum() > 20
    np.testing.assert_allclose(met[ok, 0], nu_px[ok], atol=1e-6 * 1000)
    np.testing.assert_allclose(met[ok, 1], nu_py[ok], atol=1e-6 * 1000)
    assert (njets >= 2).all()
