"""Plots of the Hadronisation page (HadML, issue 15): generated cluster decays against the reference.

The numbers are pure functions (:func:`select_clusters`, :func:`rest_frame_projection`,
:func:`stats_text`); the plots are HoloViews (Bokeh):

- :func:`cluster_mass_plot` — the reference cluster-mass spectrum with the mass-bin edges marked;
- :func:`comparison_plot` — normalised step histograms of the reference and the generated decays
  above a ratio panel r = (h_gen/N_gen)/(h_ref/N_ref) ± σ_r, σ_r = r·√(1/h_gen + 1/h_ref)
  (``viz.residuals.ratio_with_errors``), the W₁ and KS values beside their truth-vs-truth floors
  in the title;
- :func:`rest_frame_plot` — one cluster's two hadrons in its rest frame, reference and generated.

Rest-frame drawing: each hadron's rest-frame momentum p* is drawn in the plane spanned by the decay
axis ẑ (``clusterset.decay_axis``) and the hadron: (p*·ẑ, |p* × ẑ|) for hadron 0 and the opposite
point for hadron 1 (back to back). The horizontal coordinate is p* cos θ*, the vertical p* sin θ*,
so the polar angle and |p*| are drawn exactly and φ* (the azimuth about ẑ) is stated in the title.
"""
from __future__ import annotations

import holoviews as hv
import numpy as np

from ..metrics.hadronisation import LABELS as OBS_LABELS
from ..metrics.hadronisation import MASS_EDGES, mass_bin_labels
from ..physics import twobody
from ..physics.observables import readable
from . import ensure_extension, tick_formatter
from .residuals import ratio_range, ratio_with_errors

#: reference black and solid, the generator red and dashed (told apart by hue and by dash)
COLORS = {"reference": "black", "generated": "#d62728"}
DASH = {"reference": "solid", "generated": "dashed"}
NAMES = {"reference": "reference", "generated": "HadML"}
ORIGINS = ("all", "perturbative", "non-perturbative")
#: hadron names by PDG id
HADRON_NAMES = {111: "π⁰", 211: "π⁺", -211: "π⁻", 221: "η", 113: "ρ⁰", 213: "ρ⁺", -213: "ρ⁻", 321: "K⁺",
                -321: "K⁻", 311: "K⁰", -311: "K̄⁰", 130: "K⁰_L", 310: "K⁰_S"}
#: fixed binning of the decay angles; lab quantities span the reference's quantiles
ANGLE_RANGES = {"cos_theta": (-1.0, 1.0), "phi": (-np.pi, np.pi)}
LOG_Y = {"E": True, "pT": True, "eta": False, "min_dR": False, "cos_theta": False, "phi": False}
#: units of the density axis (1 / the observable's unit); cos θ*, η and ΔR are unitless
DENSITY_UNITS = {"E": "1/GeV", "pT": "1/GeV", "phi": "1/rad"}
#: characters of a title line that fit a plot of width < 400 px (9 pt) and a wider one (10 pt)
TITLE_CHARS = {"narrow": 40, "wide": 64}


def hadron_name(pid: int) -> str:
    return HADRON_NAMES.get(int(pid), str(int(pid)))


def pair_name(pids) -> str:
    """"π⁺π⁻" for (211, −211)."""
    return "".join(hadron_name(p) for p in pids)


# ----------------------------------------------------------------------------- numbers


def select_clusters(mass, from_quark, mass_bin: str = "all", origin: str = "all", edges=MASS_EDGES) -> np.ndarray:
    """Boolean mask of the clusters of cluster mass ``mass`` (GeV) in the bin labelled ``mass_bin``
    (one of ``mass_bin_labels(edges)``; lower edge included) and of ``origin`` (all, perturbative =
    ``from_quark``, non-perturbative)."""
    labels = mass_bin_labels(edges)
    if mass_bin not in labels:
        raise ValueError(f"mass bin {mass_bin!r}: not one of {', '.join(labels)}")
    if origin not in ORIGINS:
        raise ValueError(f"origin {origin!r}: not one of {', '.join(ORIGINS)}")
    mass, from_quark = np.asarray(mass, float), np.asarray(from_quark, bool)
    sel = np.ones(len(mass), bool)
    i = labels.index(mass_bin)
    if i > 0:
        sel &= (mass >= edges[i - 1]) & (mass < edges[i])
    if origin == "perturbative":
        sel &= from_quark
    elif origin == "non-perturbative":
        sel &= ~from_quark
    return sel


