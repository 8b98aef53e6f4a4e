"""The Hadronisation page and the Train page's HadML form on a small HadML run made here (a toy
cluster sample — π⁺π⁻ decays, a third of the clusters perturbative and decaying along their quark —
and a 1-epoch run with tiny networks): the page builds, the mass bin and origin select the clusters
plotted, Regenerate draws a new decay of the shown cluster, errors are shown in the page; the form
gives validated v1/v2 configs and a dashboard run shows its HadML curves."""
import time
from pathlib import Path

import numpy as np
import pytest

import otviz.ui.state as ui_state
from otviz.errors import ConfigError
from otviz.physics.observables import readable

M_PI = 0.13957039


def toy_clusters(n: int = 1600, seed: int = 0):
    """A cluster Dataset: masses 0.4 + Γ(2, 0.9) GeV, momenta N(0, 6 GeV), 8 clusters per event, u ū
    constituents, π⁺π⁻ decays; 35 % perturbative (hadron 0 within ~0.05 of its quark's direction in
    cos θ*), the rest isotropic about the flight direction."""
    from otviz.data.clusterset import make_cluster_dataset
    from otviz.physics import twobody

    rng = np.random.default_rng(seed)
    M = 0.4 + rng.gamma(2.0, 0.9, n)
    P = rng.normal(0, 6, (n, 3))
    cl = np.concatenate([P, np.sqrt(M ** 2 + (P ** 2).sum(-1))[:, None]], -1)
    pert = np.zeros((n, 2), bool)
    pert[:, 0] = rng.random(n) < 0.35
    q = rng.normal(size=(n, 3))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q_rest = np.concatenate([q * (M[:, None] / 2), (M / 2)[:, None]], 1)
    parton = np.stack([twobody.boost_from_rest(q_rest, cl), twobody.boost_from_rest(q_rest * [-1, -1, -1, 1], cl)], 1)
    cos = np.where(pert[:, 0], np.clip(1 - rng.exponential(0.05, n), -1, 1), rng.uniform(-1, 1, n))
    axis = np.where(pert[:, 0, None], q, cl[:, :3])
    had = twobody.two_body_decay(cl, np.full(n, M_PI), np.full(n, M_PI), cos, rng.uniform(-np.pi, np.pi, n), axis)
    return make_cluster_dataset(cl, had, np.tile([211, -211], (n, 1)), np.arange(n) // 8, parton=parton,
                                parton_pid=np.tile([2, -2], (n, 1)), perturbative=pert)


def make_toy_run(d: Path, epochs: int = 1) -> Path:
    """A finished 1-epoch HadML v1 run in ``d``/hadml on :func:`toy_clusters` (a few seconds)."""
    from otviz.data.clusterset import save_clusters
    from otviz.models.hadml import HadMLModelConfig
    from otviz.train.hadml import HadMLConfig, HadMLRun

    save_clusters(toy_clusters(), d / "toy_clusters.nc", overwrite=True)
    small = HadMLModelConfig(g_hidden=(32,), d_hidden=(32,), phi_hidden=(16,), phi_out=16, f_hidden=(16,))
    cfg = HadMLConfig(data=str(d / "toy_clusters.nc"), epochs=epochs, batch_size=256, device="cpu", model_config=small)
    run = HadMLRun(d / "hadml", cfg)
    assert run.run_blocking() == "done", run.message
    return d / "hadml"


@pytest.fixture(scope="module")
def rundir(tmp_path_factory):
    return make_toy_run(tmp_path_factory.mktemp("hadml"))


def _view(rundir, monkeypatch):
    from otviz.ui.hadronisation_view import HadronisationView
    from otviz.ui.state import ExplorerState

    monkeypatch.setattr(ui_state, "RUNS", rundir.parent)
    state = ExplorerState()
    objs = state.param.hadml_path.objects
    assert str(rundir) in (objs.values() if isinstance(objs, dict) else objs)
    state.hadml_path = str(rundir)
    return state, HadronisationView(state)


def _title(pane):
    return list(pane.object)[0].opts.get().kwargs["title"]


def test_test_clusters_are_the_runs_test_split(rundir):
    import json

    from otviz.data.clusterset import load_clusters
    from otviz.train.hadml import test_clusters

    ds = test_clusters(rundir)
    split = json.loads((rundir / "split.json").read_text())["data"]
    full = load_clusters(rundir.parent / "toy_clusters.nc")
    np.testing.assert_array_equal(ds["cluster"].values, full["cluster"].values[split["test"]])
    assert set(np.unique(ds["event"].values)).isdisjoint(full["event"].values[split["train"]])


