"""Compare runs page: a sweep's metric over its swept settings, and two to four runs side by side.

* **Sweep** — any ``sweep.nc`` under the runs root or the shipped runs
  (:func:`otviz.train.compare.find_sweeps`): the chosen metric against the chosen swept setting, one
  line per value of the other setting, or, with two swept settings, a heatmap with a colour bar.
* **Runs** — two to four finished OTUS-family runs (:func:`otviz.train.compare.comparable_runs`):
  their residual histograms of one observable overlaid on the truth (x̃′ = D(z) or z̃ = E(x), as the
  Residuals page draws them), their KS and KS/floor from ``metrics.nc`` side by side, for tt̄ runs
  the Turbo-Sim slide's KS table of each (``ks_table.nc``) side by side with the floor and the
  published OTUS and Turbo-Sim rows (what ``otviz evaluate --table`` prints), and the fields where
  their configs differ.
"""
from __future__ import annotations

import numpy as np
import panel as pn
import param

from ..metrics.fidelity import derived_masses, quantities
from ..physics.observables import label
from ..train import compare
from ..viz import ensure_extension, tick_formatter
from ..viz.residuals import residual_plot
from . import cache
from .notify import describe
from .picker import menu
from .state import ExplorerState

SPACES = {"x": ("x_tilde_prime", "x̃′ = D(z)", "x_vs_x_tilde_prime"), "z": ("z_tilde", "z̃ = E(x)", "z_vs_z_tilde")}
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e"]  # one per run (truth is black)
DASHES = ["solid", "dashed", "dotted", "dashdot"]
MAX_RUNS = 4
COMPARE_EVENTS = 20_000  # test events per run for the overlaid histograms (at most)


def _fmt(v) -> str:
    return format(float(v), "g") if isinstance(v, (int, float, np.number)) else str(v)


def sweep_plot(values, x_dim: str, ylabel: str, style: str = "lines", height: int = 380):
    """``values`` (a DataArray over the swept settings) against ``x_dim``: one line per value of the
    other setting (legend right of the plot), or a heatmap of the first two settings with a colour
    bar and each cell's value printed. Settings beyond two are shown at their first value."""
    import holoviews as hv

    ensure_extension()
    dims = list(values.dims)
    others = [d for d in dims if d != x_dim]
    if len(others) > 1:
        values = values.isel({d: 0 for d in others[1:]})
        others = others[:1]
    xdim = hv.Dimension(x_dim, label=compare.setting_label(x_dim))
    vdim = hv.Dimension("metric", label=ylabel)
    if style == "heatmap" and others:
        o = others[0]
        ydim = hv.Dimension(o, label=compare.setting_label(o))
        rows = [(_fmt(xv), _fmt(ov), float(values.sel({x_dim: xv, o: ov})))
                for xv in values[x_dim].values for ov in values[o].values]
        heat = hv.HeatMap(rows, kdims=[xdim, ydim], vdims=[vdim]).opts(
            colorbar=True, cmap="viridis", clabel=ylabel, responsive=True, min_width=360, height=height,
            title=ylabel, tools=["hover"], xlabel=xdim.label, ylabel=ydim.label,
            colorbar_opts={"formatter": tick_formatter()})
        text = hv.Labels([(x, y, f"{v:.3g}") for x, y, v in rows], kdims=[xdim, ydim], vdims=["text"]).opts(
            text_color="white", text_font_size="11pt")
        return heat * text
    x = np.asarray(values[x_dim].values)
    curves = []
    for i, ov in enumerate(values[others[0]].values if others else [None]):
        y = np.asarray((values.sel({others[0]: ov}) if others else values).values, float)
        name = f"{compare.setting_label(others[0])} = {_fmt(ov)}" if others else ylabel
        color = COLORS[i % len(COLORS)]
        curves.append(hv.Curve((x, y), kdims=[xdim], vdims=[vdim], label=name).opts(color=color, line_width=2))
        curves.append(hv.Scatter((x, y), kdims=[xdim], vdims=[vdim], label=name).opts(color=color, size=8))
    positive = x.dtype.kind in "fiu" and (x > 0).all() and x.max() / x.min() >= 50
    return hv.Overlay(curves).opts(
        responsive=True, min_width=360, height=height, title=ylabel, show_grid=True, logx=bool(positive),
        legend_position="right", show_legend=bool(others), xlabel=xdim.label, ylabel=ylabel,
        xformatter=tick_formatter(), yformatter=tick_formatter(), tools=["hover"])


