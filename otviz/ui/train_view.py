"""Train page: hyper-parameters, Start/Cancel, live progress and streaming loss curves.

The model choice lists the registered kinds with a ``train_settings`` class (:mod:`otviz.kinds`).
A settings class is a ``param.Parameterized`` with ``TITLE`` (the form's heading), ``WIDGETS``
(parameter → Panel widget type, where the default would be a slider), ``to_config(state)`` (the
validated run config; ``state`` is the session's :class:`ExplorerState`) and ``describe()`` (one
line naming the run in the server's run list)."""
from __future__ import annotations

from pathlib import Path

import panel as pn
import param

from .. import kinds
from ..models.emdvae import EMDVAEConfig
from ..train import registry
from ..train.annealing import SCHEDULES, AnnealConfig, emdvae_wjets_config
from ..errors import ConfigError
from ..losses.turbosim import TERM_LABELS, TERMS, TurboSimWeights
from ..train.config import Stage, TrainConfig, TtbarConfig
from ..train.turbosim import TurboSimConfig
from ..viz.curves import gan_health_curves, generator_term_label, has_critics, loss_curves
from ..viz.corner import calibration_curves, is_calibration_history, is_tagger_history, tagger_curves
from ..viz.hadronisation import hadml_curves, is_hadml_history
from . import state as ui_state
from .hosts import session_location
from .notify import describe, guarded
from .state import ExplorerState, new_run_dir


def config_bounds(cls, name: str, fallback: tuple, lo=None, hi=None, zero_means_default: bool = False) -> tuple:
    """Widget bounds of a setting from the config class's ``BOUNDS`` (the same ranges its
    validation enforces), ``fallback`` where the class has none; ``lo``/``hi`` narrow them for
    the page; ``zero_means_default`` lets 0 stand for "all" / "one pass"."""
    b = tuple(getattr(cls, "BOUNDS", {}).get(name, fallback))
    a, z = b
    if lo is not None:
        a = lo if a is None else max(a, lo)
    if hi is not None:
        z = hi if z is None else min(z, hi)
    return (0 if zero_means_default else a, z)


_OTUS = kinds.for_preset("otus-zee").preset("otus-zee")()  # defaults of the page = the preset's (what `otviz train otus-zee` runs)
_ANNEAL = emdvae_wjets_config()


class TrainSettings(param.Parameterized):
    """Hyper-parameters of a new OTUS Z→ee run (URL query parameters of the same names preset them).
    Defaults are the ``otus-zee`` preset's; bounds come from ``TrainConfig.BOUNDS`` / ``Stage.BOUNDS``."""

    TITLE = "New OTUS Z→ee run"
    WIDGETS = {"epochs": pn.widgets.IntInput, "finetune_epochs": pn.widgets.IntInput,
               "n_projections": pn.widgets.IntInput, "lr": pn.widgets.FloatInput, "lam": pn.widgets.FloatInput,
               "beta_anchor": pn.widgets.FloatInput, "tau": pn.widgets.FloatInput,
               # typed, not slid: their ranges span 1 … 1e7–1e8, where a slider cannot pick 5000 or 20000
               "batch_size": pn.widgets.IntInput, "max_events": pn.widgets.IntInput, "seed": pn.widgets.IntInput}

    epochs = param.Integer(default=sum(s.epochs for s in _OTUS.stages if s.train != "decoder"),
                           bounds=config_bounds(TrainConfig, "epochs", (1, 5000)))
    finetune_epochs = param.Integer(default=sum(s.epochs for s in _OTUS.stages if s.train == "decoder"), bounds=config_bounds(TrainConfig, "finetune_epochs", (0, 5000)),
                                    doc="decoder-only SW(x, D(z)) epochs at the end (the shipped run: 20)")
    batch_size = param.Integer(default=_OTUS.batch_size,
                               bounds=config_bounds(TrainConfig, "batch_size", (1, 10_000_000)))
    n_projections = param.Integer(default=_OTUS.n_projections,
                                  bounds=config_bounds(TrainConfig, "n_projections", (1, 10_000)))
    lam = param.Number(default=1.0, bounds=config_bounds(Stage, "lam", (0, 1e6)), doc="λ on SW(z, E(x))")
    beta_anchor = param.Number(default=50.0, bounds=config_bounds(Stage, "beta_e", (0, 1e6)),
                               doc="βE = βD in the anchor stage")
    tau = param.Number(default=1.0, bounds=config_bounds(Stage, "tau", (0, 1e6)), doc="τ on SW(x, D(z))")
    lr = param.Number(default=1e-3, bounds=config_bounds(Stage, "lr", (1e-8, 1.0)))
    max_events = param.Integer(default=0, bounds=config_bounds(TrainConfig, "max_events", (1, 100_000_000),
                                                               zero_means_default=True),
                               doc="0: all training events")
    device = param.Selector(default="auto", objects=["auto", "cpu", "cuda"])
    seed = param.Integer(default=0, bounds=config_bounds(TrainConfig, "seed", (0, 2 ** 32 - 1)))

    def to_config(self, state=None):
        """The run's config; on the samples of the session's selected run when that is a run of this
        preset's config class, else on the preset's samples."""
        run = state.run if state is not None else None
        data = {} if run is None or type(run.config) is not type(_OTUS) else \
            dict(train_data=run.config.train_data, test_data=run.config.test_data)
        cfg = kinds.for_preset("otus-zee").preset("otus-zee")(epochs=self.epochs, finetune_epochs=self.finetune_epochs,
                                  **data,
                                  batch_size=self.batch_size, n_projections=self.n_projections,
                                  max_events=self.max_events or None, device=self.device, seed=self.seed)
        for st in cfg.stages:
            if st.train == "decoder":  # the fine-tune keeps the preset's settings
                continue
            st.lam, st.tau, st.lr = self.lam, self.tau, self.lr
            if st.name == "anchor":
                st.beta_e = st.beta_d = self.beta_anchor
        if hasattr(cfg, "validate"):
            cfg.validate()
        return cfg

    def describe(self) -> str:
        return f"OTUS Z→ee, {self.epochs} epochs, {self.max_events or 'all'} events"


_TTBAR = kinds.for_preset("otus-ttbar").preset("otus-ttbar")()  # defaults of the tt̄ form: `otviz train otus-ttbar`'s
_TTBAR_MAIN = next(s for s in _TTBAR.stages if s.train != "decoder")


