"""Background training runs: loss decreases, resume after a kill, NaN roll-back, cancel."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import otviz
from otviz.data import load
from otviz.ot import sliced_wasserstein
from otviz.train import TrainingRun, otus_zee_config, resolve_device

ROOT = Path(__file__).resolve().parents[2]
TRAIN = str(ROOT / "data" / "zee_train.nc")
TEST = str(ROOT / "data" / "zee_test.nc")


def small_config(epochs=4, **kw):
    base = dict(train_data=TRAIN, test_data=TEST, max_events=4000, batch_size=1000, n_projections=100,
                checkpoint_every=1, seed=3, finetune_epochs=0)
    base.update(kw)
    return otus_zee_config(epochs=epochs, **base)


def sw_x_prime(model, n=4000):
    ds = load(TEST)
    x = torch.as_tensor(ds["x"].values[:n])
    z = torch.as_tensor(ds["z"].values[n:2 * n])
    scale = x.reshape(n, -1).std(0)
    with torch.no_grad():
        xp = model.decode(z, torch.Generator().manual_seed(0))
    return float(sliced_wasserstein((x.reshape(n, -1) / scale).double(), (xp.reshape(n, -1) / scale).double(),
                                    500, torch.Generator().manual_seed(1)))


def random_start(cfg):
    """The preset starts both generators near the identity (out_init_scale 0.1), where D(z) is
    already close to p(x); learning is seen from the default (random) initialisation."""
    for g in (cfg.model_config.encoder, cfg.model_config.decoder):
        g.out_init_scale = 1.0
    return cfg


def test_short_training_lowers_loss_and_sw(tmp_path):
    run = TrainingRun(tmp_path / "run", random_start(small_config(epochs=8)))
    run.start()
    assert run.wait(300) == "done", run.message
    h = run.history
    assert len(h) == 8 and [r["epoch"] for r in h] == list(range(8))
    assert h[-1]["loss"] < 0.5 * h[0]["loss"]
    assert h[-1]["mse"] < h[0]["mse"] and h[-1]["sw_x"] < h[0]["sw_x"]
    steps = [e for e in run.events_since(0) if e["type"] == "step"]
    assert steps and {"mse", "sw_z", "sw_x", "events_per_s", "epoch", "step"} <= set(steps[0])
    # compared with the untrained model, D(z) moves towards p(x)
    fresh = TrainingRun(tmp_path / "fresh", random_start(small_config(epochs=1)))
    x, z = fresh._load_data()
    untrained = fresh._build(x, z)
    loaded = otviz.load_run(tmp_path / "run")
    assert sw_x_prime(loaded.model) < 0.5 * sw_x_prime(untrained)
    assert loaded.config.model == "otus-zee" and len(loaded.history) == 8
    # the public API: raw GeV tensors (events, particles, 4) in and out
    out = loaded.model.decode(torch.as_tensor(load(TEST)["z"].values[:10]))
    assert out.shape == (10, 2, 4)


def _train_cmd(rundir, epochs):
    return [sys.executable, "-m", "otviz.cli", "train", "otus-zee", "--data", TRAIN, "--test", TEST,
            "--out", str(rundir), "--epochs", str(epochs), "--max-events", "4000", "--batch-size", "1000",
            "--n-projections", "100", "--checkpoint-every", "1", "--seed", "3", "--device", "cpu", "--quiet",
            "--finetune-epochs", "0"]


ONE_THREAD = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def test_killed_run_resumes_to_the_same_result(tmp_path):
    epochs = 6
    # the reference is the same command uninterrupted, one thread each: the sums' order (and so the
    # last bits) depends on the thread count, which an in-process run inherits from earlier tests
    ref = subprocess.run(_train_cmd(tmp_path / "ref", epochs), cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env=ONE_THREAD)
    assert ref.returncode == 0, ref.stdout + ref.stderr
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(killed, epochs), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=ONE_THREAD)
    deadline = time.time() + 240
    while time.time() < deadline:  # wait until two epochs are checkpointed, then kill -9
        hist = killed / "history.json"
        if hist.exists() and len(json.loads(hist.read_text() or "[]")) >= 2 and (killed / "checkpoint.pt").exists():
            break
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    ck = torch.load(killed / "checkpoint.pt", weights_only=True)
    assert 1 <= ck["epoch"] < epochs
    out = subprocess.run(_train_cmd(killed, epochs), cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env=ONE_THREAD)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "resuming" in out.stdout
    resumed = otviz.load_run(killed)
    assert [r["epoch"] for r in resumed.history] == list(range(epochs))
    for k, v in otviz.load_run(tmp_path / "ref").model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[k], v, rtol=1e-5, atol=1e-6)
    assert not list(killed.glob(".*.tmp"))


def test_nan_loss_rolls_back_with_lower_lr(tmp_path):
    run = TrainingRun(tmp_path / "nan", small_config(epochs=4))
    calls = {"n": 0}
    real = run.loss_fn

    def flaky(*a, **k):
        calls["n"] += 1
        loss, terms = real(*a, **k)
        if calls["n"] == 10:  # epoch 2, step 2
            return loss * float("nan"), terms
        return loss, terms

    run.loss_fn = flaky
    assert run.start().wait(300) == "done", run.message
    ev = [e for e in run.events_since(0) if e["type"] == "nan_rollback"]
    assert len(ev) == 1 and ev[0]["epoch"] == 2 and ev[0]["lr_scale"] == 0.5
    assert [r["epoch"] for r in run.history] == [0, 1, 2, 3]
    assert run.history[2]["lr"] == pytest.approx(0.5 * 1e-3 / (1 + 0.1 * 1))
    assert all(np.isfinite(r["loss"]) for r in run.history)


def test_persistent_nan_fails_cleanly(tmp_path):
    run = TrainingRun(tmp_path / "bad", small_config(epochs=3, max_nan_retries=2))
    run.loss_fn = lambda *a, **k: (torch.tensor(float("nan"), requires_grad=True), {})
    assert run.start().wait(120) == "failed"
    assert "gave up after 2 roll-backs" in run.message
    assert json.loads((tmp_path / "bad" / "status.json").read_text())["status"] == "failed"


def test_cancel_and_device(tmp_path):
    run = TrainingRun(tmp_path / "c", small_config(epochs=50))
    run.start()
    while run.n_events == 0 and run.running:
        time.sleep(0.05)
    run.cancel()
    assert run.wait(60) == "cancelled"
    assert len(run.history) < 50
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda")


def test_refuses_to_mix_runs(tmp_path):
    # a directory whose run never wrote a checkpoint starts fresh with the new settings
    TrainingRun(tmp_path / "r", small_config(epochs=2))
    fresh = TrainingRun(tmp_path / "r", small_config(epochs=1, max_events=1000))
    assert fresh.fresh
    assert json.loads((tmp_path / "r" / "config.json").read_text())["max_events"] == 1000
    assert fresh.run_blocking() == "done"
    # once it has a checkpoint, other settings are refused naming the differing fields
    with pytest.raises(FileExistsError, match=r"different config \(.*max_events: 1000 → 4000.*--restart"):
        TrainingRun(tmp_path / "r", small_config(epochs=3))
    with pytest.raises(FileNotFoundError, match="not a training run"):
        TrainingRun(tmp_path / "nothing")


def test_nan_retries_and_lr_cut_are_checkpointed_and_survive_a_resume(tmp_path):
    nan = lambda *a, **k: (torch.tensor(float("nan"), requires_grad=True), {})  # noqa: E731
    run = TrainingRun(tmp_path / "r", small_config(epochs=3, max_nan_retries=3))
    run.loss_fn = nan
    assert run.run_blocking(lambda ev: run.cancel() if ev["type"] == "nan_rollback" and ev["retries"] == 2
                            else None) == "cancelled"
    ck = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)
    assert ck["nan_retries"] == 2 and ck["lr_scale"] == 0.25
    resumed = TrainingRun(tmp_path / "r")
    resumed.loss_fn = nan
    assert resumed.start().wait(120) == "failed"
    assert "gave up after 3 roll-backs" in resumed.message
    assert [e["retries"] for e in resumed.events_since(0) if e["type"] == "nan_rollback"] == [3]


def test_train_config_bounds_and_nothing_invalid_written(tmp_path):
    from otviz.errors import ConfigError
    from otviz.models.otus import GeneratorConfig
    from otviz.train import Stage, TrainConfig

    assert TrainConfig.BOUNDS["n_projections"] == (1, 10_000) and TrainConfig.BOUNDS["epochs"] == (1, 5000)
    assert Stage.BOUNDS["lr"] == (1e-8, 1.0) and GeneratorConfig.BOUNDS["hidden"][0] == 1
    for kw, needle in [(dict(epochs=0), "epochs"), (dict(epochs=-3), "epochs"), (dict(epochs=5001), "epochs"),
                       (dict(finetune_epochs=-2), "finetune_epochs"), (dict(batch_size=0), "batch_size"),
                       (dict(batch_size=-10), "batch_size"), (dict(n_projections=0), "n_projections"),
                       (dict(n_projections=10_001), "n_projections"), (dict(checkpoint_every=0), "checkpoint_every"),
                       (dict(max_events=-5), "max_events"), (dict(max_events=0), "max_events"),
                       (dict(batch_size="big"), "batch_size"), (dict(loss_space="gev"), "loss_space"),
                       (dict(anchor_particle="mu-"), "anchor_particle"), (dict(nan_lr_factor=0.0), "nan_lr_factor")]:
        with pytest.raises(ConfigError, match=needle) as info:
            small_config(**kw)
        assert isinstance(info.value, ValueError) and ("allowed" in str(info.value) or "must be" in str(info.value))
    with pytest.raises(ConfigError, match=r"Stage.lr = 0.0 is out of range"):
        Stage("main", 3, lr=0.0)
    with pytest.raises(ConfigError, match="hidden"):
        GeneratorConfig(hidden=0)
    cfg = small_config()
    cfg.batch_size = 0  # set after construction: caught before the run directory exists
    with pytest.raises(ConfigError, match="batch_size"):
        TrainingRun(tmp_path / "new", cfg)
    assert not (tmp_path / "new").exists()
    text = small_config().to_json().replace('"n_projections": 100', '"n_projections": 0')
    with pytest.raises(ConfigError, match="n_projections"):
        TrainConfig.from_json(text)
    # wrong data for the model: refused before anything is written
    with pytest.raises(ValueError, match=r"wjets.nc \(train_data\).*e-"):
        TrainingRun(tmp_path / "wrong", small_config(train_data=str(ROOT / "data" / "wjets.nc")))
    assert not (tmp_path / "wrong").exists()
    # runs trained to completion still load
    for name in ("otus-zee", "emdvae-wjets", "emdvae-wjets-centred"):
        run = otviz.load_run(ROOT / "data" / "pretrained" / name)
        assert run.status["status"] == "done" and run.history
        run.config.validate()


def test_a_folder_that_is_not_a_run_keeps_its_files(tmp_path):
    from otviz.errors import RunExistsError

    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    (folder / ".zee.nc.abc.tmp").write_text("another writer's temporary file")
    run = TrainingRun(folder, small_config(epochs=1))
    assert run.fresh and (folder / "notes.txt").exists() and (folder / ".zee.nc.abc.tmp").exists()
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "model.pt").write_bytes(b"not ours")
    with pytest.raises(RunExistsError, match="no config.json"):
        TrainingRun(tmp_path / "weights", small_config(epochs=1))
    assert (tmp_path / "weights" / "model.pt").read_bytes() == b"not ours"


def test_semi_supervised_otus_learns_the_pairing_from_a_paired_fraction(tmp_path):
    """OTUS §7 (Eq. 20–21) on the linear-Gaussian toy (z ~ N(0, 10²), x = z + N(0, 10²) per
    momentum component, one electron). The marginals alone cannot say which x component belongs
    to which z one (a rotation of z matches p(z) as well); with every event also seen as a pair
    (paired_fraction 1) both maps follow the regressions E[x | z] = z and E[z | x] = x/2 — up to
    the bias of the four-vector distance, whose E = |p| coordinate pulls the slopes up (1.23 and
    0.61 in a 15-epoch pilot on 20,000 events)."""
    from otviz.data.toy import gaussian_smearing
    from otviz.models.otus import GeneratorConfig, OTUSConfig
    from otviz.train.config import Stage, TrainConfig

    gaussian_smearing(10_000, seed=1).to_netcdf(tmp_path / "toy.nc", engine="h5netcdf")
    cfg = TrainConfig(model="toy", train_data=str(tmp_path / "toy.nc"), test_data=None,
                      stages=[Stage("main", 10, lam=1.0)], batch_size=1000, n_projections=100, mass_feature=False,
                      device="cpu", seed=1, paired_fraction=1.0, paired_weight=10.0,
                      model_config=OTUSConfig(("e-",), ("e-",), encoder=GeneratorConfig(hidden=64),
                                              decoder=GeneratorConfig(hidden=64)))
    run = TrainingRun(tmp_path / "semi", cfg)
    assert run.run_blocking() == "done", run.message
    assert {"paired_x", "paired_z"} <= set(run.history[-1])
    model = otviz.load_run(tmp_path / "semi").model
    test = gaussian_smearing(10_000, seed=2)
    x, z = torch.as_tensor(test.x.values), torch.as_tensor(test.z.values)
    with torch.no_grad():
        zt, xt = model.encode(x), model.decode(z)
    for c in range(3):
        assert 0.9 < np.polyfit(z[:, 0, c], xt[:, 0, c], 1)[0] < 1.35
        assert 0.45 < np.polyfit(x[:, 0, c], zt[:, 0, c], 1)[0] < 0.7
