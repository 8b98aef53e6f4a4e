"""Dashboard callbacks without a browser: bounds from the data, errors shown in the page, a
consistent page after a run switch, caches that follow max_events, URL parameters."""
import panel as pn
import pytest
import torch

import otviz.ui.state as ui_state
from otviz.ui.explorer import LatentExplorer


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setattr(ui_state, "RUNS", tmp_path / "runs")
    pn.extension("tabulator")
    return LatentExplorer()


def _event_input(view):
    return [w for w in view.__panel__().select(pn.widgets.IntInput) if w.name.startswith("test event")][0]


def test_transport_event_bounds_come_from_the_data_and_bad_values_are_refused_in_the_page(app):
    tv = app.transport
    n = len(app.state.test_sample()["event"])
    w = _event_input(tv)
    assert tv.param.event.bounds == (0, n - 1) and w.name == f"test event (0 … {n - 1})"
    w.value = 7
    assert tv.event == 7 and isinstance(tv._stochastic(), pn.pane.HoloViews)
    for bad in (99999, -1):
        w.value = bad  # what a typed value does in a served page
        assert tv.event == 7 and w.value == 7  # refused: widget and plot still show event 7
        assert app.state.notices.alert.visible and str(bad) in app.state.notices.alert.object
    assert isinstance(tv._stochastic(), pn.pane.HoloViews)
    w.value = 49  # a valid event: the error about -1 no longer holds and is taken down
    assert tv.event == 49 and not app.state.notices.alert.visible
    app.state.notices.error("from elsewhere", source="another page")
    w.value = 50  # … but a message of another source stays
    assert app.state.notices.alert.visible and app.state.notices.alert.object == "from elsewhere"
    app.state.notices.clear()
    app.state.max_events = 2000  # fewer test events: the bounds follow
    assert tv.param.event.bounds == (0, 1999) and w.name.endswith("(0 … 1999)")


def test_explorer_state_caches_follow_max_events(app):
    st = app.state
    st.max_events = 2000
    assert st.test_sample().sizes["event"] == 2000
    assert st.outputs()["x"].shape[0] == 2000
    st.max_events = 3000
    assert st.test_sample().sizes["event"] == 3000
    assert st.train_sample().sizes["event"] == 3000
    assert st.outputs()["x_tilde"].shape[0] == 3000


@pytest.fixture(scope="module")
def small_latent_run(tmp_path_factory):
    from otviz.models.emdvae import EMDVAEConfig
    from otviz.train.annealing import AnnealingRun, emdvae_wjets_config

    runs = tmp_path_factory.mktemp("runs")
    threads = torch.get_num_threads()
    cfg = emdvae_wjets_config(True, max_events=200, n_betas=2, max_epochs=1, steps_per_epoch=2, batch_size=50,
                              threads=1, model_config=EMDVAEConfig(latent=4, width=32))
    try:
        assert AnnealingRun(runs / "small4", cfg).run_blocking() == "done"
    finally:
        torch.set_num_threads(threads)
    return runs


def test_traversal_switch_to_a_run_with_fewer_latent_dims_leaves_a_consistent_page(small_latent_run, monkeypatch,
                                                                                   caplog):
    import datetime

    from bokeh.document import Document

    monkeypatch.setattr(ui_state, "RUNS", small_latent_run)
    app = LatentExplorer()
    tv = app.traversal
    labels = app.state.param.vae_path.names
    latent = lambda: len(tv._steps()[tv.step]["kl_per_dim"])  # noqa: E731
    assert "pretrained/emdvae-wjets" in app.state.vae_path and latent() == 32  # a shipped 32-d run first
    pn.panel(tv).get_root(Document())
    tv.dim_x, tv.dim_y = 20, 30  # directions a 4-d model does not have
    tv._on_tap(x=tv._last.u[0], y=tv._last.v[0])  # a picked tile of the 32-d model
    assert tv._last.dims == (20, 30) and "Tile (0, 0)" in tv.info.object
    # the menu names a run relative to its runs root, with its kind and when its weights were written
    when = datetime.datetime.fromtimestamp((small_latent_run / "small4" / "model.pt").stat().st_mtime)
    assert labels[f"small4 · EMD-VAE · {when:%Y-%m-%d %H:%M}"] == str(small_latent_run / "small4")
    app.state.vae_path = str(small_latent_run / "small4")
    assert latent() == 4 and tv.dim_x < 4 and tv.dim_y < 4 and tv.dim_x != tv.dim_y
    assert tv._last.latent.shape[-1] == 4 and tv._last.dims == (tv.dim_x, tv.dim_y)  # mosaic of the new model
    assert "Tile (4, 4)" in tv.info.object  # the selected jet: the new model's centre tile, not the old pick
    assert f"z{tv.dim_x} = " in tv.info.object and f"z{tv.dim_y} = " in tv.info.object
    assert "Error" not in caplog.text, caplog.text  # no callback raised (param logs what a served page would)
    assert not app.state.notices.alert.visible, app.state.notices.messages
    app.state.vae_path = [p for p in labels.values() if p.endswith("pretrained/emdvae-wjets")][0]
    assert latent() == 32 and tv._last.latent.shape[-1] == 32