def stats_text(stats: dict | None) -> str:
    """"W₁ 0.012 (floor 0.010) · KS 0.021 (floor 0.019)" from {"w1": (value, floor), "ks": …};
    "" when absent or not finite (a selection too small for the metrics)."""
    if not stats:
        return ""
    parts = []
    for key, sym in (("w1", "W₁"), ("ks", "KS")):
        v, f = stats.get(key, (np.nan, np.nan))
        if np.isfinite(v):
            parts.append(f"{sym} {readable(v, 2)} (floor {readable(f, 2)})")
    return " · ".join(parts)


def selection_name(mass_bin: str = "all", origin: str = "all") -> str:
    """"1.5–3 GeV, perturbative" — the mass bin and origin of a selection in words ("all clusters"
    for all/all)."""
    if mass_bin == "all" and origin == "all":
        return "all clusters"
    return f"{'all masses' if mass_bin == 'all' else mass_bin}, {'all origins' if origin == 'all' else origin}"


def title_lines(parts, max_chars: int) -> str:
    """``parts`` (a list of lists of strings) as a title: the strings of one part are joined on one
    line by their separator (" · " between statistics, ": " after the selection) while the line holds at
    most ``max_chars`` characters, else each goes on a line of its own."""
    lines = []
    for sep, items in parts:
        items = [t for t in items if t]
        if not items:
            continue
        joined = sep.join(items)
        lines += [joined] if len(joined) <= max_chars else items
    return "\n".join(lines)


def legend_side(densities) -> str:
    """"top_left" when the histograms reach higher in their right 40 % than in their left 40 %
    (a rising spectrum such as cos θ*'s forward peak), else "top_right": the legend goes above the
    lower side so that it hides no data."""
    d = np.nan_to_num(np.asarray(densities, float))
    if d.ndim == 1:
        d = d[None, :]
    k = max(1, int(round(0.4 * d.shape[1])))
    return "top_left" if d[:, -k:].max(initial=0.0) > d[:, :k].max(initial=0.0) else "top_right"


def rest_frame_projection(hadron, cluster, axis) -> np.ndarray:
    """(2, 2) drawing coordinates (along ẑ, transverse) in GeV of the two hadrons (2, 4) of one
    cluster (4,) in its rest frame, ẑ = ``axis`` (3,): hadron 0 at (p*·ẑ, |p* × ẑ|) ≥ 0 above the
    axis, hadron 1 at its own (p*·ẑ, −|p* × ẑ|) — exactly opposite to hadron 0 for a two-body decay."""
    rest = twobody.boost_to_rest(np.asarray(hadron, float), np.asarray(cluster, float)[None, :])[:, :3]
    z = np.asarray(axis, float) / max(float(np.linalg.norm(axis)), 1e-300)
    along = rest @ z
    trans = np.linalg.norm(rest - along[:, None] * z[None, :], axis=1)
    return np.stack([along, np.array([1.0, -1.0]) * trans], 1)


# ----------------------------------------------------------------------------- plots


def _size(width, height):
    return dict(width=width, height=height) if width else dict(responsive=True, min_width=300, height=height)


def mass_axis_max(mass) -> float:
    """Upper end of the cluster-mass axis (GeV): 2 % beyond the largest mass, so that the whole
    > 3 GeV tail is drawn, unless a few outliers lie beyond twice the 99.5 % quantile — then 2 %
    beyond the 99.9 % quantile."""
    mass = np.asarray(mass, float)
    mass = mass[np.isfinite(mass)]
    if not len(mass):
        return 10.0
    top = float(mass.max())
    if top > 2.0 * float(np.quantile(mass, 0.995)):
        top = float(np.quantile(mass, 0.999))
    return max(1.02 * top, 1e-3)