def test_the_page_shows_the_run_and_follows_the_widgets(rundir, monkeypatch):
    from otviz.ui.hadronisation_view import load_hadronisation

    state, view = _view(rundir, monkeypatch)
    assert not view.message.visible, view.message.object
    d = load_hadronisation(rundir)
    n = d["test"].sizes["cluster"]
    assert f"{n} test clusters" in view.title.object and "Goal: W₁ ≤ 2 × truth-vs-truth floor" in view.goal.object
    assert view.goal.object.count("| cos θ* |") == 3  # one row per cluster-mass bin
    for pane in (view.mass_pane, view.cluster_pane, view.dr_pane, *view.angle_panes, *view.lab_panes):
        assert pane.object is not None
    # the plotted generated decays are the run's evaluation draw: metrics.nc's W₁ of cos θ* (all, all)
    m = d["metrics"]
    w1 = float(m["value"].sel(observable="cos_theta", mass_bin="all", origin="all", statistic="w1"))
    assert f"W₁ {readable(w1, 2)} (floor" in _title(view.angle_panes[0])
    # the mass bin selects the clusters plotted
    view.mass_bin = "1.5–3 GeV"
    sel = (d["mass"] >= 1.5) & (d["mass"] < 3.0)
    assert f"{int(sel.sum())} of {n} test clusters" in view.selection_text.object
    assert _title(view.angle_panes[0]).startswith("1.5–3 GeV, all origins: cos θ*")
    curves = [el for el in list(view.angle_panes[0].object)[0] if el.label.startswith("reference")]
    assert curves[0].label == f"reference ({int(sel.sum())})"
    view.origin = "perturbative"
    both = sel & d["from_quark"]
    assert f"{int(both.sum())} of {n}" in view.selection_text.object
    # every histogram title names the mass bin and the origin; no title line is wider than its plot
    for pane in (*view.angle_panes, *view.lab_panes):
        title = _title(pane)
        assert "1.5–3 GeV" in title and "perturbative" in title, title
        assert max(map(len, title.split("\n"))) <= 64, title
    for pane in view.lab_panes:
        assert max(map(len, _title(pane).split("\n"))) <= 40, _title(pane)
    i = int(np.flatnonzero(both)[0])
    assert f"(test cluster {i}," in view.cluster_text.object
    assert "perturbative" in view.cluster_pane.object.opts.get().kwargs["title"]
    # another cluster of the selection, then Regenerate: a new draw of the same cluster
    view.cluster = 1
    j = int(np.flatnonzero(both)[1])
    assert f"(test cluster {j}," in view.cluster_text.object and "the evaluation's draw" in view.cluster_text.object
    before = view.cluster_pane.object
    view.regenerate()
    assert not view.message.visible, view.message.object
    assert "draw 1" in view.cluster_text.object and view.cluster_pane.object is not before
    h1 = view._generated[0]
    assert not np.allclose(h1, d["hadron"][j])
    np.testing.assert_allclose(h1.sum(0), d["test"]["cluster"].values[j], atol=1e-9)  # the same cluster, conserved
    view.regenerate()
    assert "draw 2" in view.cluster_text.object and not np.allclose(view._generated[0], h1)
    # an index beyond the selection falls back to its first cluster when the selection shrinks
    view.cluster = int(both.sum()) - 1
    view.mass_bin = "> 3 GeV"
    assert view.cluster < max(int(((d["mass"] >= 3) & d["from_quark"]).sum()), 1)
    assert not view.message.visible


def test_errors_are_shown_in_the_page(rundir, tmp_path, monkeypatch):
    import json
    import shutil

    state, view = _view(rundir, monkeypatch)
    nothing = tmp_path / "nothing"
    nothing.mkdir()
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"kind": "tagger"}))
    unfinished = tmp_path / "unfinished"
    shutil.copytree(rundir, unfinished)
    (unfinished / "model.pt").unlink()
    extra = {"nothing": str(nothing), "other": str(other), "unfinished": str(unfinished)}
    state.param.hadml_path.objects = {**state.param.hadml_path.objects, **extra}
    for path, text in ((nothing, "not a run directory"), (other, "not a HadML (hadml) run"),
                       (unfinished, "no model.pt")):
        state.hadml_path = str(path)
        assert view.message.visible and text in view.message.object, view.message.object
        assert view.cluster_pane.object is None and view.goal.object == ""
        view.regenerate()  # nothing to regenerate: no error
    state.hadml_path = None  # no run at all (a checkout without the shipped run, nothing trained)
    assert view.title.object.startswith("No HadML run yet") and not view.body.visible
    state.hadml_path = str(rundir)
    assert not view.message.visible and view.cluster_pane.object is not None and view.body.visible


