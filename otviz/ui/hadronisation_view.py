"""Hadronisation page (HadML, issue 15): a HadML run's generated cluster decays against the reference
clusters of its test split — the cluster-mass spectrum, the decay angles (cos θ*, φ*) in the cluster
rest frame per cluster-mass bin and origin (perturbative / non-perturbative) with ratio panels and
W₁/KS beside their truth-vs-truth floors, lab-frame hadron E, pT, η, the per-event minimal ΔR
between hadrons, the issue's goal table, and one cluster's two hadrons drawn in its rest frame,
regenerated on a button press."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import panel as pn
import param

from .. import kinds
from ..metrics.hadronisation import ANGLES, LAB, MASS_EDGES, goal_table, mass_bin_labels
from ..physics.observables import readable
from ..viz.hadronisation import (ORIGINS, comparison_plot, cluster_mass_plot, pair_name, rest_frame_plot,
                                 select_clusters, selection_name)
from . import cache
from .notify import describe
from .state import ExplorerState

# fixed plot widths (px): a Bokeh grid of stretching plots put into a page already shown is drawn zero
# pixels wide; these fit the content column of a 1440 px window beside the app's sidebar
WIDE, THIRD = 520, 325
GOAL_NAMES = {"cos_theta": "cos θ*", "phi": "φ*", "E": "hadron E", "pT": "hadron pT"}
SHIPPED_HINT = ("No HadML run yet: train one (`otviz train hadml`, or the Train page's *HadML* form); the "
                "shipped `data/pretrained/hadml-v1` is shown when present.")


def _is_hadml_run(p: Path) -> None:
    """Raise a clear error unless ``p`` is a finished run whose kind lists this page."""
    from ..train.run import run_kind

    if not p.is_dir() or not (p / "config.json").exists():
        raise FileNotFoundError(f"{p}: not a run directory (no config.json)")
    kind = run_kind(p)
    if not any(page.view.endswith(":HadronisationView") for page in (kinds.get(kind).pages if kind else ())):
        raise ValueError(f"{p}: a {kind or 'unknown kind of'} run, not a HadML (hadml) run")
    if not (p / "model.pt").exists():
        raise FileNotFoundError(f"{p}: no model.pt (the run has not finished: `otviz train hadml` writes it)")


def load_hadronisation(path, progress=None) -> dict:
    """What the page shows of a HadML run directory, computed once per process (the shared cache):
    the run's test clusters (``otviz.train.hadml.test_clusters``), the model's decays of them drawn
    as the run's evaluation drew them (``sample_dataset``, seed = config seed + 11), the
    observables of both, and the metrics (``metrics.nc``; computed here when the run has none)."""
    from ..data.clusterset import decay_axis
    from ..metrics.hadronisation import decay_observables, hadronisation_metrics, lab_observables, min_delta_r
    from ..physics import fourvec as fv
    from ..train.hadml import test_clusters

    p = Path(path)
    _is_hadml_run(p)

    def compute():
        import xarray as xr

        run = cache.run(p)
        seed = int(run.config.seed) + 11  # otviz.train.hadml's evaluation seed: the plots are metrics.nc's samples
        test = test_clusters(p)
        if test.sizes["cluster"] < 2:
            raise ValueError(f"{p}: its test split holds {test.sizes['cluster']} clusters; nothing to compare")
        if progress:
            progress(0, 3, "generating the test clusters' decays")
        hadron, pid = run.model.sample_dataset(test, seed=seed, charge_from_hadrons=True)
        axis, from_quark = decay_axis(test)
        ref_h = test["hadron"].values
        obs = {"reference": {**decay_observables(test), **lab_observables(ref_h)},
               "generated": {**decay_observables(test, hadron), **lab_observables(hadron)}}
        if progress:
            progress(1, 3, "minimal ΔR per event")
        obs["reference"]["min_dR"] = min_delta_r(test)
        obs["generated"]["min_dR"] = min_delta_r(test, hadron)
        mfile = p / "metrics.nc"
        if mfile.exists():
            with xr.open_dataset(mfile, engine="h5netcdf") as f:
                metrics = f.load()
        else:
            if progress:
                progress(2, 3, "metrics (the run has no metrics.nc)")
            metrics = hadronisation_metrics(test, hadron, pid, seed=int(run.config.seed))
        if progress:
            progress(3, 3, "done")
        return dict(test=test, hadron=hadron, pid=pid, axis=axis, from_quark=from_quark,
                    mass=fv.mass(test["cluster"].values), obs=obs, metrics=metrics, seed=seed, config=run.config)

    return cache.CACHE.get(("hadml-page", cache._stamp(p)), compute)


def stats_for(metrics, observable: str, mass_bin: str, origin: str) -> dict:
    """{"w1": (value, floor), "ks": (value, floor)} of ``observable`` in the selection, from the
    run's metrics (NaN where the metrics hold none, e.g. min ΔR outside all/all)."""
    out = {}
    try:
        for s in ("w1", "ks"):
            sel = dict(observable=observable, mass_bin=mass_bin, origin=origin, statistic=s)
            out[s] = (float(metrics["value"].sel(sel)), float(metrics["floor"].sel(sel)))
    except (KeyError, ValueError):
        return {}
    return out


