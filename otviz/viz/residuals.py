"""Residual histograms: overlaid step histograms above a ratio-to-truth panel (OTUS Fig. 3).

Ratio r = (h/N)/(h_truth/N_truth) with σ_r = r·√(1/h + 1/h_truth) (OTUS §6.4, footnote 7).
"""
from __future__ import annotations

import holoviews as hv
import numpy as np

from ..physics.observables import ratio_label as _ratio_label
from . import STYLE, ensure_extension, tick_formatter


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


def ratio_range(r, s, lo: float = 0.0, hi: float = 3.0, pad: float = 0.1) -> tuple[float, float]:
    """y range of a ratio panel that follows the data: the 2nd–98th percentile of r ∓ σ_r over
    the bins with counts, padded and kept within [lo, hi]; (0.5, 1.5) when nothing is finite."""
    r, s = np.asarray(r, float), np.asarray(s, float)
    ok = np.isfinite(r) & np.isfinite(s)
    if not ok.any():
        return 0.5, 1.5
    a = float(np.percentile(r[ok] - s[ok], 2))
    b = float(np.percentile(r[ok] + s[ok], 98))
    a, b = min(a, 1.0), max(b, 1.0)
    span = b - a
    return max(lo, a - pad * span), min(hi, b + pad * span)


def _density_label(label: str) -> str:
    """"density [1/GeV]" for an axis labelled "… [GeV]", else "density"."""
    import re

    m = re.search(r"\[([^\]]+)\]\s*$", label or "")
    return f"density [1/{m.group(1)}]" if m else "density"


def residual_plot(truth, others: dict, label: str = "", bins: int = 60, width: int | None = None, height: int = 300,
                  truth_label: str = "truth", ylim=None, quantiles=(0.002, 0.998), logy: bool = False,
                  ratio_label: str | None = None, truth_symbol: str | None = None):
    """Overlaid normalised step histograms (``truth_label`` first) above a ratio-to-it panel with
    error bars, sharing the x axis labelled ``label`` (e.g. "m_ee [GeV]"). ``others`` maps a name
    (e.g. "x̃′ = D(z)") to samples. ``bins`` equal bins span the ``quantiles`` of the truth. The ratio
    axis names what over what ("x̃′ / x": ``ratio_label``, else built from the names over
    ``truth_symbol`` or ``truth_label``); its range follows the data (:func:`ratio_range`) unless
    ``ylim`` is given; ``logy`` draws the densities on a log axis; the legend sits above the curves;
    ``width=None`` stretches to the page."""
    ensure_extension()
    truth = np.asarray(truth, float)
    edges = histogram_edges(truth, bins, quantiles)
    centres = 0.5 * (edges[1:] + edges[:-1])
    ht, _ = np.histogram(truth, edges)
    width_bin = edges[1] - edges[0]
    dim = hv.Dimension("value", label=label or "value")
    curves = [hv.Histogram((edges, ht / (len(truth) * width_bin)), kdims=[dim], vdims=["density"],
                           label=truth_label).opts(fill_alpha=0, line_width=2, line_color=STYLE.get(truth_label, {}).get("color", "black"),
                                                 line_dash=STYLE.get(truth_label, {}).get("line_dash", "solid"))]
    ratios = [hv.HLine(1.0).opts(color="gray", line_width=1)]
    rs = []
    for name, sample in others.items():
        sample = np.asarray(sample, float)
        h, _ = np.histogram(sample, edges)
        style = STYLE.get(name, {})
        curves.append(hv.Histogram((edges, h / (len(sample) * width_bin)), kdims=[dim],
                                   vdims=["density"], label=name).opts(
            fill_alpha=0, line_width=2, line_color=style.get("color", "blue"), line_dash=style.get("line_dash", "solid")))
        r, s = ratio_with_errors(h, ht, len(sample), len(truth))
        rs.append((r, s))
        color = style.get("color", "blue")
        ratios.append(hv.Scatter((centres, r), kdims=[dim], vdims=["ratio"], label=name).opts(color=color, size=4))
        ratios.append(hv.ErrorBars((centres, r, s), kdims=[dim], vdims=["ratio", "err"]).opts(color=color))
    if ylim is None:
        ylim = ratio_range(np.concatenate([r for r, _ in rs]), np.concatenate([s for _, s in rs])) if rs else (0.5, 1.5)
    size = dict(width=width) if width else dict(responsive=True, min_width=360)
    log = {}
    if logy:  # a log axis from below the smallest filled bin (empty bins would sit at −∞)
        dens = ht[ht > 0] / (len(truth) * width_bin)
        log = dict(logy=True, ylim=(float(dens.min()) / 3 if len(dens) else 1e-6, None))
    if ratio_label is None:
        ratio_label = _ratio_label(list(others), truth_symbol or truth_label)
    top = hv.Overlay(curves).opts(**log)
    top = top.opts(height=height, legend_position="top", xlabel="", ylabel=_density_label(label),
                                  title=label, show_grid=True, xformatter=tick_formatter(), yformatter=tick_formatter(),
                                  **size)
    bottom = hv.Overlay(ratios).opts(height=int(height * 0.45), ylim=tuple(ylim), xlabel=label or "value",
                                     ylabel=ratio_label, show_legend=False, show_grid=True,
                                     xformatter=tick_formatter(), yformatter=tick_formatter("%.2g"), **size)
    return (top + bottom).cols(1).opts(shared_axes=True)