def _recolour(plot, names: list[str]):
    """Give each run's histogram, ratio points and error bars its own colour and dash."""
    for overlay in plot:
        color = None
        for el in overlay:
            if el.label in names:
                i = names.index(el.label)
                color = COLORS[i % len(COLORS)]
                if type(el).__name__ == "Histogram":
                    el.opts(line_color=color, line_dash=DASHES[i % len(DASHES)])
                else:
                    el.opts(color=color)
            elif type(el).__name__ == "ErrorBars" and color is not None:
                el.opts(color=color)
    return plot


class CompareView(pn.viewable.Viewer):
    """A sweep's metric over its settings; two to four runs' histograms, KS tables and configs."""

    state = param.ClassSelector(class_=ExplorerState)
    sweep = param.Selector(default=None, objects=[], doc="sweep.nc shown")
    metric = param.Selector(default=None, objects=[])
    x_dim = param.Selector(default=None, objects=[], doc="swept setting on the x axis")
    style = param.Selector(default="lines", objects=["lines", "heatmap"])
    runs = param.ListSelector(default=[], objects=[], doc="two to four runs compared")
    space = param.Selector(default="x", objects=["x", "z"])
    quantity = param.Selector(default=None, objects=[])

    def __init__(self, state: ExplorerState, **params):
        self.quantity_select = pn.widgets.Select(name="observable", options=[], sizing_mode="stretch_width")
        super().__init__(state=state, **params)
        self.quantity_select.param.watch(lambda e: setattr(self, "quantity", e.new) if e.new is not None else None,
                                         "value")
        self._ds = None
        self._metrics: dict[str, compare.Metric] = {}
        self.message = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.refresh_button = pn.widgets.Button(name="Refresh lists", width=120)
        self.refresh_button.on_click(lambda _: self.refresh())
        self.refresh()

    # ------------------------------------------------------------------ choices
    def refresh(self):
        """Re-list the sweeps and runs on disk."""
        sweeps = compare.find_sweeps()
        self.param.sweep.objects = sweeps
        runs = compare.comparable_runs()
        self.param.runs.objects = runs
        self.runs = [r for r in self.runs if r in runs.values()]
        if self.sweep not in sweeps.values():
            self.sweep = next(iter(sweeps.values()), None)
        else:
            self._load_sweep()

    @param.depends("sweep", watch=True)
    def _load_sweep(self):
        try:
            self._ds = compare.load_sweep(self.sweep) if self.sweep else None
        except Exception as exc:  # an unreadable sweep.nc says why, in the page
            self._ds = None
            self.message.object = f"**Could not read the sweep:** {describe(exc)}"
        self._metrics = compare.sweep_metrics(self._ds) if self._ds is not None else {}
        dims = compare.swept_dims(self._ds) if self._ds is not None else []
        self.param.metric.objects = list(self._metrics)
        self.param.x_dim.objects = {compare.setting_label(d): d for d in dims}
        with param.parameterized.discard_events(self):
            self.x_dim = dims[0] if dims else None
        self.metric = compare.default_metric(self._metrics)
        self.param.trigger("x_dim")

    @param.depends("runs", "space", watch=True, on_init=True)
    def _update_quantities(self):
        names = None
        for path in self.runs:
            try:
                parts = self._particles(path)
            except Exception:
                continue
            have = list(quantities(np.zeros((1, len(parts), 4)), parts, derived_masses(parts)))
            names = have if names is None else [n for n in names if n in have]
        names = names or []
        choice = self.quantity if self.quantity in names else \
            next((n for n in names if n.startswith("m_")), names[0] if names else None)
        self.param.quantity.objects = list(names)  # a copy: param appends None to the list it is given
        self.quantity = choice
        # options and value in one change: a browser Select given options without the value picks the first
        self.quantity_select.param.update(options=menu(names), value=choice)

    def _particles(self, path) -> list[str]:
        ds = cache.sample(cache.run(path).config.test_data, 1000)
        return [str(p) for p in ds[f"{self.space}_particle"].values]

    def _label_of(self, path) -> str:
        return next((k for k, v in (self.param.runs.names or {}).items() if v == path), str(path))

    def _names(self) -> dict[str, str]:
        """Path → short name of each selected run (legend, table columns)."""
        labels = {p: self._label_of(p) for p in self.runs}
        short = compare.short_names(labels.values())
        return {p: short[lab] for p, lab in labels.items()}

    # ------------------------------------------------------------------ sweep
    @param.depends("sweep", "metric", "x_dim", "style")
    def sweep_section(self):
        if self._ds is None or not self.metric or not self.x_dim:
            return pn.pane.Markdown("No sweep found: `otviz sweep PRESET --set FIELD=V1,V2 --out runs/NAME` "
                                    "writes one (its `sweep.nc`).", sizing_mode="stretch_width")
        try:
            m = self._metrics[self.metric]
            values = compare.metric_values(self._ds, m)
            settings = ", ".join(f"{compare.setting_label(d)}: {', '.join(_fmt(v) for v in self._ds[d].values)}"
                                 for d in compare.swept_dims(self._ds))
            style = self.style if len(values.dims) > 1 else "lines"
            plot = sweep_plot(values, self.x_dim, self.metric, style)
            note = (f"{int(self._ds.attrs.get('n_runs', values.size))} runs of `{self._ds.attrs.get('preset', '?')}` "
                    f"over {settings}.")
            return pn.Column(pn.pane.Markdown(note, sizing_mode="stretch_width"),
                             pn.pane.HoloViews(plot, sizing_mode="stretch_width", linked_axes=False),
                             sizing_mode="stretch_width")
        except Exception as exc:  # shown in the page, never a server traceback
            return pn.pane.Alert(f"**Could not plot the sweep:** {describe(exc)}", alert_type="danger")

    # ------------------------------------------------------------------ runs
    def _values(self, path, array: str) -> np.ndarray:
        n = min(self.state.max_events, COMPARE_EVENTS)
        out = cache.otus_outputs(path, n, self.state.seed, progress=self.state.report)
        parts = self._particles(path)
        return quantities(out[array], parts, derived_masses(parts))[self.quantity]

    @param.depends("runs", "space", "quantity")
    def histogram_section(self):
        if len(self.runs) < 2:
            return pn.pane.Markdown(f"Choose two to {MAX_RUNS} runs to compare (in the sidebar).",
                                    sizing_mode="stretch_width")
        if len(self.runs) > MAX_RUNS:
            return pn.pane.Alert(f"At most {MAX_RUNS} runs are compared: remove {len(self.runs) - MAX_RUNS}.",
                                 alert_type="warning")
        if self.quantity is None:
            return pn.pane.Alert("The chosen runs share no observable.", alert_type="warning")
        array, what, _ = SPACES[self.space]
        names = self._names()
        try:
            first = self.runs[0]
            truth = self._values(first, self.space)
            others = {names[p]: self._values(p, array) for p in self.runs}
            tests = {str(cache.run(p).config.test_data) for p in self.runs}
        except Exception as exc:
            return pn.pane.Alert(f"**Could not compute the runs' outputs:** {describe(exc)}", alert_type="danger")
        finally:
            self.state.param.update(busy="", busy_fraction=0.0)
        plot = _recolour(residual_plot(truth, others, label=label(self.quantity, prefix=self.space)), list(others))
        note = (f"Truth ({len(truth):,} test events of `{names[first]}`) and each run's {what} on its own test "
                "sample, normalised.")
        if len(tests) > 1:
            note += " **The runs have different test samples**; the truth shown is the first run's."
        # histograms and ratio panel as two panes with linked x axes: a Bokeh grid of stretching plots
        # inserted into a page already shown is drawn zero pixels wide
        return pn.Column(pn.pane.Markdown(note, sizing_mode="stretch_width"),
                         *[pn.pane.HoloViews(p, sizing_mode="stretch_width") for p in plot],
                         sizing_mode="stretch_width")

    def ks_frame(self):
        """The selected runs' KS and KS/floor per observable (from their metrics.nc)."""
        names = self._names()
        return compare.ks_table({names[p]: p for p in self.runs}, comparison=SPACES[self.space][2])

    @param.depends("runs", "space")
    def table_section(self):
        if len(self.runs) < 2:
            return pn.pane.Markdown("")
        from bokeh.models.widgets.tables import NumberFormatter

        try:
            df = self.ks_frame()
        except Exception as exc:
            return pn.pane.Alert(f"**Could not read the runs' metrics:** {describe(exc)}", alert_type="danger")
        missing = [c.removesuffix(": KS") for c in df.columns if c.endswith(": KS") and df[c].isna().all()]
        fmt = {c: NumberFormatter(format="0.00" if c.endswith("/floor") else "0.0000")
               for c in df.columns if c != "observable"}
        note = (f"KS distance between truth and {SPACES[self.space][1]} and KS/floor (floor: truth against "
                "truth), from each run's `metrics.nc`.")
        if missing:
            note += f" No `metrics.nc` in {', '.join(missing)}: run `otviz evaluate RUNDIR`."
        return pn.Column(pn.pane.Markdown(note, sizing_mode="stretch_width"),
                         pn.widgets.Tabulator(df, disabled=True, show_index=False, formatters=fmt,
                                              sizing_mode="stretch_width", layout="fit_data_stretch"),
                         sizing_mode="stretch_width")

    def slide_frame(self):
        """The selected runs' stored KS tables of the Turbo-Sim slide side by side: (DataFrame or
        None, [runs without ks_table.nc])."""
        names = self._names()
        return compare.slide_ks_tables({names[p]: p for p in self.runs})

    @param.depends("runs")
    def slide_section(self):
        if len(self.runs) < 2:
            return pn.pane.Markdown("")
        from bokeh.models.widgets.tables import NumberFormatter

        try:
            df, missing = self.slide_frame()
        except Exception as exc:
            return pn.pane.Alert(f"**Could not read the runs' KS tables:** {describe(exc)}", alert_type="danger")
        if df is None:  # no tt̄ run with a stored table among them
            return pn.pane.Markdown("")

        def miss(row):  # a run's KS in red where it misses its goal
            return ["color: #c0392b; font-weight: bold"
                    if c.endswith(": KS ×10⁻²") and row.get(c.removesuffix("KS ×10⁻²") + "goal met") != "✓" else ""
                    for c in row.index]

        fmt = {c: NumberFormatter(format="0.00") for c in df.columns if c not in ("space", "observable")
               and not c.endswith("goal met")}
        # a header group per run over its columns (titled without the run's name), one for the published rows
        runs = list(df.attrs.get("n_test", {}))
        groups = {n: [c for c in df.columns if c.startswith(f"{n}: ")] for n in runs}
        published = [c for c in df.columns if c.endswith("(published)")]
        groups["published"] = published
        titles = {c: c.split(": ", 1)[1] for n in runs for c in groups[n]}
        titles.update({c: c.removesuffix(" (published)") for c in published})
        table = pn.widgets.Tabulator(df, disabled=True, show_index=False, formatters=fmt, groups=groups, titles=titles,
                                     sizing_mode="stretch_width", layout="fit_data_stretch")
        table.style.apply(miss, axis=1)
        events = ", ".join(f"`{n}`: {int(v):,}" for n, v in df.attrs.get("n_test", {}).items() if v is not None)
        floor = ("one floor column: the runs share their test sample and splits" if df.attrs.get("same_floor")
                 else "a floor per run: their test samples or splits differ")
        rules = {n: r or "max(published OTUS, 1.5 × floor); for the six components also at most 3 × floor"
                 for n, r in df.attrs.get("goal_rules", {}).items()}
        goal = (next(iter(rules.values()), "") if len(set(rules.values())) <= 1
                else "; ".join(f"`{n}`: {r}" for n, r in rules.items()))
        note = (f"#### KS table of the Turbo-Sim slide, side by side\nKS ×10⁻² and KS/floor of each run (test events "
                f"{events}; truth half vs model half, {df.attrs.get('n_splits', '?')} random splits), {floor}; "
                f"*floor*: truth against truth; *goal*: {goal} (a KS in red misses it). Published rows were measured on "
                "their own 422,761 events. Z space: z̃ = E(x) vs z; X space and masses: x̃′ = D(z) vs x.")
        if missing:
            note += f" No `ks_table.nc` in {', '.join(f'`{m}`' for m in missing)}: run `otviz evaluate RUNDIR` (tt̄ runs)."
        return pn.Column(pn.pane.Markdown(note, sizing_mode="stretch_width"), table, sizing_mode="stretch_width")

    def diff_lines(self) -> list[str]:
        names = self._names()
        rows = compare.config_diff({names[p]: compare.read_config_dict(p) for p in self.runs})
        return compare.format_diff(rows)

    @param.depends("runs")
    def diff_section(self):
        if len(self.runs) < 2:
            return pn.pane.Markdown("")
        names = self._names()
        lines = self.diff_lines()
        order = " → ".join(f"`{names[p]}`" for p in self.runs)
        body = "\n".join(f"- `{line}`" for line in lines) if lines else "The configs are identical."
        return pn.pane.Markdown(f"**Config differences** ({order}):\n\n{body}", sizing_mode="stretch_width")

    # ------------------------------------------------------------------ layout
    def controls(self):
        return pn.Column(
            pn.pane.Markdown("**Sweep**"),
            pn.widgets.Select.from_param(self.param.sweep, name="sweep", sizing_mode="stretch_width"),
            pn.widgets.Select.from_param(self.param.metric, name="metric", sizing_mode="stretch_width"),
            pn.widgets.Select.from_param(self.param.x_dim, name="x axis", sizing_mode="stretch_width"),
            pn.widgets.RadioButtonGroup.from_param(self.param.style, name="show as"),
            pn.pane.Markdown("**Runs**"),
            pn.widgets.MultiChoice.from_param(self.param.runs, name=f"runs (2 to {MAX_RUNS})", max_items=MAX_RUNS,
                                              sizing_mode="stretch_width"),
            pn.widgets.RadioButtonGroup.from_param(self.param.space, name="space"),
            self.quantity_select,
            self.refresh_button, sizing_mode="stretch_width")

    def content(self):
        return pn.Column(
            self.message, pn.pane.Markdown("### Sweep: a metric over the swept settings"),
            pn.panel(self.sweep_section, loading_indicator=True, sizing_mode="stretch_width"),
            pn.pane.Markdown("### Runs side by side"),
            pn.panel(self.histogram_section, sizing_mode="stretch_width"),
            pn.panel(self.table_section, loading_indicator=True, sizing_mode="stretch_width"),
            pn.panel(self.slide_section, loading_indicator=True, sizing_mode="stretch_width"),
            pn.panel(self.diff_section, sizing_mode="stretch_width"),
            sizing_mode="stretch_width")

    def __panel__(self):
        return pn.Column(self.controls(), self.content(), sizing_mode="stretch_width")
