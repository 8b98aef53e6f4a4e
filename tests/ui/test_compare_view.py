"""The Compare runs page on a tiny sweep trained here (2 runs of otus-zee, λ = 1 and 20), and the
Train page's tt̄ OTUS form."""
from pathlib import Path

import holoviews as hv
import numpy as np
import panel as pn
import pytest
import xarray as xr

from otviz.train.config import TtbarConfig

ROOT = Path(__file__).resolve().parents[2]


def make_tiny_sweep(base: Path) -> Path:
    """runs/sweep-lam under ``base``: otus-zee with λ = 1, 20, one epoch on 1000 events, evaluated on
    1000 test events (≈ 25 s on 2 cores)."""
    from otviz.data.io import load, save
    from otviz.train.sweep import run_sweep

    base.mkdir(parents=True, exist_ok=True)
    test = base / "test.nc"
    save(load(ROOT / "data" / "zee_test.nc").isel(event=slice(0, 1000)), test)
    out = base / "runs" / "sweep-lam"
    run_sweep("otus-zee", {"lam": [1, 20]}, out, workers=1, epochs=1, finetune_epochs=0, max_events=1000,
              batch_size=500, n_projections=20, train_data=str(ROOT / "data" / "zee_train.nc"), test_data=str(test),
              device="cpu")
    return out


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    return make_tiny_sweep(tmp_path_factory.mktemp("compare"))


@pytest.fixture
def view(swept, monkeypatch):
    from otviz.ui.compare_view import CompareView
    from otviz.ui.state import ExplorerState

    monkeypatch.setenv("OTVIZ_RUNS", str(swept.parent))
    return CompareView(ExplorerState())


def _elements(obj, kind):
    return [e for e in obj.traverse(lambda x: x, [kind])]


def test_the_sweep_plot_shows_the_metric_over_lambda(view, swept):
    names = view.param.sweep.names
    assert list(names)[0] == "runs/sweep-lam" and names["runs/sweep-lam"] == str(swept / "sweep.nc")
    assert set(names) == {"runs/sweep-lam", "pretrained/paired-fraction-sweep"}  # the shipped sweep is offered too
    assert view.sweep == str(swept / "sweep.nc")
    assert view.metric == "KS/floor of m_ee in x̃′"
    assert view.x_dim == "lam"
    assert "SW(x, x̃′) [GeV²]" in view.param.metric.objects
    section = view.sweep_section()
    assert "2 runs of `otus-zee`" in section[0].object
    plot = section[1].object
    curve = _elements(plot, hv.Curve)[0]
    np.testing.assert_array_equal(curve.dimension_values(0), [1.0, 20.0])
    ds = xr.load_dataset(swept / "sweep.nc", engine="h5netcdf")
    want = ds["ratio"].sel(comparison="x_vs_x_tilde_prime", quantity="m_ee", statistic="ks").values
    np.testing.assert_allclose(curve.dimension_values(1), want)
    assert curve.kdims[0].label == "λ (weight of SW(z, z̃))" and curve.vdims[0].label == "KS/floor of m_ee in x̃′"
    view.metric = "training time [s]"
    curve = _elements(view.sweep_section()[1].object, hv.Curve)[0]
    np.testing.assert_allclose(curve.dimension_values(1), ds["train_seconds"].values)
    assert curve.vdims[0].label == "training time [s]"


