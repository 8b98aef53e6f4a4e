"""Corner plots of OT calibration ("Mind the Gap" Fig. 3): density contours of data, simulation
and calibrated simulation in whitened PCA coordinates of the tagger latent, 1-D histograms on the
diagonal, and tagger-score histograms with a ratio-to-data panel.

The numbers are pure functions (:func:`whiten`, :func:`displace`, :func:`density_grid`,
:func:`hdr_levels`, :func:`plot_ranges`); the plots are HoloViews (Bokeh). Densities are
Datashader aggregations (``Canvas.points(...).count()``) smoothed with a Gaussian kernel; the
contours are drawn at the density values whose highest-density regions enclose
:data:`MASSES` of the points (5, 50, 80, 90, 95 %).
"""
from __future__ import annotations

import holoviews as hv
import numpy as np

from ..metrics.calibration import project

from . import ensure_extension, tick_formatter

#: probability masses enclosed by the contours (the paper's Fig. 3)
MASSES = (0.05, 0.5, 0.8, 0.9, 0.95)

#: one colour per domain: the paper's (data black, simulation blue, calibrated red)
COLORS = {"data": "black", "sim": "#1f77b4", "calibrated": "#d62728", "moving": "#9467bd"}
LABELS = {"data": "data", "sim": "simulation", "calibrated": "calibrated simulation"}
#: shorter names in the corner plot's legend (it sits in one panel)
SHORT = {"data": "data", "sim": "simulation", "calibrated": "calibrated"}


# ----------------------------------------------------------------------------- numbers


whiten = project  # whitened PCA coordinates u = (z − mean) @ projection (otviz.metrics.calibration.project)


def displace(source, mapped, t: float) -> np.ndarray:
    """Displacement interpolation (1 − t)·x + t·T(x) of points ``source`` = x given ``mapped`` = T(x).
    Linear in the points, so it commutes with the (affine) whitening: whiten(displace(x, T(x), t)) =
    displace(whiten(x), whiten(T(x)), t)."""
    if not 0.0 <= float(t) <= 1.0:
        raise ValueError(f"t = {t}: the interpolation parameter must lie in [0, 1]")
    source, mapped = np.asarray(source), np.asarray(mapped)
    return (1.0 - t) * source + t * mapped


