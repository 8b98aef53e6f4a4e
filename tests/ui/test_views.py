"""Dashboard components without a browser: state, pages and a training started from the Train page."""
import time

import panel as pn
import pytest

import otviz.ui.state as ui_state
from otviz.ui.explorer import LatentExplorer


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setattr(ui_state, "RUNS", tmp_path / "runs")
    pn.extension("tabulator")
    return LatentExplorer()


def test_pages_render_for_the_shipped_run(app):
    assert any("pretrained/otus-zee" in k for k in app.state.param.run_path.objects)
    assert app.state.run.config.model == "otus-zee"
    out = app.state.outputs()
    assert out["x_tilde_prime"].shape == out["x"].shape
    assert app.data.quantity == "m_ee"
    col = app.residuals._plot()
    table = [o for o in col if isinstance(o, pn.widgets.Tabulator)][0]
    df = table.value
    assert list(df["sample"]) == ["x̃′ = D(z)", "x̃ = D(E(x))"]
    assert (df["ks floor"] > 0).all() and (df["KS / floor"] > 0).all()
    app.residuals.space = "z"
    assert app.residuals.quantity == "m_ee"
    assert len(app.transport._transport_pane.objects) == 2  # true and learned pairs
    app.transport.x_quantity = "e-.px"
    assert len(app.transport._transport_pane.objects) == 2
    assert isinstance(app.transport._stochastic(), pn.pane.HoloViews)
    assert app.__panel__() is not None


def test_train_page_runs_in_the_background_and_adds_the_run(app):
    s = app.train.settings
    s.epochs, s.max_events, s.batch_size, s.n_projections = 2, 3000, 1000, 50
    app.train._start()
    assert app.train.start_button.disabled
    deadline = time.time() + 120
    while time.time() < deadline:
        app.train.poll()  # what the periodic callback does in a served page
        if not app.train.start_button.disabled:
            break
        time.sleep(0.2)
    assert app.train.progress.value == 100
    assert "Done" in app.train.status.object
    assert app.state.run_path == str(app.train.rundir)
    assert len(app.train._points) == 2 * 3  # one point per step, streamed to the loss curve
    assert app.state.run.history[-1]["epoch"] == 1


def test_latent_traversal_and_dimensionality_pages(app):
    import numpy as np
    from bokeh.document import Document

    from otviz.viz.jets import top_kl_dimensions

    labels = app.state.param.vae_path.objects
    assert any(k.endswith("pretrained/emdvae-wjets-centred") for k in labels)
    assert any(k.endswith("pretrained/emdvae-wjets") for k in labels)
    assert not any("emdvae" in k for k in app.state.param.run_path.objects)  # OTUS pages list OTUS runs only
    tv = app.traversal
    assert tv.step is not None
    pn.panel(tv).get_root(Document())
    assert tv.last_ms > 0 and tv._last.jets.shape == (9, 9, 50, 3)
    st = tv._steps()[tv.step]
    assert [tv.dim_x, tv.dim_y] == top_kl_dimensions(st["kl_per_dim"])  # default: the two highest-KL directions
    before = tv._last.jets.copy()
    tv.centre_x = tv.centre_x + 1.0  # what a slider move does
    assert not np.allclose(tv._last.jets, before)
    assert np.allclose(tv._last.u[4], tv.centre_x)
    tv._on_tap(x=tv._last.u[0], y=tv._last.v[-1])
    assert "Tile (0, 8)" in tv.info.object
    tv._on_double_tap(x=0.5, y=-0.5)
    assert (tv.centre_x, tv.centre_y) == (0.5, -0.5)
    tv.n = 5
    assert tv._last.jets.shape[:2] == (5, 5)
    app.state.vae_path = [p for k, p in labels.items() if k.endswith("pretrained/emdvae-wjets")][0]
    assert tv._last.jets.shape[:2] == (5, 5) and tv.step is not None
    root = pn.panel(app.dimension).get_root(Document())
    assert root is not None
    content = app.dimension._content()
    assert "Mean H_T" in content[1][0].object


def test_train_page_launches_an_annealing_run(app):
    app.train.mode.value = "EMD-VAE β-annealing"
    app.train.anneal.param.update(max_events=300, n_betas=2, max_epochs=1, steps_per_epoch=2, latent=8, width=32)
    app.train._start()
    deadline = time.time() + 120
    while time.time() < deadline:
        app.train.poll()
        if not app.train.start_button.disabled:
            break
        time.sleep(0.2)
    assert "Done" in app.train.status.object, app.train.status.object
    # the preset's primed schedule: one step at the smallest β, then the production pass; one row per β step
    table = app.train.steps_table.object
    assert table.count("| priming |") == 1 and table.count("| production |") == 2
    assert app.state.vae_path == str(app.train.rundir)
    assert len(app.train._points) == 3 * 2 and "rate" in app.train._points[0]
