"""Panel components of the latent explorer. Each is a ``pn.viewable.Viewer`` over a shared
:class:`~otviz.ui.state.ExplorerState`; they work under ``panel serve`` and in notebooks."""
from __future__ import annotations

import numpy as np
import panel as pn
import param

from ..metrics.fidelity import one_d_stats
from ..metrics.peak import fit_peak
from ..train import registry
from ..train.config import PRESETS
from ..viz import ensure_extension
from ..viz.curves import loss_curves
from ..viz.residuals import residual_plot
from ..viz.transport import stochasticity_plot, transport_plot
from .state import ExplorerState, new_run_dir

ARRAYS = {"x": ("x", "x_tilde_prime", "x_tilde"), "z": ("z", "z_tilde")}
LABELS = {"x_tilde_prime": "x̃′ = D(z)", "x_tilde": "x̃ = D(E(x))", "z_tilde": "z̃ = E(x)"}


class DataView(pn.viewable.Viewer):
    """Marginals of the training and test samples and the m_ee peak."""

    state = param.ClassSelector(class_=ExplorerState)
    space = param.Selector(default="x", objects=["x", "z"])
    quantity = param.Selector(default=None, objects=[])

    def __init__(self, state: ExplorerState, **params):
        super().__init__(state=state, **params)
        self._update_quantities()

    @param.depends("space", watch=True)
    def _update_quantities(self):
        names = self.state.quantity_names(self.space) if self.state.run else []
        self.param.quantity.objects = names
        if self.quantity not in names:
            self.quantity = next((n for n in names if n.startswith("m_")), names[0] if names else None)

    @param.depends("space", "quantity")
    def _plot(self):
        if self.quantity is None:
            return pn.pane.Markdown("No sample loaded.")
        ensure_extension()
        tr, te = self.state.train_sample(), self.state.test_sample()
        from ..metrics.fidelity import derived_masses, quantities

        parts = [str(p) for p in te[f"{self.space}_particle"].values]
        qtr = quantities(tr[self.space].values, parts, derived_masses(parts))[self.quantity]
        qte = quantities(te[self.space].values, parts, derived_masses(parts))[self.quantity]
        plot = residual_plot(qtr, {"test sample": qte}, label=f"{self.space}: {self.quantity}")
        text = f"**{self.space}** from `{self.state.run.config.train_data}` (train, {len(qtr)} events) and " \
               f"`{self.state.run.config.test_data}` (test, {len(qte)} events)."
        if self.quantity == "m_ee":
            f = fit_peak(qte)
            text += f"  Test m_ee peak {f.mass:.2f} GeV, Γ {f.gamma:.2f} GeV, σ {f.sigma:.2f} GeV (Voigt fit)."
        return pn.Column(pn.pane.Markdown(text), pn.pane.HoloViews(plot, linked_axes=False))

    def __panel__(self):
        return pn.Column(
            pn.Row(pn.widgets.RadioButtonGroup.from_param(self.param.space),
                   pn.widgets.Select.from_param(self.param.quantity, name="Quantity")),
            self._plot,
        )


class TrainSettings(param.Parameterized):
    """Hyper-parameters of a new OTUS Z→ee run (URL query parameters of the same names preset them)."""

    epochs = param.Integer(default=100, bounds=(1, 5000))
    batch_size = param.Integer(default=20_000, bounds=(100, None))
    n_projections = param.Integer(default=1000, bounds=(10, 10_000))
    lam = param.Number(default=1.0, bounds=(0, None), doc="λ on SW(z, E(x))")
    beta_anchor = param.Number(default=50.0, bounds=(0, None), doc="βE = βD in the anchor stage")
    tau = param.Number(default=1.0, bounds=(0, None), doc="τ on SW(x, D(z))")
    lr = param.Number(default=1e-3, bounds=(1e-6, 1.0))
    max_events = param.Integer(default=0, bounds=(0, None), doc="0: all training events")
    device = param.Selector(default="auto", objects=["auto", "cpu", "cuda"])
    seed = param.Integer(default=0)

    def to_config(self, train_data, test_data):
        cfg = PRESETS["otus-zee"](epochs=self.epochs, train_data=train_data, test_data=test_data,
                                  batch_size=self.batch_size, n_projections=self.n_projections,
                                  max_events=self.max_events or None, device=self.device, seed=self.seed)
        for st in cfg.stages:
            st.lam, st.tau, st.lr = self.lam, self.tau, self.lr
            if st.name == "anchor":
                st.beta_e = st.beta_d = self.beta_anchor
        return cfg


