"""Train page: hyper-parameters, Start/Cancel, live progress and streaming loss curves."""
from __future__ import annotations

import panel as pn
import param

from ..models.emdvae import EMDVAEConfig
from ..train import registry
from ..train.annealing import emdvae_wjets_config
from ..train.config import PRESETS
from ..viz.curves import loss_curves
from .state import ExplorerState, new_run_dir


class TrainSettings(param.Parameterized):
    """Hyper-parameters of a new OTUS Z→ee run (URL query parameters of the same names preset them)."""

    epochs = param.Integer(default=90, bounds=(1, 5000))
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


class AnnealSettings(param.Parameterized):
    """A new EMD-VAE β-annealing run on the shipped W jets (production pass, or the paper's
    priming + zig-zag + production)."""

    jets = param.Selector(default="centred", objects=["centred", "uncentred"])
    schedule = param.Selector(default="production", objects=["production", "paper"])
    n_betas = param.Integer(default=9, bounds=(2, 40))
    beta_min = param.Number(default=10 ** -2.4, bounds=(1e-6, None))
    beta_max = param.Number(default=1.0, bounds=(1e-6, None))
    max_epochs = param.Integer(default=6, bounds=(1, 200), doc="epochs per β step at most")
    steps_per_epoch = param.Integer(default=0, bounds=(0, None), doc="0: one pass over the jets")
    latent = param.Integer(default=32, bounds=(2, 512))
    width = param.Integer(default=128, bounds=(8, 2048))
    lr = param.Number(default=1e-3, bounds=(1e-7, 1.0))
    max_events = param.Integer(default=0, bounds=(0, None), doc="0: all jets")
    device = param.Selector(default="auto", objects=["auto", "cpu", "cuda"])
    seed = param.Integer(default=0)

    def to_config(self):
        if self.beta_max <= self.beta_min:
            raise ValueError(f"beta_max ({self.beta_max}) must exceed beta_min ({self.beta_min})")
        return emdvae_wjets_config(
            self.jets == "centred", schedule=self.schedule, n_betas=self.n_betas, beta_min=self.beta_min,
            beta_max=self.beta_max, max_epochs=self.max_epochs, steps_per_epoch=self.steps_per_epoch or None,
            lr=self.lr, max_events=self.max_events or None, device=self.device, seed=self.seed,
            model_config=EMDVAEConfig(latent=self.latent, width=self.width))


class TrainView(pn.viewable.Viewer):
    """Start/cancel a background run; live progress and streaming loss curves per term."""

    state = param.ClassSelector(class_=ExplorerState)

    def __init__(self, state: ExplorerState, **params):
        super().__init__(state=state, **params)
        self.settings = TrainSettings()
        self.anneal = AnnealSettings()
        self.mode = pn.widgets.RadioButtonGroup(options=["OTUS Z→ee", "EMD-VAE β-annealing"], value="OTUS Z→ee")
        if pn.state.location is not None:
            pn.state.location.sync(self.settings, {n: n for n in self.settings.param if n != "name"})
            pn.state.location.sync(self.mode, {"value": "mode"})
        self.steps_table = pn.pane.Markdown("")
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
        self._beta_steps: list[dict] = []
        self._cb = None

    def _config(self):
        if self.mode.value.startswith("EMD-VAE"):
            return self.anneal.to_config()
        run = self.state.run
        train = run.config.train_data if run else "data/zee_train.nc"
        test = run.config.test_data if run else "data/zee_test.nc"
        return self.settings.to_config(train, test)

    def _start(self, _=None):
        self.rundir = new_run_dir()
        try:
            registry.start_run(self.rundir, self._config())
        except Exception as exc:
            self.status.object = f"**Could not start:** {type(exc).__name__}: {exc}"
            return
        self._seen, self._points, self._beta_steps = 0, [], []
        self.steps_table.object = ""
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
            if ev["type"] == "step" and "beta_step" in ev:
                self._anneal_step(ev)
            elif ev["type"] == "beta_step":
                self._beta_steps.append(ev)
                self.steps_table.object = self._steps_markdown()
            elif ev["type"] == "step":
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
            terms = ("rate", "distortion") if self._points and "rate" in self._points[0] else None
            self.curve.object = loss_curves(self._points, x="step", **({"terms": terms} if terms else {}))
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

    def _anneal_step(self, ev):
        """Progress of an annealing run: finished β steps plus the current step's epochs counted
        against its ``max_epochs`` (an early stop makes the bar jump ahead)."""
        g = len(self._points)
        self._points.append({"step": g, "rate": ev["rate"], "distortion": ev["distortion"]})
        in_step = (ev["epoch"] + (ev["batch"] + 1) / ev["batches"]) / ev["max_epochs"]
        frac = (ev["beta_step"] + min(in_step, 1.0)) / max(ev["total_steps"], 1)
        self.progress.value = min(int(100 * frac), 99)
        self.status.object = (f"β step {ev['beta_step'] + 1}/{ev['total_steps']} ({ev['pass_name']}, "
                              f"β = {ev['beta']:.3g}), epoch {ev['epoch'] + 1}, batch {ev['batch'] + 1}/{ev['batches']}: "
                              f"R {ev['rate']:.3g}, D {ev['distortion']:.3g}, {ev['jets_per_s']:.0f} jets/s")

    def _steps_markdown(self):
        rows = "\n".join(f"| {s['beta_step'] + 1} | {s['pass_name']} | {s['beta']:.3g} | {s['epochs']} | "
                         f"{s['stopped']} | {s['rate']:.3g} | {s['distortion']:.3g} |" for s in self._beta_steps)
        return ("| # | pass | β | epochs | stopped | R | D |\n|---|---|---|---|---|---|---|\n" + rows)

    def _form(self):
        if self.mode.value.startswith("EMD-VAE"):
            return pn.Column(pn.pane.Markdown("### New EMD-VAE β-annealing run (W jets)"),
                             pn.Param(self.anneal, show_name=False, width=300, widgets={
                                 "beta_min": pn.widgets.FloatInput, "beta_max": pn.widgets.FloatInput,
                                 "lr": pn.widgets.FloatInput, "n_betas": pn.widgets.IntInput,
                                 "max_epochs": pn.widgets.IntInput, "steps_per_epoch": pn.widgets.IntInput,
                                 "latent": pn.widgets.IntInput, "width": pn.widgets.IntInput}))
        return pn.Column(pn.pane.Markdown("### New OTUS Z→ee run"), pn.Param(self.settings, show_name=False, width=300, widgets={
            "epochs": pn.widgets.IntInput, "n_projections": pn.widgets.IntInput,
            "lr": pn.widgets.FloatInput, "lam": pn.widgets.FloatInput,
            "beta_anchor": pn.widgets.FloatInput, "tau": pn.widgets.FloatInput}))

    def __panel__(self):
        return pn.Row(
            pn.Column(self.mode, pn.bind(lambda _: self._form(), self.mode),
                      pn.Row(self.start_button, self.cancel_button)),
            pn.Column(self.progress, self.status, self.curve, self.steps_table),
        )