def goal_markdown(metrics) -> str:
    """The issue's goal: W₁ of cos θ*, φ*, hadron E and pT per cluster-mass bin against
    ``goal_factor`` × the truth-vs-truth floor (``metrics.hadronisation.goal_table``)."""
    rows = goal_table(metrics)
    factor = float(metrics.attrs.get("goal_factor", 2.0))
    out = [f"#### Goal: W₁ ≤ {factor:g} × truth-vs-truth floor (test clusters, all origins)",
           "| observable | cluster mass | W₁ | floor | W₁ / floor | met |", "|---|---|---|---|---|---|"]
    for r in rows:
        mark = "✓" if r["met"] is True else ("✗" if r["met"] is False else f"n/a ({r.get('n_clusters', 0)} clusters)")
        out.append(f"| {GOAL_NAMES.get(r['observable'], r['observable'])} | {r['mass_bin']} | {readable(r['value'])} | "
                   f"{readable(r['floor'])} | {readable(r['ratio'], 2)} | {mark} |")
    met = sum(r["met"] is True for r in rows)
    open_ = sum(r["met"] is None for r in rows)
    out += ["", f"{met} of {len(rows)} met" + (f" ({open_} not evaluable: too few test clusters)." if open_ else ".")]
    return "\n".join(out)


class SplitPlot(pn.viewable.Viewer):
    """A histogram-over-ratio ``hv.Layout`` shown as two HoloViews panes, one per plot (a Bokeh grid
    put into a page after it was shown — this page is built in a thread — is drawn zero pixels
    wide); both plots are given the same x range. ``object`` is the Layout, or None."""

    def __init__(self, css: str):
        super().__init__()
        self._object = None
        self.top = pn.pane.HoloViews(None, linked_axes=False)  # same x range set on both (viz.hadronisation)
        self.bottom = pn.pane.HoloViews(None, linked_axes=False)
        self._box = pn.Column(self.top, self.bottom, css_classes=[css], margin=(0, 5))

    @property
    def object(self):
        return self._object

    @object.setter
    def object(self, layout):
        self._object = layout
        top, bottom = list(layout) if layout is not None else (None, None)
        self.top.object, self.bottom.object = top, bottom

    def __panel__(self):
        return self._box