class TrainView(pn.viewable.Viewer):
    """Start/cancel a background run; live progress and streaming loss curves per term."""

    state = param.ClassSelector(class_=ExplorerState)

    def __init__(self, state: ExplorerState, **params):
        super().__init__(state=state, **params)
        self.settings = TrainSettings()
        if pn.state.location is not None:
            pn.state.location.sync(self.settings, {n: n for n in self.settings.param if n != "name"})
        self.start_button = pn.widgets.Button(name="Start training", button_type="primary")
        self.cancel_button = pn.widgets.Button(name="Cancel", button_type="danger", disabled=True)
        self.progress = pn.indicators.Progress(name="progress", value=0, max=100, width=420, bar_color="info")
        self.status = pn.pane.Markdown("Idle. Runs train in a background thread; this page only polls them.")
        self.curve = pn.pane.HoloViews(loss_curves([]), linked_axes=False)
        self.start_button.on_click(self._start)
        self.cancel_button.on_click(self._cancel)
        self.rundir = None
        self._seen = 0
        self._points: list[dict] = []
        self._cb = None

    def _start(self, _=None):
        run = self.state.run
        train = run.config.train_data if run else "data/zee_train.nc"
        test = run.config.test_data if run else "data/zee_test.nc"
        self.rundir = new_run_dir()
        try:
            registry.start_run(self.rundir, self.settings.to_config(train, test))
        except Exception as exc:
            self.status.object = f"**Could not start:** {type(exc).__name__}: {exc}"
            return
        self._seen, self._points = 0, []
        self.start_button.disabled, self.cancel_button.disabled = True, False
        self.status.object = f"Started run `{self.rundir}`."
        self._cb = pn.state.add_periodic_callback(self.poll, period=500)

    def _cancel(self, _=None):
        run = registry.get_run(self.rundir) if self.rundir else None
        if run is not None:
            run.cancel()

    def poll(self):
        """Read new events of the run and update progress, status and curves."""
        run = registry.get_run(self.rundir) if self.rundir else None
        if run is None:
            return
        events = run.events_since(self._seen)
        self._seen += len(events)
        for ev in events:
            if ev["type"] == "step":
                g = ev["epoch"] * ev["steps"] + ev["step"]
                self._points.append({"step": g, **{k: v for k, v in ev.items() if isinstance(v, float)}})
                frac = (ev["epoch"] + (ev["step"] + 1) / ev["steps"]) / max(ev["total_epochs"], 1)
                self.progress.value = int(100 * frac)
                self.status.object = (f"Epoch {ev['epoch'] + 1}/{ev['total_epochs']} ({ev['stage']}), "
                                      f"step {ev['step'] + 1}/{ev['steps']}: loss {ev['loss']:.4g}, "
                                      f"{ev['events_per_s']:.0f} events/s, lr {ev['lr']:.2g}")
            elif ev["type"] == "nan_rollback":
                self.status.object = f"Non-finite loss: rolled back to epoch {ev['epoch']} with lr × {ev['lr_scale']}"
        if events:
            self.curve.object = loss_curves(self._points, x="step")
        if not run.running:
            if self._cb is not None:
                self._cb.stop()
                self._cb = None
            self.start_button.disabled, self.cancel_button.disabled = False, True
            if run.status == "done":
                self.progress.value = 100
                self.status.object = f"**Done.** Run `{self.rundir}` is now selectable in the Run menu."
                self.state.refresh_runs(select=str(self.rundir))
            else:
                self.status.object = f"**{run.status}** {run.message}"

    def __panel__(self):
        return pn.Row(
            pn.Column(pn.pane.Markdown("### New OTUS Z→ee run"), pn.Param(self.settings, show_name=False, width=300, widgets={
                          "epochs": pn.widgets.IntInput, "n_projections": pn.widgets.IntInput,
                          "lr": pn.widgets.FloatInput, "lam": pn.widgets.FloatInput,
                          "beta_anchor": pn.widgets.FloatInput, "tau": pn.widgets.FloatInput}),
                      pn.Row(self.start_button, self.cancel_button)),
            pn.Column(self.progress, self.status, self.curve),
        )