@pytest.mark.parametrize("query", ["?epochs=10&max_events=20000&batch_size=0", "?batch_size=0&epochs=10&max_events=20000"])
def test_url_parameters_apply_the_valid_ones_and_name_the_rejected_ones(query, tmp_path, monkeypatch):
    from panel.io.location import Location

    monkeypatch.setattr(ui_state, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(pn.state, "_location", Location(search=query))
    app = LatentExplorer()
    s = app.train.settings
    assert (s.epochs, s.max_events) == (10, 20000)  # the valid ones applied, whatever their order
    assert s.batch_size == type(s).param.batch_size.default  # the invalid one rejected …
    shown = app.state.notices.alert
    assert shown.visible and "batch_size=0" in shown.object  # … with a visible message


def test_runs_page_disables_impossible_actions_and_says_why_in_plain_words(app, tmp_path, monkeypatch):
    import json

    from otviz.paths import pretrained_dir

    monkeypatch.setenv("OTVIZ_RUNS", str(tmp_path / "runs"))
    cfg = json.loads((pretrained_dir() / "otus-zee" / "config.json").read_text())
    for name, status in (("finished", "done"), ("stopped", "cancelled")):
        d = tmp_path / "runs" / "ui" / name
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps(cfg))
        (d / "status.json").write_text(json.dumps({"status": status, "message": status}))
    view = app.runs
    view.refresh()
    names = [r.name for r in view.rows]
    assert {"pretrained/otus-zee", "runs/ui/finished", "runs/ui/stopped"} <= set(names)
    buttons = lambda: {b.name: b.disabled for b in (view.open_button, view.resume_button, view.cancel_button,  # noqa: E731
                                                     view.delete_button)}
    assert buttons() == {"Open": True, "Resume": True, "Cancel run": True, "Delete…": True}  # nothing selected
    view.select("pretrained/otus-zee")  # shipped: opened, never resumed nor deleted
    assert buttons() == {"Open": False, "Resume": True, "Cancel run": True, "Delete…": True}
    view.select("runs/ui/finished")  # finished: nothing to resume, may be deleted
    assert buttons() == {"Open": False, "Resume": True, "Cancel run": True, "Delete…": False}
    view.select("runs/ui/stopped")  # stopped before its end: resumable
    assert buttons() == {"Open": False, "Resume": False, "Cancel run": True, "Delete…": False}
    # the refusals (a stale page, a scripted click) are plain sentences: no exception class name
    view.select("runs/ui/finished")
    view._act(view.resume)
    assert view.message.object == "**Not done:** `runs/ui/finished` has finished training: there is nothing to resume."
    view.select("pretrained/otus-zee")
    view._act(view.ask_delete)
    assert view.message.object == ("**Not done:** `pretrained/otus-zee` is a shipped run (under data/pretrained) "
                                   "and is never deleted.")
    view.table.selection = []
    view._act(view.open)
    assert view.message.object == "**Not done:** Select a run in the table first."
    assert not any(w in view.message.object for w in ("Error", "Exception"))