class TtbarSettings(param.Parameterized):
    """Hyper-parameters of a new tt̄ OTUS run (restricted decoder; the ``otus-ttbar`` preset's
    defaults: λ = 20, no anchors, τ = 0, then a decoder-only fine-tune). Bounds come from
    ``TtbarConfig.BOUNDS`` / ``Stage.BOUNDS``."""

    TITLE = "New OTUS tt̄ run"
    WIDGETS = TrainSettings.WIDGETS

    epochs = param.Integer(default=sum(s.epochs for s in _TTBAR.stages if s.train != "decoder"),
                           bounds=config_bounds(TtbarConfig, "epochs", (1, 5000)))
    finetune_epochs = param.Integer(default=sum(s.epochs for s in _TTBAR.stages if s.train == "decoder"),
                                    bounds=config_bounds(TtbarConfig, "finetune_epochs", (0, 5000)),
                                    doc="decoder-only SW(x, D(z)) epochs at the end, encoder frozen")
    batch_size = param.Integer(default=_TTBAR.batch_size,
                               bounds=config_bounds(TtbarConfig, "batch_size", (1, 10_000_000)))
    n_projections = param.Integer(default=_TTBAR.n_projections,
                                  bounds=config_bounds(TtbarConfig, "n_projections", (1, 10_000)))
    lam = param.Number(default=_TTBAR_MAIN.lam, bounds=config_bounds(Stage, "lam", (0, 1e6)), doc="λ on SW(z, E(x))")
    beta_anchor = param.Number(default=_TTBAR_MAIN.beta_e, bounds=config_bounds(Stage, "beta_e", (0, 1e6)),
                               doc="βE = βD (the preset: 0, the input-to-output residual makes them redundant)")
    tau = param.Number(default=_TTBAR_MAIN.tau, bounds=config_bounds(Stage, "tau", (0, 1e6)), doc="τ on SW(x, D(z))")
    lr = param.Number(default=_TTBAR_MAIN.lr, bounds=config_bounds(Stage, "lr", (1e-8, 1.0)))
    max_events = param.Integer(default=0, bounds=config_bounds(TtbarConfig, "max_events", (1, 100_000_000),
                                                               zero_means_default=True),
                               doc="0: all training events")
    device = param.Selector(default="auto", objects=["auto", "cpu", "cuda"])
    seed = param.Integer(default=0, bounds=config_bounds(TtbarConfig, "seed", (0, 2 ** 32 - 1)))

    def to_config(self, state=None):
        """The run's config; on the samples of the session's selected run when that is a tt̄ run,
        else on the preset's samples."""
        run = state.run if state is not None else None
        data = {} if run is None or type(run.config) is not type(_TTBAR) else \
            dict(train_data=run.config.train_data, test_data=run.config.test_data)
        cfg = kinds.for_preset("otus-ttbar").preset("otus-ttbar")(
            epochs=self.epochs, finetune_epochs=self.finetune_epochs, **data, batch_size=self.batch_size,
            n_projections=self.n_projections, max_events=self.max_events or None, device=self.device, seed=self.seed)
        for st in cfg.stages:
            if st.train == "decoder":  # the fine-tune keeps the preset's settings
                continue
            st.lam, st.tau, st.lr = self.lam, self.tau, self.lr
            st.beta_e = st.beta_d = self.beta_anchor
        return cfg.validate()

    def describe(self) -> str:
        return f"OTUS tt̄, {self.epochs} epochs, {self.max_events or 'all'} events"


_TURBO = kinds.for_preset("turbosim-ttbar").preset("turbosim-ttbar")()  # defaults: `otviz train turbosim-ttbar`'s


def _weight(term: str):
    return param.Number(default=getattr(_TURBO.weights, term),
                        bounds=config_bounds(TurboSimWeights, term, (0.0, 1e6)), doc=TERM_LABELS[term])


class TurboSimSettings(param.Parameterized):
    """Hyper-parameters of a new Turbo-Sim tt̄ run (the ``turbosim-ttbar`` preset's defaults: the L
    terms at weight 1, the D terms at 3, SW_z̃ and SW_x̃ at 3000, WGAN-GP λ = 10, one critic step
    per generator step, fully paired; both maps in the electron's frame).
    Bounds come from ``TurboSimConfig.BOUNDS`` / ``TurboSimWeights.BOUNDS``; ``to_config`` validates
    through the config classes (a ``ConfigError`` names the field)."""

    TITLE = "New Turbo-Sim tt̄ run"
    WIDGETS = {"epochs": pn.widgets.IntInput, "batch_size": pn.widgets.IntInput, "lr": pn.widgets.FloatInput,
               "critic_lr": pn.widgets.FloatInput, "n_critic": pn.widgets.IntInput,
               "gp_weight": pn.widgets.FloatInput, "paired_fraction": pn.widgets.FloatInput,
               "max_events": pn.widgets.IntInput, "seed": pn.widgets.IntInput,
               **{t: pn.widgets.FloatInput for t in (*TERMS, "sw_weight")}}
    CARDS = {"Loss-term weights (0 switches a term off)": (*TERMS, "sw_weight")}  # shown in a collapsed card

    epochs = param.Integer(default=_TURBO.epochs, bounds=config_bounds(TurboSimConfig, "epochs", (1, 5000)))
    batch_size = param.Integer(default=_TURBO.batch_size,
                               bounds=config_bounds(TurboSimConfig, "batch_size", (1, 10_000_000)))
    lr = param.Number(default=_TURBO.lr, bounds=config_bounds(TurboSimConfig, "lr", (1e-8, 1.0)))
    critic_lr = param.Number(default=_TURBO.critic_lr, bounds=config_bounds(TurboSimConfig, "critic_lr", (1e-8, 1.0)))
    n_critic = param.Integer(default=_TURBO.n_critic, bounds=config_bounds(TurboSimConfig, "n_critic", (1, 100)))
    gp_weight = param.Number(default=_TURBO.gp_weight, bounds=config_bounds(TurboSimConfig, "gp_weight", (0.0, 1e6)),
                             doc="λ_GP of the WGAN-GP gradient penalty")
    paired_fraction = param.Number(default=_TURBO.paired_fraction,
                                   bounds=config_bounds(TurboSimConfig, "paired_fraction", (0.0, 1.0)),
                                   doc="fraction of events known as (z, x) pairs (supervised terms)")
    max_events = param.Integer(default=0, bounds=config_bounds(TurboSimConfig, "max_events", (1, 100_000_000),
                                                               zero_means_default=True),
                               doc="0: all training events")
    device = param.Selector(default="auto", objects=["auto", "cpu", "cuda"])
    seed = param.Integer(default=0, bounds=config_bounds(TurboSimConfig, "seed", (0, 2 ** 32 - 1)))
    l_z_tilde, d_z_tilde, l_x_hat, d_x_hat = (_weight(t) for t in TERMS[:4])
    l_x_tilde, d_x_tilde, l_z_hat, d_z_hat = (_weight(t) for t in TERMS[4:])
    sw_weight = param.Number(default=_TURBO.sw_weight, bounds=config_bounds(TurboSimConfig, "sw_weight", (0.0, 1e6)),
                             doc="marginal sliced-W² terms of the preset's sw_spaces (turbosim-ttbar: SW_z̃ of E(x) vs z "
                                 "and SW_x̃ of D(z) vs x; otviz's addition; 0: the published objective)")

    def to_config(self, state=None):
        """The run's config, validated by ``TurboSimConfig``; on the samples of the session's selected
        run when that is a run of this preset's config class, else on the preset's samples."""
        run = state.run if state is not None else None
        data = {} if run is None or type(run.config) is not type(_TURBO) else \
            dict(train_data=run.config.train_data, test_data=run.config.test_data)
        try:
            weights = TurboSimWeights(**{t: getattr(self, t) for t in TERMS})
        except ConfigError as exc:
            raise exc.nested("weights")
        return kinds.for_preset("turbosim-ttbar").preset("turbosim-ttbar")(
            epochs=self.epochs, **data, batch_size=self.batch_size, lr=self.lr, critic_lr=self.critic_lr,
            n_critic=self.n_critic, gp_weight=self.gp_weight, paired_fraction=self.paired_fraction, weights=weights,
            sw_weight=self.sw_weight, max_events=self.max_events or None, device=self.device, seed=self.seed).validate()

    def describe(self) -> str:
        on = sum(getattr(self, t) > 0 for t in TERMS)
        sw = " + " + ", ".join({"z": "SW_z̃", "x": "SW_x̃"}[sp] for sp in _TURBO.sw_spaces) if self.sw_weight > 0 else ""
        return f"Turbo-Sim tt̄, {self.epochs} epochs, {self.max_events or 'all'} events, {on} of 8 terms on{sw}"


