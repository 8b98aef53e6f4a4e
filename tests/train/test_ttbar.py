"""The tt̄ OTUS kind (otus-ttbar): restricted decoder P_D(S) against closed forms, decoder-only
fine-tuning, the config (with its cuts) through config.json and load_run, and an end-to-end run
on Gaussian toys whose learned widths are known in closed form."""
import copy
import json
import math

import numpy as np
import pytest
import torch

import otviz
from otviz import kinds
from otviz.data.io import make_dataset, save
from otviz.models.otus import AcceptanceCuts, Cut, GeneratorConfig
from otviz.physics import fourvec as fv
from otviz.train.config import Stage, TrainConfig, TtbarConfig, otus_ttbar_config
from otviz.train.trainer import TtbarTrainingRun

PARTS = ("e-", "jet1")  # a two-particle toy in both spaces
S = 30.0  # GeV: px, py, pz of z ~ N(0, S²)


def gaussian_sample(path, n, seed=0, smear=0.0, s=S):
    """z: isotropic Gaussian 3-momenta (each component N(0, s²)) on the table's mass shells;
    x = z + N(0, smear²) per component, massless — a known Gaussian detector."""
    g = np.random.default_rng(seed)
    p3 = g.normal(0.0, s, (n, 2, 3))
    z = fv.minkowski(torch.as_tensor(p3), torch.tensor([0.51099895e-3, 0.0], dtype=torch.float64)).numpy()
    x = fv.minkowski(torch.as_tensor(p3 + g.normal(0.0, smear, p3.shape)), 0.0).numpy()
    save(make_dataset(z, x, PARTS, PARTS, attrs={"process": "toy"}), path)
    return str(path)


def toy_config(train, stages, cuts, **kw):
    gen = dict(hidden=32, conditional_noise=False, noise_dim=6, residual_core=True, input_residual=True,
               out_init_scale=kw.pop("out_init_scale", 0.1))
    kw.setdefault("checkpoint_every", 1)
    cfg = otus_ttbar_config(epochs=1, finetune_epochs=0, train_data=train, test_data=None, seed=1, **kw)
    cfg.stages = stages
    mc = cfg.model_config
    mc.z_particles, mc.x_particles = PARTS, PARTS
    mc.encoder, mc.decoder = GeneratorConfig(**gen), GeneratorConfig(**gen)
    mc.acceptance = cuts
    mc.__post_init__()  # masses of the toy's particles from the table
    return cfg.validate()


def test_logged_p_accept_is_the_closed_form_of_a_gaussian_decoder_output(tmp_path):
    """An identity decoder (input residual, zero last layer, lr at its minimum) on isotropic
    Gaussian z: D(z) is Gaussian with σ = S per component. The jet's pT is Rayleigh, so
    P(pT > c) = exp(−c²/2S²); the electron's direction is uniform on the sphere, so
    P(|η| < η_max) = P(|cos θ| < tanh η_max) = tanh η_max. Independent particles:
    P_D(S) = exp(−c²/2S²)·tanh η_max. The per-epoch history and metrics' P_D(S) match it."""
    train = gaussian_sample(tmp_path / "toy.nc", 16_000, seed=2)
    c, eta_max = 35.0, 1.0
    cuts = AcceptanceCuts((Cut(("e-",), 0.0, eta_max), Cut(("jet1",), c, None)))
    cfg = toy_config(train, [Stage("main", 1, lam=20.0, lr=1e-8), Stage("decoder-finetune", 1, lr=1e-8, train="decoder")],
                     cuts, out_init_scale=0.0, batch_size=4000, n_projections=50)
    run = TtbarTrainingRun(tmp_path / "run", cfg)
    assert run.run_blocking() == "done"
    exact = math.exp(-c ** 2 / (2 * S ** 2)) * math.tanh(eta_max)  # 0.3860
    sigma = math.sqrt(exact * (1 - exact) / 16_000)  # binomial error of one epoch's estimate
    hist = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["stage"] for h in hist] == ["main", "decoder-finetune"]
    for h in hist:  # logged in both stages, next to the losses
        assert {"loss", "p_accept"} <= set(h)
        assert h["p_accept"] == pytest.approx(exact, abs=4 * sigma)
    loaded = otviz.load_run(tmp_path / "run")
    z = torch.as_tensor(otviz.data.load(train)["z"].values)
    assert loaded.model.p_accept(z, torch.Generator().manual_seed(0)) == pytest.approx(exact, abs=4 * sigma)


