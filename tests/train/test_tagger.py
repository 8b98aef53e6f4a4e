"""Tagger training end to end on a toy whose best possible AUC is known exactly, resume, NaN
roll-back, config errors, ``otviz train tagger-wjets`` and the latents file."""
import json

import numpy as np
import pytest
import torch
import xarray as xr

import otviz
from otviz.data.toy import multiplicity_jets, multiplicity_pmf
from otviz.errors import ConfigError
from otviz.metrics.roc import auc_from_pmfs, roc_auc
from otviz.models.tagger import TaggerModelConfig
from otviz.train.tagger import (TaggerConfig, TaggerRun, evaluate_files, read_evaluation, read_split,
                                tagger_wjets_config, write_latents)

LAMBDA_S, LAMBDA_B = 12.0, 8.0
SMALL = TaggerModelConfig(phi_hidden=(32,), phi_out=32, f_hidden=(32,))


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    d = tmp_path_factory.mktemp("toy")
    multiplicity_jets(3000, LAMBDA_S, seed=1).to_netcdf(d / "sig.nc", engine="h5netcdf")
    multiplicity_jets(3000, LAMBDA_B, seed=2).to_netcdf(d / "bkg.nc", engine="h5netcdf")
    return d / "sig.nc", d / "bkg.nc"


def toy_config(toy, epochs, **kw):
    kw = {"signal": str(toy[0]), "background": str(toy[1]), "batch_size": 128, "device": "cpu", "model_config": SMALL,
          **kw}
    return TaggerConfig(model="toy", epochs=epochs, **kw)


def test_the_tagger_reaches_the_bayes_optimal_auc_of_the_multiplicity_toy(toy, tmp_path):
    """Signal and background jets differ only in N ~ Poisson(12) vs Poisson(8) (given 1 ≤ N ≤ 50;
    pT, η, φ iid from one law): the likelihood ratio is monotonic in N, so the best AUC is
    P(N_S > N_B) + ½ P(N_S = N_B) from the two pmfs, 0.8141. Trained through TaggerRun on 2 × 3000
    jets the tagger's test AUC is that optimum within 0.02 (the test part's 900 + 900 jets give it
    a statistical spread of ≈ 0.01), and that of N itself on the same test jets within 0.015;
    the jets' scalar sum pT, a simple observable that only partly carries N, does worse."""
    exact = auc_from_pmfs(multiplicity_pmf(LAMBDA_S), multiplicity_pmf(LAMBDA_B))
    assert exact == pytest.approx(0.8141, abs=1e-4)
    run = TaggerRun(tmp_path / "toy", toy_config(toy, 5, test_fraction=0.3))
    assert run.run_blocking() == "done", run.message
    ev = read_evaluation(tmp_path / "toy")
    assert ev == run.evaluation and ev["n_test_signal"] == ev["n_test_background"] == 900
    split = read_split(tmp_path / "toy")
    test = {c: xr.open_dataset(toy[i], engine="h5netcdf").x.values[split[c]["test"]]
            for i, c in enumerate(("signal", "background"))}
    label = np.r_[np.ones(900), np.zeros(900)]
    n_best = roc_auc(np.r_[[(test[c][..., 0] > 0).sum(1) for c in test]].ravel(), label)
    ht = roc_auc(np.r_[[test[c][..., 0].sum(1) for c in test]].ravel(), label)
    assert abs(n_best - exact) < 0.03  # the test sample itself (≈ 3σ)
    assert abs(ev["test_auc"] - exact) < 0.02 and abs(ev["test_auc"] - n_best) < 0.015
    assert ev["test_auc"] > ht + 0.02 and ev["test_auc"] > 0.75
    hist = run.history
    assert [h["epoch"] for h in hist] == list(range(5)) and {"loss", "val_loss", "val_auc", "lr", "seconds"} <= set(hist[0])
    assert hist[-1]["val_auc"] > 0.75
    # the split: disjoint parts, all of each file, 70/15/15 % → 70/0/30 here
    for c in ("signal", "background"):
        parts = [set(split[c][p]) for p in ("train", "val", "test")]
        assert sum(map(len, parts)) == len(set().union(*parts)) == 3000
    # loadable; its outputs on the test files agree with the stored evaluation's scale
    loaded = otviz.load_run(tmp_path / "toy")
    assert loaded.kind == "tagger" and loaded.config == run.config
    all_jets = evaluate_files(loaded.model, *toy)
    assert all_jets["n_signal"] == 3000 and abs(all_jets["auc"] - exact) < 0.02


