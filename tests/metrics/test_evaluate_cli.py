import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from scipy.stats import ks_2samp, wasserstein_distance

from otviz.cli import main
from otviz.metrics.evaluate import format_summary

ROOT = Path(__file__).resolve().parents[2]
PRETRAINED = ROOT / "data" / "pretrained" / "otus-zee"


def test_evaluate_json_schema_and_stored_dataset(tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(PRETRAINED, run)
    for f in ("metrics.nc", "metrics.json"):
        (run / f).unlink(missing_ok=True)
    assert main(["evaluate", str(run), "--json", "--n-projections", "200"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"attrs", "comparisons", "closure"}
    assert set(out["comparisons"]) == {"z_vs_z_tilde", "x_vs_x_tilde", "x_vs_x_tilde_prime"}
    c = out["comparisons"]["x_vs_x_tilde_prime"]
    assert c["sw"] > 0 and c["sw_floor"] > 0 and abs(c["sw_ratio"] - c["sw"] / c["sw_floor"]) < 1e-9
    q = c["quantities"]
    assert set(q) == {f"{p}.{k}" for p in ("e-", "e+") for k in ("px", "py", "pz", "E")} | {"m_ee"}
    for stats in q.values():
        for s in ("ks", "w1", "chi2r"):
            assert stats[s]["floor"] > 0 and abs(stats[s]["ratio"] - stats[s]["value"] / stats[s]["floor"]) < 1e-9
    assert 85 < out["attrs"]["m_ee_peak_x"] < 95
    for comp in out["comparisons"].values():  # m_ee width of model and truth, side by side
        pk = comp["m_ee_peak"]
        assert set(pk["truth"]) == set(pk["model"]) == {"mass", "fwhm", "iqr"}
        assert 2 < pk["truth"]["iqr"] < 5 and 2 < pk["truth"]["fwhm"] < 6
        assert pk["iqr_ratio"] == pytest.approx(pk["model"]["iqr"] / pk["truth"]["iqr"])
    pk = out["comparisons"]["x_vs_x_tilde_prime"]["m_ee_peak"]
    assert pk["truth"]["fwhm"] == out["attrs"]["m_ee_fwhm_x"]
    text = format_summary(out)
    assert f"m_ee width: IQR {pk['model']['iqr']:.2f} GeV (truth {pk['truth']['iqr']:.2f}, ×{pk['iqr_ratio']:.2f})" in text
    assert set(out["closure"]["e-.E"]) == {"mean_pull", "width_ratio"}
    with xr.open_dataset(run / "metrics.nc", engine="h5netcdf") as ds:
        assert ds["value"].dims == ("comparison", "quantity", "statistic")
        assert ds["m_ee_peak"].dims == ("comparison", "peak_sample", "peak_statistic")
    assert json.loads((run / "metrics.json").read_text()) == out
    _assert_values(run, out)


# mean of the Kolmogorov distribution: E[√(n m/(n+m)) · D_KS] → √(π/2)·ln 2 for independent samples
KOLMOGOROV_MEAN = np.sqrt(np.pi / 2) * np.log(2)


def _assert_values(run, out):
    """The numbers, not only their identities: KS and W₁ with floors recomputed here with scipy on
    the documented splits, floors against the closed form, the shipped model against its ranges."""
    from otviz.data.io import load
    from otviz.metrics.fidelity import model_outputs
    from otviz.train.run import load_run

    test = load(ROOT / "data" / "zee_test.nc")
    o = model_outputs(load_run(run).model, test["z"].values, test["x"].values, seed=0)
    x, xp = o["x"].astype(np.float64), o["x_tilde_prime"].astype(np.float64)

    def mee(p4):
        s = p4.sum(1)
        return np.sqrt(np.maximum(s[:, 3] ** 2 - (s[:, :3] ** 2).sum(1), 0))

    n = len(x)
    assert out["attrs"]["n_test"] == n == 50_000 and out["attrs"]["n_half"] == n // 2
    rng = np.random.default_rng(0)  # the documented splits: 5 permutations, halves A and B
    splits = [(p[: n // 2], p[n // 2: 2 * (n // 2)]) for p in (rng.permutation(n) for _ in range(5))]
    cols = {"e-.pz": (x[:, 0, 2], xp[:, 0, 2]), "e+.E": (x[:, 1, 3], xp[:, 1, 3]), "m_ee": (mee(x), mee(xp))}
    q = out["comparisons"]["x_vs_x_tilde_prime"]["quantities"]
    for name, (t, m) in cols.items():
        for stat, fn in (("ks", lambda a, b: ks_2samp(a, b).statistic), ("w1", wasserstein_distance)):
            value = np.mean([fn(t[a], m[b]) for a, b in splits])
            floor = np.mean([fn(t[a], t[b]) for a, b in splits])
            assert q[name][stat]["value"] == pytest.approx(value, rel=1e-9), (name, stat)
            assert q[name][stat]["floor"] == pytest.approx(floor, rel=1e-9), (name, stat)
    # truth-vs-truth KS floors: two independent halves of 25,000 → 0.8687·√(2/25,000) = 0.0078;
    # averaged over 9 quantities × 5 splits (correlated), within 25 %
    ks_floor = KOLMOGOROV_MEAN * np.sqrt(2 / (n // 2))
    for comp in out["comparisons"].values():
        mean_floor = np.mean([st["ks"]["floor"] for st in comp["quantities"].values()])
        assert abs(mean_floor / ks_floor - 1) < 0.25, mean_floor
    # the shipped model (data/pretrained/README.md): components as close as two truth draws,
    # m_ee a few times the floor; SW² at its floor
    for comp in ("x_vs_x_tilde", "x_vs_x_tilde_prime"):
        c = out["comparisons"][comp]
        assert 0.9 < c["sw_ratio"] < 1.15 and 10 < c["sw_floor"] < 25  # GeV²
        for name, st in c["quantities"].items():
            if name != "m_ee":
                assert 0.8 < st["ks"]["ratio"] < 1.4 and 0.8 < st["w1"]["ratio"] < 1.4, (comp, name)
    m = q["m_ee"]
    assert 2 < m["ks"]["ratio"] < 5 and 2 < m["w1"]["ratio"] < 4.5 and 0.15 < m["w1"]["floor"] < 0.3  # GeV
    # the Z peak of the reconstructed electrons: m_Z = 91.19 GeV, no narrower than Γ_Z = 2.495 GeV
    pk = out["comparisons"]["x_vs_x_tilde_prime"]["m_ee_peak"]
    assert abs(pk["truth"]["mass"] - 91.19) < 0.5 and abs(pk["model"]["mass"] - 91.19) < 0.7
    assert 2.495 < pk["truth"]["fwhm"] < 5 and 2.495 < pk["model"]["fwhm"] < 5


def tiny_ttbar_run(root: Path) -> Path:
    """An otus-ttbar run trained here (1 epoch on 2000 events, no fine-tune) whose test sample is the
    first 2000 shipped tt̄ test events: the KS table of a real run in seconds."""
    from otviz.data.io import save

    with xr.open_dataset(ROOT / "data" / "ttbar_test.nc", engine="h5netcdf") as ds:
        save(ds.isel(event=slice(0, 2000)).load(), root / "ttbar_test_2k.nc")
    run = root / "tt-run"
    assert main(["train", "otus-ttbar", "--out", str(run), "--epochs", "1", "--finetune-epochs", "0",
                 "--max-events", "2000", "--batch-size", "1000", "--n-projections", "50",
                 "--test", str(root / "ttbar_test_2k.nc"), "--quiet"]) == 0
    return run


def _table_rows(text: str) -> dict[str, list[str]]:
    """Observable symbol → the numbers of its row in ``otviz evaluate --table``'s text."""
    rows = {}
    for line in text.splitlines():
        cells = line[22:].split()
        if len(cells) > 4 and cells[0] in SYMBOLS:
            rows[cells[0]] = cells[1:]
    return rows


SYMBOLS = ("p_y(b)", "p_z(b)", "E(b)", "p_y(jet1)", "p_z(jet1)", "E(jet1)", "m_tt", "m_W^had", "m_t^lep", "m_t^had")


def test_evaluate_table_of_ttbar_runs_is_ks_table_on_the_same_outputs(tmp_path, capsys):
    from otviz.data.io import load
    from otviz.metrics.fidelity import model_outputs
    from otviz.metrics.ks_table import OBSERVABLES, PUBLISHED_KS, ks_table
    from otviz.train.products import read_ks_table
    from otviz.train.run import load_run

    run = tiny_ttbar_run(tmp_path)
    capsys.readouterr()
    assert main(["evaluate", str(run), "--table", "--n-projections", "50", "--quiet"]) == 0
    text = capsys.readouterr().out
    test = load(tmp_path / "ttbar_test_2k.nc")
    ref = ks_table(model_outputs(load_run(run).model, test["z"].values, test["x"].values, seed=0))
    stored = read_ks_table(run)  # what the Residuals page shows
    for v in ("ks", "ks_floor", "goal"):
        np.testing.assert_array_equal(stored[v].values, ref[v].values)
    rows = _table_rows(text)
    assert list(rows) == list(SYMBOLS) and "2000" in text.splitlines()[0]
    for i, (sym, obs) in enumerate(zip(SYMBOLS, OBSERVABLES)):
        r = ref.sel(observable=obs)
        value, ratio, floor, goal, otus, turbo = rows[sym]
        assert value.endswith("*") == (float(r.ks) > float(r.goal)), sym  # * where it misses its goal
        assert float(value.rstrip("*")) == pytest.approx(100 * float(r.ks), abs=0.005), sym
        assert float(ratio) == pytest.approx(float(r.ks_ratio), abs=0.005)
        assert float(floor) == pytest.approx(100 * float(r.ks_floor), abs=0.005)
        assert float(goal) == pytest.approx(100 * float(r.goal), abs=0.005)
        assert (float(otus), float(turbo)) == (PUBLISHED_KS["OTUS"][i], PUBLISHED_KS["Turbo-Sim"][i])
    # floors of 1000-event halves: KS of two same-law samples ≈ √(π/2)·ln2/√500 ≈ 0.039
    assert 0.02 < float(ref.ks_floor.min()) and float(ref.ks_floor.max()) < 0.07
    assert float(ref.ks.sel(observable="m_t_had")) > float(ref.ks_floor.sel(observable="m_t_had"))  # one epoch: visibly off

    # two runs: a column per run, one floor column (same test sample and seed)
    shutil.copytree(run, tmp_path / "tt-copy")
    assert main(["evaluate", str(run), str(tmp_path / "tt-copy"), "--table", "--n-projections", "50", "--quiet"]) == 0
    text2 = capsys.readouterr().out
    head = text2.splitlines()[1].split()
    assert head[:3] == ["observable", "tt-run", "/floor"] and head[3:5] == ["tt-copy", "/floor"]
    rows2 = _table_rows(text2)
    for sym in SYMBOLS:
        assert rows2[sym][0:2] == rows2[sym][2:4] == rows[sym][0:2] and rows2[sym][4:] == rows[sym][2:]

    # a run that is not tt̄: one line naming it, exit 2, nothing evaluated
    before = (run / "ks_table.nc").stat().st_mtime_ns
    assert main(["evaluate", str(run), str(PRETRAINED), "--table", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(PRETRAINED) in err[0] and "not a tt̄ run" in err[0], err
    assert (run / "ks_table.nc").stat().st_mtime_ns == before


def test_evaluate_reads_a_shipped_run_and_never_rewrites_it(capsys):
    from pathlib import Path

    from otviz.cli import main

    run = Path(__file__).resolve().parents[2] / "data" / "pretrained" / "otus-ttbar"
    before = {f.name: f.read_bytes() for f in run.iterdir() if f.is_file()}
    assert main(["evaluate", str(run), "--table", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "a shipped run; its stored results (not recomputed, not rewritten)" in out and "wrote" not in out
    assert "m_t^had" in out and "OTUS pub." in out and "x̃′ = D(z) vs x" in out
    assert {f.name: f.read_bytes() for f in run.iterdir() if f.is_file()} == before