def test_the_train_form_and_curves(rundir, tmp_path, monkeypatch):
    from otviz.train.hadml import HadMLConfig, hadml_v2_config
    from otviz.ui.state import ExplorerState
    from otviz.ui.train_view import HadMLSettings, TrainView

    form = HadMLSettings(data="c.nc", epochs=3, batch_size=128, lr_g=1e-4, lr_d=3e-4, max_events=50, device="cpu")
    cfg = form.to_config()
    assert type(cfg) is HadMLConfig and cfg.mode == "v1"
    assert (cfg.data, cfg.epochs, cfg.batch_size, cfg.lr_g, cfg.lr_d, cfg.max_events) == ("c.nc", 3, 128, 1e-4, 3e-4, 50)
    assert HadMLSettings(max_events=0).to_config().max_events is None
    # the v2 fields are hidden while v1 is chosen (precedence below the form's threshold), shown for v2
    import panel as pn

    def shown(f):
        return {w.name for w in pn.Param(f, show_name=False).layout}

    labels = {HadMLSettings.param[n].label for n in ("target", "init_from")}
    assert not labels & shown(form) and HadMLSettings.param["target"].precedence is None
    form.version = "v2"  # the v2 preset's schedule
    assert labels <= shown(form)
    v2, preset = form.to_config(), hadml_v2_config()
    assert v2.mode == "v2" and v2.target and v2.init_from
    assert (v2.epochs, v2.batch_size, v2.lr_g, v2.lr_d, v2.n_critic) == (preset.epochs, preset.batch_size, preset.lr_g,
                                                                         preset.lr_d, preset.n_critic)
    form.version = "v1"
    assert not labels & shown(form)
    form.version = "v2"
    form.init_from = " "
    with pytest.raises(ConfigError, match="init_from"):
        form.to_config()
    monkeypatch.setattr(ui_state, "RUNS", tmp_path / "runs")
    train = TrainView(ExplorerState())
    assert isinstance(train.settings_for("hadml"), HadMLSettings)
    # a dashboard run: live discriminator/generator losses, then the per-epoch curves
    train.mode.value = train._form_kinds["hadml"]
    s = train.settings
    s.param.update(data=str(rundir.parent / "toy_clusters.nc"), epochs=2, batch_size=64, device="cpu")
    train._start()
    deadline = time.time() + 60
    while not train._done and time.time() < deadline:
        time.sleep(0.2)
        train.poll()
    assert "**Done.**" in train.status.object, train.status.object
    labels = {el.label for el in train.curve.object}
    assert {"discriminator loss", "generator loss"} <= labels
    assert train.fit_box.visible and "HadML training" in train.fit_title.object
    # a finished run chosen in a menu shows the same curves
    other = TrainView(ExplorerState())
    other.show_selected(str(rundir))
    assert other.fit_box.visible and "HadML training" in other.fit_title.object



def test_goal_markdown_marks_cells_without_clusters_not_evaluable():
    import numpy as np

    from otviz.data.clusterset import make_cluster_dataset
    from otviz.metrics.hadronisation import hadronisation_metrics
    from otviz.physics import twobody
    from otviz.ui.hadronisation_view import goal_markdown

    rng = np.random.default_rng(0)
    n = 40  # all below 1.5 GeV: the other two mass bins are empty
    M = rng.uniform(0.6, 1.4, n)
    P = rng.normal(0, 3, (n, 3))
    cl = np.concatenate([P, np.sqrt(M**2 + (P**2).sum(-1))[:, None]], -1)
    m = np.full(n, 0.13957039)
    had = twobody.two_body_decay(cl, m, m, rng.uniform(-1, 1, n), rng.uniform(-3, 3, n))
    ds = make_cluster_dataset(cl, had, np.tile([211, -211], (n, 1)), event=np.arange(n) // 4)
    text = goal_markdown(hadronisation_metrics(ds, had))
    assert "n/a (0 clusters)" in text and "not evaluable" in text