def test_cancelled_run_resumes_to_the_same_weights(toy, tmp_path):
    cfg = toy_config(toy, 4, max_events=1500)
    ref = TaggerRun(tmp_path / "ref", cfg)
    assert ref.run_blocking() == "done"
    run = TaggerRun(tmp_path / "cut", cfg)

    def stop_after_two(ev):
        if ev["type"] == "epoch" and ev["epoch"] == 1:
            run.cancel()

    assert run.run_blocking(stop_after_two) == "cancelled"
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["epoch"] == 2
    assert not (tmp_path / "cut" / "model.pt").exists()
    again = TaggerRun(tmp_path / "cut")
    assert not again.fresh and again.run_blocking() == "done"
    a, b = otviz.load_run(tmp_path / "ref"), otviz.load_run(tmp_path / "cut")
    assert [r["epoch"] for r in b.history] == [0, 1, 2, 3]
    for k, v in a.model.state_dict().items():
        torch.testing.assert_close(b.model.state_dict()[k], v, rtol=0, atol=0)
    for k in ("test_auc", "test_loss"):
        assert read_evaluation(tmp_path / "cut")[k] == read_evaluation(tmp_path / "ref")[k]
    assert read_split(tmp_path / "cut")["signal"]["test"] == read_split(tmp_path / "ref")["signal"]["test"]
    finished = TaggerRun(tmp_path / "cut", cfg)  # the same settings: a finished run is left as it is
    assert finished.finished and finished.run_blocking() == "done" and finished.evaluation["test_auc"] > 0.7


def test_nan_rolls_back_and_persistent_nan_fails(toy, tmp_path):
    run = TaggerRun(tmp_path / "nan", toy_config(toy, 3, max_events=1000, batch_size=200))
    real, calls = run.loss_fn, {"n": 0}

    def flaky(*a):
        calls["n"] += 1
        loss = real(*a)
        return loss * float("nan") if calls["n"] == 9 else loss  # 7 steps per epoch: epoch 1

    run.loss_fn = flaky
    assert run.run_blocking() == "done"
    ev = [e for e in run.events_since(0) if e["type"] == "nan_rollback"]
    assert len(ev) == 1 and ev[0]["epoch"] == 1 and ev[0]["lr_scale"] == 0.5
    assert [r["epoch"] for r in run.history] == [0, 1, 2] and run.history[1]["lr"] == pytest.approx(5e-4)
    bad = TaggerRun(tmp_path / "bad", toy_config(toy, 2, max_events=1000, max_nan_retries=1))
    bad.loss_fn = lambda logit, label: (logit * float("nan")).mean()
    bad.start().wait(120)
    assert bad.status == "failed" and "gave up after 1 roll-backs" in bad.message


