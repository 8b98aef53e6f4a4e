"""Latent traversals of the EMD-VAE drawn as jet images (EMD-VAE, Collins, Fig. 1 and 2).

A grid of latent points along two directions (default: the two with the highest KL), all other
coordinates held at chosen values, is decoded into jets; each jet is drawn in its own tile as
discs in (η, φ) with *area* ∝ pT (radius ∝ √(pT/H_T)), and the whole grid is rasterised into one
RGBA image — one array, one Bokeh glyph — so a 9×9 grid is served in a few ms.

    tile (i, j) ↔ latent z = centre + u_i e_a + v_j e_b,   u, v ∈ linspace(−span, span, n)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

DISC_RGB = (200, 30, 30)


@dataclass
class Traversal:
    """A decoded latent grid: ``jets[j, i]`` is the jet at (u_i, v_j) (rows = direction b)."""

    dims: tuple[int, int]
    u: np.ndarray  # (n,) values along direction a
    v: np.ndarray  # (n,) values along direction b
    latent: np.ndarray  # (n, n, latent)
    jets: np.ndarray  # (n, n, N, 3) of (pT/H_T, η, φ)


def top_kl_dimensions(kl_per_dim, k: int = 2) -> list[int]:
    """Indices of the ``k`` latent directions with the largest KL (most informative first)."""
    return [int(i) for i in np.argsort(-np.asarray(kl_per_dim, float))[:k]]


def traverse(model, dims=(0, 1), centre=None, span: float = 3.0, n: int = 9) -> Traversal:
    """Decode an n × n grid spanning ``±span`` around ``centre`` along latent ``dims``."""
    latent = model.cfg.latent
    a, b = (int(d) for d in dims)
    if a == b or not (0 <= a < latent and 0 <= b < latent):
        raise ValueError(f"need two different latent directions in [0, {latent}), got {dims}")
    c = np.zeros(latent, np.float32) if centre is None else np.asarray(centre, np.float32).copy()
    if c.shape != (latent,):
        raise ValueError(f"centre must have {latent} coordinates, got shape {c.shape}")
    u = c[a] + np.linspace(-span, span, n, dtype=np.float32)
    v = c[b] + np.linspace(-span, span, n, dtype=np.float32)
    z = np.broadcast_to(c, (n, n, latent)).copy()
    z[:, :, a] = u[None, :]
    z[:, :, b] = v[:, None]
    with torch.no_grad():
        jets = model.decode(torch.as_tensor(z.reshape(n * n, latent))).numpy()
    return Traversal((a, b), u, v, z, jets.reshape(n, n, *jets.shape[1:]))


def default_extent(centred: bool) -> tuple[float, float, float, float]:
    """(η_min, η_max, φ_min, φ_max) of one tile: ±0.8 around the axis for centred jets, the
    whole |η| < 2.5 barrel-and-endcap and full φ for jets anywhere in the detector."""
    return (-0.8, 0.8, -0.8, 0.8) if centred else (-2.5, 2.5, -np.pi, np.pi)


def jet_mosaic(jets: np.ndarray, extent=(-0.8, 0.8, -0.8, 0.8), tile: int = 48, disc_scale: float = 0.4,
               gap: int = 2, rgb=DISC_RGB, min_weight: float = 1e-3) -> np.ndarray:
    """Rasterise a (rows, cols, N, 3) grid of jets into one RGBA uint8 image.

    Tile (r, c) shows jet ``jets[r, c]`` with η to the right and φ up; row 0 is drawn at the
    *bottom* (so the image can be placed with latent v increasing upwards). A particle of weight w
    is a disc of radius ``disc_scale · tile · √w`` pixels (area ∝ pT); overlapping discs add
    opacity. Particles below ``min_weight`` are skipped."""
    jets = np.asarray(jets, np.float64)
    rows, cols = jets.shape[:2]
    eta0, eta1, phi0, phi1 = extent
    inner = tile - gap
    w = jets[..., 0]
    # pixel coordinates of every particle inside its tile (row 0 at the bottom of the image)
    px = (jets[..., 1] - eta0) / (eta1 - eta0) * inner
    py = (1.0 - (jets[..., 2] - phi0) / (phi1 - phi0)) * inner
    r = disc_scale * tile * np.sqrt(np.clip(w, 0, 1))
    keep = (w > min_weight) & (px >= 0) & (px < inner) & (py >= 0) & (py < inner)
    ri, ci, _ = np.nonzero(keep)
    cx, cy, rr = px[keep], py[keep], np.maximum(r[keep], 0.6)
    # splat a disc stencil around each particle's pixel; particles are grouped by stencil size
    # (most are small) so the work is ~ Σ r² rather than n·r_max²
    parts = []
    size = np.ceil(rr).astype(int)
    bucket = np.where(size <= 1, 1, 2 ** np.ceil(np.log2(np.maximum(size, 1))).astype(int))
    for rb in np.unique(bucket):
        sel = np.flatnonzero(bucket == rb)
        off = np.arange(-rb, rb + 1)
        ox, oy = np.meshgrid(off, off)
        ox, oy = ox.ravel(), oy.ravel()
        gx = np.floor(cx[sel])[:, None] + ox[None, :]
        gy = np.floor(cy[sel])[:, None] + oy[None, :]
        inside = (gx + 0.5 - cx[sel, None]) ** 2 + (gy + 0.5 - cy[sel, None]) ** 2 <= rr[sel, None] ** 2
        inside &= (gx >= 0) & (gx < inner) & (gy >= 0) & (gy < inner)
        k, s = np.nonzero(inside)
        parts.append((sel[k], gx[k, s].astype(np.int64), gy[k, s].astype(np.int64)))
    k = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, int)
    gxs = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, int)
    gys = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, int)
    H, W = rows * tile, cols * tile
    row_px = (rows - 1 - ri[k]) * tile + gys
    col_px = ci[k] * tile + gxs
    alpha = np.bincount(row_px * W + col_px, minlength=H * W).astype(np.float32) * 0.55
    img = np.zeros((H, W, 4), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = rgb
    img[..., 3] = (np.clip(alpha, 0, 1).reshape(H, W) * 255).astype(np.uint8)
    if gap > 0:  # thin grey frames in the gaps between tiles
        frame = np.zeros((H, W), bool)
        frame[:, (np.arange(cols) * tile)[:, None] + np.arange(inner, tile)] = True
        frame[(np.arange(rows) * tile)[:, None] + np.arange(inner, tile), :] = True
        img[frame] = (150, 150, 150, 90)
    return img


def latent_density(mu: np.ndarray, dims, centre=(0.0, 0.0), span: float = 4.0, bins: int = 80):
    """2-D histogram of encoded jets' posterior means in the plane of ``dims`` = (a, b), over
    ``centre ± span``; returns (counts[b, a], edges_a, edges_b)."""
    a, b = dims
    ca, cb = (float(c) for c in centre)
    edges_a = np.linspace(ca - span, ca + span, bins + 1)
    edges_b = np.linspace(cb - span, cb + span, bins + 1)
    h, _, _ = np.histogram2d(mu[:, b], mu[:, a], bins=(edges_b, edges_a))
    return h, edges_a, edges_b


def traversal_plot(trav: Traversal, mu=None, extent=(-0.8, 0.8, -0.8, 0.8), tile: int = 48,
                   width: int = 620, dims_labels=None, hooks=()):
    """HoloViews overlay: density of encoded jets (blue) under the jet mosaic (red), both in
    latent coordinates; each tile is centred on the latent point it decodes."""
    import holoviews as hv

    from . import ensure_extension

    ensure_extension()
    a, b = trav.dims
    n = len(trav.u)
    du = (trav.u[-1] - trav.u[0]) / max(n - 1, 1)
    dv = (trav.v[-1] - trav.v[0]) / max(n - 1, 1)
    bounds = (trav.u[0] - du / 2, trav.v[0] - dv / 2, trav.u[-1] + du / 2, trav.v[-1] + dv / 2)
    xl, yl = dims_labels or (f"z{a}", f"z{b}")
    layers = []
    if mu is not None:
        centre = ((bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2)
        half = max(bounds[2] - bounds[0], bounds[3] - bounds[1]) / 2
        h, ea, eb = latent_density(mu, (a, b), centre, span=half)
        layers.append(hv.Image(np.log1p(h), bounds=(ea[0], eb[0], ea[-1], eb[-1]), kdims=[xl, yl],
                               label="encoded jets").opts(cmap="Blues", alpha=0.8, framewise=True))
    img = jet_mosaic(trav.jets, extent=extent, tile=tile)
    layers.append(hv.RGB(img, bounds=bounds, kdims=[xl, yl], vdims=list("RGBA")).opts(framewise=True))
    out = hv.Overlay(layers).opts(
        hv.opts.RGB(xlabel=xl, ylabel=yl),
        hv.opts.Overlay(width=width, height=width, hooks=list(hooks), title=f"decoded jets over (z{a}, z{b})",
                        xlim=(bounds[0], bounds[2]), ylim=(bounds[1], bounds[3])),
    )
    return out


def jet_points(jet: np.ndarray, title: str = "", extent=None, min_weight: float = 1e-3):
    """One jet enlarged: particles as discs (area ∝ pT) with a hover table of pT/H_T, η, φ."""
    import holoviews as hv

    from . import ensure_extension

    ensure_extension()
    jet = np.asarray(jet, float)
    keep = jet[:, 0] > min_weight
    pts = hv.Points({"eta": jet[keep, 1], "phi": jet[keep, 2], "pt_frac": jet[keep, 0],
                     "size": 60 * np.sqrt(jet[keep, 0])}, kdims=["eta", "phi"], vdims=["pt_frac", "size"])
    opts = dict(size="size", color="#c81e1e", alpha=0.6, line_color="black", tools=["hover"], width=360, height=360,
                xlabel="η", ylabel="φ", title=title)
    if extent is not None:
        opts.update(xlim=extent[:2], ylim=extent[2:])
    return pts.opts(**opts)


def emd_flow_plot(jet_a, jet_b, plan, min_flow: float = 1e-3, extent=None, title: str = ""):
    """Two jets (discs, area ∝ pT: a blue, b red) and the optimal EMD flow between them as
    segments whose width is ∝ the transported pT fraction."""
    import holoviews as hv

    from . import ensure_extension

    ensure_extension()
    jet_a, jet_b, plan = (np.asarray(t, float) for t in (jet_a, jet_b, plan))
    i, j = np.nonzero(plan > min_flow)
    segs = hv.Segments({"x0": jet_a[i, 1], "y0": jet_a[i, 2], "x1": jet_b[j, 1], "y1": jet_b[j, 2],
                        "flow": plan[i, j], "lw": 1 + 12 * plan[i, j]},
                       kdims=["x0", "y0", "x1", "y1"], vdims=["flow", "lw"]).opts(
        color="grey", line_width="lw", alpha=0.6, tools=["hover"])
    layers = [segs]
    for jet, colour, label in ((jet_a, "#1f77b4", "jet a"), (jet_b, "#c81e1e", "jet b")):
        keep = jet[:, 0] > min_flow
        layers.append(hv.Points({"eta": jet[keep, 1], "phi": jet[keep, 2], "pt_frac": jet[keep, 0],
                                 "size": 60 * np.sqrt(jet[keep, 0])}, ["eta", "phi"], ["pt_frac", "size"],
                                label=label).opts(size="size", color=colour, alpha=0.5, tools=["hover"]))
    opts = dict(width=480, height=440, xlabel="η", ylabel="φ", title=title or "optimal EMD flow",
                legend_position="top_right")
    if extent is not None:
        opts.update(xlim=extent[:2], ylim=extent[2:])
    return hv.Overlay(layers).opts(**opts)
