"""Loss curves of a training run."""
from __future__ import annotations

import holoviews as hv

from . import ensure_extension

#: x axis names of the training progress: key of the history record → axis label
X_LABELS = {"epoch": "epoch", "beta_step": "β step", "step": "step"}


def loss_curves(history: list[dict], terms=("loss", "mse", "sw_z", "sw_x", "anchor_e", "anchor_d"),
                x: str = "epoch", width: int | None = None, height: int = 320):
    """Loss terms against epoch (or β step) on a log axis: one curve per term with at least two
    positive values (a term that is zero, or absent, is neither drawn nor in the legend), named by
    :data:`otviz.train.terms.LOSS_TERMS`; integer ticks on the x axis; the legend right of the
    axes, never over a curve. ``width=None`` stretches the plot to its container."""
    from bokeh.models import AdaptiveTicker

    from ..train.terms import term_label

    ensure_extension()
    xlabel = X_LABELS.get(x, x)
    curves = []
    for t in terms:
        pts = [(r[x], r[t]) for r in history if t in r and r[t] is not None and r[t] > 0]
        if len(pts) >= 2:
            curves.append(hv.Curve(pts, kdims=[hv.Dimension(x, label=xlabel)], vdims=["value"], label=term_label(t)))
    if not curves:
        curves = [hv.Curve([], kdims=[hv.Dimension(x, label=xlabel)], vdims=["value"])]
    size = dict(responsive=True, min_height=height, height=height) if width is None else dict(width=width,
                                                                                              height=height)
    return hv.Overlay(curves).opts(logy=True, legend_position="right", title="training loss", xlabel=xlabel,
                                   ylabel="loss term", show_grid=True,
                                   xticks=AdaptiveTicker(min_interval=1, mantissas=[1, 2, 5]), **size)