def plot_ranges(arrays, quantiles=(0.003, 0.997), pad: float = 0.08) -> np.ndarray:
    """(k, 2) axis ranges per component spanning the ``quantiles`` of all ``arrays`` (each (n, k))
    together, padded by ``pad`` of the span on each side; fixed while t moves so the axes stay put."""
    allp = np.concatenate([np.asarray(a, float) for a in arrays])
    allp = allp[np.isfinite(allp).all(1)]
    lo, hi = np.quantile(allp, quantiles[0], axis=0), np.quantile(allp, quantiles[1], axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return np.stack([lo - pad * span, hi + pad * span], axis=1)


def scott_bins(x, y, x_range, y_range, bins: int) -> tuple[float, float]:
    """Scott's rule for a 2-D Gaussian kernel, h = σ·n^(−1/6) per axis, in grid bins (y, x)."""
    n = max(len(x), 2)
    f = n ** (-1.0 / 6.0)
    sx = f * float(np.std(x)) / ((x_range[1] - x_range[0]) / bins)
    sy = f * float(np.std(y)) / ((y_range[1] - y_range[0]) / bins)
    return max(sy, 0.5), max(sx, 0.5)


def density_grid(x, y, x_range, y_range, bins: int = 80, smooth=None):
    """The smoothed point density of (x, y) on a ``bins`` × ``bins`` grid over the ranges: a
    Datashader count aggregation, Gaussian-smoothed by ``smooth`` bins (None: Scott's rule,
    :func:`scott_bins`; 0: not smoothed), normalised to sum 1 over the grid. An
    ``xarray.DataArray`` with coordinates x, y (bin centres; rows run along y)."""
    import datashader as ds
    import pandas as pd
    from scipy.ndimage import gaussian_filter

    frame = pd.DataFrame({"x": np.asarray(x, np.float64), "y": np.asarray(y, np.float64)})
    canvas = ds.Canvas(plot_width=bins, plot_height=bins, x_range=tuple(map(float, x_range)),
                       y_range=tuple(map(float, y_range)))
    agg = canvas.points(frame, "x", "y", agg=ds.count())
    counts = np.asarray(agg.values, np.float64)
    if smooth is None:
        smooth = scott_bins(frame["x"].values, frame["y"].values, x_range, y_range, bins)
    dens = gaussian_filter(counts, smooth, mode="constant") if np.any(np.asarray(smooth) > 0) else counts
    total = dens.sum()
    out = agg.astype(np.float64).copy(data=dens / total if total > 0 else dens)
    out.name = "density"
    return out


def hdr_levels(density, masses=MASSES) -> np.ndarray:
    """Highest-density levels: for each mass m, the density value λ_m such that the grid cells with
    density ≥ λ_m hold (at least, and as little more as the grid allows) the fraction m of the total.
    Returned in the order of ``masses`` (so decreasing for increasing masses)."""
    d = np.asarray(density, np.float64).ravel()
    d = np.sort(d[np.isfinite(d)])[::-1]
    total = d.sum()
    if total <= 0 or len(d) == 0:
        return np.full(len(masses), np.nan)
    cum = np.cumsum(d) / total
    idx = np.minimum(np.searchsorted(cum, np.asarray(masses, float), side="left"), len(d) - 1)
    return d[idx]


def enclosed_mass(density, level: float) -> float:
    """The fraction of the grid's total density in cells with density ≥ ``level``."""
    d = np.asarray(density, np.float64)
    return float(d[d >= level].sum() / d.sum())


# ----------------------------------------------------------------------------- plots


def density_contours(x, y, x_range, y_range, label: str, color: str, masses=MASSES, bins: int = 80,
                     smooth=None, kdims=("x", "y"), line_dash: str = "solid"):
    """``hv.Contours`` of the highest-density regions enclosing ``masses`` of the points (x, y): the
    :func:`density_grid` as an ``hv.Image``, contoured by ``holoviews.operation.contours`` at the
    :func:`hdr_levels`."""
    from holoviews.operation import contours

    grid = density_grid(x, y, x_range, y_range, bins=bins, smooth=smooth)
    img = hv.Image((grid["x"].values, grid["y"].values, grid.values), kdims=list(kdims), vdims=["density"])
    levels = sorted({float(v) for v in hdr_levels(grid.values, masses) if np.isfinite(v) and v > 0})
    if not levels:
        return hv.Contours([], kdims=list(kdims), label=label).opts(color=color)
    cont = contours(img, levels=levels, filled=False, overlaid=False)
    return cont.relabel(label).opts(color=color, line_width=1.5, line_dash=line_dash, show_legend=True)


def _legend_cell(entries, size: int):
    """An empty, axis-less panel holding the legend (one line per domain in its colour)."""
    curves = [hv.Curve([(0.0, 0.0), (0.0, 0.0)], label=lab).opts(color=c, line_width=3, line_dash=dash)
              for lab, c, dash in entries]
    return hv.Overlay(curves).opts(width=size + 40, height=size, xaxis=None, yaxis=None, show_frame=False,
                                   legend_position="top_left", toolbar=None, show_grid=False,
                                   title="")


def corner_plot(sets: dict, components, ranges=None, masses=MASSES, bins: int = 80, smooth=None,
                hist_bins: int = 40, size: int = 220, title: str = ""):
    """A corner plot: for each pair (i > j) of ``components`` density contours of every set, 1-D
    normalised step histograms on the diagonal, the legend in the top-right corner.

    ``sets``: label → dict(points=(n, k) whitened coordinates, color=…, line_dash=…(optional)),
    drawn in order. ``components``: the k names ("PC1" …); axes read "PC1 (whitened)". ``ranges``:
    (k, 2) axis ranges (default :func:`plot_ranges` of all sets). Returns an ``hv.Layout``."""
    ensure_extension()
    names = list(components)
    k = len(names)
    if k < 2:
        raise ValueError(f"corner_plot: needs at least two components, got {names}")
    if ranges is None:
        ranges = plot_ranges([s["points"] for s in sets.values()])
    dims = [hv.Dimension(n, label=f"{n} (whitened)", range=tuple(map(float, ranges[i]))) for i, n in enumerate(names)]
    fmt = dict(xformatter=tick_formatter("%.3g"), yformatter=tick_formatter("%.3g"))
    cells = []
    for row in range(k):
        for col in range(k):
            first_row, last_row, first_col = row == 0, row == k - 1, col == 0
            axes = dict(xaxis="bottom" if last_row else "bare", yaxis="left" if first_col else "bare")
            if col > row:
                if row == 0 and col == k - 1:
                    cells.append(_legend_cell([(lab, s["color"], s.get("line_dash", "solid")) for lab, s in sets.items()],
                                              size))
                else:
                    cells.append(hv.Empty())
                continue
            if col == row:
                edges = np.linspace(*ranges[col], hist_bins + 1)
                width = edges[1] - edges[0]
                ydim = hv.Dimension(f"density_{names[col]}", label="density")
                hists = []
                for lab, s in sets.items():
                    v = np.asarray(s["points"])[:, col]
                    h, _ = np.histogram(v, edges)
                    hists.append(hv.Histogram((edges, h / max(len(v), 1) / width), kdims=[dims[col]], vdims=[ydim],
                                              label=lab).opts(fill_alpha=0, line_width=1.5, line_color=s["color"],
                                                              line_dash=s.get("line_dash", "solid")))
                cell = hv.Overlay(hists).opts(show_legend=False)
                cell = cell.opts(yaxis="right" if first_col and not last_row else axes["yaxis"],
                                 xaxis=axes["xaxis"], ylabel="density")
            else:
                conts = [density_contours(np.asarray(s["points"])[:, col], np.asarray(s["points"])[:, row],
                                          ranges[col], ranges[row], lab, s["color"], masses, bins, smooth,
                                          kdims=(dims[col], dims[row]), line_dash=s.get("line_dash", "solid"))
                         for lab, s in sets.items()]
                cell = hv.Overlay(conts).opts(show_legend=False, **axes)
            cells.append(cell.opts(width=size + (50 if first_col else 0), height=size + (40 if last_row else 0),
                                   title=title if (row == 0 and col == 0) else "", show_grid=True,
                                   toolbar=None, **fmt))
    return hv.Layout(cells).cols(k).opts(shared_axes=False)


def score_histograms(scores: dict, colors: dict, reference: str = "data", bins: int = 40, width: int | None = None,
                     height: int = 280, xlabel: str = "tagger score", title: str = ""):
    """Normalised step histograms of tagger scores (label → values, ``reference`` first in the
    legend) above a ratio-to-``reference`` panel with errors σ_r = r·√(1/h + 1/h_ref)."""
    from .residuals import ratio_range, ratio_with_errors

    ensure_extension()
    ref = np.asarray(scores[reference], float)
    allv = np.concatenate([np.asarray(v, float) for v in scores.values()])
    lo, hi = (0.0, 1.0) if allv.min() >= 0 and allv.max() <= 1 else tuple(np.quantile(allv, [0.002, 0.998]))
    edges = np.linspace(lo, hi, bins + 1)
    centres, bw = 0.5 * (edges[1:] + edges[:-1]), edges[1] - edges[0]
    dim = hv.Dimension("score", label=xlabel)
    h_ref, _ = np.histogram(ref, edges)
    top, bottom, rs, dens = [], [hv.HLine(1.0).opts(color="gray", line_width=1)], [], []
    for lab, v in scores.items():
        v = np.asarray(v, float)
        h, _ = np.histogram(v, edges)
        dens.append(h / max(len(v), 1) / bw)
        # steps, not hv.Histogram: a histogram's bars start at 0, which a log axis cannot draw
        top.append(hv.Curve((edges, np.r_[dens[-1], dens[-1][-1]]), kdims=[dim], vdims=["density"], label=lab)
                   .opts(interpolation="steps-post", line_width=2, color=colors[lab]))
        if lab == reference:
            continue
        r, s = ratio_with_errors(h, h_ref, len(v), len(ref))
        rs.append((r, s))
        bottom += [hv.Scatter((centres, r), kdims=[dim], vdims=["ratio"], label=lab).opts(color=colors[lab], size=4),
                   hv.ErrorBars((centres, r, s), kdims=[dim], vdims=["ratio", "err"]).opts(color=colors[lab])]
    rlim = ratio_range(np.concatenate([r for r, _ in rs]), np.concatenate([s for _, s in rs])) if rs else (0.5, 1.5)
    size = dict(width=width) if width else dict(responsive=True, min_width=360)
    # a log density axis: tagger scores pile up near 0 and 1, and a linear axis hides everything else
    positive = np.concatenate(dens)[np.concatenate(dens) > 0]
    ylim = (float(positive.min()) / 2, float(positive.max()) * 2) if positive.size else (1e-3, 1.0)
    upper = hv.Overlay(top).opts(height=height, legend_position="top", xlabel="", ylabel="density (log scale)",
                                 title=title, show_grid=True, logy=True, ylim=ylim, xformatter=tick_formatter(), **size)
    lower = hv.Overlay(bottom).opts(height=int(height * 0.5), ylim=tuple(rlim), xlabel=xlabel, yticks=4,
                                    ylabel=f"ratio to {reference}", show_legend=False, show_grid=True,
                                    xformatter=tick_formatter(), yformatter=tick_formatter("%.2g"), **size)
    return (upper + lower).cols(1).opts(shared_axes=True)


# ----------------------------------------------------------------------------- training curves

#: colours of the per-class curves of a calibration run
CLASS_COLORS = {"W": "#d62728", "QCD": "#1f77b4"}


def _lines(series: dict, xlabel: str, ylabel: str, title: str, height: int, logy: bool = False):
    """One curve with markers per entry of ``series`` (name → (list of (x, y), colour))."""
    ensure_extension()
    xdim, ydim = hv.Dimension("x", label=xlabel), hv.Dimension("y", label=ylabel)
    els = []
    for name, (pts, color) in series.items():
        pts = [(float(x), float(y)) for x, y in pts if np.isfinite(y) and (y > 0 or not logy)]
        if pts:
            els += [hv.Curve(pts, kdims=[xdim], vdims=[ydim], label=name).opts(color=color, line_width=2),
                    hv.Scatter(pts, kdims=[xdim], vdims=[ydim], label=name).opts(color=color, size=5)]
    if not els:
        els = [hv.Curve([], kdims=[xdim], vdims=[ydim])]
    return hv.Overlay(els).opts(title=title, xlabel=xlabel, ylabel=ylabel, show_grid=True, legend_position="right",
                                responsive=True, min_height=height, height=height, logy=logy, tools=["hover"])


def calibration_curves(history: list[dict], height: int = 260):
    """Two plots of a calibration run's logged steps, one line per class: the transport cost
    E‖T(x) − x‖² and the dual estimate of W₂² (keys ``cost``, ``w2_dual``), against the map's
    step (a composition of maps counts its stages one after the other)."""
    def series(key):
        out = {}
        for r in history:
            if key not in r or "class" not in r or not isinstance(r.get(key), (int, float)):
                continue
            x = r.get("step", 0) + r.get("stage", 0) * r.get("steps", 0)
            name = str(r["class"])
            out.setdefault(name, ([], CLASS_COLORS.get(name, "gray")))[0].append((x, r[key]))
        return out

    return (_lines(series("cost"), "map step", "E‖T(x) − x‖²", "transport cost per class", height),
            _lines(series("w2_dual"), "map step", "W₂² (dual estimate)", "W₂ dual estimate per class", height))


def is_calibration_history(history: list[dict]) -> bool:
    return any("w2_dual" in r and "class" in r for r in history)


def tagger_curves(history: list[dict], height: int = 260):
    """Two plots of a tagger run's epochs (counted from 1): training and validation BCE loss, and
    the validation AUC."""
    ep = [r for r in history if "val_auc" in r and "epoch" in r]
    loss = {"training loss": ([(r["epoch"] + 1, r["loss"]) for r in ep if "loss" in r], "#1f77b4"),
            "validation loss": ([(r["epoch"] + 1, r["val_loss"]) for r in ep if "val_loss" in r], "#ff7f0e")}
    auc = {"validation AUC": ([(r["epoch"] + 1, r["val_auc"]) for r in ep], "#2ca02c")}
    return (_lines(loss, "epoch", "BCE loss", "tagger loss per epoch", height),
            _lines(auc, "epoch", "AUC", "tagger validation AUC per epoch", height))


def is_tagger_history(history: list[dict]) -> bool:
    return any("val_auc" in r for r in history)
