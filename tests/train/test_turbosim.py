"""Turbo-Sim training end to end on a case known in closed form, resume, NaN roll-back, configs."""
import json

import numpy as np
import pytest
import torch

import otviz
from otviz.data.toy import gaussian_smearing
from otviz.errors import ConfigError
from otviz.losses.turbosim import TERMS, TurboSimWeights
from otviz.models.turbosim import TurboSimModelConfig
from otviz.train.turbosim import TurboSimConfig, TurboSimRun, turbosim_ttbar_config, turbosim_zee_config

WIDTH, RESOLUTION = 10.0, 10.0


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    d = tmp_path_factory.mktemp("toy")
    gaussian_smearing(20_000, WIDTH, RESOLUTION, seed=1).to_netcdf(d / "train.nc", engine="h5netcdf")
    return d / "train.nc"


def toy_config(path, epochs, weights, noise_dim=0, canonical_frame=False, **kw):
    return TurboSimConfig(model="toy", train_data=str(path), test_data=None, epochs=epochs, batch_size=1000,
                          weights=weights, device="cpu", seed=2, checkpoint_every=1, **kw,
                          model_config=TurboSimModelConfig(("e-",), ("e-",), hidden=(64, 64), critic_hidden=(64, 64),
                                                           noise_dim=noise_dim, canonical_frame=canonical_frame))


@pytest.mark.parametrize("canonical_frame", [False, True])
def test_supervised_terms_learn_the_linear_gaussian_regressions(toy, tmp_path, canonical_frame):
    """z ~ N(0, w²), x = z + N(0, r²) per momentum component: trained on pairs with the two
    supervised MSE terms, E(x) → E[z | x] = x·w²/(w² + r²) (slope 0.5) and D(z) → E[x | z] = z
    (slope 1). Permuted "pairs" would give slope 0. Both regressions are equivariant under beam
    rotations and p_z reflections, so the maps learn them in the electron's frame too."""
    only = {t: float(t in ("l_z_tilde", "l_x_tilde")) for t in TERMS}
    run = TurboSimRun(tmp_path / "sup", toy_config(toy, 20, TurboSimWeights(**only), paired_fraction=1.0,
                                                   canonical_frame=canonical_frame))
    assert run.run_blocking() == "done", run.message
    model = otviz.load_run(tmp_path / "sup").model
    test = gaussian_smearing(20_000, WIDTH, RESOLUTION, seed=7)
    x, z = torch.as_tensor(test.x.values), torch.as_tensor(test.z.values)
    with torch.no_grad():
        zt, xt = model.encode(x), model.decode(z)
    expect = WIDTH ** 2 / (WIDTH ** 2 + RESOLUTION ** 2)
    for c in range(3):
        assert np.polyfit(x[:, 0, c], zt[:, 0, c], 1)[0] == pytest.approx(expect, abs=0.05)
        assert np.polyfit(z[:, 0, c], xt[:, 0, c], 1)[0] == pytest.approx(1.0, abs=0.06)
    assert zt.shape == xt.shape == (20_000, 1, 4)
    assert torch.allclose(xt[..., 3], xt[..., :3].norm(dim=-1), rtol=1e-4)  # massless-electron shell, m from the table


def test_the_adversarial_term_alone_learns_the_x_marginal(toy, tmp_path):
    """D_x̃ alone (WGAN-GP): the decoder's x̃ = D(z) takes the width of p(x), N(0, w² + r²) per
    component (√200 ≈ 14.1 GeV), from z of width 10 GeV; the critic's Wasserstein estimate is logged."""
    only = {t: float(t == "d_x_tilde") for t in TERMS}
    run = TurboSimRun(tmp_path / "gan", toy_config(toy, 40, TurboSimWeights(**only), noise_dim=3, paired_fraction=0.0,
                                                   n_critic=2))
    assert run.run_blocking() == "done", run.message
    assert {"w_x_tilde", "gp_x_tilde", "critic_x_tilde", "d_x_tilde"} <= set(run.history[-1])
    model = otviz.load_run(tmp_path / "gan").model
    z = torch.as_tensor(gaussian_smearing(20_000, WIDTH, RESOLUTION, seed=7).z.values)
    with torch.no_grad():
        xt = model.decode(z)
    want = np.hypot(WIDTH, RESOLUTION)
    widths = xt[:, 0, :3].std(0).numpy()
    assert np.all(np.abs(widths / want - 1) < 0.15), widths
    assert np.all(np.abs(xt[:, 0, :3].mean(0).numpy()) < 0.25 * want)  # a GAN centres more loosely than it widens