class AnnealSettings(param.Parameterized):
    """A new EMD-VAE β-annealing run on the shipped W jets (the preset's primed production pass,
    the production pass alone, or the paper's priming + zig-zag + production); defaults are the
    ``emdvae-wjets`` preset's. Bounds come from ``AnnealConfig.BOUNDS`` / ``EMDVAEConfig.BOUNDS``;
    the run's disk need is checked when it starts (:func:`otviz.train.registry.check_resources`)."""

    TITLE = "New EMD-VAE β-annealing run (W jets)"
    WIDGETS = {"beta_min": pn.widgets.FloatInput, "beta_max": pn.widgets.FloatInput, "lr": pn.widgets.FloatInput,
               "n_betas": pn.widgets.IntInput, "max_epochs": pn.widgets.IntInput,
               "steps_per_epoch": pn.widgets.IntInput, "latent": pn.widgets.IntInput, "width": pn.widgets.IntInput,
               "max_events": pn.widgets.IntInput, "seed": pn.widgets.IntInput}

    jets = param.Selector(default="centred", objects=["centred", "uncentred"])
    schedule = param.Selector(default="primed", objects=list(SCHEDULES))
    n_betas = param.Integer(default=len(_ANNEAL.schedule[-1].betas),
                            bounds=config_bounds(AnnealConfig, "n_steps", (1, 40), lo=2))
    beta_min = param.Number(default=round(min(_ANNEAL.schedule[-1].betas), 6),
                            bounds=config_bounds(AnnealConfig, "beta", (1e-6, 100.0)))
    beta_max = param.Number(default=round(max(_ANNEAL.schedule[-1].betas), 4),
                            bounds=config_bounds(AnnealConfig, "beta", (1e-6, 100.0)))
    max_epochs = param.Integer(default=_ANNEAL.max_epochs, bounds=config_bounds(AnnealConfig, "max_epochs", (1, 200)),
                               doc="epochs per β step at most")
    steps_per_epoch = param.Integer(default=_ANNEAL.steps_per_epoch,
                                    bounds=config_bounds(AnnealConfig, "steps_per_epoch", (1, 1_000_000),
                                                         zero_means_default=True),
                                    doc="batches between validations (0: one pass over the jets)")
    latent = param.Integer(default=32, bounds=config_bounds(EMDVAEConfig, "latent", (1, 256), lo=2))
    width = param.Integer(default=128, bounds=config_bounds(EMDVAEConfig, "width", (1, 1024), lo=8))
    lr = param.Number(default=1e-3, bounds=config_bounds(AnnealConfig, "lr", (1e-8, 1.0)))
    max_events = param.Integer(default=0, bounds=config_bounds(AnnealConfig, "max_events", (2, 100_000_000),
                                                               zero_means_default=True), doc="0: all jets")
    device = param.Selector(default="auto", objects=["auto", "cpu", "cuda"])
    seed = param.Integer(default=0, bounds=config_bounds(AnnealConfig, "seed", (0, 2 ** 32 - 1)))

    def to_config(self, state=None):
        if self.beta_max <= self.beta_min:
            raise ValueError(f"beta_max ({self.beta_max}) must exceed beta_min ({self.beta_min})")
        return emdvae_wjets_config(
            self.jets == "centred", schedule=self.schedule, n_betas=self.n_betas, beta_min=self.beta_min,
            beta_max=self.beta_max, max_epochs=self.max_epochs, steps_per_epoch=self.steps_per_epoch or None,
            lr=self.lr, max_events=self.max_events or None, device=self.device, seed=self.seed,
            model_config=EMDVAEConfig(latent=self.latent, width=self.width))

    def describe(self) -> str:
        return (f"EMD-VAE {self.jets} W jets, {self.schedule} schedule of {self.n_betas} β, latent {self.latent}, "
                f"width {self.width}")


def _tagger_preset():
    from ..train.tagger import tagger_wjets_config

    return tagger_wjets_config()


def _otcal_preset():
    from ..train.calibration import otcal_wjets_config

    return otcal_wjets_config()


_TAGGER = _tagger_preset()  # defaults: `otviz train tagger-wjets`'s
_OTCAL = _otcal_preset()  # defaults: `otviz train otcal-wjets`'s