def cluster_mass_plot(mass, edges=MASS_EDGES, bins: int = 60, selected: str | None = None, width: int | None = None,
                      height: int = 300):
    """The reference cluster-mass spectrum (normalised steps, GeV) with the mass-bin edges as
    vertical lines; the ``selected`` bin (a ``mass_bin_labels`` entry) shaded."""
    ensure_extension()
    mass = np.asarray(mass, float)
    mass = mass[np.isfinite(mass)]
    hi = mass_axis_max(mass)
    e = np.linspace(0.0, hi, bins + 1)
    h, _ = np.histogram(mass, e)
    dens = h / max(len(mass), 1) / (e[1] - e[0])
    dim = hv.Dimension("cluster_mass", label="cluster mass [GeV]")
    els = []
    if selected and selected != "all":
        i = mass_bin_labels(edges).index(selected)
        a, b = edges[i - 1], min(edges[i], e[-1])
        els.append(hv.VSpan(a, b).opts(color="#f1c40f", alpha=0.25))
    els.append(hv.Curve((e, np.r_[dens, dens[-1]]), kdims=[dim], vdims=["mass_density"], label=f"reference ({len(mass)} clusters)")
               .opts(interpolation="steps-post", color="black", line_width=2))
    for x in edges[1:-1]:
        els.append(hv.VLine(float(x)).opts(color="gray", line_dash="dotted", line_width=1.5))
    peak = float(0.5 * (e[np.argmax(h)] + e[np.argmax(h) + 1])) if len(mass) else float("nan")
    title = f"cluster mass: peak at {readable(peak, 2)} GeV (dotted: bin edges)"
    return hv.Overlay(els).opts(title=title, xlabel="cluster mass [GeV]", ylabel="density [1/GeV]", show_grid=True,
                                legend_position="top_right", xformatter=tick_formatter(), yformatter=tick_formatter(),
                                toolbar=None, **_size(width, height))


