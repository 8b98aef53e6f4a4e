"""otviz.train.compare: readable metric names, sweep discovery, metrics over the swept dimensions,
config diffs of real configs, KS tables read from the shipped run's metrics.nc."""
import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from otviz.train import compare
from otviz.train.config import otus_ttbar_config, otus_zee_config

ROOT = Path(__file__).resolve().parents[2]
ZEE = ROOT / "data" / "pretrained" / "otus-zee"


def test_metric_labels_are_readable():
    assert compare.metric_label("ratio", {"comparison": "x_vs_x_tilde_prime", "quantity": "m_W_had", "statistic": "ks"}) \
        == ("KS/floor of m_W^had in x̃′", "")
    assert compare.metric_label("value", {"comparison": "z_vs_z_tilde", "quantity": "e-.px", "statistic": "w1"}) \
        == ("W₁ of p_x(e⁻) in z̃", "GeV")
    assert compare.metric_label("floor", {"comparison": "x_vs_x_tilde", "quantity": "m_ee", "statistic": "ks"}) \
        == ("KS floor of m_ee in x̃", "")
    assert compare.metric_label("sw", {"comparison": "x_vs_x_tilde_prime"}, {"sw_units": "GeV^2"}) == ("SW(x, x̃′)", "GeV²")
    assert compare.metric_label("sw_ratio", {"comparison": "z_vs_z_tilde"}) == ("SW/floor (z, z̃)", "")
    assert compare.metric_label("train_seconds", {}) == ("training time", "s")
    assert compare.metric_label("p_accept", {}) == ("P_D(S) (acceptance of D(z))", "")
    assert compare.setting_label("lam") == "λ (weight of SW(z, z̃))"
    assert compare.setting_label("anchor.lam") == "λ (weight of SW(z, z̃)) (anchor stage)"


def _fake_sweep(path: Path, lam=(1.0, 20.0), anchor=(0.0, 50.0)):
    """A sweep.nc shaped like otviz sweep's: metrics.nc's variables over (lam, beta_anchor)."""
    rng = np.random.default_rng(0)
    comps, qs, stats = ["z_vs_z_tilde", "x_vs_x_tilde_prime"], ["e-.px", "m_ee"], ["ks", "w1"]
    shape = (len(lam), len(anchor))
    ratio = np.arange(np.prod(shape) * 8, dtype=float).reshape(*shape, 2, 2, 2)
    ds = xr.Dataset(
        {"status": (("lam", "beta_anchor"), np.full(shape, "done")),
         "train_seconds": (("lam", "beta_anchor"), rng.uniform(1, 2, shape)),
         "ratio": (("lam", "beta_anchor", "comparison", "quantity", "statistic"), ratio),
         "sw": (("lam", "beta_anchor", "comparison"), rng.uniform(size=(*shape, 2))),
         "closure_mean_true": (("lam", "beta_anchor", "closure_quantity", "zbin"), np.ones((*shape, 1, 3))),
         "final_anchor_e": (("lam", "beta_anchor"), np.full(shape, np.nan))},
        coords={"lam": list(lam), "beta_anchor": list(anchor), "comparison": comps, "quantity": qs, "statistic": stats,
                "closure_quantity": ["e-.px"], "zbin": [0, 1, 2]},
        attrs={"dims": json.dumps(["lam", "beta_anchor"]), "sw_units": "GeV^2"})
    path.mkdir(parents=True)
    ds.to_netcdf(path / "sweep.nc", engine="h5netcdf")
    return ds


def test_find_sweeps_under_both_roots_and_read_their_metrics(tmp_path):
    runs, shipped = tmp_path / "runs", tmp_path / "pretrained"
    ds = _fake_sweep(runs / "sweep-lam")
    _fake_sweep(shipped / "ablation" / "tau")
    (runs / "not-a-sweep").mkdir()
    found = compare.find_sweeps([(runs, "runs"), (shipped, "pretrained"), (tmp_path / "missing", "x")])
    assert found == {"runs/sweep-lam": str(runs / "sweep-lam" / "sweep.nc"),
                     "pretrained/ablation/tau": str(shipped / "ablation" / "tau" / "sweep.nc")}
    loaded = compare.load_sweep(runs / "sweep-lam")  # a directory or its sweep.nc
    assert compare.swept_dims(loaded) == ["lam", "beta_anchor"]
    metrics = compare.sweep_metrics(loaded)
    # 2 scalars with values (all-NaN final_anchor_e left out), 8 ratios, 2 SW; bins (zbin) are not metrics
    assert len(metrics) == 1 + 8 + 2
    assert "training time [s]" in metrics and "SW(x, x̃′) [GeV²]" in metrics
    assert not any("closure" in k or "anchor term" in k for k in metrics)
    name = compare.default_metric(metrics)
    assert name == "KS/floor of m_ee in x̃′"
    values = compare.metric_values(loaded, metrics[name])
    assert values.dims == ("lam", "beta_anchor")
    np.testing.assert_array_equal(values.values,
                                  ds["ratio"].sel(comparison="x_vs_x_tilde_prime", quantity="m_ee", statistic="ks").values)
    assert metrics["W₁/floor of p_x(e⁻) in z̃"].key == "ratio[comparison=z_vs_z_tilde,quantity=e-.px,statistic=w1]"