class HadronisationView(pn.viewable.Viewer):
    """The selected HadML run (``state.hadml_path``): mass spectrum, decay angles and lab spectra
    of the chosen cluster-mass bin and origin against the reference, min ΔR, goal table, and one
    cluster's rest-frame decay with a Regenerate button."""

    state = param.ClassSelector(class_=ExplorerState)
    mass_bin = param.Selector(default="all", objects=mass_bin_labels(MASS_EDGES), doc="cluster-mass bin")
    origin = param.Selector(default="all", objects=list(ORIGINS), doc="clusters with / without a perturbative quark")
    cluster = param.Integer(default=0, bounds=(0, None), doc="cluster of the selection drawn in its rest frame")

    def __init__(self, state: ExplorerState, **params):
        super().__init__(state=state, **params)
        self.message = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")
        self.title = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.selection_text = pn.pane.Markdown("", css_classes=["otviz-hadml-selection"], sizing_mode="stretch_width")
        self.spinner = pn.indicators.LoadingSpinner(value=False, size=22, name="", width=260,
                                                    css_classes=["otviz-hadml-busy"])
        opts = dict(linked_axes=False)
        self.mass_pane = pn.pane.HoloViews(None, css_classes=["otviz-hadml-mass"], **opts)
        # dimmed through this Column: styles set on a HoloViews pane reach its Bokeh figure ("design")
        self.mass_box = pn.Column(self.mass_pane, margin=0)
        self.cluster_pane = pn.pane.HoloViews(None, css_classes=["otviz-hadml-cluster"], **opts)
        self.cluster_text = pn.pane.Markdown("", css_classes=["otviz-hadml-cluster-text"], sizing_mode="stretch_width")
        self.angle_panes = [SplitPlot(f"otviz-hadml-{k}") for k in ANGLES]
        self.lab_panes = [SplitPlot(f"otviz-hadml-{k}") for k in LAB]
        self.dr_pane = SplitPlot("otviz-hadml-min_dR")
        self.goal = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.cluster_input = pn.widgets.IntInput(name="cluster (index in the selection)", value=0, start=0, step=1,
                                                 sizing_mode="stretch_width")
        self.cluster_input.param.watch(lambda e: setattr(self, "cluster", int(e.new)), "value")
        self.regenerate_button = pn.widgets.Button(name="Regenerate", button_type="primary",
                                                   sizing_mode="stretch_width")
        self.regenerate_button.on_click(self.regenerate)
        self.body = self._body()  # the plots, hidden while no run is shown
        self._data = None
        self._pending = 0  # selection changes: a deferred histogram redraw draws only the latest
        self._generated = None  # this cluster's (hadrons, pids) after Regenerate; None: the cached decay
        self._draws = 0  # Regenerate presses: each draws with a new seed
        if "hadml_path" in state.param:
            state.param.watch(self._load, "hadml_path")
        self._load()

    # ------------------------------------------------------------------ data
    def _error(self, what: str, exc: BaseException | str):
        text = exc if isinstance(exc, str) else describe(exc)
        self.message.param.update(object=f"**{what}:** {text}", visible=True)

    def _progress(self, done, total, message):
        self.state.report(done, total, message)

    def _load(self, *_):
        self._data = None
        self.message.visible = False
        path = getattr(self.state, "hadml_path", None)
        if not path:
            self.title.object = SHIPPED_HINT
            self._clear()
            return
        try:
            self._data = load_hadronisation(path, progress=self._progress)
        except Exception as exc:
            self._error("Cannot show this HadML run", exc)
            self.title.object = f"Run `{path}`"
            self._clear()
            return
        finally:
            self.state.param.update(busy="", busy_fraction=0.0)
        d = self._data
        cfg = d["config"]
        n, n_ev = d["test"].sizes["cluster"], len(np.unique(d["test"]["event"].values))
        source = cfg.target if getattr(cfg, "mode", "v1") == "v2" else cfg.data
        self.title.object = (f"### HadML `{Path(path).name}` ({getattr(cfg, 'mode', 'v1')})\n"
                             f"{n} test clusters of {n_ev} events of `{source}` (the run's test split); the "
                             f"generator's decays of the same clusters (seed {d['seed']}) against the reference. "
                             "Angles: hadron 0 in the cluster rest frame about the decay axis ẑ (the perturbative "
                             "quark's direction, else the cluster's flight direction).")
        self.goal.object = goal_markdown(d["metrics"])
        try:  # all events, whatever the selection: drawn once per run
            self.dr_pane.object = comparison_plot(d["obs"]["reference"]["min_dR"], d["obs"]["generated"]["min_dR"],
                                                  "min_dR", stats_for(d["metrics"], "min_dR", "all", "all"), bins=30,
                                                  width=WIDE, height=240, title_prefix="all events")
        except Exception as exc:
            self._error("Plots", exc)
        self.body.visible = True
        self._redraw(defer=False)

    def _clear(self):
        self.body.visible = False
        for pane in (self.mass_pane, self.cluster_pane, self.dr_pane, *self.angle_panes, *self.lab_panes):
            pane.object = None
        self.goal.object = self.selection_text.object = self.cluster_text.object = ""

    def selection(self) -> np.ndarray:
        """Indices (into the test clusters) of the chosen mass bin and origin."""
        d = self._data
        return np.flatnonzero(select_clusters(d["mass"], d["from_quark"], self.mass_bin, self.origin, MASS_EDGES))

    # ------------------------------------------------------------------ drawing
    def _hist_boxes(self):
        """What a selection change redraws after the cluster view: the mass plot and the angle and
        lab-frame histograms (min ΔR covers all events and stays)."""
        return [self.mass_box, *(p._box for p in (*self.angle_panes, *self.lab_panes))]

    @param.depends("mass_bin", "origin", watch=True)
    def _on_selection(self):
        self._redraw(defer=True)

    def _redraw(self, defer: bool = False):
        """The selection text and the single-cluster view first, then the histograms. With
        ``defer`` in a served session the histograms are drawn in the next tick of the server's
        event loop, so the browser gets the new text and cluster view at once; meanwhile the
        histograms are dimmed and a spinner turns beside the selection text (:meth:`_busy`; a
        newer selection supersedes an older pending redraw)."""
        if self._data is None:
            return
        d = self._data
        try:
            idx = self.selection()
        except Exception as exc:
            self._error("Plots", exc)
            return
        self.selection_text.object = (f"**{self.mass_bin}**, {self.origin} clusters: {len(idx)} of "
                                      f"{len(d['mass'])} test clusters")
        n = len(idx)
        self.cluster_input.end = max(n - 1, 0)
        self._generated = None
        if self.cluster >= n:
            self.cluster = 0  # redraws the cluster through its watcher
            self.cluster_input.value = 0
        else:
            self._draw_cluster()
        self._pending += 1
        ticket = self._pending
        doc = pn.state.curdoc
        if defer and doc is not None and doc.session_context is not None:
            self._busy(True)
            pn.state.execute(lambda: self._draw_histograms(ticket), schedule=True)
        else:
            self._draw_histograms(ticket)

    def _draw_histograms(self, ticket: int | None = None):
        """The mass plot and the angle and lab-frame histograms of the selection; a no-op when a
        newer selection's redraw is pending (``ticket`` ≠ the latest)."""
        if self._data is None or (ticket is not None and ticket != self._pending):
            return
        d = self._data
        try:
            idx = self.selection()
            self.mass_pane.object = cluster_mass_plot(d["mass"], MASS_EDGES, selected=self.mass_bin, width=WIDE, height=280)
            ref, gen = d["obs"]["reference"], d["obs"]["generated"]
            prefix = selection_name(self.mass_bin, self.origin)
            for pane, obs in zip(self.angle_panes, ANGLES):
                pane.object = comparison_plot(ref[obs][idx], gen[obs][idx], obs,
                                              stats_for(d["metrics"], obs, self.mass_bin, self.origin),
                                              bins=25, width=WIDE, height=260, title_prefix=prefix)
            for pane, obs in zip(self.lab_panes, LAB):
                pane.object = comparison_plot(ref[obs][idx], gen[obs][idx], obs,
                                              stats_for(d["metrics"], obs, self.mass_bin, self.origin),
                                              bins=30, width=THIRD, height=270, title_prefix=prefix)
        except Exception as exc:
            self._error("Plots", exc)
        finally:
            self._busy(False)

    def _busy(self, on: bool):
        """The page's sign that the histograms are being redrawn: a spinning indicator beside the
        selection text and the histograms dimmed (a CSS opacity: Panel's ``loading`` overlay on
        these panes made Chromium spend seconds more per redraw)."""
        self.spinner.param.update(value=on, name="redrawing the histograms …" if on else "")
        for box in self._hist_boxes():
            box.styles = {"opacity": "0.35" if on else "1"}  # {} would leave the last opacity set

    @param.depends("cluster", watch=True)
    def _on_cluster(self):
        self._generated = None
        if self.cluster_input.value != self.cluster:
            self.cluster_input.value = self.cluster
        self._draw_cluster()

    def _cluster_index(self) -> int | None:
        idx = self.selection()
        if not len(idx):
            return None
        return int(idx[min(max(self.cluster, 0), len(idx) - 1)])

    def _draw_cluster(self):
        if self._data is None:
            return
        d = self._data
        i = self._cluster_index()
        if i is None:
            self.cluster_pane.object = None
            self.cluster_text.object = "No cluster in this selection."
            return
        try:
            gen = self._generated or (d["hadron"][i], d["pid"][i])
            decays = {"reference": (d["test"]["hadron"].values[i], d["test"]["hadron_pid"].values[i]), "generated": gen}
            self.cluster_pane.object = rest_frame_plot(d["test"]["cluster"].values[i], d["axis"][i], decays,
                                                       bool(d["from_quark"][i]), index=self.cluster)
            draw = f"draw {self._draws} (seed {self._draw_seed()})" if self._generated else \
                f"the evaluation's draw (seed {d['seed']})"
            self.cluster_text.object = (f"Cluster {self.cluster} of the selection (test cluster {i}, event "
                                        f"{int(d['test']['event'].values[i])}): reference "
                                        f"{pair_name(decays['reference'][1])}, HadML {pair_name(gen[1])}, {draw}.")
        except Exception as exc:
            self._error("Cluster view", exc)
            return
        self.message.visible = False

    def _draw_seed(self) -> int:
        return int(self._data["seed"]) * 1000 + 7919 * self._draws

    def regenerate(self, _=None):
        """Draw a new generated decay of the shown cluster (a new seed per press) and redraw it."""
        if self._data is None:
            return
        i = self._cluster_index()
        if i is None:
            return
        try:
            self._draws += 1
            run = cache.run(self.state.hadml_path)
            h, pid = run.model.sample_dataset(self._data["test"].isel(cluster=[i]), seed=self._draw_seed(),
                                              charge_from_hadrons=True)
            self._generated = (h[0], pid[0])
        except Exception as exc:
            self._error("Regenerate", exc)
            return
        self._draw_cluster()

    # ------------------------------------------------------------------ layout
    def controls(self):
        return pn.Column(
            pn.pane.Markdown("cluster mass", margin=(5, 10, 0, 10)),
            pn.widgets.RadioButtonGroup.from_param(self.param.mass_bin, orientation="vertical",
                                                   css_classes=["otviz-hadml-massbin"], sizing_mode="stretch_width"),
            pn.pane.Markdown("origin", margin=(5, 10, 0, 10)),
            pn.widgets.RadioButtonGroup.from_param(self.param.origin, orientation="vertical",
                                                   sizing_mode="stretch_width"),
            self.cluster_input, self.regenerate_button, sizing_mode="stretch_width")

    def content(self):
        return pn.Column(self.message, self.title, self.body, sizing_mode="stretch_width")

    def _body(self):
        return pn.Column(
            pn.Row(self.selection_text, self.spinner, sizing_mode="stretch_width"),
            pn.Row(pn.Column(self.mass_box, self.goal, width=WIDE + 20),
                   pn.Column(self.cluster_pane, self.cluster_text, width=480), sizing_mode="stretch_width"),
            pn.pane.Markdown("#### Decay angles in the cluster rest frame (hadron 0 about ẑ)"),
            pn.Row(*self.angle_panes, sizing_mode="stretch_width"),
            pn.pane.Markdown("#### Lab-frame hadrons (both hadrons of each cluster)"),
            pn.Row(*self.lab_panes, sizing_mode="stretch_width"),
            pn.pane.Markdown("#### Beyond inputs and outputs: the smallest ΔR between two hadrons of an event"),
            pn.Row(self.dr_pane, sizing_mode="stretch_width"),
            sizing_mode="stretch_width")

    def __panel__(self):
        return pn.Row(pn.Column(self.controls(), width=260), self.content(), sizing_mode="stretch_width")
