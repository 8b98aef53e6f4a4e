import pytest
import holoviews as hv
import numpy as np

from otviz.viz.curves import loss_curves
from otviz.viz.export import export
from otviz.viz.residuals import ratio_range, ratio_with_errors, residual_plot
from otviz.viz.transport import bin_label, stochasticity_plot, stochasticity_xlim, transport_plot


def test_ratio_errors_follow_the_otus_footnote():
    r, s = ratio_with_errors(np.array([100, 50, 0]), np.array([100, 100, 10]), 1000, 1000)
    np.testing.assert_allclose(r[:2], [1.0, 0.5])
    np.testing.assert_allclose(s[:2], [np.sqrt(2 / 100), 0.5 * np.sqrt(1 / 50 + 1 / 100)])
    assert np.isnan(r[2]) and np.isnan(s[2])


def test_ratio_range_follows_the_data():
    # constant ratio 1 ± 0.02: the range is 1 ± 0.02 padded by 10 % of its span
    lo, hi = ratio_range(np.ones(50), np.full(50, 0.02))
    np.testing.assert_allclose([lo, hi], [0.98 - 0.004, 1.02 + 0.004])
    # a ratio of 2 ± 0.1 with 1 still inside, capped at 3
    lo, hi = ratio_range(np.full(10, 2.0), np.full(10, 0.1))
    np.testing.assert_allclose([lo, hi], [1.0 - 0.11, 2.1 + 0.11])
    assert ratio_range([np.nan], [np.nan]) == (0.5, 1.5)


def test_residual_plot_labels_and_ranges():
    rng = np.random.default_rng(0)
    t = rng.normal(91, 3, 20000)
    res = residual_plot(t, {"x̃′ = D(z)": rng.normal(91, 3.2, 20000)}, label="m_ee [GeV]", truth_label="train sample")
    top, bottom = res
    assert bottom.opts.get().kwargs["xlabel"] == "m_ee [GeV]"
    assert top.opts.get().kwargs["ylabel"] == "density [1/GeV]"
    assert bottom.opts.get().kwargs["ylabel"] == "x̃′ / train"  # what over what
    res = residual_plot(t, {"test sample": t}, label="m_ee [GeV]", truth_label="train sample", bins=90,
                        quantiles=(0.005, 0.995), logy=True)
    assert res[1].opts.get().kwargs["ylabel"] == "test / train"
    assert len(res[0].get(0).edges) == 91 and res[0].get(0).edges[0] == pytest.approx(np.quantile(t, 0.005))
    assert res[0].opts.get().kwargs["logy"] is True and res[0].opts.get().kwargs["ylim"][0] > 0
    assert top.get(0).label == "train sample"
    lo, hi = bottom.opts.get().kwargs["ylim"]
    assert 0.0 <= lo < 1.0 < hi <= 3.0 and hi - lo < 3.0  # follows the data, not a fixed 0.5–1.5
    assert top.opts.get().kwargs["legend_position"] == "top"  # outside the curves


def test_stochasticity_line_inside_the_axes():
    lo, hi = stochasticity_xlim(np.array([0.0, 1.0, 2.0]), 5.0)
    np.testing.assert_allclose([lo, hi], [-0.25, 5.25])
    plot = stochasticity_plot(np.random.default_rng(1).normal(0, 1, 2000), 5.0, label="p_x(e⁻) [GeV]")
    xlim = plot.opts.get().kwargs["xlim"]
    assert xlim[0] < 5.0 < xlim[1]
    assert plot.get(0).kdims[0].pprint_label == "p_x(e⁻) [GeV]"


def test_plots_build_and_export(tmp_path):
    rng = np.random.default_rng(0)
    t = rng.normal(91, 3, 20000)
    res = residual_plot(t, {"x̃′ = D(z)": rng.normal(91, 3.2, 20000)}, label="m_ee [GeV]", width=520)
    assert isinstance(res, hv.Layout) and len(res) == 2
    z = rng.normal(40, 10, 120_000)
    tr = transport_plot(z, z + rng.normal(0, 1, z.size), z + rng.normal(0, 2, z.size), "z: E(e⁻) [GeV]", "x: E(e⁻) [GeV]")
    assert all(isinstance(p.get(0), hv.RGB) for p in tr)  # ≥ 100k points: rasterised by Datashader
    assert [p.opts.get().kwargs["xlabel"] for p in tr] == ["z: E(e⁻) [GeV]"] * 2
    edges = np.quantile(z, np.linspace(0, 1, 6))
    assert [e.label for e in list(tr)[0].values()[1:]] == [bin_label(edges, k) for k in range(5)]  # bin legend
    assert bin_label(np.array([1.0, 2.345678]), 0) == "z ∈ 1.00–2.35 GeV"
    assert bin_label(np.array([125.2, 1667.9]), 0, "GeV", "E(e⁻)") == "E(e⁻) ∈ 125–1670 GeV"  # never 1.67e+03
    named = transport_plot(z[:1000], z[:1000], z[:1000], "z: E(e⁻) [GeV]", "x: E(e⁻) [GeV]", bin_name="E(e⁻)")
    assert all(e.label.startswith("E(e⁻) ∈ ") and "e+" not in e.label for e in list(named)[0].values()[1:])
    small = transport_plot(z[:1000], z[:1000], z[:1000], "z E", "x E")
    assert all(isinstance(p.get(0), hv.Points) for p in small)
    curves = loss_curves([{"epoch": i, "loss": 1.0 / (i + 1), "mse": 0.5 / (i + 1)} for i in range(5)])
    assert len(curves) == 2
    for obj, name in ((res, "res"), (tr, "transport"), (curves, "loss")):
        png = export(obj, tmp_path / f"{name}.png")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        html = export(obj, tmp_path / f"{name}.html")
        assert "bokeh" in html.read_text().lower()
