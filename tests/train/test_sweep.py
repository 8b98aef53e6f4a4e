"""otviz sweep: a 2×2 grid on a tiny otus-zee config as Dask tasks, sweep.nc against each run's own
files, skipping finished runs, resuming an interrupted one, one-line errors for bad settings."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from otviz import kinds
from otviz.errors import ConfigError
from otviz.train import sweep
from otviz.train.products import read_metrics

ROOT = Path(__file__).resolve().parents[2]
TRAIN = str(ROOT / "data" / "zee_train.nc")
GRID = {"lam": ["1", "20"], "beta_anchor": ["0", "50"]}


def _options(test):
    return dict(epochs=2, finetune_epochs=0, max_events=1000, batch_size=500, n_projections=20, train_data=TRAIN,
                test_data=str(test), device="cpu", checkpoint_every=1)


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The grid trained once by ``otviz sweep`` (a subprocess), its first run interrupted before."""
    from otviz.data.io import load, save
    from otviz.train import TrainingRun

    base = tmp_path_factory.mktemp("sweep")
    test = base / "test.nc"
    save(load(ROOT / "data" / "zee_test.nc").isel(event=slice(0, 1000)), test)
    out = base / "out"
    opts = _options(test)
    plan = sweep.plan_sweep("otus-zee", GRID, out, **opts)
    first = TrainingRun(plan.rundirs[0], plan.configs[0])

    def stop_after_one_epoch(ev):
        if ev["type"] == "checkpoint" and ev["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        first.run_blocking(stop_after_one_epoch)
    before = json.loads((plan.rundirs[0] / "history.json").read_text())
    cmd = [sys.executable, "-m", "otviz.cli", "sweep", "otus-zee", "--set", "lam=1,20", "--set", "beta_anchor=0,50",
           "--out", str(out), "--workers", "2", "--epochs", "2", "--finetune-epochs", "0", "--max-events", "1000",
           "--batch-size", "500", "--n-projections", "20", "--data", TRAIN, "--test", str(test), "--device", "cpu",
           "--checkpoint-every", "1"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(out=out, test=test, plan=plan, before=before, stdout=proc.stdout, stderr=proc.stderr)


def test_sweep_nc_holds_every_runs_metrics_over_the_grid(swept):
    plan = swept["plan"]
    ds = xr.load_dataset(swept["out"] / "sweep.nc", engine="h5netcdf")
    assert list(ds["status"].dims) == ["lam", "beta_anchor"]
    assert ds.lam.values.tolist() == [1.0, 20.0] and ds.beta_anchor.values.tolist() == [0.0, 50.0]
    assert (ds.status.values == "done").all()
    assert "otviz sweep otus-zee --set lam=1,20" in ds.attrs["command"] and ds.attrs["preset"] == "otus-zee"
    assert json.loads(ds.attrs["swept"]) == {"lam": [1.0, 20.0], "beta_anchor": [0.0, 50.0]}
    assert json.loads(ds.attrs["fixed"])["epochs"] == 2
    assert "sweep.nc: 4 runs over lam (2) × beta_anchor (2) (4 trained now, 0 finished before, 0 failed)" in \
        swept["stdout"]
    for point, rundir in zip(plan.points, plan.rundirs):
        one = ds.sel(lam=point["lam"], beta_anchor=point["beta_anchor"])
        assert str(one.run_dir.values) == rundir.name == f"lam={point['lam']:g}__beta_anchor={point['beta_anchor']:g}"
        stages = json.loads((rundir / "config.json").read_text())["stages"]
        assert [(s["name"], s["lam"], s["beta_e"], s["beta_d"]) for s in stages] == [
            ("anchor", point["lam"], point["beta_anchor"], point["beta_anchor"]), ("main", point["lam"], 0.0, 0.0)]
        history = json.loads((rundir / "history.json").read_text())
        assert int(one.epochs_done) == len(history) == 2
        for k in ("loss", "mse", "sw_z", "sw_x"):
            assert float(one[f"final_{k}"]) == history[-1][k] and np.isfinite(history[-1][k])
        assert float(one.train_seconds) == pytest.approx(sum(h["seconds"] for h in history), rel=1e-12)
        stored = read_metrics(rundir)
        for k in ("sw", "sw_floor", "ratio", "value", "floor"):
            np.testing.assert_array_equal(one[k].values, stored[k].values)
        ks = one.ratio.sel(statistic="ks")
        assert ks.sizes == {"comparison": 3, "quantity": 9} and np.isfinite(ks.values).all()
        assert np.isfinite(one.sw.values).all() and (one.sw.values > 0).all()
        assert float(one.m_ee_peak_shift) == stored.attrs["m_ee_peak_shift"]
        assert float(one.metrics_n_projections) == 1000  # the product's attribute, renamed off the setting


def test_interrupted_run_resumed_from_its_checkpoint(swept):
    rundir = swept["plan"].rundirs[0]
    history = json.loads((rundir / "history.json").read_text())
    assert len(swept["before"]) == 1 and history[0] == swept["before"][0]  # epoch 0 kept, not trained again
    assert history[1]["epoch"] == 1 and (rundir / "model.pt").exists()


def test_rerun_skips_finished_runs(swept):
    files = [d / f for d in swept["plan"].rundirs for f in ("model.pt", "checkpoint.pt", "history.json", "metrics.nc")]
    stamps = [f.stat().st_mtime_ns for f in files]
    seen = []
    ds = sweep.run_sweep("otus-zee", GRID, swept["out"], workers=2, progress=lambda d, t, m: seen.append((d, t)),
                         **_options(swept["test"]))
    assert [f.stat().st_mtime_ns for f in files] == stamps  # nothing trained or evaluated again
    assert ds.attrs["trained"] == 0 and seen == [(4, 4)]
    first = xr.load_dataset(swept["out"] / "sweep.nc", engine="h5netcdf")
    np.testing.assert_array_equal(ds.final_loss.values, first.final_loss.values)
    np.testing.assert_array_equal(ds.ratio.values, first.ratio.values)
    # other settings in the same directory are refused, naming the field, before anything is touched
    with pytest.raises(FileExistsError, match=r"lam=1__beta_anchor=0: holds a run with other settings "
                                              r"\(max_events: 1000 → 900\); give another output directory"):
        sweep.run_sweep("otus-zee", GRID, swept["out"], **{**_options(swept["test"]), "max_events": 900})
    assert [f.stat().st_mtime_ns for f in files] == stamps


def test_stage_settings_follow_the_preset():
    plan = sweep.plan_sweep("otus-zee", {"lam": [5], "beta_anchor": [0, 7], "decoder-finetune.lr": [1e-4]}, "o",
                            epochs=10, finetune_epochs=2)
    assert [p for p in plan.points] == [{"beta_anchor": 0.0}, {"beta_anchor": 7.0}]
    assert plan.fixed == {"lam": 5.0, "decoder-finetune.lr": 1e-4, "epochs": 10, "finetune_epochs": 2}
    c = plan.configs[1]
    assert [(s.name, s.epochs, s.lam, s.beta_e, s.beta_d, s.lr) for s in c.stages] == [
        ("anchor", 1, 5.0, 7.0, 7.0, 1e-3), ("main", 9, 5.0, 0.0, 0.0, 1e-3),
        ("decoder-finetune", 2, 5.0, 0.0, 0.0, 1e-4)]
    assert [d.name for d in plan.rundirs] == ["beta_anchor=0", "beta_anchor=7"]
    if "otus-ttbar" in kinds.presets():  # its anchors are off: beta_anchor goes on the first stage
        c = sweep.plan_sweep("otus-ttbar", {"beta_anchor": [50]}, "o", epochs=3).configs[0]
        assert (c.stages[0].beta_e, c.stages[0].beta_d) == (50.0, 50.0)
        assert all(s.beta_e == 0 for s in c.stages[1:])
    emd = sweep.plan_sweep("emdvae-wjets", {"n_betas": "3,4", "max_epochs": "2"}, "o")
    assert [len(c.steps) for c in emd.configs] == [4, 5] and [c.max_epochs for c in emd.configs] == [2, 2]


@pytest.mark.parametrize("grid, message", [
    ({"lamb": "1,2"}, r"^lamb: not a setting of otus-zee \(settings: epochs, .*lam, beta_e"),
    ({"lam": "1,x"}, r"^lam=x: must be a number$"),
    ({"lam": "-1,2"}, r"^lam=-1\.0: .*allowed \[0, 1e\+06\]$"),
    ({"epochs": "0,2"}, r"^epochs=0: .*allowed 1 … 5000$"),
    ({"max_events": "100,2.5"}, r"^max_events=2\.5: must be an integer"),
    ({"foo.lam": "1,2"}, r"^foo\.lam: no stage 'foo' in this otus-zee config \(stages: anchor, main"),
    ({"stages": "1,2"}, r"^stages: not a scalar setting"),
    ({"seed": "1,1"}, r"^seed: a value is given twice"),
])
def test_bad_settings_are_one_line_errors_naming_the_field(tmp_path, grid, message):
    with pytest.raises(ConfigError, match=message) as err:
        sweep.run_sweep("otus-zee", grid, tmp_path / "out")
    assert "\n" not in str(err.value) and not (tmp_path / "out").exists()


def test_cli_bad_setting_exits_2_with_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "otviz.cli", "sweep", "otus-zee", "--set", "lam=1,20",
                           "--set", "tau=1,-3", "--out", str(tmp_path / "out")], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("otviz sweep: --set tau=-3.0: ") and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


def test_sweep_prints_a_results_table_with_floors(swept):
    ds = xr.open_dataset(swept["out"] / sweep.SWEEP_FILE)
    lines = swept["stdout"].splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("lam "))
    assert lines[start].split()[:3] == ["lam", "beta_anchor", "status"] and "SW(x, x̃′) (floor)" in lines[start]
    row = lines[start + 1].split()
    p = ds.isel(lam=0, beta_anchor=0)
    sw = float(p.sw.sel(comparison="x_vs_x_tilde_prime"))
    ks = float(p.value.sel(comparison="x_vs_x_tilde_prime", quantity="m_ee", statistic="ks"))
    assert row[:3] == ["1", "0", "done"] and row[3] == f"{sw:.3g}" and row[5] == f"{ks:.4f}"
    assert len(lines) - start == 5  # a row per grid point
    assert "run 1/4: " in swept["stderr"] and ("training epoch" in swept["stderr"] or "metrics" in swept["stderr"])


