"""The one registry of model kinds: name → config, trainer, model, presets, commands, app pages.

Everything that depends on *which* model a run holds — ``load_run``, ``run_kind``, starting a
run, ``otviz train PRESET``, ``otviz evaluate``/``dimension``, the Train page and the run pickers —
looks the kind up here instead of testing names. Classes and functions are named as dotted
strings ``"module:attribute"`` and imported only when used, so reading the registry imports
neither torch nor Panel. Adding a system (Turbo-Sim, calibration, HadML) is one
:func:`register` call plus its modules; see ARCHITECTURE.md.

A run directory's ``config.json`` names its kind in its ``"kind"`` field (``Kind.tag``); OTUS
configs predate the field and have none (``tag=None``).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field


def resolve(dotted: str):
    """The object named by ``"package.module:attribute"``."""
    module, _, attr = dotted.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class Page:
    """One page of the app: its tab ``title``, ``key`` (``app.KEY``, unique in the app) and its
    Viewer class ``view`` (dotted name), made as ``View(state)`` when its tab is first shown."""

    title: str
    key: str
    view: str


@dataclass(frozen=True)
class Kind:
    """One model kind. Dotted names (``"module:attribute"``) are resolved on use."""

    name: str  # what ``run_kind`` returns, e.g. "otus"
    description: str  # "an OTUS run": used in messages
    tag: str | None  # the "kind" field of its config.json (None: the field is absent)
    config: str  # config dataclass with from_json/to_json, validate() and ``model_config``
    run: str  # background run class: Run(rundir, config, restart=False) with start/run_blocking/cancel
    model: str  # model class, built as Model(config.model_config)
    presets: dict[str, str] = field(default_factory=dict)  # preset name → config factory
    train_command: str | None = None  # ``otviz train PRESET``: function(args) -> exit status
    cli_options: tuple[str, ...] = ()  # ``otviz train`` options only this kind takes (argparse dests)
    commands: tuple[str, ...] = ()  # ``otviz`` subcommands that take a run of this kind
    products: tuple[str, ...] = ()  # computed into the run directory when a dashboard run ends: f(rundir)
    picker: str | None = None  # the ExplorerState parameter selecting a run of this kind (made if absent)
    pages: tuple[Page, ...] = ()  # the app's pages showing a run of this kind, in tab order
    train_settings: str | None = None  # the Train page's settings class (param.Parameterized; see otviz.ui.train_view)
    label: str = ""  # short name in the app ("OTUS": its picker is "OTUS run"); default ``name``
    train_label: str = ""  # its choice on the Train page ("OTUS Z→ee"); default ``label``
    variant_field: str = ""  # a config.json field naming the run's variant in run menus ("HadML v2")
    report: str | None = None  # ``otviz evaluate`` of a kind evaluated when training ends: f(rundir) -> (text, dict)

    def ui_label(self, config: dict | None = None) -> str:
        """The kind's short name; with a run's ``config`` dict also its variant (``variant_field``)."""
        base = self.label or self.name
        variant = (config or {}).get(self.variant_field) if self.variant_field else None
        return f"{base} {variant}" if isinstance(variant, str) and variant else base

    def train_choice(self) -> str:
        return self.train_label or self.ui_label()

    def config_class(self):
        return resolve(self.config)

    def run_class(self):
        return resolve(self.run)

    def model_class(self):
        return resolve(self.model)

    def build_model(self, config):
        """An untrained model of this kind for ``config`` (on the current torch device context)."""
        return self.model_class()(config.model_config)

    def preset(self, name: str):
        return resolve(self.presets[name])


KINDS: dict[str, Kind] = {}


def register(kind: Kind, replace: bool = False) -> Kind:
    """Add a kind; a second kind with the same name, tag or preset is refused unless ``replace``."""
    if not replace:
        if kind.name in KINDS:
            raise ValueError(f"kind {kind.name!r} is already registered")
        for other in KINDS.values():
            if other.tag == kind.tag:
                raise ValueError(f"kind {kind.name!r}: config tag {kind.tag!r} is already {other.name!r}'s")
            clash = set(other.presets) & set(kind.presets)
            if clash:
                raise ValueError(f"kind {kind.name!r}: preset {sorted(clash)[0]!r} is already {other.name!r}'s")
    KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    KINDS.pop(name, None)


def get(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"kind: unknown model kind {name!r} (known: {', '.join(KINDS)})") from None


def kinds() -> list[Kind]:
    return list(KINDS.values())


def presets() -> dict[str, Kind]:
    """Preset name (``otviz train`` choice) → its kind, in registration order."""
    return {p: k for k in KINDS.values() for p in k.presets}


def for_preset(preset: str) -> Kind:
    try:
        return presets()[preset]
    except KeyError:
        raise ValueError(f"model: unknown preset {preset!r} (known: {', '.join(presets())})") from None


def for_config_dict(d) -> Kind | None:
    """The kind of a parsed config.json (by its "kind" field), or None."""
    if not isinstance(d, dict):
        return None
    tag = d.get("kind")
    return next((k for k in KINDS.values() if k.tag == tag), None)


def for_config(config) -> Kind:
    """The kind whose config class ``config`` is an instance of; of several (a kind's config class
    derived from another's, e.g. tt̄ OTUS from OTUS), the most specific: the longest MRO."""
    matches = [k for k in KINDS.values() if isinstance(config, k.config_class())]
    if not matches:
        raise TypeError(f"config: {type(config).__name__} is not the config of any registered kind")
    return max(matches, key=lambda k: len(k.config_class().__mro__))


def for_command(command: str) -> list[Kind]:
    """The kinds whose runs ``otviz COMMAND`` takes."""
    return [k for k in KINDS.values() if command in k.commands]


register(Kind(
    name="otus", description="an OTUS run", tag=None,
    config="otviz.train.config:TrainConfig", run="otviz.train.trainer:TrainingRun", model="otviz.models.otus:OTUS",
    presets={"otus-zee": "otviz.train.config:otus_zee_config"},
    train_command="otviz.cli:_cmd_train_otus",
    cli_options=("epochs", "finetune_epochs", "test", "n_projections", "checkpoint_every", "no_mass_feature",
                 "paired_fraction"),
    commands=("evaluate",), products=("otviz.train.products:evaluate_run",), picker="run_path",
    pages=(Page("Data", "data", "otviz.ui.data_view:DataView"),
           Page("Transport", "transport", "otviz.ui.transport_view:TransportView"),
           Page("Residuals", "residuals", "otviz.ui.residuals_view:ResidualsView")),
    train_settings="otviz.ui.train_view:TrainSettings", label="OTUS", train_label="OTUS Z→ee",
))
register(Kind(
    name="otus-ttbar", description="a tt̄ OTUS run", tag="otus-ttbar",
    config="otviz.train.config:TtbarConfig", run="otviz.train.trainer:TtbarTrainingRun",
    model="otviz.models.otus:OTUS", presets={"otus-ttbar": "otviz.train.config:otus_ttbar_config"},
    train_command="otviz.cli:_cmd_train_otus", cli_options=KINDS["otus"].cli_options,
    commands=("evaluate",), products=("otviz.train.products:evaluate_run",), picker="run_path",
    pages=KINDS["otus"].pages, train_settings="otviz.ui.train_view:TtbarSettings", label="OTUS tt̄", train_label="OTUS tt̄",
))
register(Kind(
    name="emdvae", description="an EMD-VAE annealing run", tag="emdvae-anneal",
    config="otviz.train.annealing:AnnealConfig", run="otviz.train.annealing:AnnealingRun",
    model="otviz.models.emdvae:EMDVAE",
    presets={"emdvae-wjets": "otviz.train.annealing:emdvae_wjets_config"},
    train_command="otviz.cli:_cmd_anneal",
    cli_options=("schedule", "betas", "beta_min", "beta_max", "max_epochs", "steps_per_epoch", "lr", "latent",
                 "width", "emd_backend", "threads", "workers", "scheduler"),
    commands=("dimension",), picker="vae_path",
    pages=(Page("Latent traversal", "traversal", "otviz.ui.traversal_view:TraversalView"),
           Page("Dimensionality", "dimension", "otviz.ui.dimension_view:DimensionView")),
    train_settings="otviz.ui.train_view:AnnealSettings", label="EMD-VAE", train_label="EMD-VAE β-annealing",
))

register(Kind(
    name="turbosim", description="a Turbo-Sim run", tag="turbosim",
    config="otviz.train.turbosim:TurboSimConfig", run="otviz.train.turbosim:TurboSimRun",
    model="otviz.models.turbosim:TurboSim",
    presets={"turbosim-ttbar": "otviz.train.turbosim:turbosim_ttbar_config",
             "turbosim-zee": "otviz.train.turbosim:turbosim_zee_config"},
    train_command="otviz.cli:_cmd_train_otus",
    cli_options=("epochs", "test", "checkpoint_every", "paired_fraction", "sw_weight"),
    commands=("evaluate",), products=("otviz.train.products:evaluate_run",), picker="run_path",
    pages=KINDS["otus"].pages, label="Turbo-Sim", train_label="Turbo-Sim tt̄",
    train_settings="otviz.ui.train_view:TurboSimSettings",
))

register(Kind(
    name="tagger", description="a jet-tagger run", tag="tagger",
    config="otviz.train.tagger:TaggerConfig", run="otviz.train.tagger:TaggerRun",
    model="otviz.models.tagger:PFNTagger", presets={"tagger-wjets": "otviz.train.tagger:tagger_wjets_config"},
    train_command="otviz.cli:_cmd_train_tagger", cli_options=("epochs", "checkpoint_every", "lr"),
    pages=(), train_settings="otviz.ui.train_view:TaggerSettings", label="Tagger", train_label="W-vs-QCD tagger",
))

register(Kind(
    name="otcal", description="an OT calibration run", tag="otcal",
    config="otviz.train.calibration:CalibrationConfig", run="otviz.train.calibration:CalibrationRun",
    model="otviz.train.calibration:CalibrationMaps", presets={"otcal-wjets": "otviz.train.calibration:otcal_wjets_config"},
    train_command="otviz.cli:_cmd_train_otcal", cli_options=("tagger", "steps", "lr", "checkpoint_every"),
    commands=("evaluate",), report="otviz.cli:calibration_report", picker="calibration_path",
    pages=(Page("Calibration", "calibration", "otviz.ui.calibration_view:CalibrationView"),),
    train_settings="otviz.ui.train_view:CalibrationSettings",
    label="OT calibration", train_label="OT calibration of tagger latents",
))

register(Kind(
    name="hadml", description="a HadML run", tag="hadml",
    config="otviz.train.hadml:HadMLConfig", run="otviz.train.hadml:HadMLRun", model="otviz.models.hadml:HadML",
    presets={"hadml": "otviz.train.hadml:hadml_config", "hadml-v2": "otviz.train.hadml:hadml_v2_config"},
    train_command="otviz.cli:_cmd_train_hadml", cli_options=("epochs", "checkpoint_every", "target", "init_from"),
    picker="hadml_path", pages=(Page("Hadronisation", "hadronisation", "otviz.ui.hadronisation_view:HadronisationView"),),
    train_settings="otviz.ui.train_view:HadMLSettings", label="HadML", train_label="HadML cluster hadronisation",
    variant_field="mode",
))