def _bounds_of(qualname: str, name: str, fallback: tuple, **kw) -> tuple:
    return config_bounds(kinds.resolve(qualname), name, fallback, **kw)


class TaggerSettings(param.Parameterized):
    """A new W-vs-QCD jet tagger (issue 14; the ``tagger-wjets`` preset's defaults: a Particle Flow
    Network trained by BCE on a signal and a background file of the simulation domain). Bounds come
    from ``TaggerConfig.BOUNDS``; ``to_config`` validates through ``TaggerConfig``."""

    TITLE = "New W-vs-QCD tagger run"
    WIDGETS = {"epochs": pn.widgets.IntInput, "lr": pn.widgets.FloatInput, "batch_size": pn.widgets.IntInput,
               "max_events": pn.widgets.IntInput, "seed": pn.widgets.IntInput,
               "signal": pn.widgets.TextInput, "background": pn.widgets.TextInput}

    signal = param.String(default=_TAGGER.signal, doc="jet file of the signal class (label 1, W)")
    background = param.String(default=_TAGGER.background, doc="jet file of the background class (label 0, QCD)")
    epochs = param.Integer(default=_TAGGER.epochs,
                           bounds=_bounds_of("otviz.train.tagger:TaggerConfig", "epochs", (1, 5000)))
    lr = param.Number(default=_TAGGER.lr, bounds=_bounds_of("otviz.train.tagger:TaggerConfig", "lr", (1e-8, 1.0)))
    batch_size = param.Integer(default=_TAGGER.batch_size,
                               bounds=_bounds_of("otviz.train.tagger:TaggerConfig", "batch_size", (1, 1_000_000)))
    max_events = param.Integer(default=_TAGGER.max_events or 0,
                               bounds=_bounds_of("otviz.train.tagger:TaggerConfig", "max_events", (1, 100_000_000),
                                                 zero_means_default=True),
                               doc="jets per class, the first N of each file (0: all)")
    device = param.Selector(default="auto", objects=["auto", "cpu", "cuda"])
    seed = param.Integer(default=0, bounds=_bounds_of("otviz.train.tagger:TaggerConfig", "seed", (0, 2 ** 32 - 1)))

    def to_config(self, state=None):
        from ..train.tagger import tagger_wjets_config

        return tagger_wjets_config(epochs=self.epochs, lr=self.lr, batch_size=self.batch_size,
                                   max_events=self.max_events or None, signal=self.signal.strip(),
                                   background=self.background.strip(), device=self.device, seed=self.seed).validate()

    def describe(self) -> str:
        return f"W-vs-QCD tagger, {self.epochs} epochs, {self.max_events or 'all'} jets per class"


class CalibrationSettings(param.Parameterized):
    """A new OT calibration of a tagger's latents (issue 14; the ``otcal-wjets`` preset's defaults: one
    ICNN OT map per class from simulation to data). Bounds come from ``CalibrationConfig.BOUNDS`` and
    ``OTMapConfig.BOUNDS``; ``to_config`` validates through ``CalibrationConfig`` (a ``ConfigError``
    names the field, ``map_config.steps`` for the map's)."""

    TITLE = "New OT calibration run"
    WIDGETS = {"latents": pn.widgets.TextInput, "tagger": pn.widgets.TextInput, "steps": pn.widgets.IntInput,
               "lr": pn.widgets.FloatInput, "batch": pn.widgets.IntInput, "fit_fraction": pn.widgets.FloatInput,
               "seed": pn.widgets.IntInput}

    latents = param.String(default=_OTCAL.latents, doc="latents.nc of the tagger (otviz.train.tagger.write_latents)")
    tagger = param.String(default=_OTCAL.tagger, doc="tagger run directory ('': the one the latents file names)")
    steps = param.Integer(default=_OTCAL.map_config.steps,
                          bounds=_bounds_of("otviz.ot.icnn:OTMapConfig", "steps", (1, 10_000_000)),
                          doc="outer steps of each class's map")
    lr = param.Number(default=_OTCAL.map_config.lr, bounds=_bounds_of("otviz.ot.icnn:OTMapConfig", "lr", (1e-8, 1.0)))
    batch = param.Integer(default=_OTCAL.map_config.batch,
                          bounds=_bounds_of("otviz.ot.icnn:OTMapConfig", "batch", (2, 1_000_000)))
    fit_fraction = param.Number(default=_OTCAL.fit_fraction,
                                bounds=_bounds_of("otviz.train.calibration:CalibrationConfig", "fit_fraction",
                                                  (0.05, 0.95)),
                                doc="of each (domain, class): fits the map; the rest evaluates it")
    device = param.Selector(default="auto", objects=["auto", "cpu", "cuda"])
    seed = param.Integer(default=0, bounds=_bounds_of("otviz.train.calibration:CalibrationConfig", "seed",
                                                      (0, 2 ** 32 - 1)))

    def to_config(self, state=None):
        from ..train.calibration import otcal_wjets_config

        return otcal_wjets_config(latents=self.latents.strip(), tagger=self.tagger.strip(),
                                  fit_fraction=self.fit_fraction, device=self.device, seed=self.seed,
                                  map_config={"steps": self.steps, "lr": self.lr, "batch": self.batch}).validate()

    def describe(self) -> str:
        return f"OT calibration, {self.steps} map steps per class, batches of {self.batch}"


def _hadml_preset(mode: str = "v1"):
    from ..train.hadml import hadml_config, hadml_v2_config

    return hadml_v2_config() if mode == "v2" else hadml_config()


_HADML = _hadml_preset()  # defaults: `otviz train hadml`'s
_HADML_V2 = _hadml_preset("v2")  # the v2 choice's: `otviz train hadml-v2`'s
GAN_LOSSES = {"d_loss": "discriminator loss", "g_loss": "generator loss"}  # a GAN step's losses in the live curve
_HADML_CONFIG = "otviz.train.hadml:HadMLConfig"


