"""What the dashboard pages print: labels with units, readable numbers, ratio axes naming what over
what, the Data page's binning on the shipped Z→ee samples, distinct colours and outside legends."""
import re

import holoviews as hv
import numpy as np
import panel as pn
import pytest

import otviz.ui.state as ui_state
from otviz.ui.explorer import LatentExplorer

RAW = re.compile(r"e[+-]\d|^-0(\.0+)?$|\.\d{5,}")  # 1.67e+03, -0.00, 5-decimal raw floats


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setattr(ui_state, "RUNS", tmp_path_factory.mktemp("runs"))
    pn.extension("tabulator")
    yield LatentExplorer()
    mp.undo()


def _opts(el):
    return el.opts.get().kwargs


def test_residuals_table_headers_units_and_numbers(app):
    page = app.residuals
    page.space, page.quantity = "x", "m_ee"
    table = [o for o in page._plot() if isinstance(o, pn.widgets.Tabulator)][0]
    shown = [c for c in table.value.columns if c not in table.hidden_columns]
    assert shown == ["compared", "KS", "KS floor", "W₁ [GeV]", "W₁ floor [GeV]", "χ²/dof", "χ²/dof floor", "KS / floor"]
    assert {"ks", "w1", "chi2r", "comparison", "sample"} <= set(table.hidden_columns)
    df = table.value
    assert list(df["compared"]) == ["x vs x̃′ = D(z)", "x vs x̃ = D(E(x))"]
    for _, row in df.iterrows():
        for s, col in (("ks", "KS"), ("w1", "W₁ [GeV]"), ("chi2r", "χ²/dof")):
            text = row[col]
            assert not RAW.search(text), text
            assert float(text) == pytest.approx(row[s], rel=5e-3)  # 3 significant figures of the value
            assert len(text.lstrip("0.").replace(".", "")) == 3, text
            assert float(row[f"{col.split(' [')[0]} floor" + (" [GeV]" if s == "w1" else "")]) == pytest.approx(
                row[f"{s} floor"], rel=5e-3)
    assert table.formatters["KS / floor"].format == "0.00"


def test_residuals_ratio_axis_names_what_over_what(app):
    page = app.residuals
    page.space, page.quantity = "x", "m_ee"
    plot = page._plot()[0].object
    top, bottom = list(plot)
    assert _opts(bottom)["ylabel"] == "x̃′ / x, x̃ / x"
    assert _opts(bottom)["xlabel"] == "x: m_ee [GeV]"
    assert _opts(top)["ylabel"] == "density [1/GeV]"


def test_data_page_binning_colours_ratio_and_log_toggle(app):
    page = app.data
    page.space, page.quantity = "x", "m_ee"
    page.logy = False
    plot = page._plot()[1].object
    top, bottom = list(plot)
    assert _opts(bottom)["ylabel"] == "test / train"
    hists = [e for e in top if isinstance(e, hv.Histogram)]
    assert [h.label for h in hists] == ["train sample", "test sample"]
    edges = hists[0].edges
    assert len(edges) - 1 == 100  # 100 bins …
    qtr = app.state.train_sample()  # … across the train sample's 0.5–99.5 % quantiles of m_ee
    from otviz.metrics.fidelity import derived_masses, quantities
    parts = [str(p) for p in qtr["x_particle"].values]
    m = quantities(qtr["x"].values, parts, derived_masses(parts))["m_ee"]
    lo, hi = np.quantile(m, [0.005, 0.995])
    assert edges[0] == pytest.approx(lo) and edges[-1] == pytest.approx(hi)
    assert 50 < lo < 60 and 145 < hi < 160  # the shipped Z→ee sample: ~1 GeV bins, the peak gets ~10
    assert ((edges > 86) & (edges < 96)).sum() >= 9
    train, test = (_opts(h) for h in hists)
    assert train["line_color"] != test["line_color"] and train["line_dash"] != test["line_dash"]
    assert not _opts(top).get("logy")
    page.logy = True
    top = list(page._plot()[1].object)[0]
    assert _opts(top)["logy"] is True and _opts(top)["ylim"][0] > 0
    assert any(getattr(w, "name", "") == "log y axis" for w in page.controls())
    page.logy = False


def test_transport_legend_names_the_binned_component_and_panels_stretch(app):
    page = app.transport
    page.z_quantity = "e-.E"
    panes = page._transport_pane.objects
    assert len(panes) == 2 and all(p.sizing_mode == "stretch_width" for p in panes)
    assert page.content().sizing_mode == "stretch_width" and page._transport_pane.sizing_mode == "stretch_width"
    labels = [e.label for e in panes[0].object.values()[1:]]
    assert len(labels) == 5
    for text in labels:
        assert re.fullmatch(r"E\(e⁻\) ∈ \d+(\.\d+)?–\d+(\.\d+)? GeV", text), text
    assert _opts(panes[0].object)["xlabel"] == "z: E(e⁻) [GeV]"
    assert _opts(panes[0].object)["responsive"] is True


def test_dimensionality_table_numbers_and_plots(app):
    app.state.vae_path = app.state.param.vae_path.names["pretrained/emdvae-wjets · EMD-VAE (shipped)"]
    row = app.dimension._content()
    plots, side = row
    table = side[1].object
    assert "| β_mid | β·⟨H_T⟩ [GeV] | D₁ | D₂ |" in table
    cells = [c.strip() for line in table.splitlines()[2:] for c in line.strip("|").split("|")]
    assert cells and not any(RAW.search(c) or c.startswith("-0.00") for c in cells), cells
    kl, rd = plots[1].object, plots[2].object
    assert kl.opts.get().kwargs["legend_position"] == "right"
    colours = [c.opts.get().kwargs["color"] for c in kl]
    assert len(set(colours)) == len(colours) == 12
    assert [p.opts.get().kwargs["ylabel"] for p in rd] == ["R (KL) [nats]", "D (EMD²/H_T²)"]