def test_two_swept_settings_as_a_heatmap_with_a_colour_bar():
    from otviz.ui.compare_view import sweep_plot

    values = xr.DataArray([[1.0, 2.0], [3.0, 4.0]], dims=("lam", "beta_anchor"),
                          coords={"lam": [1.0, 20.0], "beta_anchor": [0.0, 50.0]})
    plot = sweep_plot(values, "lam", "KS/floor of m_ee in x̃′", style="heatmap")
    heat = _elements(plot, hv.HeatMap)[0]
    opts = hv.Store.lookup_options("bokeh", heat, "plot").kwargs
    assert opts["colorbar"] is True and opts["clabel"] == "KS/floor of m_ee in x̃′"
    assert heat.kdims[0].label == "λ (weight of SW(z, z̃))" and heat.kdims[1].label == "β_E = β_D (anchor weight)"
    assert sorted(heat.dimension_values(2)) == [1.0, 2.0, 3.0, 4.0]
    assert sorted(_elements(plot, hv.Labels)[0].dimension_values("text")) == ["1", "2", "3", "4"]
    lines = sweep_plot(values, "lam", "m", style="lines")
    curves = _elements(lines, hv.Curve)
    assert [c.label for c in curves] == ["β_E = β_D (anchor weight) = 0", "β_E = β_D (anchor weight) = 50"]
    np.testing.assert_array_equal(curves[1].dimension_values(1), [2.0, 4.0])


def test_two_runs_overlaid_with_their_ks_tables_and_config_diff(view, swept):
    from otviz.train.products import read_metrics

    a, b = str(swept / "lam=1"), str(swept / "lam=20")
    assert {a, b} <= set(view.param.runs.objects)
    assert "pretrained/otus-zee" in view.param.runs.names  # shipped OTUS runs are offered too
    assert isinstance(view.histogram_section(), pn.pane.Markdown)  # none chosen yet: asks for two
    view.runs = [a, b]
    assert view.quantity == "m_ee"
    section = view.histogram_section()
    assert _elements(section[2].object, hv.Scatter)[0].vdims[0].name == "ratio"  # the ratio panel below
    hists = _elements(section[1].object, hv.Histogram)
    assert [h.label for h in hists] == ["truth", "lam=1", "lam=20"]
    colours = [hv.Store.lookup_options("bokeh", h, "style").kwargs["line_color"] for h in hists]
    assert len(set(colours)) == 3
    assert hists[0].kdims[0].label == "x: m_ee [GeV]"
    df = view.ks_frame()
    row = df[df.observable == "m_ee [GeV]"].iloc[0]
    for name, path in (("lam=1", a), ("lam=20", b)):
        m = read_metrics(path).sel(comparison="x_vs_x_tilde_prime", quantity="m_ee", statistic="ks")
        assert row[f"{name}: KS"] == pytest.approx(float(m["value"]))
        assert row[f"{name}: KS/floor"] == pytest.approx(float(m["ratio"]))
    assert view.diff_lines() == ["stages[0].lam: 1 → 20"]  # one epoch: the anchor stage alone
    assert "- `stages[0].lam: 1 → 20`" in view.diff_section().object
    view.space = "z"
    assert _elements(view.histogram_section()[1].object, hv.Histogram)[0].kdims[0].label == "z: m_ee [GeV]"


def test_the_explorer_lists_compare_runs_before_runs():
    from otviz.ui.explorer import page_list

    titles = [p.title for p in page_list()]
    assert titles[-2:] == ["Compare runs", "Runs"]


def test_the_ttbar_form_builds_a_ttbar_config_with_its_values():
    from otviz.ui.state import ExplorerState
    from otviz.ui.train_view import TrainView, TtbarSettings

    form = TtbarSettings()
    assert (form.epochs, form.finetune_epochs, form.lam, form.beta_anchor, form.batch_size) == (600, 10, 20.0, 0.0, 5000)
    form.param.update(epochs=7, finetune_epochs=2, lam=5.0, tau=0.5, beta_anchor=3.0, lr=2e-3, batch_size=1000,
                      n_projections=64, max_events=3000, seed=4, device="cpu")
    cfg = form.to_config()
    assert type(cfg) is TtbarConfig and cfg.kind == "otus-ttbar"
    assert [(s.name, s.epochs, s.train) for s in cfg.stages] == [("main", 7, "both"), ("decoder-finetune", 2, "decoder")]
    main = cfg.stages[0]
    assert (main.lam, main.tau, main.beta_e, main.beta_d, main.lr) == (5.0, 0.5, 3.0, 3.0, 2e-3)
    assert cfg.stages[1].lr == 1e-4  # the fine-tune keeps the preset's
    assert (cfg.batch_size, cfg.n_projections, cfg.max_events, cfg.seed, cfg.device) == (1000, 64, 3000, 4, "cpu")
    assert cfg.model_config.acceptance is not None and cfg.train_data == "data/ttbar_train.nc"
    with pytest.raises(ValueError):
        form.epochs = 0  # bounds from TtbarConfig.BOUNDS
    train = TrainView(ExplorerState())
    assert "OTUS tt̄" in train.mode.options
    assert isinstance(train.settings_for("otus-ttbar"), TtbarSettings)


