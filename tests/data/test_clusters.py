"""The reference cluster model (otviz.data.clusters): conservation, charges, masses, the decay-angle
laws in the cluster rest frame, seeding, config errors and the CLI."""
import json
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from otviz.data.clusters import (ClusterModelConfig, draw_smeared_cos, generate_cluster_chunk, reshuffle,
                                 smeared_cos_cdf)
from otviz.data.clusterset import decay_axis, load_clusters, make_cluster_dataset
from otviz.errors import ConfigError
from otviz.physics.masses import mass_of_pid
from otviz.physics.twobody import decay_angles

N_EVENTS = 400


def _mass(p):
    return np.sqrt(np.clip(p[..., 3] ** 2 - (p[..., :3] ** 2).sum(-1), 0, None))


@pytest.fixture(scope="module")
def chunk():
    return generate_cluster_chunk(N_EVENTS, seed=11, chunk=0)


def _angles(r):
    axis, from_quark = decay_axis(None, cluster=r["cluster"], parton=r["parton"], perturbative=r["perturbative"])
    cos, phi = decay_angles(r["hadron"][:, 0], r["cluster"], axis)
    return cos, phi, from_quark


def test_four_momentum_conserved_per_cluster_and_event(chunk):
    r = chunk
    assert np.abs(r["cluster"] - r["hadron"].sum(1)).max() < 1e-9
    assert np.abs(r["cluster"] - r["parton"].sum(1)).max() < 1e-9
    tot = np.stack([np.bincount(r["event"], r["hadron"].sum(1)[:, k], minlength=N_EVENTS) for k in range(4)], -1)
    assert np.abs(tot - [0.0, 0.0, 0.0, 91.2]).max() < 1e-6
    assert len(np.unique(r["event"])) == N_EVENTS and np.all(np.diff(r["event"]) >= 0)


def test_masses_charges_and_species(chunk):
    r = chunk
    m = mass_of_pid(r["hadron_pid"])
    assert np.allclose(_mass(r["hadron"]), m, atol=1e-6)
    assert np.all(_mass(r["cluster"]) > m.sum(1))
    assert np.allclose(_mass(r["parton"]), 0.325, atol=1e-6)  # all u/d at the constituent mass
    assert set(np.unique(r["hadron_pid"])) <= {111, 211, -211}
    assert set(np.unique(r["parton_pid"][:, 0])) <= {1, 2} and set(np.unique(r["parton_pid"][:, 1])) <= {-1, -2}
    qch = {1: -1 / 3, 2: 2 / 3, -1: 1 / 3, -2: -2 / 3}
    cl_charge = np.vectorize(qch.get)(r["parton_pid"]).sum(1)
    h_charge = np.sign(r["hadron_pid"]) * (np.abs(r["hadron_pid"]) == 211)
    assert np.allclose(cl_charge, h_charge.sum(1))
    # hadron 0 holds parton 0's flavour: a u quark never makes a π⁻, a d quark never a π⁺
    assert not np.any((r["parton_pid"][:, 0] == 2) & (r["hadron_pid"][:, 0] == -211))
    assert not np.any((r["parton_pid"][:, 0] == 1) & (r["hadron_pid"][:, 0] == 211))


def test_cluster_mass_spectrum_and_fission(chunk):
    r = chunk
    M = _mass(r["cluster"])
    h, edges = np.histogram(M, bins=np.arange(0.5, 10.0, 0.25))
    assert 1.0 <= edges[h.argmax()] < 3.0
    cfg = ClusterModelConfig()
    P = cfg.cl_pow
    heavy = M**P > cfg.cl_max**P + (2 * cfg.m_light) ** P
    assert heavy.mean() < 0.01  # fission leaves (almost) no heavy cluster
    assert 0.05 < r["fission"].mean() < 0.95
    # each event's two hard-process quarks stay perturbative (the shower adds more)
    n_pert = np.bincount(r["event"], r["perturbative"].sum(1), minlength=N_EVENTS)
    assert np.all(n_pert >= 2)


def test_isotropic_clusters_have_uniform_angles(chunk):
    cos, phi, from_quark = _angles(chunk)
    iso = ~from_quark
    assert iso.sum() > 1000
    assert stats.kstest(cos[iso], stats.uniform(-1, 2).cdf).pvalue > 1e-3
    assert stats.kstest(phi[iso], stats.uniform(-np.pi, 2 * np.pi).cdf).pvalue > 1e-3


def test_perturbative_clusters_follow_herwig_smearing(chunk):
    cos, phi, from_quark = _angles(chunk)
    assert from_quark.sum() > 300
    S = ClusterModelConfig().smearing
    assert stats.kstest(cos[from_quark], lambda c: smeared_cos_cdf(c, S)).pvalue > 1e-3
    assert stats.kstest(phi[from_quark], stats.uniform(-np.pi, 2 * np.pi).cdf).pvalue > 1e-3
    # and not uniform
    assert stats.kstest(cos[from_quark], stats.uniform(-1, 2).cdf).pvalue < 1e-6


