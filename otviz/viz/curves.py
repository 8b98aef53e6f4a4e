"""Loss curves of a training run."""
from __future__ import annotations

import holoviews as hv

from . import ensure_extension


def loss_curves(history: list[dict], terms=("loss", "mse", "sw_z", "sw_x", "anchor_e", "anchor_d"),
                x: str = "epoch", width: int = 620, height: int = 300):
    """Loss terms against epoch (or step) on a log axis, one curve per term present."""
    ensure_extension()
    curves = []
    for t in terms:
        pts = [(r[x], r[t]) for r in history if t in r and r[t] is not None and r[t] > 0]
        if pts:
            curves.append(hv.Curve(pts, kdims=[x], vdims=["value"], label=t))
    if not curves:
        curves = [hv.Curve([], kdims=[x], vdims=["value"])]
    return hv.Overlay(curves).opts(logy=True, width=width, height=height, legend_position="top_right",
                                   title="training loss", ylabel="loss term", show_grid=True)


