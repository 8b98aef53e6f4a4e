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