class HadMLSettings(param.Parameterized):
    """A new HadML run (issue 15; the ``hadml`` preset's defaults): v1 fits the per-cluster cGAN on
    the decays of a cluster file (an otviz cluster .nc or a Herwig .dat); v2 refits the generator
    of a v1 run (``init_from``) against the event-level Deep Sets discriminator on the events of
    ``target``. Bounds come from ``HadMLConfig.BOUNDS``; ``to_config`` validates through
    ``HadMLConfig`` (v2 needs ``target`` and ``init_from``)."""

    TITLE = "New HadML run (cluster hadronisation)"
    WIDGETS = {"data": pn.widgets.TextInput, "target": pn.widgets.TextInput, "init_from": pn.widgets.TextInput,
               "epochs": pn.widgets.IntInput, "batch_size": pn.widgets.IntInput, "lr_g": pn.widgets.FloatInput,
               "lr_d": pn.widgets.FloatInput, "max_events": pn.widgets.IntInput, "seed": pn.widgets.IntInput}

    data = param.String(default=_HADML.data, doc="cluster file: otviz cluster .nc or Herwig .dat (v2: the simulation)")
    # not "mode": the Train page's URL parameter ?mode= names the model choice
    version = param.Selector(default="v1", objects=["v1", "v2"], doc="v1: per-cluster cGAN; v2: event-level fit")
    target = param.String(default=_HADML_V2.target, doc="v2: the 'data' whose events' hadrons are the real sample")
    init_from = param.String(default=_HADML_V2.init_from, doc="v2: the v1 run the generator starts from")
    epochs = param.Integer(default=_HADML.epochs, bounds=_bounds_of(_HADML_CONFIG, "epochs", (1, 100_000)))
    batch_size = param.Integer(default=_HADML.batch_size, bounds=_bounds_of(_HADML_CONFIG, "batch_size", (2, 1_000_000)),
                               doc="clusters (v1) or events (v2) per step")
    lr_g = param.Number(default=_HADML.lr_g, bounds=_bounds_of(_HADML_CONFIG, "lr_g", (1e-8, 1.0)))
    lr_d = param.Number(default=_HADML.lr_d, bounds=_bounds_of(_HADML_CONFIG, "lr_d", (1e-8, 1.0)))
    max_events = param.Integer(default=0, bounds=_bounds_of(_HADML_CONFIG, "max_events", (1, 100_000_000),
                                                            zero_means_default=True),
                               doc="the first N events of each file (0: all)")
    device = param.Selector(default="auto", objects=["auto", "cpu", "cuda"])
    seed = param.Integer(default=0, bounds=_bounds_of(_HADML_CONFIG, "seed", (0, 2 ** 32 - 1)))

    V2_ONLY = ("target", "init_from")  # shown in the form only while v2 is chosen

    def __init__(self, **params):
        super().__init__(**params)
        self._show_v2_fields()

    @param.depends("version", watch=True)
    def _preset_of_version(self):
        """Choosing a version sets epochs, batch size and learning rates to its preset's
        (``hadml`` / ``hadml-v2``); edit them afterwards."""
        p = _HADML_V2 if self.version == "v2" else _HADML
        self.param.update(epochs=p.epochs, batch_size=p.batch_size, lr_g=p.lr_g, lr_d=p.lr_d)
        self._show_v2_fields()

    def _show_v2_fields(self):
        """The v2 fields (target, init_from) are hidden (precedence below the form's display
        threshold 0; this instance only) while v1 is chosen; the form follows the change."""
        for name in self.V2_ONLY:
            self.param[name].precedence = None if self.version == "v2" else -1

    def to_config(self, state=None):
        from ..train.hadml import hadml_config, hadml_v2_config

        common = dict(data=self.data.strip(), batch_size=self.batch_size, lr_g=self.lr_g, lr_d=self.lr_d,
                      max_events=self.max_events or None, device=self.device, seed=self.seed)
        if self.version == "v2":
            return hadml_v2_config(epochs=self.epochs, target=self.target.strip() or None,
                                   init_from=self.init_from.strip() or None, **common).validate()
        return hadml_config(epochs=self.epochs, **common).validate()

    def describe(self) -> str:
        if self.version == "v2":
            return f"HadML v2 from {self.init_from or '?'} on {self.target or '?'}, {self.epochs} epochs"
        return f"HadML v1 on {self.data}, {self.epochs} epochs, batches of {self.batch_size}"


