"""Dashboard components without a browser: state, pages and a training started from the Train page."""
import time

import panel as pn
import pytest

import otviz.ui.state as ui_state
from otviz.train.products import read_metrics
from otviz.ui.explorer import LatentExplorer


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setattr(ui_state, "RUNS", tmp_path / "runs")
    pn.extension("tabulator")
    return LatentExplorer()


def test_pages_render_for_the_shipped_run(app):
    assert any("pretrained/otus-zee" in k for k in app.state.param.run_path.names)
    assert app.state.run.config.model == "otus-zee"
    out = app.state.outputs()
    assert out["x_tilde_prime"].shape == out["x"].shape
    assert app.data.quantity == "m_ee"
    text = app.data._plot()[0].object  # what the Data page says it shows: the page's cut of the 100,000 training events
    assert "(train, the first 50,000 of its 100,000 events)" in text and "(test, 50,000 events)" in text, text
    col = app.residuals._plot()
    table = [o for o in col if isinstance(o, pn.widgets.Tabulator)][0]
    df = table.value
    assert list(df["sample"]) == ["x̃′ = D(z)", "x̃ = D(E(x))"]
    # the full test sample and seed 0: the page's numbers are the run's metrics.nc (otviz evaluate)
    stored = read_metrics(app.state.run_path)
    assert app.state.n_test == stored.attrs["n_test"] == 50_000
    for _, row in df.iterrows():
        for s in ("ks", "w1", "chi2r"):
            ref = stored.sel(comparison=row["comparison"], quantity="m_ee", statistic=s)
            assert row[s] == pytest.approx(float(ref["value"]), rel=1e-9, abs=1e-12)
            assert row[f"{s} floor"] == pytest.approx(float(ref["floor"]), rel=1e-9, abs=1e-12)
        assert row["KS / floor"] == pytest.approx(row["ks"] / row["ks floor"], rel=1e-12)
    app.residuals.space = "z"
    assert app.residuals.quantity == "m_ee"
    assert len(app.transport._transport_pane.objects) == 2  # true and learned pairs
    app.transport.x_quantity = "e-.px"
    assert len(app.transport._transport_pane.objects) == 2
    assert isinstance(app.transport._stochastic(), pn.pane.HoloViews)


def test_the_template_has_a_header_a_sidebar_and_lazy_pages(app):
    from otviz import __version__

    tmpl = app.template()
    assert tmpl.title == f"otviz latent explorer {__version__}"
    assert tmpl.header[0].object == "device: CPU"  # CI has no GPU
    pickers, controls = tmpl.sidebar
    assert [w.name for w in pickers] == ["OTUS / Turbo-Sim run", "EMD-VAE run", "OT calibration run", "HadML run"]
    tabs = tmpl.main[0][2]  # after the notices and the progress of what is being computed
    assert list(tabs._names) == ["Data", "Train", "Transport", "Residuals", "Latent traversal", "Dimensionality",
                                  "Calibration", "Hadronisation", "Compare runs", "Runs"]
    assert tabs.sizing_mode == "stretch_width"
    assert sorted(app._views) == ["data"]  # only the shown page was made
    assert controls[0].object == "#### Data page"
    assert [type(w).__name__ for w in controls[1][0]] == ["RadioButtonGroup", "Select"]  # space, quantity
    tabs.active = 3  # Residuals: its controls replace the Data page's in the sidebar
    assert controls[0].object == "#### Residuals page" and sorted(app._views) == ["data", "residuals"]
    assert controls[1][1].value == "m_ee"
    tabs.active = 1  # Train: its start and cancel buttons first in the sidebar (above the fold), then the settings
    assert [w.name for w in controls[1][0]] == ["Start training", "Cancel this run"]
    assert app.train.no_run.visible and not app.train.curve_box.visible  # idle: a sentence, not an empty 0–1 plot
    assert app.train.no_run.object.startswith("No run yet")
    assert app.train.cancel_other_button.name == "Cancel selected run"


def test_train_page_runs_in_the_background_and_adds_the_run(app):
    s = app.train.settings
    s.epochs, s.finetune_epochs, s.max_events, s.batch_size, s.n_projections = 2, 0, 3000, 1000, 50
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
    # x in epochs (a step's point at the fraction of its epoch done), integer ticks, the terms' names in words
    assert [round(p["epoch"], 3) for p in app.train._points] == [0.333, 0.667, 1.0, 1.333, 1.667, 2.0]
    assert app.train.progress_text.object == "finished (100 %)"
    assert app.train.curve_box.visible and not app.train.no_run.visible
    import holoviews as hv
    fig = hv.render(app.train.curve.object)
    assert fig.xaxis.axis_label == "epoch" and fig.xaxis.ticker.min_interval == 1
    legend = [item.label.value for item in fig.legend[0].items]
    assert legend[:2] == ["total loss", "MSE(x, x̃)"] and "SW(z, z̃)" in legend and "sw_z" not in legend
    assert fig.legend[0] in fig.right  # beside the axes, never over a curve
    assert fig.sizing_mode == "stretch_width"
    assert app.state.run.history[-1]["epoch"] == 1


