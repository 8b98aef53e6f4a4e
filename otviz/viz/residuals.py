"""Residual histograms: overlaid step histograms above a ratio-to-truth panel (OTUS Fig. 3).

Ratio r = (h/N)/(h_truth/N_truth) with σ_r = r·√(1/h + 1/h_truth) (OTUS §6.4, footnote 7).
"""
from __future__ import annotations

import holoviews as hv
import numpy as np

from . import STYLE, ensure_extension


def histogram_edges(truth, bins: int = 60, quantiles=(0.002, 0.998)):
    lo, hi = np.quantile(truth, quantiles)
    return np.linspace(lo, hi, bins + 1)


def ratio_with_errors(h, h_truth, n, n_truth):
    """r = (h/n)/(h_truth/n_truth) and σ_r = r·√(1/h + 1/h_truth); NaN where a count is 0."""
    h = np.asarray(h, float)
    ht = np.asarray(h_truth, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (h / n) / (ht / n_truth)
        s = r * np.sqrt(1.0 / h + 1.0 / ht)
    bad = (h == 0) | (ht == 0)
    r[bad] = np.nan
    s[bad] = np.nan
    return r, s


def residual_plot(truth, others: dict, label: str = "", bins: int = 60, width: int = 520, height: int = 300):
    """Overlaid normalised step histograms (truth first) above a ratio-to-truth panel with
    error bars, sharing the x axis. ``others`` maps a name (e.g. "x̃′ = D(z)") to samples."""
    ensure_extension()
    truth = np.asarray(truth, float)
    edges = histogram_edges(truth, bins)
    centres = 0.5 * (edges[1:] + edges[:-1])
    ht, _ = np.histogram(truth, edges)
    width_bin = edges[1] - edges[0]
    dim = hv.Dimension("value", label=label or "value")
    curves = [hv.Histogram((edges, ht / (len(truth) * width_bin)), kdims=[dim], vdims=["density"],
                           label="truth").opts(fill_alpha=0, line_width=2, line_color="black")]
    ratios = [hv.HLine(1.0).opts(color="gray", line_width=1)]
    for name, sample in others.items():
        sample = np.asarray(sample, float)
        h, _ = np.histogram(sample, edges)
        style = STYLE.get(name, {})
        curves.append(hv.Histogram((edges, h / (len(sample) * width_bin)), kdims=[dim],
                                   vdims=["density"], label=name).opts(
            fill_alpha=0, line_width=2, line_color=style.get("color", "blue"), line_dash=style.get("line_dash", "solid")))
        r, s = ratio_with_errors(h, ht, len(sample), len(truth))
        color = style.get("color", "blue")
        ratios.append(hv.Scatter((centres, r), kdims=[dim], vdims=["ratio"], label=name).opts(color=color, size=4))
        ratios.append(hv.ErrorBars((centres, r, s), kdims=[dim], vdims=["ratio", "err"]).opts(color=color))
    top = hv.Overlay(curves).opts(width=width, height=height, legend_position="top_right", xlabel="",
                                  title=label, show_grid=True)
    bottom = hv.Overlay(ratios).opts(width=width, height=int(height * 0.45), ylim=(0.5, 1.5),
                                     ylabel="ratio to truth", show_legend=False, show_grid=True)
    return (top + bottom).cols(1).opts(shared_axes=True)


