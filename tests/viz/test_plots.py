import holoviews as hv
import numpy as np

from otviz.viz.curves import loss_curves
from otviz.viz.export import export
from otviz.viz.residuals import ratio_with_errors, residual_plot
from otviz.viz.transport import transport_plot


def test_ratio_errors_follow_the_otus_footnote():
    r, s = ratio_with_errors(np.array([100, 50, 0]), np.array([100, 100, 10]), 1000, 1000)
    np.testing.assert_allclose(r[:2], [1.0, 0.5])
    np.testing.assert_allclose(s[:2], [np.sqrt(2 / 100), 0.5 * np.sqrt(1 / 50 + 1 / 100)])
    assert np.isnan(r[2]) and np.isnan(s[2])


def test_plots_build_and_export(tmp_path):
    rng = np.random.default_rng(0)
    t = rng.normal(91, 3, 20000)
    res = residual_plot(t, {"x̃′ = D(z)": rng.normal(91, 3.2, 20000)}, label="m_ee [GeV]")
    assert isinstance(res, hv.Layout) and len(res) == 2
    z = rng.normal(40, 10, 120_000)
    tr = transport_plot(z, z + rng.normal(0, 1, z.size), z + rng.normal(0, 2, z.size), "z E", "x E")
    assert all(isinstance(p, hv.RGB) for p in tr)  # ≥ 100k points: rasterised by Datashader
    small = transport_plot(z[:1000], z[:1000], z[:1000], "z E", "x E")
    assert all(isinstance(p, hv.Points) for p in small)
    curves = loss_curves([{"epoch": i, "loss": 1.0 / (i + 1), "mse": 0.5 / (i + 1)} for i in range(5)])
    assert len(curves) == 2
    for obj, name in ((res, "res"), (tr, "transport"), (curves, "loss")):
        png = export(obj, tmp_path / f"{name}.png")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        html = export(obj, tmp_path / f"{name}.html")
        assert "bokeh" in html.read_text().lower()
