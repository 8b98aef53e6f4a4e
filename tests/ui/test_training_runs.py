"""Training from the Train page under load: caps from the config classes, disk checks, one run at
a time with a queue, re-attaching and cancelling from any session, pruning, shutdown."""
import json
import os
import socket
import subprocess
import time
from types import SimpleNamespace

import panel as pn
import pytest

import otviz.ui.state as ui_state
from otviz.train import registry
from otviz.ui.explorer import LatentExplorer


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setattr(ui_state, "RUNS", tmp_path / "runs")
    pn.extension("tabulator")
    yield tmp_path / "runs"
    for e in registry.entries(active_only=True):  # never leave a run training behind
        registry.cancel(e.rundir)
    for r in registry.active_runs():
        r.wait(60)


def _until(pred, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    raise AssertionError("timed out")


def _small_otus(app, epochs=300):
    s = app.train.settings
    s.epochs, s.finetune_epochs, s.max_events, s.batch_size, s.n_projections = epochs, 0, 2000, 1000, 10


def test_train_page_caps_come_from_the_config_classes_and_an_oversized_run_is_refused(runs):
    from otviz.models.emdvae import EMDVAEConfig
    from otviz.train.annealing import AnnealConfig
    from otviz.train.config import TrainConfig

    app = LatentExplorer()
    a = app.train.settings_for("emdvae")
    assert a.param.width.bounds[1] == EMDVAEConfig.BOUNDS["width"][1]
    assert a.param.latent.bounds[1] == EMDVAEConfig.BOUNDS["latent"][1]
    assert a.param.n_betas.bounds[1] == AnnealConfig.BOUNDS["n_steps"][1]
    assert a.param.max_epochs.bounds[1] == AnnealConfig.BOUNDS["max_epochs"][1]
    assert app.train.settings.param.epochs.bounds == TrainConfig.BOUNDS["epochs"]
    with pytest.raises(ValueError):
        a.width = 2048
    # the largest model the bounds allow, on the longest schedule: ≈ 1 GB of step files
    app.train.mode.value = "EMD-VAE β-annealing"
    a.param.update(schedule="production", n_betas=40, width=1024, latent=256, max_epochs=200)
    app.train._start()
    assert "Could not start" in app.train.status.object and "MB" in app.train.status.object
    assert app.state.notices.alert.visible
    assert not (runs / "ui").exists() or not any((runs / "ui").iterdir())  # nothing written
    assert registry.entries(active_only=True) == []


def test_free_disk_is_checked_before_a_run_starts(tmp_path, monkeypatch):
    from otviz.train.annealing import emdvae_wjets_config

    monkeypatch.setattr(registry.shutil, "disk_usage", lambda p: SimpleNamespace(total=2 ** 40, used=0, free=300 * 2 ** 20))
    with pytest.raises(registry.RunRefused, match="free disk"):
        registry.submit(tmp_path / "r", emdvae_wjets_config(True, n_betas=2))
    assert not (tmp_path / "r").exists()


def test_one_run_at_a_time_others_queue_and_any_session_can_attach_and_cancel(runs):
    a, b, reloaded = LatentExplorer(), LatentExplorer(), LatentExplorer()
    _small_otus(a)
    _small_otus(b)
    a.train._start()
    b.train._start()
    a.train.poll()
    b.train.poll()
    assert registry.get_run(a.train.rundir).running
    assert registry.get_run(b.train.rundir) is None and registry.queue_position(b.train.rundir) == 1
    assert "Queued" in b.train.status.object and "position 1" in b.train.status.object
    # a reloaded page lists both runs, re-attaches to the running one and cancels it
    reloaded.train.poll()
    assert set(reloaded.train.run_select.options.values()) == {str(a.train.rundir), str(b.train.rundir)}
    assert "queued, position 1" in reloaded.train.runs_list.object
    reloaded.train.attach(str(a.train.rundir))
    assert not reloaded.train.cancel_button.disabled
    reloaded.train._cancel()
    _until(lambda: not registry.get_run(a.train.rundir).running)
    a.train.poll()
    assert a.train.status.object.lower().count("cancelled") == 1 and not a.train.start_button.disabled  # one message
    # the queued run starts by itself once the first one ended
    _until(lambda: registry.get_run(b.train.rundir) is not None)
    b.train.poll()
    assert "Queued" not in b.train.status.object
    reloaded.train.poll()
    reloaded.train.run_select.value = str(b.train.rundir)
    reloaded.train._cancel_selected()
    _until(lambda: not registry.get_run(b.train.rundir).running)
    reloaded.train.poll()
    assert reloaded.train.run_select.options == {}


def test_prune_keeps_the_newest_finished_runs_and_never_a_running_one(tmp_path):
    base = tmp_path / "ui"
    other = subprocess.Popen(["sleep", "60"])  # "another process" training r4
    try:
        t0 = time.time() - 1000
        for i, st in enumerate(["done", "failed", "cancelled", "done", "running", "done"]):
            d = base / f"r{i}"
            d.mkdir(parents=True)
            (d / "config.json").write_text("{}")
            rec = {"status": st, "message": "", "time": t0}
            if st == "running":
                rec.update(pid=other.pid, host=socket.gethostname(), heartbeat=time.time())
            (d / "status.json").write_text(json.dumps(rec))
            os.utime(d, (t0 + i, t0 + i))
        removed = registry.prune_runs(base, keep=2)
        assert sorted(p.name for p in removed) == ["r0", "r1", "r2"]
        assert sorted(p.name for p in base.iterdir()) == ["r3", "r4", "r5"]
    finally:
        other.kill()
        other.wait()


def test_shutdown_cancels_running_runs_and_drops_queued_ones(runs):
    a, b = LatentExplorer(), LatentExplorer()
    _small_otus(a)
    _small_otus(b)
    a.train._start()
    b.train._start()
    _until(lambda: registry.get_run(a.train.rundir).n_events > 0)
    registry.shutdown(timeout=60)
    st = json.loads((a.train.rundir / "status.json").read_text())
    assert st["status"] == "cancelled" and "server stopped" in st["message"]
    assert registry.get_entry(b.train.rundir).state == "cancelled" and not b.train.rundir.exists()
    b.train.poll()
    assert "cancelled" in b.train.status.object


def test_wide_ranged_settings_are_typed_not_slid(runs):
    """Batch size, training events and seed span 1 … 1e7–1e8 (or 2³²): on a slider 5000 and 20000
    both sit at the left end, so they are number inputs, in both training modes."""
    from otviz.ui.train_view import TrainView

    tv = TrainView(LatentExplorer().state)
    for mode in ("OTUS Z→ee", "EMD-VAE β-annealing"):
        tv.mode.value = mode
        view = tv.__panel__()
        assert not list(view.select(pn.widgets.IntSlider)), mode
        typed = {w.name for w in view.select(pn.widgets.IntInput)}
        assert {"training events (0: all)", "seed"} <= typed, (mode, typed)
    tv.mode.value = "OTUS Z→ee"
    assert "batch size" in {w.name for w in tv.__panel__().select(pn.widgets.IntInput)}
