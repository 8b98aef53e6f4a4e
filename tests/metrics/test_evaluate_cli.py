import json
import shutil
from pathlib import Path

import pytest
import xarray as xr

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