def test_config_diff_of_two_real_configs():
    a = json.loads(otus_zee_config(epochs=90).to_json())
    b = otus_zee_config(epochs=90)
    b.stages[1].lam = 20.0
    b.batch_size = 2000
    rows = compare.config_diff({"A": a, "B": json.loads(b.to_json())})
    assert rows == [("stages[1].lam", ["1", "20"]), ("batch_size", ["5000", "2000"])]
    assert compare.format_diff(rows) == ["stages[1].lam: 1 → 20", "batch_size: 5000 → 2000"]
    # the shipped Z→ee run against a tt̄ config: other particles, λ, a field only one has ("kind")
    shipped = compare.read_config_dict(ZEE)
    tt = json.loads(otus_ttbar_config().to_json())
    diff = dict(compare.config_diff({"zee": shipped, "ttbar": tt}))
    assert diff["kind"] == ["—", "otus-ttbar"]
    assert diff["model_config.z_particles"] == ['["e-", "e+"]', '["e-", "nu_e~", "b", "b~", "u", "d~"]']
    assert diff["stages[0].lam"] == ["1", "20"]
    assert "seed" not in diff and "loss_space" not in diff  # equal fields are not listed
    # three runs: a field differing in any of them, each value in turn
    c = json.loads(b.to_json())
    c["stages"][1]["lam"] = 100.0
    assert compare.format_diff(compare.config_diff({"A": a, "B": json.loads(b.to_json()), "C": c}))[0] == \
        "stages[1].lam: 1 → 20 → 100"


def test_ks_table_reads_each_runs_metrics(tmp_path):
    m = xr.load_dataset(ZEE / "metrics.nc", engine="h5netcdf")
    df = compare.ks_table({"zee": str(ZEE), "empty": str(tmp_path)})
    assert list(df.columns) == ["observable", "zee: KS", "zee: KS/floor", "empty: KS", "empty: KS/floor"]
    row = df[df.observable == "m_ee [GeV]"].iloc[0]
    sel = dict(comparison="x_vs_x_tilde_prime", quantity="m_ee", statistic="ks")
    assert row["zee: KS"] == pytest.approx(float(m["value"].sel(sel)))
    assert row["zee: KS/floor"] == pytest.approx(float(m["ratio"].sel(sel)))
    assert np.isnan(row["empty: KS"])  # a run without metrics.nc: empty columns
    assert len(df) == m.sizes["quantity"]
    z = compare.ks_table({"zee": str(ZEE)}, comparison="z_vs_z_tilde")
    assert z.iloc[0]["observable"] == "p_x(e⁻) [GeV]"
    assert z.iloc[0]["zee: KS"] == pytest.approx(float(m["value"].sel(comparison="z_vs_z_tilde", statistic="ks",
                                                                      quantity="e-.px")))


def test_comparable_runs_lists_finished_otus_family_runs(tmp_path):
    runs = tmp_path / "runs"
    for name, cfg in (("sweep/lam=1", otus_zee_config(epochs=2)), ("tt", otus_ttbar_config(epochs=2))):
        d = runs / name
        d.mkdir(parents=True)
        (d / "config.json").write_text(cfg.to_json())
        (d / "model.pt").write_bytes(b"")
    unfinished = runs / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.json").write_text(otus_zee_config(epochs=2).to_json())
    out = compare.comparable_runs([(ZEE.parent, "pretrained", True), (runs, "runs", False)])
    assert out["pretrained/otus-zee"] == str(ZEE)
    assert out["runs/sweep/lam=1"] == str(runs / "sweep" / "lam=1") and out["runs/tt"] == str(runs / "tt")
    assert "runs/unfinished" not in out
    assert not any("emdvae" in k for k in out)  # EMD-VAE runs: not a kind `otviz evaluate` takes


