"""β-annealing of the EMD-VAE: schedules as data, per-β saves, resume mid-schedule, NaN roll-back,
parallel Dask jobs and the CLI."""
import json
import math

import numpy as np
import pytest
import torch

import otviz
from otviz.cli import main
from otviz.train.annealing import AnnealConfig, AnnealingRun, annealing_schedule, emdvae_wjets_config
from otviz.train.jobs import run_annealing_jobs


def tiny(centred=True, **kw):
    base = dict(max_events=300, n_betas=3, beta_min=0.01, beta_max=1.0, max_epochs=2, steps_per_epoch=3,
                batch_size=50, threads=1, schedule="production")
    base.update(kw)
    return emdvae_wjets_config(centred, **base)


def test_schedule_shapes():
    passes = annealing_schedule(0.001, 1.0, 7, priming=True, zigzags=1, production=True)
    names = [p.name for p in passes]
    assert names == ["priming", "zigzag", "production"]
    grid = passes[0].betas
    assert np.allclose(grid, np.geomspace(0.001, 1.0, 7)) and grid == sorted(grid)  # rising priming pass
    assert passes[2].betas == grid  # production repeats the priming values
    zz = passes[1].betas
    assert zz[-1] == grid[0]  # the zig-zag ends at the smallest β
    assert zz[0] < grid[-1] and max(zz) == grid[-1] and min(zz[:len(zz) // 2]) > grid[0]  # down, up, down
    assert annealing_schedule(0.01, 1, 3, priming=False, zigzags=0)[0].name == "production"


def test_config_round_trip_and_errors(tmp_path):
    cfg = emdvae_wjets_config(False, schedule="paper", n_betas=5)
    assert AnnealConfig.from_json(cfg.to_json()) == cfg
    assert cfg.train_data == "data/wjets.nc" and len(cfg.steps) == 5 + 8 + 5
    d = json.loads(cfg.to_json())
    d["bogus"] = 1
    with pytest.raises(ValueError, match="bogus"):
        AnnealConfig.from_json(json.dumps(d))
    d = json.loads(cfg.to_json())
    d["schedule"] = [{"name": "production", "betas": [0.1, -1.0]}]
    with pytest.raises(ValueError, match="> 0"):
        AnnealConfig.from_json(json.dumps(d))
    with pytest.raises(ValueError, match="schedule"):
        emdvae_wjets_config(True, schedule="nonsense")
    # the preset's default: one step at the smallest β, then the rising production pass
    primed = emdvae_wjets_config(True, n_betas=4, beta_min=0.01, beta_max=1.0)
    assert [(p.name, len(p.betas)) for p in primed.schedule] == [("priming", 1), ("production", 4)]
    assert primed.schedule[0].betas == [pytest.approx(0.01)] == primed.schedule[1].betas[:1]


def test_annealing_saves_every_beta_step_and_loads(tmp_path):
    run = AnnealingRun(tmp_path / "r", tiny())
    assert run.run_blocking() == "done"
    steps = json.loads((tmp_path / "r" / "steps.json").read_text())
    assert [s["beta"] for s in steps] == pytest.approx([0.01, 0.1, 1.0])
    for s in steps:
        assert (tmp_path / "r" / s["file"]).exists()
        assert s["epochs"] == 2 and s["stopped"] == "max-epochs"
        assert len(s["kl_per_dim"]) == 32 and s["rate"] == pytest.approx(sum(s["kl_per_dim"]), rel=1e-5)
        assert s["distortion"] > 0
    hist = json.loads((tmp_path / "r" / "history.json").read_text())
    assert len(hist) == 6 and all(math.isfinite(h["val_loss"]) for h in hist)
    # the learning rate restarts at every β step
    assert [h["lr"] for h in hist if h["epoch"] == 0] == [1e-3] * 3
    loaded = otviz.load_run(tmp_path / "r")
    assert loaded.kind == "emdvae" and [s["beta"] for s in loaded.production_steps()] == pytest.approx([0.01, 0.1, 1.0])
    jets = np.zeros((4, 50, 3), np.float32)
    jets[:, 0] = (0.7, 0.1, 0.0)
    jets[:, 1] = (0.3, -0.1, 0.2)
    z = loaded.model.encode(jets)
    assert z.shape == (4, 32)
    out = loaded.model.decode(z).detach().numpy()
    assert out.shape == (4, 50, 3)
    assert np.allclose(out[..., 0].sum(1), 1.0, atol=1e-5) and (out[..., 0] >= 0).all()
    assert (out[..., 2] > -np.pi - 1e-6).all() and (out[..., 2] <= np.pi + 1e-6).all()
    # the weights saved at the last β step are the final model
    last = loaded.step_model(loaded.steps[-1])
    for a, b in zip(last.state_dict().values(), loaded.model.state_dict().values()):
        assert torch.equal(a, b)


def test_plateau_reduces_lr_and_early_stops(tmp_path):
    cfg = tiny(n_betas=2, max_epochs=30, plateau_patience=1, early_stop_patience=2, min_delta=0.9)
    run = AnnealingRun(tmp_path / "r", cfg)
    run.run_blocking()
    # min_delta = 0.9 makes every epoch after the first a non-improvement
    assert [s["stopped"] for s in run.steps_done] == ["early-stop", "early-stop"]
    assert [s["epochs"] for s in run.steps_done] == [3, 3]
    lrs = [h["lr"] for h in run.history if h["beta_step"] == 0]
    assert lrs[0] == 1e-3 and lrs[2] == pytest.approx(1e-3 * 0.1 ** 0.5)


def test_resume_mid_schedule_reproduces_the_uninterrupted_run(tmp_path):
    cfg = tiny()
    full = AnnealingRun(tmp_path / "full", cfg)
    full.run_blocking()
    part = AnnealingRun(tmp_path / "part", cfg)

    def stop_mid_step(ev):  # cancel inside β step 2, after its first epoch
        if ev["type"] == "epoch" and ev["beta_step"] == 1 and ev["epoch"] == 0:
            part.cancel()

    assert part.run_blocking(stop_mid_step) == "cancelled"
    assert len(json.loads((tmp_path / "part" / "steps.json").read_text())) == 1
    resumed = AnnealingRun(tmp_path / "part")
    events = []
    assert resumed.run_blocking(events.append) == "done"
    assert events[0]["type"] == "resumed" and events[0]["beta_step"] == 1 and events[0]["epoch"] == 1
    a = torch.load(tmp_path / "full" / "model.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "part" / "model.pt", weights_only=True)["model"]
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    assert [s["beta"] for s in resumed.steps_done] == [s["beta"] for s in full.steps_done]


def test_nan_rolls_back_to_the_last_checkpoint(tmp_path):
    run = AnnealingRun(tmp_path / "r", tiny(n_betas=2))
    real = run.loss_fn
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        loss, terms = real(*a, **k)
        if calls["n"] == 6:  # a training batch in the second epoch of the first β step
            return loss * float("nan"), terms
        return loss, terms

    run.loss_fn = flaky
    events = []
    assert run.run_blocking(events.append) == "done"
    rb = [e for e in events if e["type"] == "nan_rollback"]
    assert len(rb) == 1 and rb[0]["lr_scale"] == 0.5
    assert len(run.steps_done) == 2


def test_existing_directory_with_another_config_is_refused(tmp_path):
    first = AnnealingRun(tmp_path / "r", tiny())
    first.run_blocking(lambda ev: first.cancel() if ev["type"] == "checkpoint" else None)  # has a checkpoint
    with pytest.raises(FileExistsError, match=r"seed: 0 → 3.*--restart"):
        AnnealingRun(tmp_path / "r", tiny(seed=3))


def test_parallel_jobs_on_dask_and_cli(tmp_path, capsys):
    jobs = [(tmp_path / "c", tiny(True, n_betas=2, max_epochs=1)), (tmp_path / "u", tiny(False, n_betas=2, max_epochs=1))]
    lines = []
    res = run_annealing_jobs(jobs, workers=2, report=lines.append, poll_s=0.5)
    assert [r["status"] for r in res] == ["done", "done"] and [r["steps"] for r in res] == [2, 2]
    assert otviz.load_run(tmp_path / "u").config.train_data == "data/wjets.nc"
    assert len(lines) == 4 and all("β step" in ln for ln in lines)
    # the CLI: one run in-process (and a second call resumes / finds it finished)
    args = ["train", "emdvae-wjets", "--out", str(tmp_path / "cli"), "--data", "data/wjets.nc", "--max-events", "200",
            "--betas", "2", "--schedule", "production", "--max-epochs", "1", "--steps-per-epoch", "2", "--latent", "8", "--width", "32", "--quiet"]
    assert main(args) == 0
    run = otviz.load_run(tmp_path / "cli")
    assert run.model.cfg.latent == 8 and len(run.steps) == 2
    assert main(args) == 0
    assert "2 β steps" in capsys.readouterr().out


def _always_nan(calls, limit=60):
    def loss(*a, **k):
        calls.append(1)
        if len(calls) > limit:  # a roll-back loop that never ends would stop here
            raise RuntimeError("still rolling back")
        return torch.tensor(float("nan"), requires_grad=True), {}
    return loss


def test_persistent_nan_ends_the_run_after_the_configured_roll_backs(tmp_path):
    run = AnnealingRun(tmp_path / "r", tiny(n_betas=2, max_nan_retries=3))
    calls = []
    run.loss_fn = _always_nan(calls)
    run.start()
    assert run.wait(120) == "failed"
    rb = [e for e in run.events_since(0) if e["type"] == "nan_rollback"]
    assert [e["retries"] for e in rb] == [1, 2, 3]
    assert [e["lr_scale"] for e in rb] == [0.5, 0.25, 0.125]  # the cut compounds across roll-backs
    assert "β step 1/2" in run.message and "gave up after 3 roll-backs" in run.message
    assert json.loads((tmp_path / "r" / "status.json").read_text())["status"] == "failed"
    assert len(calls) == 4


def test_nan_retries_and_lr_cut_survive_a_resume(tmp_path):
    run = AnnealingRun(tmp_path / "r", tiny(n_betas=2, max_nan_retries=3))
    calls = []
    run.loss_fn = _always_nan(calls)
    assert run.run_blocking(lambda ev: run.cancel() if ev["type"] == "nan_rollback" and ev["retries"] == 2
                            else None) == "cancelled"
    pos = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)["pos"]
    assert pos["retries"] == 2 and pos["lr_scale"] == 0.25 and pos["lr"] == pytest.approx(0.25e-3)
    resumed = AnnealingRun(tmp_path / "r")
    resumed.loss_fn = _always_nan(calls)
    resumed.start()
    assert resumed.wait(120) == "failed" and "gave up after 3 roll-backs" in resumed.message
    assert [e["retries"] for e in resumed.events_since(0) if e["type"] == "nan_rollback"] == [3]


def test_config_bounds_are_data_and_enforced():
    from otviz.errors import ConfigError
    from otviz.models.emdvae import EMDVAEConfig

    assert AnnealConfig.BOUNDS["max_epochs"] == (1, 200) and AnnealConfig.BOUNDS["n_steps"] == (1, 40)
    assert EMDVAEConfig.BOUNDS["latent"] == (1, 256) and EMDVAEConfig.BOUNDS["width"] == (1, 1024)
    for kw, needle in [(dict(max_epochs=0), "max_epochs"), (dict(batch_size=0), "batch_size"),
                       (dict(lr=0.0), "lr"), (dict(lr=2.0), "lr"), (dict(max_events=0), "max_events"),
                       (dict(steps_per_epoch=0), "steps_per_epoch"), (dict(n_betas=0), "n_betas"),
                       (dict(beta_min=-1.0), "beta_min"), (dict(beta_min=0.5, beta_max=0.1), "beta_min"),
                       (dict(emd_backend="fast"), "emd_backend"), (dict(device="tpu"), "device"),
                       (dict(max_epochs=3.5), "max_epochs"), (dict(threads=0), "threads")]:
        with pytest.raises(ConfigError, match=needle):
            emdvae_wjets_config(True, **kw)
    with pytest.raises(ConfigError, match=r"latent = 0 is out of range: allowed 1 … 256"):
        EMDVAEConfig(latent=0)
    cfg = tiny()
    cfg.max_epochs = -1  # a value set after construction is caught before anything is written
    with pytest.raises(ConfigError, match="max_epochs"):
        AnnealingRun("/nonexistent/never-created", cfg)
    assert EMDVAEConfig.paper().latent == 256  # the published sizes are inside the bounds


def test_configs_with_one_pass_epochs_still_load():
    """``steps_per_epoch = None`` (one pass over the jets per epoch; the default of runs made before
    it became 250) is a valid setting, not an out-of-range one."""
    d = json.loads(emdvae_wjets_config(True).to_json())
    d["steps_per_epoch"] = None
    assert AnnealConfig.from_json(json.dumps(d)).steps_per_epoch is None
    with pytest.raises(ValueError, match="steps_per_epoch"):
        AnnealConfig(steps_per_epoch=0)