def comparison_plot(reference, generated, observable: str, stats: dict | None = None, bins: int = 30,
                    width: int | None = None, height: int = 260, title_prefix: str = ""):
    """Reference vs generated normalised step histograms of ``observable`` (a key of
    ``metrics.hadronisation.LABELS``: cos_theta, phi, E, pT, eta, min_dR) above the ratio
    generated / reference ± stat. error; ``stats`` {"w1": (value, floor), "ks": (value, floor)}
    in the title under ``title_prefix`` (the selection, e.g. "1.5–3 GeV, perturbative"), lines
    broken to fit the plot's width (:func:`title_lines`). Angles use fixed ranges, the rest the
    reference's 0.2–99.8 % quantiles; E and pT a log density axis; the density axis carries
    1/(the observable's unit); the legend sits above the lower side (:func:`legend_side`)."""
    ensure_extension()
    ref = np.asarray(reference, float).ravel()
    gen = np.asarray(generated, float).ravel()
    ref, gen = ref[np.isfinite(ref)], gen[np.isfinite(gen)]
    label = OBS_LABELS.get(observable, observable)
    if observable in ANGLE_RANGES:
        lo, hi = ANGLE_RANGES[observable]
    elif len(ref):
        lo, hi = (float(v) for v in np.quantile(ref, [0.002, 0.998]))
        if observable in ("E", "pT", "min_dR"):
            lo = max(0.0, lo)
        if hi <= lo:
            hi = lo + 1.0
    else:
        lo, hi = 0.0, 1.0
    edges = np.linspace(lo, hi, bins + 1)
    centres, bw = 0.5 * (edges[1:] + edges[:-1]), edges[1] - edges[0]
    dim = hv.Dimension(observable, label=label)
    unit = f" [{DENSITY_UNITS[observable]}]" if observable in DENSITY_UNITS else ""
    ydim = hv.Dimension(f"density_{observable}", label=f"density{unit}")  # own name: no axis linked to another plot
    h_ref, _ = np.histogram(ref, edges)
    h_gen, _ = np.histogram(gen, edges)
    top, dens = [], []
    for key, h, n in (("reference", h_ref, len(ref)), ("generated", h_gen, len(gen))):
        d = h / max(n, 1) / bw
        dens.append(d)
        top.append(hv.Curve((edges, np.r_[d, d[-1]]), kdims=[dim], vdims=[ydim], label=f"{NAMES[key]} ({n})")
                   .opts(interpolation="steps-post", color=COLORS[key], line_dash=DASH[key], line_width=2))
    r, s = ratio_with_errors(h_gen, h_ref, max(len(gen), 1), max(len(ref), 1))
    rlim = ratio_range(r, s)
    bottom = [hv.HLine(1.0).opts(color="gray", line_width=1),
              hv.Scatter((centres, r), kdims=[dim], vdims=["ratio"]).opts(color=COLORS["generated"], size=4),
              hv.ErrorBars((centres, r, s), kdims=[dim], vdims=["ratio", "err"]).opts(color=COLORS["generated"])]
    # head room above the curves for the legend (inside the plot, top right)
    allp = np.concatenate(dens)
    pos = allp[allp > 0]
    room = 1.8 if width and width < 400 else 1.45  # a narrow plot's legend is relatively taller
    log = dict(ylim=(0.0, room * float(allp.max()) if allp.size and allp.max() > 0 else 1.0))
    if LOG_Y.get(observable) and pos.size:
        log = dict(logy=True, ylim=(float(pos.min()) / 3, float(pos.max()) * 12))
    narrow = bool(width and width < 400)
    stext = stats_text(stats)
    prefix = title_prefix.rstrip().rstrip(":")
    title = title_lines([(": ", [prefix, label]), (" · ", stext.split(" · ") if stext else [])],
                        TITLE_CHARS["narrow" if narrow else "wide"])
    upper = hv.Overlay(top).opts(xlabel="", ylabel=f"density{unit}" + (" (log)" if "logy" in log else ""),
                                 title=title, fontsize={"title": "9pt" if narrow else "10pt"}, xlim=(lo, hi),
                                 show_grid=True, legend_position=legend_side(dens), toolbar=None,
                                 xformatter=tick_formatter(), yformatter=tick_formatter("%.3g"),
                                 **log, **_size(width, height))
    lower = hv.Overlay(bottom).opts(ylim=tuple(rlim), xlim=(lo, hi), xlabel=label, ylabel="HadML / ref.", yticks=4,
                                    show_legend=False, show_grid=True, toolbar=None,
                                    xformatter=tick_formatter(), yformatter=tick_formatter("%.2g"),
                                    **_size(width, max(int(height * 0.5), 135)))
    return (upper + lower).cols(1).opts(shared_axes=True, toolbar=None)