TTBAR = ROOT / "data" / "pretrained" / "otus-ttbar"


def _table_copy(rundir: Path, scale: float = 2.0, floor_scale: float = 1.0, goal_scale: float = 1.0) -> Path:
    """A run directory holding the shipped tt̄ run's ks_table.nc with its KS × ``scale`` (floor,
    goal × their factors)."""
    from otviz.train.products import read_ks_table

    t = read_ks_table(TTBAR)
    t["ks"] = t.ks * scale
    t["ks_floor"] = t.ks_floor * floor_scale
    t["ks_ratio"] = t.ks / t.ks_floor
    t["goal"] = t.goal * goal_scale
    rundir.mkdir(parents=True)
    t.to_netcdf(rundir / "ks_table.nc", engine="h5netcdf")
    return rundir


def test_slide_ks_tables_side_by_side_with_one_floor_and_the_published_rows(tmp_path):
    from otviz.metrics.ks_table import PUBLISHED_KS
    from otviz.train.products import read_ks_table

    t = read_ks_table(TTBAR)
    other = _table_copy(tmp_path / "double")
    df, missing = compare.slide_ks_tables({"shipped": str(TTBAR), "double": str(other), "none": str(tmp_path)})
    assert missing == ["none"]  # no ks_table.nc: named, no columns
    assert list(df.columns) == ["space", "observable", "shipped: KS ×10⁻²", "shipped: KS/floor", "shipped: goal met",
                                "double: KS ×10⁻²", "double: KS/floor", "double: goal met", "floor ×10⁻²",
                                "goal ×10⁻²", "OTUS ×10⁻² (published)", "Turbo-Sim ×10⁻² (published)"]
    assert df.attrs["same_floor"] and df.attrs["same_goal"]
    assert list(df.observable) == ["p_y(b) [GeV]", "p_z(b) [GeV]", "E(b) [GeV]", "p_y(jet1) [GeV]",
                                   "p_z(jet1) [GeV]", "E(jet1) [GeV]", "m_tt [GeV]", "m_W^had [GeV]",
                                   "m_t^lep [GeV]", "m_t^had [GeV]"]
    assert list(df.space.unique()) == ["Z space", "X space", "Reconstructed physics"]
    np.testing.assert_allclose(df["shipped: KS ×10⁻²"], 100 * t.ks.values)
    np.testing.assert_allclose(df["double: KS ×10⁻²"], 200 * t.ks.values)
    np.testing.assert_allclose(df["double: KS/floor"], 2 * t.ks_ratio.values)
    np.testing.assert_allclose(df["floor ×10⁻²"], 100 * t.ks_floor.values)
    for model, values in PUBLISHED_KS.items():  # the slide's numbers, ×10⁻² as printed there
        np.testing.assert_allclose(df[f"{model} ×10⁻² (published)"], values)
    met = t.ks.values <= t.goal.values
    assert list(df["shipped: goal met"]) == ["✓" if m else "✗ misses" for m in met]
    assert df.attrs["n_test"] == {"shipped": int(t.attrs["n_test"]), "double": int(t.attrs["n_test"])}


def test_slide_ks_tables_give_each_run_its_floor_and_goal_when_they_differ(tmp_path):
    from otviz.train.products import read_ks_table

    t = read_ks_table(TTBAR)
    other = _table_copy(tmp_path / "other", scale=1.0, floor_scale=2.0, goal_scale=0.5)
    df, missing = compare.slide_ks_tables({"a": str(TTBAR), "b": str(other)})
    assert not missing and not df.attrs["same_floor"] and not df.attrs["same_goal"]
    assert "floor ×10⁻²" not in df and "goal ×10⁻²" not in df
    np.testing.assert_allclose(df["a: floor ×10⁻²"], 100 * t.ks_floor.values)
    np.testing.assert_allclose(df["b: floor ×10⁻²"], 200 * t.ks_floor.values)
    np.testing.assert_allclose(df["b: goal ×10⁻²"], 50 * t.goal.values)
    np.testing.assert_allclose(df["b: KS/floor"], t.ks_ratio.values / 2)
    assert compare.slide_ks_tables({"none": str(tmp_path)}) == (None, ["none"])
