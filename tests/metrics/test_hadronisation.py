"""Hadronisation metrics: a second draw of the truth sits at its floor, a wrong decay law does not;
min ΔR against a brute-force loop; species fractions."""
import numpy as np
import pytest

from otviz.data.clusterset import make_cluster_dataset
from otviz.metrics.hadronisation import (ANGLES, decay_observables, goal_table, hadronisation_metrics,
                                         mass_bin_labels, min_delta_r)
from otviz.physics import fourvec as fv
from otviz.physics import twobody

M_PI = 0.13957039


def _clusters(n=6000, seed=0):
    rng = np.random.default_rng(seed)
    M = rng.uniform(0.6, 5, n)
    P = rng.normal(0, 8, (n, 3))
    cl = np.concatenate([P, np.sqrt(M**2 + (P**2).sum(-1))[:, None]], -1)
    return cl, rng


def _decay(cl, rng, law="isotropic"):
    n = len(cl)
    c = rng.uniform(-1, 1, n) if law == "isotropic" else np.clip(1 - rng.exponential(0.3, n), -1, 1)
    m = np.full(n, M_PI)
    return twobody.two_body_decay(cl, m, m, c, rng.uniform(-np.pi, np.pi, n), twobody.helicity_axis(cl))


def _dataset(cl, had, events=None):
    n = len(cl)
    return make_cluster_dataset(cl, had, np.tile([211, -211], (n, 1)),
                                event=np.arange(n) // 5 if events is None else events)


def test_truth_redraw_is_at_floor_and_wrong_law_is_not():
    cl, rng = _clusters()
    ref = _dataset(cl, _decay(cl, rng))
    same = hadronisation_metrics(ref, _decay(cl, rng), np.tile([211, -211], (len(cl), 1)))
    wrong = hadronisation_metrics(ref, _decay(cl, rng, law="forward"))
    for obs in ANGLES + ("E", "pT"):
        for b in mass_bin_labels()[1:]:
            sel = dict(observable=obs, mass_bin=b, origin="all", statistic="w1")
            ratio = float(same["value"].sel(sel) / same["floor"].sel(sel))
            assert ratio < 2.0, (obs, b, ratio)
    sel = dict(observable="cos_theta", mass_bin="all", origin="all", statistic="w1")
    assert float(wrong["value"].sel(sel)) > 10 * float(wrong["floor"].sel(sel))
    # cos θ of a forward law with mean 1 − 0.3: W₁ to uniform (mean 0) is at least |0.7 − 0|
    assert float(wrong["value"].sel(sel)) > 0.5
    assert all(r["met"] for r in goal_table(same))
    assert not all(r["met"] for r in goal_table(wrong))
    assert same["species_generated"].values.tolist() == [1.0]
    assert int(same["n_clusters"].sel(mass_bin="all", origin="all")) == len(cl)


def test_decay_angles_are_the_drawn_ones():
    cl, rng = _clusters(500)
    c = rng.uniform(-1, 1, len(cl))
    phi = rng.uniform(-np.pi, np.pi, len(cl))
    m = np.full(len(cl), M_PI)
    had = twobody.two_body_decay(cl, m, m, c, phi, twobody.helicity_axis(cl))
    obs = decay_observables(_dataset(cl, had))
    np.testing.assert_allclose(obs["cos_theta"], c, atol=1e-9)
    np.testing.assert_allclose(np.angle(np.exp(1j * (obs["phi"] - phi))), 0, atol=1e-7)


def test_min_delta_r_brute_force():
    cl, rng = _clusters(60, seed=4)
    had = _decay(cl, rng)
    events = np.repeat(np.arange(20), 3)
    got = min_delta_r(_dataset(cl, had, events))
    for e in range(20):
        h = had[events == e].reshape(-1, 4)
        eta, phi = fv.eta(h), fv.phi(h)
        best = min(fv.delta_r(eta[i], phi[i], eta[j], phi[j]) for i in range(6) for j in range(6) if i != j)
        assert got[e] == pytest.approx(best, rel=1e-9)


def test_tiny_selections_give_nan_cells_not_errors_or_warnings():
    """Six clusters in two events: mass bins with 0–3 clusters, and the event-level min ΔR with
    two events, are NaN cells; the goal table marks them not evaluable ("n/a (N clusters)")
    instead of raising, and no warning (scipy's SmallSampleWarning) leaks."""
    import warnings

    from otviz.metrics.hadronisation import format_goal_row

    rng = np.random.default_rng(3)
    M = np.array([0.8, 0.9, 1.0, 1.1, 1.2, 4.0])  # five in 0–1.5 GeV, none in 1.5–3, one above 3
    P = rng.normal(0, 3, (6, 3))
    cl = np.concatenate([P, np.sqrt(M**2 + (P**2).sum(-1))[:, None]], -1)
    ref = _dataset(cl, _decay(cl, rng), events=np.array([0, 0, 0, 1, 1, 1]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = hadronisation_metrics(ref, _decay(cl, rng), np.tile([211, -211], (6, 1)))
        rows = goal_table(m)
    assert m["n_clusters"].sel(origin="all").values.tolist() == [6, 5, 0, 1]
    assert np.isnan(m["value"].sel(mass_bin=["1.5–3 GeV", "> 3 GeV"])).all()
    assert np.isnan(m["value"].sel(observable="min_dR")).all()  # 2 events: not evaluated
    low = [r for r in rows if r["mass_bin"] == "0–1.5 GeV"]
    assert all(np.isfinite(r["value"]) and r["met"] is not None for r in low)  # 5 clusters: halves of 2
    empty = [r for r in rows if r["mass_bin"] != "0–1.5 GeV"]
    assert len(empty) == 8 and all(r["met"] is None and np.isnan(r["ratio"]) for r in empty)
    assert format_goal_row(empty[0]) == "cos_theta  1.5–3 GeV    n/a (0 clusters)"
    assert format_goal_row(empty[1]).endswith("n/a (1 clusters)")
    # a selection whose halves hold no finite values (NaN generated hadrons): NaN, no error
    gen = _decay(cl, rng)
    gen[:, :, :] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bad = hadronisation_metrics(ref, gen)
    assert np.isnan(bad["value"].sel(observable="E")).all() and all(r["met"] is None for r in goal_table(bad))


def test_goal_row_text_carries_units():
    from otviz.metrics.hadronisation import format_goal_row

    row = {"observable": "phi", "mass_bin": "0–1.5 GeV", "value": 0.02, "floor": 0.01, "ratio": 2.5, "met": False}
    assert format_goal_row(row) == "phi        0–1.5 GeV    0.02 / 0.01 rad = 2.50  (above 2)"
    row = {"observable": "cos_theta", "mass_bin": "> 3 GeV", "value": 0.02, "floor": 0.015, "ratio": 4 / 3, "met": True}
    assert format_goal_row(row) == "cos_theta  > 3 GeV      0.02 / 0.015 = 1.33"