def test_the_marginal_sw_terms_alone_learn_both_marginals(toy, tmp_path):
    """Only the sliced-Wasserstein marginal terms (all eight weights 0, nothing paired): D(z) takes
    the width of p(x), √(w² + r²) ≈ 14.1 GeV per component, and E(x) that of p(z), 10 GeV."""
    run = TurboSimRun(tmp_path / "sw", toy_config(toy, 20, TurboSimWeights(**dict.fromkeys(TERMS, 0.0)),
                                                  paired_fraction=0.0, sw_weight=1.0, lr_decay=0.2))
    assert run.run_blocking() == "done", run.message
    assert {"sw_z_tilde", "sw_x_tilde"} <= set(run.history[-1]) and not any(k.startswith("w_") for k in run.history[-1])
    model = otviz.load_run(tmp_path / "sw").model
    test = gaussian_smearing(20_000, WIDTH, RESOLUTION, seed=7)
    with torch.no_grad():
        xt, zt = model.decode(torch.as_tensor(test.z.values)), model.encode(torch.as_tensor(test.x.values))
    for got, want in ((xt, np.hypot(WIDTH, RESOLUTION)), (zt, WIDTH)):
        widths = got[:, 0, :3].std(0).numpy()
        assert np.all(np.abs(widths / want - 1) < 0.05), (widths, want)
        assert np.all(np.abs(got[:, 0, :3].mean(0).numpy()) < 0.05 * want), got[:, 0, :3].mean(0)


def test_cancelled_run_resumes_to_the_same_weights(toy, tmp_path):
    cfg = toy_config(toy, 4, TurboSimWeights(), noise_dim=2, paired_fraction=0.1, max_events=4000)
    ref = TurboSimRun(tmp_path / "ref", cfg)
    assert ref.run_blocking() == "done"
    run = TurboSimRun(tmp_path / "cut", cfg)

    def stop_after_two(ev):
        if ev["type"] == "epoch" and ev["epoch"] == 1:
            run.cancel()

    assert run.run_blocking(stop_after_two) == "cancelled"
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["epoch"] == 2
    again = TurboSimRun(tmp_path / "cut")
    assert not again.fresh and again.run_blocking() == "done"
    a, b = otviz.load_run(tmp_path / "ref"), otviz.load_run(tmp_path / "cut")
    assert [r["epoch"] for r in b.history] == [0, 1, 2, 3]
    for k, v in a.model.state_dict().items():
        torch.testing.assert_close(b.model.state_dict()[k], v, rtol=1e-5, atol=1e-6)
    assert b.kind == "turbosim"


