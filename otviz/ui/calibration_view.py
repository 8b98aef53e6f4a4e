"""Calibration page ("Mind the Gap"): the tagger latent of data, simulation and calibrated simulation
in whitened PCA coordinates (a corner plot of density contours), simulated points moved along the
displacement interpolation (1 − t)·x + t·T(x) by a slider, the discriminator AUC table with its
data-vs-data floor, the working point and the tagger-score histograms with a ratio to data."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import panel as pn
import param

from .. import kinds
from ..metrics.calibration import COMPARISON_DESCRIPTIONS, COMPARISON_HEADS, FROZEN, displayed_comparisons, unclosed
from ..viz.corner import COLORS, LABELS, MASSES, SHORT, corner_plot, displace, plot_ranges, score_histograms, whiten
from . import cache
from .notify import describe
from .state import ExplorerState

COMPARISONS = ("sim vs data", "calibrated vs data", "all three")
COMPONENTS = tuple(f"PC{k}" for k in range(1, 6))
SPACES = {"z128": "z₁₂₈", "z128w": "z₁₂₈ whitened", "z128p": "z′₁₂₈", "score": "score"}


def load_calibration(path) -> dict:
    """What the page shows of an otcal run directory, computed once per process (the shared cache):
    per class, whitened coordinates (all stored components) of data, simulation, the stored
    calibrated points and T(sim) computed with the run's map; the metrics; the scores. Raises a
    clear error for a missing directory or file, or a run of another kind."""
    from ..train.calibration import METRICS_FILE, POINTS_FILE, read_points
    from ..train.run import run_kind

    p = Path(path)
    if not (p / "config.json").exists():
        raise FileNotFoundError(f"{p}: not a run directory (no config.json)")
    kind = run_kind(p)  # a run this page can show: its kind lists the Calibration page
    if not any(page.view.endswith(":CalibrationView") for page in (kinds.get(kind).pages if kind else ())):
        raise ValueError(f"{p}: a {kind or 'unknown kind of'} run, not an OT calibration (otcal) run")
    for f in ("model.pt", METRICS_FILE, POINTS_FILE):
        if not (p / f).exists():
            raise FileNotFoundError(f"{p}: no {f} (the run has not finished: `otviz train otcal-wjets` writes it)")

    def compute():
        import xarray as xr

        pts = read_points(p)
        with xr.open_dataset(p / METRICS_FILE, engine="h5netcdf") as ds:
            metrics = ds.load()
        model = cache.run(p).model
        classes = {}
        for lab in [str(v) for v in pts.label.values]:
            lab_id = int(pts.label_id.sel(label=lab))
            z = pts["z128"].sel(label=lab)
            mean, proj = pts["pca_mean"].sel(label=lab).values, pts["pca_projection"].sel(label=lab).values
            sim = np.asarray(z.sel(domain="sim").values, np.float32)
            u = {dom: whiten(z.sel(domain=dom).values, mean, proj) for dom in ("sim", "data", "calibrated")}
            u["mapped"] = whiten(model.transport(sim, lab_id, t=1.0), mean, proj)  # T(sim) by the run's map
            classes[lab] = dict(u=u, label_id=lab_id, ranges=plot_ranges([u["sim"], u["data"], u["calibrated"]]),
                                score={dom: np.asarray(pts["score"].sel(label=lab, domain=dom).values)
                                       for dom in ("sim", "data", "calibrated")})
        return dict(classes=classes, metrics=metrics, components=[str(c) for c in pts.component.values])

    return cache.CACHE.get(("otcal-page", cache._stamp(p)), compute)


def corner_sets(classes: dict, label: str, comparison: str, t: float, components) -> dict:
    """The sets drawn in the corner plot (label → points, colour, dash) of class ``label``: data,
    and per ``comparison`` the simulation moved to ``t`` (sim vs data), the calibrated simulation
    (calibrated vs data), or simulation, calibrated and — for 0 < t < 1 — the moving points (all three)."""
    c = classes[label]
    idx = [int(n[2:]) - 1 for n in components]
    u = {k: v[:, idx] for k, v in c["u"].items()}
    moving = displace(u["sim"], u["mapped"], t)
    sets = {SHORT["data"]: dict(points=u["data"], color=COLORS["data"])}
    if comparison == "sim vs data":
        color = COLORS["sim"] if t == 0 else COLORS["moving"]  # red stays the calibrated set's
        name = SHORT["sim"] if t == 0 else f"sim. at t = {t:.2f}"
        sets[name] = dict(points=moving, color=color)
    elif comparison == "calibrated vs data":
        sets[SHORT["calibrated"]] = dict(points=u["calibrated"], color=COLORS["calibrated"])
    else:
        sets[SHORT["sim"]] = dict(points=u["sim"], color=COLORS["sim"])
        sets[SHORT["calibrated"]] = dict(points=u["calibrated"], color=COLORS["calibrated"])
        if 0 < t < 1:
            sets[f"sim. at t = {t:.2f}"] = dict(points=moving, color=COLORS["moving"], line_dash="dashed")
    return sets


def auc_markdown(metrics) -> str:
    """The AUC table: class × space rows, one column per stored comparison (``COMPARISON_HEADS``)."""
    comps = displayed_comparisons(metrics)
    head = "| class | space | " + " | ".join(COMPARISON_HEADS.get(c, c) for c in comps) + " |"
    rows = [head, "|---|---|" + "---|" * len(comps)]
    for lab in metrics.label.values:
        for sp in metrics.space.values:
            vals = [float(metrics["auc"].sel(label=lab, space=sp, comparison=c)) for c in comps]
            errs = ([float(metrics["auc_error"].sel(label=lab, space=sp, comparison=c)) for c in comps]
                    if "auc_error" in metrics else [None] * len(comps))
            rows.append(f"| {lab} | {SPACES.get(str(sp), sp)} | " + " | ".join(
                f"{v:.3f}" + (f" ± {e:.3f}" if e is not None else "") for v, e in zip(vals, errs)) + " |")
    return "\n".join(rows)


def auc_notes(metrics) -> str:
    """Under the AUC table: what the whitened row sees, and every cell where calibration left the
    AUC well above its floor (``metrics.calibration.unclosed``)."""
    text = ""
    if FROZEN in [str(c) for c in metrics.comparison.values]:
        text += (f"\n\n*frozen D*: {COMPARISON_DESCRIPTIONS[FROZEN]}. "
                 f"*new D*: {COMPARISON_DESCRIPTIONS['calibrated vs data']}.")
    if "z128w" in [str(s) for s in metrics.space.values]:
        text += ("\n\n*z₁₂₈ whitened*: the same discriminator on the data's whitened principal coordinates. z₁₂₈ "
                 "fills a thin curved sheet; a map that moves points off it is caught here even when the z₁₂₈ row "
                 "looks closed.")
    gaps = unclosed(metrics)
    if gaps:
        text += ("\n\n**Not closed** (calibrated vs data, new D, more than 5σ above the floor): " + "; ".join(
            f"{lab} {SPACES.get(sp, sp)} {a:.3f} (floor {f:.3f})" for lab, sp, a, f in gaps)
            + " — the calibrated latents are not data-like there.")
    return text


def working_point_markdown(metrics) -> str:
    """Signal efficiency at the mistag rate for sim, data and calibrated, ± errors, and the cut; and,
    when stored, each domain's signal efficiency and mistag rate above the data's cut."""
    mistag = metrics.attrs.get("mistag", float("nan"))
    sig = metrics.attrs.get("signal", "W")
    fixed = "efficiency_at_data_cut" in metrics
    rows = [f"**Working point:** {sig} efficiency at a mistag rate of {float(mistag):.0%}",
            "", "| domain | efficiency (own cut) | score cut |" + (" efficiency at data's cut | mistag at data's cut |"
                                                              if fixed else ""),
            "|---|---|---|" + ("---|---|" if fixed else "")]
    for dom in metrics.domain.values:
        e, s = float(metrics["efficiency"].sel(domain=dom)), float(metrics["efficiency_error"].sel(domain=dom))
        cut = float(metrics["cut"].sel(domain=dom)) if "cut" in metrics else float("nan")
        row = f"| {LABELS.get(str(dom), dom)} | {e:.3f} ± {s:.3f} | {cut:.3g} |"
        if fixed:
            v = {k: float(metrics[k].sel(domain=dom)) for k in ("efficiency_at_data_cut", "efficiency_at_data_cut_error",
                                                                 "mistag_at_data_cut", "mistag_at_data_cut_error")}
            row += (f" {v['efficiency_at_data_cut']:.3f} ± {v['efficiency_at_data_cut_error']:.3f} |"
                    f" {v['mistag_at_data_cut']:.3f} ± {v['mistag_at_data_cut_error']:.3f} |")
        rows.append(row)
    if fixed:
        rows += ["", f"*Own cut*: each domain cut at its own {float(mistag):.0%} mistag quantile. *Data's cut*: the "
                     "working point fixed on data, applied to every domain — the ratios to data are the tagging "
                     "scale factors."]
    if "transport_cost" in metrics:
        costs = ", ".join(f"{lab} {float(metrics['transport_cost'].sel(label=lab)):.3g}" for lab in metrics.label.values)
        rows += ["", f"Transport cost E‖T(x) − x‖² (z₁₂₈ units²): {costs}"]
    return "\n".join(rows)


class CalibrationView(pn.viewable.Viewer):
    """The selected OT calibration run (``state.calibration_path``): corner plot with the
    interpolation slider, AUC table, working point and score histograms."""

    state = param.ClassSelector(class_=ExplorerState)
    label = param.Selector(default="W", objects=["W", "QCD"], doc="class whose map is shown")
    components = param.ListSelector(default=list(COMPONENTS[:3]), objects=list(COMPONENTS))
    comparison = param.Selector(default=COMPARISONS[0], objects=list(COMPARISONS))
    t = param.Number(default=0.0, bounds=(0.0, 1.0), doc="simulated points at (1 − t)·x + t·T(x)")

    def __init__(self, state: ExplorerState, **params):
        super().__init__(state=state, **params)
        self.message = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")
        self.title = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.t_text = pn.pane.Markdown("", css_classes=["otviz-calibration-t"], sizing_mode="stretch_width")
        self.corner = pn.pane.HoloViews(None, linked_axes=False, css_classes=["otviz-corner"])
        self.auc = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.working_point = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.scores = pn.pane.HoloViews(None, linked_axes=False, sizing_mode="stretch_width")
        self.slider = pn.widgets.FloatSlider(name="interpolation t: (1 − t)·x + t·T(x)", start=0.0, end=1.0,
                                             step=0.05, value=self.t, sizing_mode="stretch_width")
        self.slider.param.watch(lambda e: setattr(self, "t", float(e.new)), "value_throttled")
        self._data = None
        if "calibration_path" in state.param:
            state.param.watch(self._load, "calibration_path")
        self._load()

    # ------------------------------------------------------------------ data and drawing
    def _error(self, what: str, exc: BaseException | str):
        text = exc if isinstance(exc, str) else describe(exc)
        self.message.param.update(object=f"**{what}:** {text}", visible=True)

    def _load(self, *_):
        self._data = None
        self.message.visible = False
        path = getattr(self.state, "calibration_path", None)
        if not path:
            self.title.object = ("No OT calibration run yet: train one (`otviz train otcal-wjets`, or the Train "
                                 "page's *OT calibration* form); the shipped `data/pretrained/otcal-wjets` is "
                                 "shown when present.")
            self._clear()
            return
        try:
            self._data = load_calibration(path)
        except Exception as exc:
            self._error("Cannot show this calibration run", exc)
            self.title.object = f"Run `{path}`"
            self._clear()
            return
        m = self._data["metrics"]
        self.title.object = (f"### OT calibration `{Path(path).name}`\nTagger latents of {m.attrs.get('source_domain', 'sim')} "
                             f"mapped to {m.attrs.get('target_domain', 'data')} by one ICNN OT map per class; "
                             "whitened PCA coordinates fitted on data; contours enclose "
                             + ", ".join(f"{int(100 * q)}" for q in MASSES) + " % of the points.")
        labels = list(self._data["classes"])
        self.param.label.objects = labels
        if self.label not in labels:
            self.label = labels[0]
        self.auc.object = "#### Discriminator AUC (0.5: indistinguishable)\n" + auc_markdown(m) + auc_notes(m)
        self.working_point.object = working_point_markdown(m)
        self._redraw()
        self._draw_scores()

    def _clear(self):
        self.corner.object = None
        self.scores.object = None
        self.auc.object = self.working_point.object = self.t_text.object = ""

    @param.depends("label", "components", "comparison", "t", watch=True)
    def _redraw(self):
        if self._data is None:
            return
        comps = [c for c in COMPONENTS if c in self.components and c in self._data["components"]]
        if len(comps) < 2:
            self._error("Corner plot", "choose at least two PCA components")
            return
        try:
            c = self._data["classes"][self.label]
            idx = [int(n[2:]) - 1 for n in comps]
            sets = corner_sets(self._data["classes"], self.label, self.comparison, self.t, comps)
            title = f"{self.label}: t = {self.t:.2f}"
            self.corner.object = corner_plot(sets, comps, ranges=c["ranges"][idx], title=title,
                                             size=200 if len(comps) <= 3 else 150)
        except Exception as exc:
            self._error("Corner plot", exc)
            return
        self.message.visible = False
        moved = self.comparison != "calibrated vs data"
        self.t_text.object = (f"**{self.label}**, {self.comparison}: simulated points at t = {self.t:.2f}, "
                              f"(1 − t)·x + t·T(x)" + ("" if moved else " (not shown: choose *sim vs data* or "
                                                                      "*all three* to see them move)"))

    @param.depends("label", watch=True)
    def _draw_scores(self):
        if self._data is None:
            return
        try:
            s = self._data["classes"][self.label]["score"]
            self.scores.object = score_histograms(
                {LABELS["data"]: s["data"], LABELS["sim"]: s["sim"], LABELS["calibrated"]: s["calibrated"]},
                {LABELS[k]: COLORS[k] for k in ("data", "sim", "calibrated")}, reference=LABELS["data"],
                title=f"tagger score of {self.label} jets")
        except Exception as exc:
            self._error("Score histograms", exc)

    # ------------------------------------------------------------------ layout
    def controls(self):
        return pn.Column(
            pn.widgets.RadioButtonGroup.from_param(self.param.label, name="class", sizing_mode="stretch_width"),
            pn.pane.Markdown("PCA components (whitened, fitted on data)", margin=(5, 10, 0, 10)),
            pn.widgets.CheckButtonGroup.from_param(self.param.components, sizing_mode="stretch_width"),
            pn.pane.Markdown("comparison", margin=(5, 10, 0, 10)),
            pn.widgets.RadioButtonGroup.from_param(self.param.comparison, orientation="vertical",
                                                   sizing_mode="stretch_width"),
            self.slider, sizing_mode="stretch_width")

    def content(self):
        return pn.Column(self.message, self.title, self.t_text, self.corner,
                         pn.Column(self.auc, self.working_point, max_width=1000, sizing_mode="stretch_width"),
                         self.scores, sizing_mode="stretch_width")

    def __panel__(self):
        return pn.Row(pn.Column(self.controls(), width=300), self.content(), sizing_mode="stretch_width")