def test_acceptance_mask_on_crafted_events_and_the_default_cuts():
    """1_S per cut: lepton pT > 10 GeV and |η| < 2.5, four jets pT > 20 GeV and |η| < 4.5."""
    cuts = AcceptanceCuts()
    assert cuts.cuts == (Cut(("e-",), 10.0, 2.5), Cut(("jet1", "jet2", "jet3", "jet4"), 20.0, 4.5))
    parts = ("e-", "MET", "jet1", "jet2", "jet3", "jet4")

    def event(e_pt=30.0, e_eta=0.0, j_pt=50.0, j_eta=1.0, j4_pt=None):
        def p(pt, eta):
            return [pt, 0.0, pt * math.sinh(eta), pt * math.cosh(eta)]
        return [p(e_pt, e_eta), [5.0, 0.0, 0.0, 5.0], p(j_pt, j_eta), p(j_pt, j_eta), p(j_pt, j_eta),
                p(j_pt if j4_pt is None else j4_pt, j_eta)]

    x = torch.tensor([event(), event(e_pt=9.0), event(e_eta=2.6), event(j4_pt=19.0), event(j_eta=-4.6),
                      event(e_pt=10.5, e_eta=-2.4, j_pt=20.5, j_eta=4.4)], dtype=torch.float64)
    assert cuts.mask(x, parts).tolist() == [True, False, False, False, False, True]


def test_decoder_finetune_changes_only_decoder_weights(tmp_path):
    """After a joint epoch, a decoder-only epoch (encoder frozen, SW(x, D(z)) alone) leaves every
    encoder parameter and buffer bit-identical and changes the decoder's weights."""
    train = gaussian_sample(tmp_path / "toy.nc", 4000, seed=3, smear=5.0)
    cfg = toy_config(train, [Stage("main", 1, lam=20.0), Stage("decoder-finetune", 1, lr=1e-3, train="decoder")],
                     AcceptanceCuts((Cut(("jet1",), 5.0, None),)), batch_size=1000, n_projections=50)
    run = TtbarTrainingRun(tmp_path / "run", cfg)
    before = {}

    def grab(ev):
        if ev["type"] == "checkpoint" and ev["epoch"] == 1:
            before.update(copy.deepcopy(run.model.state_dict()))

    assert run.run_blocking(grab) == "done"
    after = torch.load(tmp_path / "run" / "model.pt", weights_only=True)["model"]
    enc = [k for k in after if k.startswith("encoder.")]
    dec = [k for k in after if k.startswith("decoder.core.") and k.endswith("weight")]
    assert enc and dec
    for k in enc:
        assert torch.equal(after[k], before[k]), k
    assert all(not torch.equal(after[k], before[k]) for k in dec)
    assert [h["stage"] for h in run.history] == ["main", "decoder-finetune"]
    assert "mse" not in run.history[1] and run.history[1]["sw_x"] == run.history[1]["loss"]


def test_config_round_trips_with_its_cuts_and_load_run_rebuilds_the_acceptance(tmp_path):
    cfg = otus_ttbar_config()
    mc = cfg.model_config
    assert (cfg.kind, cfg.model, cfg.train_data) == ("otus-ttbar", "otus-ttbar", "data/ttbar_train.nc")
    assert mc.z_particles == ("e-", "nu_e~", "b", "b~", "u", "d~")
    assert mc.x_particles == ("e-", "MET", "jet1", "jet2", "jet3", "jet4")
    assert mc.masses["b"] == mc.masses["b~"] == 4.7 and mc.masses["MET"] == mc.masses["jet1"] == 0.0
    for g in (mc.encoder, mc.decoder):
        assert (g.conditional_noise, g.noise_dim, g.residual_core, g.input_residual, g.hidden) == (False, 18, True, True, 64)
    assert [s.train for s in cfg.stages] == ["both", "decoder"] and cfg.stages[0].lam == 20.0
    assert cfg.stages[0].beta_e == cfg.stages[0].beta_d == 0.0
    d = json.loads(cfg.to_json())
    assert d["kind"] == "otus-ttbar" and d["model_config"]["acceptance"]["cuts"][1] == {
        "particles": ["jet1", "jet2", "jet3", "jet4"], "pt_min": 20.0, "eta_max": 4.5}
    assert TtbarConfig.from_json(cfg.to_json()) == cfg
    assert kinds.for_config_dict(d).name == "otus-ttbar" and kinds.for_config(cfg).name == "otus-ttbar"
    # an otus-zee config.json (no "kind" field) is still OTUS; neither class reads the other's
    zee = json.loads(otviz.train.otus_zee_config(epochs=2).to_json())
    assert "kind" not in zee and kinds.for_config_dict(zee).name == "otus"
    with pytest.raises(ValueError, match="kind"):
        TrainConfig.from_json(cfg.to_json())
    with pytest.raises(ValueError, match="not an otus-ttbar config"):
        TtbarConfig.from_json(json.dumps(zee))
    with pytest.raises(ValueError, match="acceptance"):
        otus_ttbar_config(model_config=otviz.models.otus.OTUSConfig(z_particles=mc.z_particles,
                                                                      x_particles=mc.x_particles))

    # a run with non-default cuts: load_run rebuilds the model with the same acceptance
    train = gaussian_sample(tmp_path / "toy.nc", 2000, seed=4)
    cuts = AcceptanceCuts((Cut(("jet1",), 17.0, 3.0), Cut(("e-",), 3.0, None)))
    cfg = toy_config(train, [Stage("main", 1, lam=20.0)], cuts, batch_size=1000, n_projections=20)
    assert TtbarTrainingRun(tmp_path / "run", cfg).run_blocking() == "done"
    run = otviz.load_run(tmp_path / "run")
    assert run.kind == "otus-ttbar" and otviz.train.run.run_kind(tmp_path / "run") == "otus-ttbar"
    assert run.config == cfg and run.config.model_config.acceptance == cuts
    x = torch.tensor([[[20.0, 0, 0, 20.0], [18.0, 0, 0, 18.0]],   # pass
                      [[20.0, 0, 0, 20.0], [16.0, 0, 0, 16.0]],   # jet pT 16 < 17
                      [[2.0, 0, 0, 2.0], [18.0, 0, 0, 18.0]],     # e pT 2 < 3
                      [[20.0, 0, 0, 20.0], [18.0, 0, 200.0, 201.0]]])  # jet |η| 3.1 > 3
    assert run.model.acceptance(x).tolist() == [True, False, False, False]
    assert "p_accept" in run.history[0]