def test_nan_rolls_back_and_persistent_nan_fails(toy, tmp_path):
    run = TurboSimRun(tmp_path / "nan", toy_config(toy, 3, TurboSimWeights(), max_events=4000))
    real, calls = run.generator_loss, {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        loss, terms = real(*a, **k)
        return (loss * float("nan") if calls["n"] == 6 else loss), terms

    run.generator_loss = flaky
    assert run.run_blocking() == "done"
    ev = [e for e in run.events_since(0) if e["type"] == "nan_rollback"]
    assert len(ev) == 1 and ev[0]["epoch"] == 1 and ev[0]["lr_scale"] == 0.5
    assert [r["epoch"] for r in run.history] == [0, 1, 2] and run.history[1]["lr"] == pytest.approx(5e-4)
    bad = TurboSimRun(tmp_path / "bad", toy_config(toy, 2, TurboSimWeights(), max_events=4000, max_nan_retries=1))
    bad.critic_loss = lambda *a, **k: (torch.tensor(float("nan"), requires_grad=True), {})
    bad.start().wait(120)
    assert bad.status == "failed" and "gave up after 1 roll-backs" in bad.message


def test_config_round_trip_and_errors_name_the_field(tmp_path):
    cfg = turbosim_ttbar_config(epochs=3, paired_fraction=0.1)
    back = TurboSimConfig.from_json(cfg.to_json())
    assert back == cfg and back.model_config.masses["b"] == pytest.approx(4.7)
    assert turbosim_zee_config().model_config.z_particles == ("e-", "e+")
    with pytest.raises(ConfigError, match="paired_fraction"):
        turbosim_ttbar_config(paired_fraction=1.5)
    with pytest.raises(ConfigError, match="l_x_hat"):
        TurboSimWeights(l_x_hat=-1.0)
    with pytest.raises(ConfigError, match="switched off"):
        turbosim_ttbar_config(sw_weight=0.0, weights=TurboSimWeights(**{t: 0.0 for t in TERMS}))
    assert turbosim_ttbar_config(sw_weight=1.0, weights=TurboSimWeights(**{t: 0.0 for t in TERMS})).sw_weight == 1.0
    with pytest.raises(ConfigError, match="sw_spaces"):
        turbosim_ttbar_config(sw_spaces=("y",))
    assert TurboSimConfig.from_json(turbosim_ttbar_config(sw_spaces=["x"]).to_json()).sw_spaces == ("x",)
    for bad in (("x", "x"), (["x"],), ()):
        with pytest.raises(ConfigError, match="sw_spaces"):
            turbosim_ttbar_config(sw_spaces=bad)
    old = json.loads(cfg.to_json())  # a run saved before the SW terms existed: the published objective
    for k in ("sw_weight", "sw_projections", "sw_spaces"):
        del old[k]
    assert TurboSimConfig.from_json(json.dumps(old)).sw_weight == 0.0
    with pytest.raises(ConfigError, match="paired_fraction"):
        turbosim_ttbar_config(paired_fraction=0.0, sw_weight=0.0, weights=TurboSimWeights(**{t: float(t.startswith("l_") and t in (
            "l_z_tilde", "l_x_tilde")) for t in TERMS}))
    d = json.loads(cfg.to_json())
    d["weights"]["d_x_hat"] = "big"
    with pytest.raises(ConfigError, match="weights.d_x_hat|d_x_hat"):
        TurboSimConfig.from_json(json.dumps(d))
    with pytest.raises(ConfigError, match="hidden"):
        TurboSimModelConfig(hidden=(0, 4))


def test_otviz_train_turbosim_from_the_command_line(tmp_path, capsys):
    from otviz.cli import main

    out = tmp_path / "ts"
    assert main(["train", "turbosim-ttbar", "--epochs", "1", "--max-events", "2000", "--batch-size", "1000",
                 "--paired-fraction", "0.1", "--sw-weight", "50", "--device", "cpu", "--out", str(out), "--quiet"]) == 0
    assert "paired fraction 0.1" in capsys.readouterr().out
    run = otviz.load_run(out)
    assert run.kind == "turbosim" and run.config.paired_fraction == 0.1 and len(run.history) == 1
    assert run.config.sw_weight == 50 and run.config.sw_spaces == ("z", "x")
    z = torch.as_tensor(np.asarray(otviz.data.load(run.config.test_data)["z"].values[:100]))
    assert run.model.decode(z).shape == (100, 6, 4) and run.model.encode(run.model.decode(z)).shape == (100, 6, 4)
    assert main(["train", "turbosim-ttbar", "--paired-fraction", "1.5", "--out", str(tmp_path / "bad")]) == 2
    assert "--paired-fraction 1.5: allowed [0, 1]" in capsys.readouterr().err
    assert main(["train", "turbosim-ttbar", "--sw-weight", "-1", "--out", str(tmp_path / "bad")]) == 2
    assert "--sw-weight -1: allowed" in capsys.readouterr().err
    assert main(["train", "otus-ttbar", "--sw-weight", "5", "--out", str(tmp_path / "bad")]) == 2
    assert "--sw-weight: not an option of otviz train otus-ttbar" in capsys.readouterr().err
    assert main(["train", "turbosim-ttbar", "--n-projections", "5", "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()