def test_latent_traversal_and_dimensionality_pages(app):
    import numpy as np
    from bokeh.document import Document

    from otviz.viz.jets import top_kl_dimensions

    labels = app.state.param.vae_path.names
    assert "pretrained/emdvae-wjets-centred · EMD-VAE (shipped)" in labels
    assert "pretrained/emdvae-wjets · EMD-VAE (shipped)" in labels
    assert not any("emdvae" in k for k in app.state.param.run_path.names)  # OTUS pages list OTUS runs only
    tv = app.traversal
    assert tv.step is not None
    # the run is picked once, in the explorer's "EMD-VAE run" menu: the page's sidebar has no second one
    assert [w.name for w in tv.controls().select(pn.widgets.Select)][0] == "β step (production pass)"
    assert "EMD-VAE run" not in [w.name for w in tv.controls().select(pn.widgets.Select)]
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
    app.state.vae_path = labels["pretrained/emdvae-wjets · EMD-VAE (shipped)"]
    assert tv._last.jets.shape[:2] == (5, 5) and tv.step is not None
    pn.panel(app.dimension).get_root(Document())
    content = app.dimension._content()
    # the page's numbers: ⟨H_T⟩ stored with the run, D₁ and D₂ from its steps.json
    from otviz.metrics.dimension import dimensionalities, ht_mean, production_curves
    from otviz.physics.observables import readable, readable_fixed
    from otviz.train.products import read_dimension

    ht = ht_mean(read_dimension(app.state.vae_path))
    assert 300 < ht < 800  # W jets with pT ≈ 500 GeV
    assert f"Mean H_T {ht:.0f} GeV" in content[1][0].object
    beta, rate, dist, _ = production_curves(app.state.vae_run.production_steps())
    mid, d1, d2 = dimensionalities(beta, rate, dist)
    rows = [r for r in content[1][1].object.splitlines()[2:]]
    assert len(rows) == len(mid) == len(beta) - 1
    for r, b, a, c in zip(rows, mid, d1, d2):
        assert r == f"| {readable(b)} | {readable(b * ht)} | {readable_fixed(a)} | {readable_fixed(c)} |"


def test_train_page_launches_an_annealing_run(app):
    app.train.mode.value = "EMD-VAE β-annealing"
    app.train.settings_for("emdvae").param.update(max_events=300, n_betas=2, max_epochs=1, steps_per_epoch=2, latent=8, width=32)
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
    assert [p["beta_step"] for p in app.train._points] == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    import holoviews as hv
    fig = hv.render(app.train.curve.object)
    assert fig.xaxis.axis_label == "β step"
    assert [item.label.value for item in fig.legend[0].items] == ["rate R [nats]", "distortion D (⟨EMD²⟩)"]


def test_the_page_shows_progress_while_a_runs_outputs_are_computed(app, tmp_path):
    import shutil

    from otviz.ui import cache

    shipped = ui_state.PRETRAINED / "otus-zee"
    run = ui_state.RUNS / "copy"
    run.mkdir(parents=True)
    for f in ("config.json", "model.pt"):
        shutil.copy(shipped / f, run)
    app.state.refresh_runs(select=run)
    busy = app.busy()
    seen = []
    app.state.param.watch(lambda e: seen.append((app.state.busy, app.state.busy_fraction, busy.visible,
                                                 busy[1].value)), "busy")
    cache.CACHE.clear()
    app.state.outputs()
    # one report per batch of 50,000 test events and output, shown in the page's progress row
    assert [(f, v, b) for _, f, v, b in seen] == [(1 / 3, True, 333), (2 / 3, True, 666), (1.0, True, 1000),
                                                 (0.0, False, 0)]
    assert seen[1][0] == "Computing the run's model outputs: x̃ = D(z̃) (2/3)" and seen[-1][0] == ""
    seen.clear()
    cache.CACHE.clear()
    app.state.outputs()  # read back from the run directory: nothing to report
    assert [s for s, *_ in seen] in ([], [""])