def test_config_round_trip_and_errors_name_the_field(toy, tmp_path):
    cfg = tagger_wjets_config(epochs=3, lr=3e-4)
    assert TaggerConfig.from_json(cfg.to_json()) == cfg and cfg.max_events == 20_000
    assert cfg.signal == "data/calibration/wjets_sim.nc" and cfg.background == "data/calibration/qcd_sim.nc"
    for field, value in (("val_fraction", 0.9), ("batch_size", 0), ("lr", -1.0), ("device", "tpu"), ("signal", "")):
        with pytest.raises(ConfigError, match=field):
            tagger_wjets_config(**{field: value})
    d = json.loads(cfg.to_json())
    d["model_config"]["f_hidden"] = [0]
    with pytest.raises(ConfigError, match="f_hidden") as exc:
        TaggerConfig.from_json(json.dumps(d))
    assert exc.value.path == "model_config.f_hidden"
    with pytest.raises(ConfigError, match="unknown training option 'epoch'"):
        tagger_wjets_config(epoch=3)
    # the data files: a one-line error naming the field and the file, before anything is written
    with pytest.raises(FileNotFoundError, match=r"nope\.nc \(background\): no such file"):
        TaggerRun(tmp_path / "r", toy_config(toy, 1, background=str(tmp_path / "nope.nc")))
    zee = tmp_path / "zee.nc"
    otviz.data.toy.gaussian_smearing(10).to_netcdf(zee, engine="h5netcdf")
    with pytest.raises(ValueError, match=r"zee\.nc \(signal\): .* the tagger needs jet constituents"):
        TaggerRun(tmp_path / "r", toy_config(toy, 1, signal=str(zee)))
    uncentred = tmp_path / "uncentred.nc"
    multiplicity_jets(10, 5).assign_attrs(centred=0).to_netcdf(uncentred, engine="h5netcdf")
    with pytest.raises(ValueError, match=r"\(signal\): its jets are not centred"):
        TaggerRun(tmp_path / "r", toy_config(toy, 1, signal=str(uncentred)))
    assert not (tmp_path / "r").exists()


def test_otviz_train_tagger_and_the_latents_file(toy, tmp_path, capsys):
    from otviz.cli import main

    sig, bkg = (tmp_path / "sig.nc", tmp_path / "bkg.nc")
    multiplicity_jets(400, LAMBDA_S, seed=5).to_netcdf(sig, engine="h5netcdf")
    multiplicity_jets(300, LAMBDA_B, seed=6).assign_attrs(domain="data").to_netcdf(bkg, engine="h5netcdf")
    out = tmp_path / "tg"
    assert main(["train", "tagger-wjets", "--data", str(sig), str(bkg), "--epochs", "2", "--batch-size", "100",
                 "--device", "cpu", "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "schedule: 2 epochs of BCE" in text and "test AUC" in text
    run = otviz.load_run(out)
    assert run.kind == "tagger" and len(run.history) == 2 and run.config.signal == str(sig)
    assert main(["train", "tagger-wjets", "--data", str(sig), "--out", str(tmp_path / "x")]) == 2
    assert "--data SIGNAL BACKGROUND" in capsys.readouterr().err
    assert main(["train", "tagger-wjets", "--n-projections", "5", "--out", str(tmp_path / "x")]) == 2
    assert "--n-projections: not an option of otviz train tagger-wjets" in capsys.readouterr().err
    assert main(["train", "tagger-wjets", "--data", str(sig), str(tmp_path / "none.nc"), "--out",
                 str(tmp_path / "x")]) == 2
    assert "none.nc (background): no such file" in capsys.readouterr().err and not (tmp_path / "x").exists()

    ds = write_latents(out, [sig, bkg], tmp_path / "lat" / "latents.nc", labels=[1, 0], max_events=250)
    back = xr.open_dataset(tmp_path / "lat" / "latents.nc", engine="h5netcdf")
    assert back["z128"].dims == ("jet", "latent") and back["z128"].shape == (500, 128)
    assert back["label"].values.tolist() == [1] * 250 + [0] * 250
    assert set(back["domain"].values[:250]) == {"unknown"} and set(back["domain"].values[250:]) == {"data"}
    assert json.loads(back.attrs["samples"]) == ["sig.nc", "bkg.nc"] and back.attrs["tagger_run"] == str(out.resolve())
    np.testing.assert_allclose(back["z128"].values, ds["z128"].values)
    jets = xr.open_dataset(sig, engine="h5netcdf").x.values[:250]
    with torch.no_grad():
        np.testing.assert_allclose(back["z128"].values[:250], run.model.latent(jets).numpy(), atol=1e-4)
        np.testing.assert_allclose(back["score"].values[:250], torch.sigmoid(run.model(jets)).numpy(), atol=1e-5)