class TrainView(pn.viewable.Viewer):
    """Start/cancel a background run; live progress and streaming loss curves per term. Runs are
    queued in :mod:`otviz.train.registry` (one at a time by default); the list of the server's
    queued and running dashboard runs lets any session — a reloaded page too — attach to a run
    and cancel it."""

    state = param.ClassSelector(class_=ExplorerState)

    def __init__(self, state: ExplorerState, **params):
        super().__init__(state=state, **params)
        # the model choice: one settings form per registered kind that has one (Kind.train_settings)
        self.forms = {k.train_choice(): kinds.resolve(k.train_settings)() for k in kinds.kinds() if k.train_settings}
        self._form_kinds = {k.name: k.train_choice() for k in kinds.kinds() if k.train_settings}
        if not self.forms:
            raise ValueError("train_settings: no registered model kind has a Train page form")
        # one button per line: three model names side by side do not fit the sidebar
        self.mode = pn.widgets.RadioButtonGroup(options=list(self.forms), value=next(iter(self.forms)),
                                                orientation="vertical", sizing_mode="stretch_width")
        location = session_location()
        if location is not None:
            location.sync(self.mode, {"value": "mode"})
            # URL query parameters preset the form of the model chosen on load (the first by default)
            self._url_form = self.settings
            location.sync(self._url_form, {n: n for n in self._url_form.param if n != "name"},
                          on_error=self._apply_url_parameters)
        self.steps_table = pn.pane.Markdown("")
        self.start_button = pn.widgets.Button(name="Start training", button_type="primary")
        self.cancel_button = pn.widgets.Button(name="Cancel this run", button_type="danger", disabled=True)
        self.progress = pn.indicators.Progress(name="progress", value=0, max=100, bar_color="info",
                                               sizing_mode="stretch_width", visible=False)
        self.progress_text = pn.pane.Markdown("", margin=(0, 10))
        self.status = pn.pane.Markdown("Idle. Runs train in a background thread; this page only polls them.",
                                       sizing_mode="stretch_width")
        self.no_run = pn.pane.Markdown("No run yet: choose a model and its settings in the sidebar, then "
                                       "**Start training**; its loss curves appear here.")
        # shown and hidden through a Column around it: a HoloViews pane whose layout parameters change
        # after it was drawn passes the page design on to its Bokeh figure ("unexpected attribute
        # 'design' to figure") once the model choice was switched
        self.curve = pn.pane.HoloViews(loss_curves([]), linked_axes=False, sizing_mode="stretch_width")
        self.curve_box = pn.Column(self.curve, visible=False, sizing_mode="stretch_width")
        # GAN health (a run whose epoch records hold critics' estimates w_*): one pane per plot, since a
        # Bokeh grid of stretching plots inserted into a page already shown is drawn zero pixels wide
        self.gan_panes = [pn.pane.HoloViews(p, linked_axes=False, sizing_mode="stretch_width")
                          for p in gan_health_curves([])]
        self.gan_title = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.gan_box = pn.Column(self.gan_title, *self.gan_panes, visible=False, sizing_mode="stretch_width")
        # tagger (loss, validation AUC per epoch) and calibration (transport cost, W₂ dual per class) curves
        self.fit_panes = [pn.pane.HoloViews(p, linked_axes=False, sizing_mode="stretch_width")
                          for p in calibration_curves([])]
        self.fit_title = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.fit_box = pn.Column(self.fit_title, *self.fit_panes, visible=False, sizing_mode="stretch_width")
        self.runs_list = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.run_select = pn.widgets.Select(name="Queued and running dashboard runs", options={}, width=300)
        self.attach_button = pn.widgets.Button(name="Attach", width=80, disabled=True, align="end")
        self.cancel_other_button = pn.widgets.Button(name="Cancel selected run", button_type="warning", width=160,
                                                     disabled=True, align="end")
        self.start_button.on_click(self._start)
        self.cancel_button.on_click(self._cancel)
        self.attach_button.on_click(lambda _: self.attach(self.run_select.value))
        self.cancel_other_button.on_click(lambda _: self._cancel_selected())
        self.rundir = None
        self._seen = 0
        self._points: list[dict] = []
        self._epochs: list[dict] = []  # the attached run's epoch records
        self._beta_steps: list[dict] = []
        self._done = True
        self._listed = None
        self._cb = None
        self._refresh_run_list()
        # with no run attached, a run chosen in a run menu shows its GAN health (from its history.json)
        pickers = [k.picker for k in kinds.kinds() if k.picker and k.picker in state.param]
        state.param.watch(lambda event: self.show_selected(event.new), sorted(set(pickers)))
        self.show_selected(next((getattr(state, p) for p in pickers if getattr(state, p)), None))
        if _served():
            self._cb = pn.state.add_periodic_callback(self.poll, period=700)
            pn.state.on_session_destroyed(self._session_destroyed)

    @property
    def settings(self):
        """The settings form of the chosen model."""
        return self.forms[self.mode.value]

    def settings_for(self, kind: str):
        """The settings form of the registered kind named ``kind``."""
        return self.forms[self._form_kinds[kind]]

    # ------------------------------------------------------------------ URL parameters
    def _apply_url_parameters(self, values: dict):
        """URL query parameters that could not be applied together: apply each valid one, name the
        rejected ones in the page."""
        rejected = []
        for name, value in values.items():
            try:
                self._url_form.param.update(**{name: value})
            except Exception:
                p = self._url_form.param[name]
                allowed = f"allowed {p.bounds[0]} … {p.bounds[1]}" if getattr(p, "bounds", None) else "invalid"
                rejected.append(f"{name}={value} ({allowed})")
        message = "URL parameters rejected: " + ", ".join(rejected) + "; the other parameters were applied."
        if rejected and message != getattr(self, "_url_message", None):  # sync re-applies on each sync() call
            self._url_message = message
            self.state.notices.error(message)

    # ------------------------------------------------------------------ start, cancel, attach
    def _config(self):
        return self.settings.to_config(self.state)

    def _start(self, _=None):
        try:
            settings = self.settings
            cfg = settings.to_config(self.state)
            registry.prune_runs(ui_state.RUNS / "ui")
            rundir = new_run_dir()
            registry.submit(rundir, cfg, label=settings.describe())
        except Exception as exc:
            self.status.object = f"**Could not start:** {describe(exc)}"
            self.state.notices.error(f"Could not start the run: {describe(exc)}")
            return
        self.attach(rundir)

    def attach(self, rundir):
        """Show (and let this session cancel) a queued, running or finished run of the registry."""
        if not rundir or registry.get_entry(rundir) is None and registry.get_run(rundir) is None:
            return
        self.rundir = Path(rundir)
        self._seen, self._points, self._beta_steps, self._done = 0, [], [], False
        self._epochs = []
        self._show_gan()
        self._show_fit()
        self.steps_table.object = ""
        self._set_progress(0)
        self.progress.visible = True
        self.curve.object = loss_curves([])
        self.curve_box.visible, self.no_run.visible = False, True
        self.no_run.object = "No loss values yet: the curves appear after the first training steps."
        self.start_button.disabled, self.cancel_button.disabled = True, False
        self.status.object = f"Attached to run `{self.rundir}`."
        self.poll()

    def _cancel(self, _=None):
        if self.rundir is not None:
            registry.cancel(self.rundir)
            self.poll()

    def _cancel_selected(self):
        if self.run_select.value:
            registry.cancel(self.run_select.value)
            self.poll()

    def _session_destroyed(self, session_context):
        if self._cb is not None:
            self._cb.stop()
            self._cb = None

    # ------------------------------------------------------------------ polling
    def _refresh_run_list(self):
        active = registry.entries(active_only=True)
        listed = [(str(e.rundir), e.state, registry.queue_position(e.rundir)) for e in active]
        if listed == self._listed:
            return
        self._listed = listed
        rows = []
        for e, (_, st, pos) in zip(active, listed):
            where = f"queued, position {pos}" if pos else st
            rows.append(f"| `{e.rundir.name}` | {e.label} | {where} |")
        self.runs_list.object = ("| run | what | state |\n|---|---|---|\n" + "\n".join(rows)) if rows else \
            "No dashboard run is queued or training on this server."
        self.run_select.options = {f"{e.rundir.name} ({s})": str(e.rundir) for e, (_, s, _p) in zip(active, listed)}
        self.attach_button.disabled = self.cancel_other_button.disabled = not active

    @guarded("Train page")
    def poll(self):
        """Read new events of the attached run and update progress, status, curves and the list of
        the server's dashboard runs (the periodic callback of a served page)."""
        self._refresh_run_list()
        if self.rundir is None or self._done:
            return
        entry = registry.get_entry(self.rundir)
        run = registry.get_run(self.rundir)
        if entry is not None and entry.state in ("queued", "starting"):
            pos = registry.queue_position(self.rundir)
            n_active = len(registry.active_runs())
            self.status.object = (f"**Queued** (position {pos}): {n_active} run(s) training on this server, "
                                  f"at most {registry.max_active_runs()} at a time. Run `{self.rundir}`.")
            return
        if run is None:
            if entry is not None and not entry.active:  # cancelled while queued, or failed to start
                self._finish(entry.state, entry.message)
            return
        finished = not run.running  # read before the events: a finished run's last β step is never missed
        events = run.events_since(self._seen)
        if self._seen == 0 and not events:
            self.status.object = f"Started run `{self.rundir}`: loading the data …"
        self._seen += len(events)
        for ev in events:
            if ev["type"] == "step" and "beta_step" in ev:
                self._anneal_step(ev)
            elif ev["type"] == "beta_step":
                self._beta_steps.append(ev)
                self.steps_table.object = self._steps_markdown()
            elif ev["type"] == "step":
                epochs = ev["epoch"] + (ev["step"] + 1) / ev["steps"]  # epochs done, fractional
                point = {**{k: v for k, v in ev.items() if isinstance(v, float)}, "epoch": epochs}
                if "loss" not in ev and "d_loss" in ev:  # a GAN step (HadML): its losses by name in the legend
                    point.update({GAN_LOSSES[k]: ev[k] for k in GAN_LOSSES if k in ev})
                self._points.append(point)
                self._set_progress(int(100 * epochs / max(ev["total_epochs"], 1)),
                                   f"epoch {ev['epoch'] + 1}/{ev['total_epochs']}")
                # a GAN step (HadML) logs its discriminator and generator losses and τ, not loss and lr
                losses = (f"loss {ev['loss']:.4g}" if "loss" in ev else
                          f"D loss {ev.get('d_loss', float('nan')):.4g}, G loss {ev.get('g_loss', float('nan')):.4g}")
                rate = f", lr {ev['lr']:.2g}" if "lr" in ev else (f", τ {ev['tau']:.2g}" if "tau" in ev else "")
                self.status.object = (f"Epoch {ev['epoch'] + 1}/{ev['total_epochs']} ({ev['stage']}), "
                                      f"step {ev['step'] + 1}/{ev['steps']}: {losses}, "
                                      f"{ev['events_per_s']:.0f} events/s{rate}")
            elif ev["type"] == "epoch":
                self._epochs.append(ev)
                if "w2_dual" in ev:  # a calibration run's logged map step (it emits no "step" events)
                    total = max(ev.get("total_epochs", 1), 1)
                    self._set_progress(min(int(100 * ev["epoch"] / total), 99), f"map step {ev['epoch']}/{total}")
                    self.status.object = (f"Fitting the {ev.get('class', '')} map: step {ev['step']}, transport cost "
                                          f"{ev['cost']:.4g}, W₂² dual estimate {ev['w2_dual']:.4g}")
            elif ev["type"] == "evaluating":
                self.status.object = "Maps fitted: evaluating (discriminator AUCs, efficiencies, points for the page) …"
            elif ev["type"] == "nan_rollback":
                self._epochs = [e for e in self._epochs if e["epoch"] < ev["epoch"]]  # the rolled-back epochs
                self.status.object = f"Non-finite loss: rolled back to epoch {ev['epoch']} with lr × {ev['lr_scale']}"
        if events:
            anneal = bool(self._points) and "rate" in self._points[0]
            gan = bool(self._points) and GAN_LOSSES["d_loss"] in self._points[0]
            self.curve.object = loss_curves(self._points, **(dict(terms=("rate", "distortion"), x="beta_step")
                                                              if anneal else dict(terms=tuple(GAN_LOSSES.values()),
                                                                                  x="epoch")
                                                              if gan else dict(x="epoch")))
            shown = len(self._points) >= 2
            self.curve_box.visible, self.no_run.visible = shown, not shown
            if any(ev["type"] in ("epoch", "nan_rollback") for ev in events):
                self._show_gan()
                self._show_fit()
        if finished:
            self._finish(run.status, run.message)

    def _finish(self, status: str, message: str = ""):
        self._done = True
        self.start_button.disabled, self.cancel_button.disabled = False, True
        if status == "done":
            self._set_progress(100, "finished")
            self.status.object = f"**Done.** Run `{self.rundir}` is now selectable in the Run menu."
            self.state.refresh_runs(select=str(self.rundir))
        else:  # one message per event: "**cancelled** by the user", not "cancelled cancelled by the user"
            rest = message[len(status):] if message.lower().startswith(status.lower()) else f": {message}" if message else ""
            self.status.object = f"**{status}**{rest}"

    def _show_gan(self, what: str = "this run"):
        """The GAN-health plots of ``self._epochs`` (the attached run's epochs, or a selected run's
        history), shown when the records hold critics' Wasserstein estimates (keys ``w_*``), hidden
        otherwise."""
        shown = has_critics(self._epochs)
        if shown:
            self.gan_title.object = (f"#### GAN health per epoch of {what}: critics, gradient penalties, "
                                     "generator terms")
            for pane, plot in zip(self.gan_panes, gan_health_curves(self._epochs)):
                pane.object = plot
        self.gan_box.visible = shown

    @guarded("Train page")
    def show_selected(self, rundir):
        """The GAN health of the run ``rundir`` chosen in a run menu (its ``history.json``), unless this
        page is attached to a dashboard run (whose curves it keeps)."""
        if self.rundir is not None or not rundir:
            return
        self._epochs = read_history(rundir)
        self._show_gan(f"the selected run `{Path(rundir).name}`")
        self._show_fit(f"the selected run `{Path(rundir).name}`")

    def _show_fit(self, what: str = "this run"):
        """The tagger's (loss, validation loss, validation AUC per epoch) or the calibration's
        (transport cost and W₂ dual estimate per logged step, one line per class) curves of
        ``self._epochs``, shown when the records are of such a run, hidden otherwise."""
        if is_calibration_history(self._epochs):
            plots, title = calibration_curves(self._epochs), f"#### Map fitting of {what}, one line per class"
        elif is_tagger_history(self._epochs):
            plots, title = tagger_curves(self._epochs), f"#### Tagger training of {what}, per epoch"
        elif is_hadml_history(self._epochs):
            plots, title = hadml_curves(self._epochs), f"#### HadML training of {what}, per epoch"
        else:
            self.fit_box.visible = False
            return
        self.fit_title.object = title
        if self.rundir is not None:
            self.no_run.visible = False
        for pane, plot in zip(self.fit_panes, plots):
            pane.object = plot
        self.fit_box.visible = True

    def _anneal_step(self, ev):
        """Progress of an annealing run: finished β steps plus the current step's epochs counted
        against its ``max_epochs`` (an early stop makes the bar jump ahead)."""
        in_step = (ev["epoch"] + (ev["batch"] + 1) / ev["batches"]) / ev["max_epochs"]
        self._points.append({"beta_step": ev["beta_step"] + min(in_step, 1.0), "rate": ev["rate"],
                             "distortion": ev["distortion"]})
        frac = (ev["beta_step"] + min(in_step, 1.0)) / max(ev["total_steps"], 1)
        self._set_progress(min(int(100 * frac), 99), f"β step {ev['beta_step'] + 1}/{ev['total_steps']}")
        self.status.object = (f"β step {ev['beta_step'] + 1}/{ev['total_steps']} ({ev['pass_name']}, "
                              f"β = {ev['beta']:.3g}), epoch {ev['epoch'] + 1}, batch {ev['batch'] + 1}/{ev['batches']}: "
                              f"R {ev['rate']:.3g}, D {ev['distortion']:.3g}, {ev['jets_per_s']:.0f} jets/s")

    def _set_progress(self, percent: int, what: str = ""):
        """The bar and its text, e.g. "epoch 3/10 (30 %)"."""
        self.progress.value = percent
        self.progress_text.object = f"{what} ({percent} %)" if what else ""

    def _steps_markdown(self):
        rows = "\n".join(f"| {s['beta_step'] + 1} | {s['pass_name']} | {s['beta']:.3g} | {s['epochs']} | "
                         f"{s['stopped']} | {s['rate']:.3g} | {s['distortion']:.3g} |" for s in self._beta_steps)
        return ("| # | pass | β | epochs | stopped | R | D |\n|---|---|---|---|---|---|---|\n" + rows)

    def _form(self, width: int = 300):
        def inputs(names_types: dict, w: int):  # typed inputs as wide as the form (a bare class gets 300 px)
            return {k: {"type": t, "width": w - 20} for k, t in names_types.items()}

        def fit(p, w: int):  # no widget wider than the form (Param's selects default to 300 px)
            for widget in p.layout:
                if getattr(widget, "width", None) and widget.width > w - 20:
                    widget.width = w - 20
            return p

        settings = self.settings
        types = getattr(settings, "WIDGETS", {})
        cards = getattr(settings, "CARDS", {})  # card title → parameters shown in a collapsed card
        carded = {n for names in cards.values() for n in names}
        main = [n for n in settings.param if n != "name" and n not in carded]
        form = pn.Column(pn.pane.Markdown(f"### {getattr(settings, 'TITLE', self.mode.value)}"),
                         fit(pn.Param(settings, parameters=main, show_name=False, width=width,
                                      widgets=inputs(types, width)), width))
        for title, names in cards.items():
            inner = width - 30
            form.append(pn.Card(fit(pn.Param(settings, parameters=list(names), show_name=False, width=inner,
                                             widgets=inputs(types, inner)), inner),
                                title=title, collapsed=True, width=width))
        return form

    def controls(self, width: int = 250):
        """The start/cancel buttons (first: never below the fold), the model choice and its settings
        (the sidebar)."""
        return pn.Column(pn.Row(self.start_button, self.cancel_button), self.mode,
                         pn.bind(lambda _: self._form(width), self.mode))

    def content(self):
        """Progress, loss curve, β steps and the server's dashboard runs."""
        return pn.Column(pn.Row(self.progress_text, self.progress, sizing_mode="stretch_width"), self.status,
                         self.no_run, self.curve_box, self.gan_box, self.fit_box, self.steps_table,
                         pn.pane.Markdown("#### Dashboard runs on this server"), self.runs_list,
                         pn.FlexBox(self.run_select, self.attach_button, self.cancel_other_button),
                         sizing_mode="stretch_width")

    def __panel__(self):
        return pn.Row(self.controls(300), self.content())