def test_end_to_end_gaussian_smearing_widths_are_learned(tmp_path):
    """x = z + N(0, σ²) per component with z ~ N(0, s²): p(x) is N(0, s² + σ²) per component.
    From unpaired samples the tt̄ trainer (λ SW(z, E(x)) + restricted MSE, then the decoder-only
    fine-tune) must widen D(z) from s (its identity start) to √(s² + σ²) and keep E(x) at s."""
    s, smear = 10.0, 10.0
    train = gaussian_sample(tmp_path / "toy.nc", 4000, seed=5, smear=smear, s=s)
    cfg = toy_config(train, [Stage("main", 20, lam=20.0, lr=3e-3), Stage("decoder-finetune", 10, lr=1e-3, train="decoder")],
                     AcceptanceCuts((Cut(("e-",), 0.0, None),)), batch_size=2000, n_projections=200, checkpoint_every=10)
    assert TtbarTrainingRun(tmp_path / "run", cfg).run_blocking() == "done"
    run = otviz.load_run(tmp_path / "run")
    fresh = otviz.data.load(gaussian_sample(tmp_path / "fresh.nc", 20_000, seed=6, smear=smear, s=s))
    z, x = torch.as_tensor(fresh["z"].values), torch.as_tensor(fresh["x"].values)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        xp, zt = run.model.decode(z, g), run.model.encode(x, g)
    want_x = math.hypot(s, smear)  # 14.14 GeV; the identity start is 10
    std_x = xp[..., :3].reshape(-1, 3).std(0)
    std_z = zt[..., :3].reshape(-1, 3).std(0)
    assert std_x.tolist() == pytest.approx([want_x] * 3, rel=0.08), (std_x, std_z)
    assert std_z.tolist() == pytest.approx([s] * 3, rel=0.08), (std_x, std_z)
    assert xp[..., :3].reshape(-1, 3).mean(0).abs().max() < 0.1 * s
    assert run.history[-1]["p_accept"] == 1.0  # every event passes pT > 0


def test_otviz_train_otus_ttbar_on_the_shipped_sample_and_load_run_decodes_six_particles(tmp_path, capsys):
    """``otviz train otus-ttbar`` (the preset's settings, shortened) on data/ttbar_train.nc; the
    run is a tt̄ OTUS run and ``load_run(...).model.decode`` maps (events, 6, 4) GeV to (events, 6, 4)
    GeV on the table's mass shells (e⁻, MET and jets massless to float32 precision; MET p_z = 0)."""
    from otviz.cli import main

    out = tmp_path / "ttbar"
    assert main(["train", "otus-ttbar", "--out", str(out), "--epochs", "1", "--finetune-epochs", "1",
                 "--max-events", "2000", "--batch-size", "1000", "--n-projections", "50", "--quiet"]) == 0
    assert "done: 2 epochs" in capsys.readouterr().out
    d = json.loads((out / "config.json").read_text())
    assert d["kind"] == "otus-ttbar" and d["train_data"] == "data/ttbar_train.nc"
    assert [s["train"] for s in d["stages"]] == ["both", "decoder"] and d["stages"][0]["lam"] == 20.0
    run = otviz.load_run(out)
    assert run.kind == "otus-ttbar" and run.config.model_config.acceptance == AcceptanceCuts()
    z = torch.as_tensor(otviz.data.load(run.config.test_data)["z"].values[:500])
    x = run.model.decode(z, torch.Generator().manual_seed(0))
    assert x.shape == (500, 6, 4) and x.dtype == torch.float32
    torch.testing.assert_close(x[..., 3], x[..., :3].norm(dim=-1), rtol=1e-5, atol=1e-5)  # E = |p| (m ≤ m_e)
    assert torch.all(x[:, 1, 2] == 0)  # MET has no p_z
    assert all(0.3 < h["p_accept"] < 1.0 for h in run.history)
