"""Dimensionality plots of the EMD-VAE (Collins, Fig. 3 and 7): D₁, D₂ and D_corr against β with
a second axis in GeV (β·H_T), and the KL of each latent direction against β."""
from __future__ import annotations

import holoviews as hv
import numpy as np

from ..physics.observables import label
from . import ensure_extension

BETA_LABEL = "β [units of H_T]"


def _size(width):
    """Fixed ``width`` in pixels, or ``None``: stretch to the page."""
    return dict(width=width) if width else dict(responsive=True, min_width=320)


COLOURS = {"D1": "#1f77b4", "D2": "#d62728", "D_corr": "black"}
# one colour per latent direction: Category10, then black and glasbey's dark violet and teal, then
# glasbey (colorcet) for more — no two lines of the KL plot share a colour
LINE_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                "#bcbd22", "#17becf", "#000000", "#3a0183", "#00430a", "#0fffa9"]


def line_colours(n: int) -> list[str]:
    """``n`` distinct colours (:data:`LINE_COLOURS`, continued by colorcet's glasbey)."""
    if n <= len(LINE_COLOURS):
        return LINE_COLOURS[:n]
    import colorcet as cc

    extra = [c for c in cc.glasbey_dark if c.lower() not in LINE_COLOURS]
    return LINE_COLOURS + extra[: n - len(LINE_COLOURS)]


def _gev_axis(ht: float):
    """Bokeh hook adding a top axis β·H_T in GeV that follows the log-β x range."""

    def hook(plot, element):
        from bokeh.models import CustomJS, LogAxis, Range1d

        fig = plot.state
        xr = fig.x_range
        gev = Range1d(start=(xr.start or 1e-3) * ht, end=(xr.end or 1.0) * ht)
        fig.extra_x_ranges = {"gev": gev}
        fig.extra_x_scales = {"gev": type(fig.x_scale)()}
        fig.add_layout(LogAxis(x_range_name="gev", axis_label="β·⟨H_T⟩ [GeV]"), "above")
        cb = CustomJS(args=dict(src=xr, dst=gev, k=ht), code="dst.start = src.start * k; dst.end = src.end * k;")
        xr.js_on_change("start", cb)
        xr.js_on_change("end", cb)

    return hook


def dimension_plot(beta_mid, d1, d2, q_mid=None, dcorr=None, ht: float = 550.0, width=None, height=340, title="",
                   ymax: float = 12.0):
    """D₁ = −dR/d log β and D₂ = dD/dβ² (and the data's D_corr(Q), drawn at β = Q/2 as in seed 001
    Fig. 3) against β on a log-β axis, with a top axis β·⟨H_T⟩ in GeV (``ht`` = mean H_T); the
    y axis stops at ``ymax`` (the few-dimension regime; pan/zoom for the rest)."""
    from ..metrics.dimension import Q_PER_BETA

    ensure_extension()
    layers = [
        hv.Curve((beta_mid, d1), "β", "dimension", label="D₁ = −dR/d log β").opts(color=COLOURS["D1"]),
        hv.Scatter((beta_mid, d1), "β", "dimension").opts(color=COLOURS["D1"], size=6),
        hv.Curve((beta_mid, d2), "β", "dimension", label="D₂ = dD/dβ²").opts(color=COLOURS["D2"], line_dash="dashed"),
        hv.Scatter((beta_mid, d2), "β", "dimension").opts(color=COLOURS["D2"], size=6, marker="square"),
    ]
    qb = None
    if q_mid is not None and dcorr is not None:
        qb = np.asarray(q_mid) / Q_PER_BETA
        layers.append(hv.Curve((qb, dcorr), "β", "dimension", label=f"D_corr(Q = {Q_PER_BETA:g}β) of the data").opts(
            color=COLOURS["D_corr"], line_dash="dotted"))
    lo = float(np.nanmin(np.r_[beta_mid, qb if qb is not None else []]))
    hi = float(np.nanmax(np.r_[beta_mid, qb if qb is not None else []]))
    return hv.Overlay(layers).opts(
        logx=True, height=height, show_grid=True, legend_position="top_right", xlim=(lo / 1.5, hi * 1.5),
        ylim=(-0.5, ymax), title=title or "dimensionality vs resolution β", hooks=[_gev_axis(ht)], xlabel=BETA_LABEL,
        ylabel="dimension D", **_size(width))


def kl_plot(beta, kl, top: int = 12, ht: float = 550.0, width=None, height=300):
    """KL of each latent direction vs β (the ``top`` directions by their largest KL)."""
    ensure_extension()
    kl = np.asarray(kl)
    order = np.argsort(-kl.max(0))[:top]
    colours = line_colours(len(order))
    curves = [hv.Curve((beta, np.maximum(kl[:, k], 1e-4)), "β", "KL", label=f"z{k}").opts(
        color=c, line_dash="solid" if i < 10 else "dashed") for i, (k, c) in enumerate(zip(order, colours))]
    return hv.Overlay(curves).opts(
        hv.opts.Curve(line_width=2),
        # the legend outside, right of the axes: it never covers a curve
        hv.opts.Overlay(logx=True, logy=True, height=height, show_grid=True, legend_position="right",
                        title="KL per latent direction vs β (production pass)", hooks=[_gev_axis(ht)],
                        xlabel=BETA_LABEL, ylabel=label("kl"), **_size(width)),
    )


def rate_distortion_plot(beta, rate, dist, width=None, height=240):
    """Two panels sharing the β axis, each with its own unit: R = Σ KL [nats] above, D = ⟨EMD²⟩ in
    units of H_T² below with the β² reference line; legends outside the axes."""
    ensure_extension()
    r = hv.Curve((beta, np.maximum(rate, 1e-4)), "β", "rate", label="R = Σ KL").opts(color="#2ca02c", line_width=2)
    d = hv.Curve((beta, dist), "β", "distortion", label="D = ⟨EMD²⟩").opts(color="#9467bd", line_width=2)
    b2 = hv.Curve((beta, np.asarray(beta) ** 2), "β", "distortion", label="β²").opts(color="grey", line_dash="dotted")
    common = dict(logx=True, logy=True, height=height, show_grid=True, xlabel=BETA_LABEL, legend_position="right",
                  **_size(width))
    top = hv.Overlay([r]).opts(ylabel=label("rate"), title="rate R vs β", **common)
    bottom = hv.Overlay([d, b2]).opts(ylabel=label("distortion"), title="distortion D vs β", **common)
    return hv.Layout([top, bottom]).cols(1).opts(shared_axes=False)