def test_smeared_cos_sampler_cdf_and_width():
    rng = np.random.default_rng(0)
    for S in (0.2, 0.78, 3.0):
        x = draw_smeared_cos(rng, 20000, S)
        assert x.min() >= -1 and x.max() <= 1
        assert stats.kstest(x, lambda c: smeared_cos_cdf(c, S)).pvalue > 1e-3
    assert np.all(draw_smeared_cos(rng, 10, 0.0) == 1.0)
    # closed form: mean of the truncated law = 1 − S + 2 e^{−2/S} / (1 − e^{−2/S})
    S = 0.78
    x = draw_smeared_cos(rng, 200000, S)
    e = np.exp(-2 / S)
    assert abs(x.mean() - (1 - S + 2 * e / (1 - e))) < 0.01


def test_larger_smearing_is_broader():
    means = []
    for S in (0.2, 2.0):
        r = generate_cluster_chunk(150, seed=5, chunk=0, config=ClusterModelConfig(smearing=S))
        cos, _, from_quark = _angles(r)
        means.append(cos[from_quark].mean())
    assert means[0] > 0.7 and means[1] < 0.3


def test_reshuffle_closed_form():
    # two back-to-back massless partons of 45.6 GeV put on masses 0.325: |p| = sqrt(45.6² − m²)
    p = np.array([[0, 0, 45.6, 45.6], [0, 0, -45.6, 45.6]])
    out = reshuffle(p, np.array([0, 0]), np.array([0.325, 0.325]))
    assert np.allclose(out[:, 3], 45.6) and np.allclose(np.abs(out[:, 2]), np.sqrt(45.6**2 - 0.325**2))
    with pytest.raises(ValueError, match="exceed"):
        reshuffle(p, np.array([0, 0]), np.array([50.0, 50.0]))


def test_seeded_reproducibility():
    a = generate_cluster_chunk(40, seed=3, chunk=1)
    b = generate_cluster_chunk(40, seed=3, chunk=1)
    c = generate_cluster_chunk(40, seed=3, chunk=2)
    for k in ("cluster", "hadron", "hadron_pid", "parton", "perturbative", "fission", "event"):
        assert np.array_equal(a[k], b[k])
    assert len(a["cluster"]) != len(c["cluster"]) or not np.array_equal(a["hadron"], c["hadron"])


@pytest.mark.parametrize("field, value", [("smearing", -0.1), ("cl_max", 0.0), ("cl_pow", "x"),
                                          ("fission_tries", 0.5), ("m_gluon", 0.5), ("cl_dir", 2)])
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ConfigError) as err:
        ClusterModelConfig(**{field: value}).validate()
    assert err.value.field == field and field in str(err.value)


def test_config_json_round_trip():
    cfg = ClusterModelConfig(smearing=0.3)
    assert ClusterModelConfig.from_json(cfg.to_json()) == cfg
    assert json.loads(cfg.to_json())["smearing"] == 0.3


def test_dataset_layout(chunk):
    r = chunk
    ds = make_cluster_dataset(r["cluster"], r["hadron"], r["hadron_pid"], r["event"], parton=r["parton"],
                              parton_pid=r["parton_pid"], perturbative=r["perturbative"])
    assert ds.sizes["cluster"] == len(r["cluster"]) and bool(ds["parton_mask"].all())


def test_cli_writes_a_loadable_file(tmp_path):
    out = tmp_path / "cl.nc"
    cmd = [sys.executable, "-m", "otviz.cli", "generate", "clusters", "--events", "60", "--seed", "4", "--workers", "1",
           "--chunk-size", "30", "--smearing", "0.5", "--out", str(out), "--quiet", "--json"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    st = json.loads(res.stdout.strip().splitlines()[-1])
    ds = load_clusters(out)
    assert st["events"] == 60 and ds.attrs["n_events"] == 60 and st["clusters"] == ds.sizes["cluster"]
    assert ds.attrs["source"] == "otviz reference cluster model" and ds.attrs["smearing"] == 0.5
    assert json.loads(ds.attrs["cluster_model_config"])["smearing"] == 0.5
    assert sorted(np.unique(ds["event"].values)) == list(range(60)) and "fission" in ds
    # the same events as one chunk of 30 + a second of 30, independent of the worker count
    direct = generate_cluster_chunk(30, seed=4, chunk=0, config=ClusterModelConfig(smearing=0.5))
    first = ds["event"].values < 30
    assert np.array_equal(ds["hadron"].values[first], direct["hadron"])
    bad = subprocess.run(cmd[:-4] + ["--smearing", "-1", "--out", str(tmp_path / "b.nc")], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode != 0 and "smearing" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("flags", [["--full"], ["--domain", "data"], ["--domain", "sim"], ["--centre"],
                                   ["--detector", "x.json"]])
def test_cli_refuses_the_pythia_only_flags(tmp_path, capsys, flags):
    from otviz.cli import main

    out = tmp_path / "cl.nc"
    assert main(["generate", "clusters", "--events", "5", "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"otviz generate: {flags[0]} applies to the Pythia processes (zee, ttbar, wjets, qcd), not clusters"]
    assert not out.exists()