def read_history(rundir) -> list[dict]:
    """A run's per-epoch records (``history.json``), [] when it has none or it is unreadable."""
    import json

    try:
        records = json.loads((Path(rundir) / "history.json").read_text())
    except (OSError, ValueError):
        return []
    return [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []


def _served() -> bool:
    """Whether this runs inside a served session (periodic callbacks need one)."""
    doc = pn.state.curdoc
    return doc is not None and doc.session_context is not None


# widget labels in words and symbols (param would show "Lam", "Lr", "Beta min")
_LABELS = {"epochs": "epochs", "finetune_epochs": "fine-tune epochs (decoder only)", "batch_size": "batch size",
           "n_projections": "SW projections", "lam": "λ (weight of SW(z, E(x)))", "beta_anchor": "β_E = β_D (anchor stage)",
           "tau": "τ (weight of SW(x, D(z)))", "lr": "learning rate", "max_events": "training events (0: all)",
           "device": "device", "seed": "seed", "jets": "W jets", "schedule": "β schedule", "n_betas": "number of β steps",
           "beta_min": "smallest β", "beta_max": "largest β", "max_epochs": "epochs per β step (at most)",
           "steps_per_epoch": "batches per epoch (0: one pass)", "latent": "latent dimensions", "width": "network width",
           "critic_lr": "critic learning rate", "n_critic": "critic steps per generator step",
           "gp_weight": "λ_GP (gradient-penalty weight)", "paired_fraction": "paired fraction (0 … 1)",
           "signal": "signal jets (W, label 1)", "background": "background jets (QCD, label 0)",
           "latents": "latents file (latents.nc)", "tagger": "tagger run ('': the latents file's)",
           "steps": "map steps per class", "batch": "batch size", "fit_fraction": "fit fraction (rest evaluates)",
           "data": "cluster file (.nc or Herwig .dat)", "version": "HadML v1 (per cluster) or v2 (per event)",
           "target": "v2: target cluster file ('data')", "init_from": "v2: start from v1 run",
           "lr_g": "generator learning rate", "lr_d": "discriminator learning rate",
           # the weights' labels short, so that they fit the sidebar; the full text is their tooltip
           **{t: generator_term_label(t) for t in TERMS},
           "sw_weight": "SW_z̃ and SW_x̃ (marginal sliced W²)"}
for _cls in (TrainSettings, TtbarSettings, AnnealSettings, TurboSimSettings, TaggerSettings, CalibrationSettings,
             HadMLSettings):
    for _name, _text in _LABELS.items():
        if _name in _cls.param:
            _cls.param[_name].label = _text
TurboSimSettings.param["lr"].label = "generator learning rate"
TaggerSettings.param["max_events"].label = "jets per class (0: all)"
HadMLSettings.param["max_events"].label = "events per file (0: all)"
HadMLSettings.param["batch_size"].label = "batch size (clusters; v2: events)"