def test_ttbar_runs_show_their_slide_ks_tables_side_by_side(tmp_path, monkeypatch):
    """Two tt̄ runs (the shipped one and a copy with doubled KS): the Turbo-Sim slide's table with
    a column pair per run, one floor column and the published OTUS and Turbo-Sim columns."""
    import shutil

    from otviz.train.products import read_ks_table
    from otviz.ui.compare_view import CompareView
    from otviz.ui.state import ExplorerState

    shipped = ROOT / "data" / "pretrained" / "otus-ttbar"
    copy = tmp_path / "runs" / "tt-copy"
    shutil.copytree(shipped, copy)
    t = read_ks_table(shipped)
    t["ks"] = 2 * t.ks
    t["ks_ratio"] = t.ks / t.ks_floor
    (copy / "ks_table.nc").unlink()
    t.to_netcdf(copy / "ks_table.nc", engine="h5netcdf")
    monkeypatch.setenv("OTVIZ_RUNS", str(tmp_path / "runs"))
    pn.extension("tabulator")
    view = CompareView(ExplorerState())
    assert view.param.runs.names["pretrained/otus-ttbar"] == str(shipped)  # shipped runs are selectable
    view.runs = [str(copy), str(shipped)]
    section = view.slide_section()
    assert section[0].object.startswith("#### KS table of the Turbo-Sim slide, side by side")
    assert "one floor column" in section[0].object and "No `ks_table.nc`" not in section[0].object
    df = section[1].value
    assert section[1].groups == {"tt-copy": ["tt-copy: KS ×10⁻²", "tt-copy: KS/floor", "tt-copy: goal met"],
                                 "otus-ttbar": ["otus-ttbar: KS ×10⁻²", "otus-ttbar: KS/floor", "otus-ttbar: goal met"],
                                 "published": ["OTUS ×10⁻² (published)", "Turbo-Sim ×10⁻² (published)"]}
    assert section[1].titles["tt-copy: KS/floor"] == "KS/floor"  # under the run's header
    assert [c for c in df.columns if "KS" in c] == ["tt-copy: KS ×10⁻²", "tt-copy: KS/floor", "otus-ttbar: KS ×10⁻²",
                                                   "otus-ttbar: KS/floor"]
    assert {"floor ×10⁻²", "OTUS ×10⁻² (published)", "Turbo-Sim ×10⁻² (published)"} <= set(df.columns)
    row = df[df.observable == "m_W^had [GeV]"].iloc[0]
    ref = read_ks_table(shipped).sel(observable="m_W_had")
    assert row["otus-ttbar: KS ×10⁻²"] == pytest.approx(100 * float(ref.ks))
    assert row["tt-copy: KS ×10⁻²"] == pytest.approx(200 * float(ref.ks))
    assert row["floor ×10⁻²"] == pytest.approx(100 * float(ref.ks_floor))
    assert (row["OTUS ×10⁻² (published)"], row["Turbo-Sim ×10⁻² (published)"]) == pytest.approx((11.7, 14.7))
    # a run without ks_table.nc is named; without any table the section is empty
    (copy / "ks_table.nc").unlink()
    assert "No `ks_table.nc` in `tt-copy`" in view.slide_section()[0].object
    view.runs = [str(copy), str(ROOT / "data" / "pretrained" / "otus-zee")]
    assert view.slide_section().object == ""
