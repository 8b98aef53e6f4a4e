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


#: colours of the GAN-health curves, one per critic or term (in the order they are found)
GAN_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def _term_labels() -> dict[str, str]:
    from ..losses.turbosim import TERM_LABELS

    return TERM_LABELS


def critic_label(name: str) -> str:
    """A critic in words, from its adversarial term's label: "z_tilde" → "z̃ critic (E(x) vs z)"."""
    text = _term_labels().get(f"d_{name}")
    if text is None:
        return f"{name.replace('_', ' ')} critic"
    symbol, _, rest = text.partition(": ")
    what = rest.split(" (")[0].removeprefix("critic on ")
    return f"{symbol.removeprefix('D_')} critic ({what})"


def generator_term_label(term: str) -> str:
    """A generator loss term in words: "l_z_tilde" → "L_z̃: MSE(z, E(x)) on pairs"."""
    text = _term_labels().get(term)
    return text.split(" (")[0] if text else term.replace("_", " ")


def gan_keys(history: list[dict]) -> dict[str, list[str]]:
    """What the history records hold, in the order first seen: ``critics`` (the ``f`` of keys
    ``w_f``), ``penalties`` (of ``gp_f``) and ``terms`` (generator loss terms, keys of
    :data:`otviz.losses.turbosim.TERM_LABELS`)."""
    labels = _term_labels()
    out: dict[str, list[str]] = {"critics": [], "penalties": [], "terms": []}
    for r in history:
        for k, v in r.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            key, name = ("critics", k[2:]) if k.startswith("w_") else ("penalties", k[3:]) if k.startswith("gp_") \
                else ("terms", k) if k in labels else (None, None)
            if key and name not in out[key]:
                out[key].append(name)
    out["terms"] = [t for t in labels if t in out["terms"]]  # the objective's order
    return out


def has_critics(history: list[dict]) -> bool:
    """Whether the records hold critics' Wasserstein estimates (keys ``w_*``): a GAN's history."""
    return any(k.startswith("w_") for r in history for k in r)


def _series_plot(history, keys, label_of, title, ylabel, x, height, width):
    from bokeh.models import AdaptiveTicker

    ensure_extension()
    xdim = hv.Dimension(x, label=X_LABELS.get(x, x))
    ydim = hv.Dimension("value", label=ylabel)
    els = []
    for i, key in enumerate(keys):
        pts = [(r[x] + 1 if x == "epoch" else r[x], float(r[key])) for r in history
               if x in r and isinstance(r.get(key), (int, float)) and r[key] == r[key]]
        if not pts:
            continue
        color = GAN_COLORS[i % len(GAN_COLORS)]
        name = label_of(key)
        els += [hv.Curve(pts, kdims=[xdim], vdims=[ydim], label=name).opts(color=color, line_width=2),
                hv.Scatter(pts, kdims=[xdim], vdims=[ydim], label=name).opts(color=color, size=6)]
    if not els:
        els = [hv.Curve([], kdims=[xdim], vdims=[ydim])]
    size = dict(responsive=True, min_height=height, height=height) if width is None else dict(width=width,
                                                                                              height=height)
    return hv.Overlay(els).opts(title=title, xlabel=xdim.label, ylabel=ylabel, show_grid=True,
                                legend_position="right", tools=["hover"],
                                xticks=AdaptiveTicker(min_interval=1, mantissas=[1, 2, 5]), **size)


LEGEND_ROW, LEGEND_PAD = 28, 50  # px per legend entry, and around the legend


def gan_health_curves(history: list[dict], x: str = "epoch", width: int | None = None, height: int = 260):
    """The GAN-health plots of an adversarially trained run's per-epoch records (epochs counted
    from 1), on linear axes (estimates and adversarial terms can be negative): the critics'
    Wasserstein-1 estimates E[C(real)] − E[C(fake)] (keys ``w_*``), their gradient penalties
    E[(‖∇C‖ − 1)²] (``gp_*``) and the generator loss terms. Curves are chosen by the keys present,
    each named in words in the legend. Returns three Overlays (one pane each)."""
    keys = gan_keys(history)
    return (
        _series_plot(history, [f"w_{c}" for c in keys["critics"]], lambda k: critic_label(k[2:]),
                     "critics' Wasserstein-1 estimates E[C(real)] − E[C(fake)]", "W₁ estimate", x, height, width),
        _series_plot(history, [f"gp_{c}" for c in keys["penalties"]], lambda k: critic_label(k[3:]),
                     "critics' gradient penalties E[(‖∇C‖ − 1)²] on interpolates", "gradient penalty", x, height,
                     width),
        # taller with many terms (8 + the SW terms), so that the legend fits beside its own plot
        _series_plot(history, keys["terms"], generator_term_label, "generator loss terms", "loss term (unweighted)",
                     x, max(height, LEGEND_PAD + LEGEND_ROW * len(keys["terms"])), width),
    )
