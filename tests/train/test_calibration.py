"""OT calibration run end to end on a case whose answer is known: "data" latents are a known convex
(affine, symmetric positive definite) transform of simulated ones, so the OT map is that transform."""
import json

import numpy as np
import pytest
import xarray as xr

import otviz
from otviz.data.toy import multiplicity_jets
from otviz.errors import ConfigError
from otviz.models.tagger import TaggerModelConfig
from otviz.ot.gaussian import l2_uvp
from otviz.train.calibration import CalibrationConfig, CalibrationRun, otcal_wjets_config, read_points
from otviz.train.tagger import TaggerConfig, TaggerRun, write_latents

SMALL = TaggerModelConfig(phi_hidden=(32,), phi_out=32, f_hidden=(32,))
FAST_MAP = dict(steps=120, g_steps=4, f_steps=2, batch=256, pretrain_steps=20, log_every=20, checkpoint_every=40)
SCALE, SHIFT = 1.3, 0.5  # data z = SCALE·z' + SHIFT with z' ~ the simulated law: T*(z) = SCALE·z + SHIFT


def true_map(z):
    return SCALE * z + SHIFT


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("cal")
    files = {}
    for name, lam, seed in (("sig_sim", 12.0, 1), ("bkg_sim", 8.0, 2), ("sig_data", 12.0, 3), ("bkg_data", 8.0, 4)):
        files[name] = d / f"{name}.nc"
        multiplicity_jets(1600, lam, seed=seed).to_netcdf(files[name], engine="h5netcdf")
    TaggerRun(d / "tagger", TaggerConfig(model="toy", signal=str(files["sig_sim"]), background=str(files["bkg_sim"]),
                                         epochs=2, batch_size=128, device="cpu", model_config=SMALL)).run_blocking()
    ds = write_latents(d / "tagger", [files[k] for k in ("sig_sim", "bkg_sim", "sig_data", "bkg_data")],
                       d / "raw.nc", labels=[1, 0, 1, 0], domains=["sim", "sim", "data", "data"])
    is_data = ds["domain"].values == "data"
    z = ds["z128"].values.copy()
    z[is_data] = true_map(z[is_data])
    ds["z128"].values = z
    ds.to_netcdf(d / "latents.nc", engine="h5netcdf")
    return d


def config(setup, **kw):
    return otcal_wjets_config(**{"latents": str(setup / "latents.nc"), "device": "cpu", "disc_hidden": (32,),
                                 "disc_max_iter": 60, "map_config": FAST_MAP, **kw})


def test_calibration_recovers_the_known_map_and_closes_the_gap(setup, tmp_path):
    run = CalibrationRun(tmp_path / "cal", config(setup))
    events = []
    assert run.run_blocking(events.append) == "done", run.message
    assert [e for e in events if e["type"] == "epoch"][-1]["epoch"] == 2 * FAST_MAP["steps"]
    loaded = otviz.load_run(tmp_path / "cal")
    assert loaded.kind == "otcal"
    z = xr.open_dataset(setup / "raw.nc", engine="h5netcdf")
    for lab in (1, 0):
        zs = z["z128"].values[(z["domain"].values == "sim") & (z["label"].values == lab)]
        uvp = l2_uvp(loaded.model.transport(zs, lab), true_map(zs), float(np.var(true_map(zs), 0).sum()))
        assert uvp < 3.0, f"class {lab}: L2-UVP {uvp:.2f} % against the known map"
    m = loaded.metrics
    auc = m["auc"]
    for lab in ("W", "QCD"):
        before = float(auc.sel(label=lab, space="z128", comparison="sim vs data"))
        after = float(auc.sel(label=lab, space="z128", comparison="calibrated vs data"))
        floor = float(auc.sel(label=lab, space="z128", comparison="data vs data"))
        frozen = float(auc.sel(label=lab, space="z128", comparison="calibrated vs data (sim-vs-data D)"))
        assert before > 0.9 and after < max(floor, 0.5) + 0.1, (lab, before, after, floor)
        assert frozen < max(floor, 0.5) + 0.1, (lab, frozen, floor)
        assert float(auc.sel(label=lab, space="score", comparison="calibrated vs data")) < 0.6
    eff, err = m["efficiency"], m["efficiency_error"]
    gap = abs(float(eff.sel(domain="calibrated") - eff.sel(domain="data")))
    assert gap < 3 * float(np.hypot(err.sel(domain="calibrated"), err.sel(domain="data")))
    for rate in ("efficiency_at_data_cut", "mistag_at_data_cut"):  # the data's working point in every domain
        r, e = m[rate], m[rate + "_error"]
        assert abs(float(r.sel(domain="calibrated") - r.sel(domain="data"))) < 3 * float(
            np.hypot(e.sel(domain="calibrated"), e.sel(domain="data"))) + 0.01, rate
    assert float(m["mistag_at_data_cut"].sel(domain="data")) == pytest.approx(0.1, abs=0.01)
    assert float(m["transport_cost"].sel(label="W")) > 0
    pts = read_points(tmp_path / "cal")
    assert pts["z128"].dims == ("label", "domain", "point", "latent") and list(pts.domain.values) == ["sim", "data", "calibrated"]
    assert pts["pca_projection"].shape[1:] == (128, 5)