def test_run_phase_reads_a_run_from_its_files(tmp_path):
    from otviz.train.config import otus_zee_config

    cfg = otus_zee_config(epochs=3, finetune_epochs=2)
    d = tmp_path / "r"
    d.mkdir()
    assert sweep.run_phase(d, cfg) == "starting"
    (d / "status.json").write_text(json.dumps({"status": "running"}))
    (d / "history.json").write_text(json.dumps([{"epoch": 0}, {"epoch": 1}]))
    assert sweep.run_phase(d, cfg) == "training epoch 3/5"
    (d / "status.json").write_text(json.dumps({"status": "done"}))
    assert sweep.run_phase(d, cfg) == "metrics"
    (d / "model.pt").write_bytes(b"")
    (d / sweep.DONE_FILE).write_text("{}")
    assert sweep.run_phase(d, cfg) == "done"


def test_info_describes_a_sweep_file(swept, capsys):
    from otviz.cli import main

    assert main(["info", str(swept["out"] / sweep.SWEEP_FILE)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("netCDF file, not an event sample (a sweep of otus-zee runs)")
    assert out[1].startswith("  dimensions: lam (2), beta_anchor (2)")
    assert "    lam(lam): 1.0, 20.0" in out


def test_combine_stacks_sweeps_of_two_kinds_along_a_new_dimension():
    import numpy as np
    import xarray as xr

    from otviz.train.sweep import combine

    f = [0.0, 0.1, 1.0]
    a = xr.Dataset({"ks_ratio": (("paired_fraction", "observable"), np.ones((3, 2))),
                    "final_sw_z": ("paired_fraction", [1.0, 2.0, 3.0])},
                   coords={"paired_fraction": f, "observable": ["b.py", "m_tt"]}, attrs={"preset": "otus-ttbar"})
    b = xr.Dataset({"ks_ratio": (("paired_fraction", "observable"), 2 * np.ones((3, 2))),
                    "final_w_x_tilde": ("paired_fraction", [0.5, 0.4, 0.3])},
                   coords={"paired_fraction": f, "observable": ["b.py", "m_tt"]}, attrs={"preset": "turbosim-ttbar"})
    ds = combine({"OTUS": a, "Turbo-Sim": b})
    assert list(ds.system.values) == ["OTUS", "Turbo-Sim"] and ds.ks_ratio.dims == ("system", "paired_fraction", "observable")
    assert float(ds.ks_ratio.sel(system="Turbo-Sim", paired_fraction=0.1, observable="m_tt")) == 2.0
    assert np.isnan(ds.final_w_x_tilde.sel(system="OTUS")).all() and ds.final_sw_z.sel(system="OTUS").values.tolist() == [1, 2, 3]
    assert ds.attrs["preset_Turbo-Sim"] == "turbosim-ttbar"


def test_a_combined_sweep_plots_one_line_per_system_against_the_paired_fraction():
    import json

    import numpy as np
    import xarray as xr

    from otviz.train import compare
    from otviz.train.sweep import combine

    def one(v):
        return xr.Dataset({"ks_ratio": (("paired_fraction", "observable"), np.full((2, 2), v))},
                          coords={"paired_fraction": [0.0, 1.0], "observable": ["b.py", "m_t_had"]},
                          attrs={"dims": json.dumps(["paired_fraction"]), "n_runs": 2})

    ds = combine({"OTUS": one(3.0), "Turbo-Sim": one(2.0)})
    assert compare.swept_dims(ds) == ["paired_fraction", "system"] and ds.attrs["n_runs"] == 4
    metrics = compare.sweep_metrics(ds)
    name = compare.default_metric(metrics)
    assert name == "KS/floor of m_t^had (slide table)"
    values = compare.metric_values(ds, metrics[name])
    assert values.sel(system="Turbo-Sim").values.tolist() == [2.0, 2.0]
