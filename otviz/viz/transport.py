"""Transport plots: z component against x component for true and learned pairs, coloured by
the source bin in z (OTUS Fig. 4); and the stochasticity view (one z decoded many times)."""
from __future__ import annotations

import holoviews as hv
import numpy as np

from ..physics.observables import readable_range
from . import RASTERISE_ABOVE, ensure_extension, tick_formatter


def transport_plot(z_comp, x_true, x_learned, z_label: str, x_label: str, nbins: int = 5,
                   width: int | None = None, height: int = 380, rasterise: bool | None = None, unit: str = "GeV",
                   bin_name: str = "z"):
    """z component against x component for the true pairs (z, x) and the learned pairs (z, D(z)),
    side by side; points coloured by their source bin in z (OTUS Fig. 4), with a legend naming
    each bin's range of the binned component ``bin_name`` ("E(e⁻) ∈ 125–1670 GeV") in ``unit`` inside
    the empty top left. ``width=None`` stretches to the page. Sets of
    ``RASTERISE_ABOVE`` points or more (or ``rasterise=True``) are drawn by Datashader."""
    ensure_extension()
    z_comp = np.asarray(z_comp, float)
    edges = np.quantile(z_comp, np.linspace(0, 1, nbins + 1))
    zbin = np.clip(np.searchsorted(edges, z_comp, side="right") - 1, 0, nbins - 1).astype(str)
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    panels = []
    lims = np.quantile(np.r_[x_true, x_learned], [0.002, 0.998])
    zl = np.quantile(z_comp, [0.002, 0.998])
    zdim, xdim = hv.Dimension("z_value", label=z_label), hv.Dimension("x_value", label=x_label)
    zl, lims = (float(zl[0]), float(zl[1])), (float(lims[0]), float(lims[1]))
    for title, xv in (("true pairs (z, x)", x_true), ("learned pairs (z, D(z))", x_learned)):
        if rasterise or (rasterise is None and len(z_comp) >= RASTERISE_ABOVE):
            el = _shade(z_comp, np.asarray(xv, float), zbin, zl, lims, width or 480, height, palette[:nbins], zdim, xdim)
        else:
            el = hv.Points((z_comp, np.asarray(xv, float), zbin), kdims=[zdim, xdim], vdims=["zbin"]).opts(
                color="zbin", cmap=palette[:nbins], size=2, alpha=0.4, show_legend=False)
        legend = [hv.Scatter([(np.nan, np.nan)], label=bin_label(edges, k, unit, bin_name)).opts(color=palette[k], size=8)
                  for k in range(nbins)]
        size = dict(width=width) if width else dict(responsive=True, min_width=300)
        panels.append(hv.Overlay([el, *legend]).opts(
            height=height, title=title, xlim=zl, ylim=lims, legend_position="top_left", **size,
            xlabel=z_label, ylabel=x_label, xformatter=tick_formatter(), yformatter=tick_formatter()))
    return hv.Layout(panels).cols(2)


def bin_label(edges, k: int, unit: str = "GeV", name: str = "z") -> str:
    """Legend text of source bin ``k`` of the component ``name``: "E(e⁻) ∈ 125–1670 GeV", the
    edges to 3 significant figures written out (never "1.67e+03")."""
    return f"{name} ∈ {readable_range(edges[k], edges[k + 1])}{' ' + unit if unit else ''}"


def _shade(x, y, cat, xlim, ylim, width, height, colors, xlabel, ylabel):
    """Datashader aggregation of a categorical point set into an RGB image (static, so it
    renders the same in a served page, a notebook and a PNG export)."""
    import datashader as ds
    import datashader.transfer_functions as tf
    import pandas as pd

    df = pd.DataFrame({"x": x, "y": y, "c": pd.Categorical(cat)})
    canvas = ds.Canvas(plot_width=width, plot_height=height, x_range=xlim, y_range=ylim)
    agg = canvas.points(df, "x", "y", agg=ds.count_cat("c"))
    img = tf.shade(agg, color_key=dict(zip(df["c"].cat.categories, colors)), how="eq_hist", min_alpha=60)
    rgba = img.to_numpy().view(np.uint8).reshape(height, width, 4)[::-1]
    return hv.RGB(rgba, bounds=(xlim[0], ylim[0], xlim[1], ylim[1]), kdims=[xlabel, ylabel])


def stochasticity_plot(decoded, truth_x=None, label: str = "", bins: int = 50, width: int = 420, height: int = 280):
    """Histogram of one z decoded many times (the learned p_D(x|z)), with the true x marked."""
    ensure_extension()
    decoded = np.asarray(decoded, float)
    counts, edges = np.histogram(decoded, bins)
    h = hv.Histogram((edges, counts), kdims=[label or "x"], vdims=["decodings"]).opts(
        width=width, height=height, color="#8e44ad", alpha=0.6, title=f"one z decoded {len(decoded)} times",
        xformatter=tick_formatter(), yformatter=tick_formatter())
    if truth_x is None:
        return h
    lo, hi = stochasticity_xlim(edges, truth_x)
    return (h * hv.VLine(float(truth_x)).opts(color="black", line_width=2)).opts(xlim=(lo, hi))


def stochasticity_xlim(edges, truth_x: float, pad: float = 0.05) -> tuple[float, float]:
    """x range holding every histogram bin and the true x (so its line is inside the axes)."""
    lo, hi = min(float(edges[0]), float(truth_x)), max(float(edges[-1]), float(truth_x))
    span = hi - lo or 1.0
    return lo - pad * span, hi + pad * span