def test_cancel_then_resume_finishes_with_the_same_maps(setup, tmp_path):
    whole = CalibrationRun(tmp_path / "a", config(setup, disc_max_iter=5))
    assert whole.run_blocking() == "done"
    run = CalibrationRun(tmp_path / "b", config(setup, disc_max_iter=5))

    def stop(ev):
        if ev["type"] == "epoch" and ev["epoch"] >= 60:
            run.cancel()

    assert run.run_blocking(stop) == "cancelled"
    assert list((tmp_path / "b").glob("map_*.ckpt")) and not (tmp_path / "b" / "model.pt").exists()
    again = CalibrationRun(tmp_path / "b")
    assert again.run_blocking() == "done"
    x = np.random.default_rng(0).standard_normal((50, 128)).astype(np.float32)
    a, b = otviz.load_run(tmp_path / "a").model, otviz.load_run(tmp_path / "b").model
    for lab in (1, 0):
        np.testing.assert_allclose(a.transport(x, lab), b.transport(x, lab), atol=1e-5)
    np.testing.assert_array_equal(a.transport(x, "W"), a.transport(x, 1))  # classes by name too
    with pytest.raises(ValueError, match=r"no map for class 'Z' \(have 1 \(W\), 0 \(QCD\)\)"):
        a.transport(x, "Z")


def test_config_validation_and_missing_inputs(setup, tmp_path):
    with pytest.raises(ConfigError, match="fit_fraction"):
        config(setup, fit_fraction=1.5).validate()
    with pytest.raises(ConfigError, match="OTMapConfig.steps = 0") as err:
        CalibrationConfig.from_json(json.dumps({"kind": "otcal", "map_config": {"steps": 0}}))
    assert err.value.path == "map_config.steps"
    with pytest.raises(ConfigError, match="target_domain"):
        config(setup, target_domain="sim").validate()
    with pytest.raises(FileNotFoundError, match="nope.nc"):
        CalibrationRun(tmp_path / "x", config(setup, latents=str(tmp_path / "nope.nc")))
    assert not (tmp_path / "x").exists()
    cfg = config(setup)
    assert CalibrationConfig.from_json(cfg.to_json()).to_json() == cfg.to_json()


def test_otviz_train_otcal(setup, tmp_path, capsys):
    from otviz.cli import main

    out = tmp_path / "cli"
    assert main(["train", "otcal-wjets", "--data", str(setup / "latents.nc"), "--steps", "30", "--device", "cpu",
                 "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "one ICNN OT map per class" in text and "calibrated vs data" in text and "signal efficiency" in text
    assert (out / "metrics.nc").exists() and (out / "points.nc").exists()
    # otviz evaluate prints the stored table (the same text as at the end of training), never rewriting it
    stamp = (out / "metrics.nc").stat().st_mtime_ns
    assert main(["evaluate", str(out)]) == 0
    table = capsys.readouterr().out
    assert table.strip() and table.strip() in text
    assert main(["evaluate", str(out), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert 0.0 <= got["W score calibrated vs data"] <= 1.0 and len(got) == 2 * 4 * 4  # class × space × comparison
    assert (out / "metrics.nc").stat().st_mtime_ns == stamp
    assert main(["evaluate", str(out), "--table"]) == 2
    assert "--table needs tt̄ runs" in capsys.readouterr().err
    assert main(["evaluate", str(out), "--test", "x.nc"]) == 2
    assert "evaluated when its training ended; --test does not apply to it" in capsys.readouterr().err
    # otviz latents: the tagger's z128 of jet files, domain from the file name's suffix
    files = [str(setup / f"{n}.nc") for n in ("sig_sim", "bkg_data")]
    assert main(["latents", str(setup / "tagger"), *files, "--labels", "1", "0", "--max-events", "100",
                 "--out", str(tmp_path / "lat.nc")]) == 0
    assert "z128 of 200 jets (data label 0: 100, sim label 1: 100)" in capsys.readouterr().out
    assert main(["latents", str(out), *files, "--out", str(tmp_path / "x.nc")]) == 2
    assert "not a tagger run" in capsys.readouterr().err