class TransportView(pn.viewable.Viewer):
    """Transport plots (true vs learned pairs) and the stochasticity of D for one z."""

    state = param.ClassSelector(class_=ExplorerState)
    z_quantity = param.Selector(default=None, objects=[])
    x_quantity = param.Selector(default=None, objects=[])
    event = param.Integer(default=0, bounds=(0, None))

    def __init__(self, state: ExplorerState, **params):
        super().__init__(state=state, **params)
        self._transport_pane = pn.Row()
        state.param.watch(self._refresh, "run_path")
        self._refresh()
        self._transport()

    def _refresh(self, *_):
        if not self.state.run:
            return
        zq = [q for q in self.state.quantity_names("z") if "." in q]
        xq = [q for q in self.state.quantity_names("x") if "." in q]
        self.param.z_quantity.objects, self.param.x_quantity.objects = zq, xq
        self.z_quantity = self.z_quantity if self.z_quantity in zq else (zq[-1] if zq else None)
        self.x_quantity = self.x_quantity if self.x_quantity in xq else (xq[-1] if xq else None)

    @param.depends("z_quantity", "x_quantity", "state.run_path", watch=True)
    def _transport(self):
        if self.z_quantity is None or self.x_quantity is None:
            return
        ensure_extension()
        zc = self.state.quantity("z", "z", self.z_quantity)
        xt = self.state.quantity("x", "x", self.x_quantity)
        xl = self.state.quantity("x", "x_tilde_prime", self.x_quantity)
        layout = transport_plot(zc, xt, xl, f"z {self.z_quantity} [GeV]", f"x {self.x_quantity} [GeV]",
                                rasterise=True)
        # one pane per panel: a Bokeh GridPlot inside a tab that was hidden renders collapsed
        self._transport_pane.objects = [pn.pane.HoloViews(p, linked_axes=False) for p in layout]

    @param.depends("x_quantity", "event", "state.run_path")
    def _stochastic(self):
        ensure_extension()
        parts = self.state.particles("x")
        p, comp = self.x_quantity.split(".")
        k = ["px", "py", "pz", "E"].index(comp)
        dec = self.state.decode_many(self.event)[:, parts.index(p), k]
        true_x = self.state.outputs()["x"][self.event, parts.index(p), k]
        return pn.pane.HoloViews(stochasticity_plot(dec, true_x, label=f"x {self.x_quantity} [GeV]"), linked_axes=False)

    def __panel__(self):
        return pn.Column(
            pn.Row(pn.widgets.Select.from_param(self.param.z_quantity, name="z component"),
                   pn.widgets.Select.from_param(self.param.x_quantity, name="x component")),
            self._transport_pane,
            pn.pane.Markdown("#### Stochasticity: one test z decoded 2000 times (black line: its true x)"),
            pn.widgets.IntInput.from_param(self.param.event, name="test event", width=150),
            self._stochastic,
        )


class ResidualsView(pn.viewable.Viewer):
    """Residual histograms of any component or derived mass, with KS/W₁/χ² and their floors."""

    state = param.ClassSelector(class_=ExplorerState)
    space = param.Selector(default="x", objects=["x", "z"])
    quantity = param.Selector(default=None, objects=[])

    def __init__(self, state: ExplorerState, **params):
        super().__init__(state=state, **params)
        state.param.watch(self._update, "run_path")
        self._update()

    @param.depends("space", watch=True)
    def _update(self, *_):
        if not self.state.run:
            return
        names = self.state.quantity_names(self.space)
        self.param.quantity.objects = names
        if self.quantity not in names:
            self.quantity = next((n for n in names if n.startswith("m_")), names[0])

    def _stats_table(self, truth, others):
        import pandas as pd

        n = len(truth) // 2
        rng = np.random.default_rng(0)
        perm = rng.permutation(len(truth))
        a, b = perm[:n], perm[n:2 * n]
        floor = one_d_stats(truth[a], truth[b])
        rows = []
        for name, arr in others.items():
            v = one_d_stats(truth[a], arr[b])
            rows.append({"sample": name, **{f"{s}": round(v[s], 5) for s in ("ks", "w1", "chi2r")},
                         **{f"{s} floor": round(floor[s], 5) for s in ("ks", "w1", "chi2r")},
                         "KS / floor": round(v["ks"] / floor["ks"], 2)})
        return pn.widgets.Tabulator(pd.DataFrame(rows), disabled=True, show_index=False, sizing_mode="stretch_width")

    @param.depends("space", "quantity", "state.run_path")
    def _plot(self):
        if self.quantity is None:
            return pn.pane.Markdown("No run selected.")
        ensure_extension()
        names = ARRAYS[self.space]
        truth = self.state.quantity(self.space, names[0], self.quantity)
        others = {LABELS[n]: self.state.quantity(self.space, n, self.quantity) for n in names[1:]}
        return pn.Column(
            pn.pane.HoloViews(residual_plot(truth, others, label=f"{self.space}: {self.quantity}"), linked_axes=False),
            pn.pane.Markdown("Statistics between truth (half A of the test sample) and the model output computed "
                             "from half B; *floor*: the same statistic between the two truth halves."),
            self._stats_table(truth, others),
        )

    def __panel__(self):
        return pn.Column(
            pn.Row(pn.widgets.RadioButtonGroup.from_param(self.param.space),
                   pn.widgets.Select.from_param(self.param.quantity, name="Quantity")),
            self._plot,
        )


class LatentExplorer(pn.viewable.Viewer):
    """The whole dashboard: run selector and the Data, Train, Transport and Residuals pages."""

    def __init__(self, **params):
        super().__init__(**params)
        self.state = ExplorerState()
        self.data = DataView(self.state)
        self.train = TrainView(self.state)
        self.transport = TransportView(self.state)
        self.residuals = ResidualsView(self.state)

    def __panel__(self):
        selector = pn.widgets.Select.from_param(self.state.param.run_path, name="Run", width=360)
        tabs = pn.Tabs(("Data", self.data), ("Train", self.train), ("Transport", self.transport),
                       ("Residuals", self.residuals), dynamic=True)
        return pn.Column(pn.Row(pn.pane.Markdown("## otviz latent explorer"), selector), tabs)