def rest_frame_plot(cluster, axis, decays: dict, from_quark: bool = False, index: int | None = None,
                    width: int = 470, height: int = 380):
    """One cluster's decays in its rest frame (:func:`rest_frame_projection`): for each entry of
    ``decays`` ("reference"/"generated" → (hadrons (2, 4) lab GeV, pids (2,))) hadron 0 solid and
    hadron 1 thin, from the origin, lengths = |p*| in GeV, species at the tips; the decay axis ẑ
    (the perturbative quark's direction, or the cluster's flight direction) as a gray arrow. The
    title gives the cluster mass and origin, the legend each decay's species and cos θ*, φ*."""
    ensure_extension()
    cluster = np.asarray(cluster, float)
    axis = np.asarray(axis, float)
    mass = float(np.sqrt(max(cluster[3] ** 2 - (cluster[:3] ** 2).sum(), 0.0)))
    pmax = 1e-9
    els = []
    xdim = hv.Dimension("along", label="p* along the decay axis ẑ [GeV]")
    ydim = hv.Dimension("across", label="p* transverse to ẑ [GeV]")
    texts = []
    for key, (had, pid) in decays.items():
        xy = rest_frame_projection(had, cluster, axis)
        pmax = max(pmax, float(np.abs(xy).max()))
        cos_t, phi = twobody.decay_angles(np.asarray(had, float)[0], cluster, axis)
        pstar = float(np.hypot(*xy[0]))
        name = (f"{NAMES[key]} {pair_name(pid)}: cos θ* = {float(cos_t):.2f}, φ* = {float(phi):.2f} rad, "
                f"|p*| = {readable(pstar, 3)} GeV")
        color = COLORS[key]
        els.append(hv.Segments([(0.0, 0.0, xy[0, 0], xy[0, 1]), (0.0, 0.0, xy[1, 0], xy[1, 1])],
                               kdims=[xdim, ydim, "x1", "y1"], label=name)
                   .opts(color=color, line_width=3, line_dash=DASH[key]))
        els.append(hv.Scatter((xy[:, 0], xy[:, 1]), kdims=[xdim], vdims=[ydim]).opts(color=color, size=9))
        texts += [(float(xy[k, 0]), float(xy[k, 1]), f"{hadron_name(pid[k])} ({k})", color) for k in range(2)]
    lim = 1.6 * pmax  # room beyond the tips for the species labels (drawn outwards)
    axis_name = "ẑ: perturbative quark direction" if from_quark else "ẑ: cluster flight direction"
    els.insert(0, hv.Segments([(-lim * 0.95, 0.0, lim * 0.95, 0.0)], kdims=[xdim, ydim, "x1", "y1"], label=axis_name)
               .opts(color="gray", line_width=1.5, line_dash="dotted"))
    els.insert(1, hv.Scatter([(lim * 0.95, 0.0)], kdims=[xdim], vdims=[ydim])
               .opts(color="gray", marker="triangle", angle=-90, size=10))
    for x, y, t, c in texts:  # beyond the tip, away from the origin: the label never covers the marker
        r = max(float(np.hypot(x, y)), 1e-12)
        els.append(hv.Text(x + 0.06 * lim * x / r, y + 0.06 * lim * y / r, t, fontsize=10,
                           halign="left" if x >= 0 else "right", valign="bottom" if y >= 0 else "top").opts(color=c))
    origin = "perturbative" if from_quark else "non-perturbative"
    which = f"cluster {index}: " if index is not None else ""
    title = f"{which}M = {readable(mass, 3)} GeV, {origin} (rest frame)"
    return hv.Overlay(els).opts(title=title, xlim=(-lim, lim), ylim=(-lim, lim), xlabel=xdim.label,
                                ylabel=ydim.label, show_grid=True, legend_position="bottom", legend_cols=1, toolbar=None,
                                width=width, height=height, data_aspect=None,
                                xformatter=tick_formatter("%.3g"), yformatter=tick_formatter("%.3g"))


# ----------------------------------------------------------------------------- training curves


def hadml_curves(history: list[dict], height: int = 260):
    """Two plots of a HadML run's epochs (counted from 1): the discriminator and generator losses,
    and the validation W₁ of hadron 0's cos θ* and φ* in the cluster rest frame (keys ``d_loss``,
    ``g_loss``, ``val_w1_cos_theta``, ``val_w1_phi`` of ``otviz.train.hadml``'s history)."""
    from .corner import _lines

    ep = [r for r in history if "epoch" in r and ("d_loss" in r or "val_w1_cos_theta" in r)]

    def pts(key):
        return [(r["epoch"] + 1, r[key]) for r in ep if isinstance(r.get(key), (int, float))]

    loss = {"discriminator loss": (pts("d_loss"), "#1f77b4"), "generator loss": (pts("g_loss"), "#d62728")}
    w1 = {"W₁ of cos θ*": (pts("val_w1_cos_theta"), "#2ca02c"), "W₁ of φ* [rad]": (pts("val_w1_phi"), "#9467bd")}
    return (_lines(loss, "epoch", "loss", "HadML losses per epoch", height),
            _lines(w1, "epoch", "validation W₁", "validation W₁ of the decay angles per epoch", height, logy=True))


def is_hadml_history(history: list[dict]) -> bool:
    return any("val_w1_cos_theta" in r for r in history)
