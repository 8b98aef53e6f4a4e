"""Training configuration: plain dataclasses that round-trip through JSON in the run directory."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import ClassVar

from ..errors import ConfigError, check_bounds, check_choice, check_number
from ..models.otus import AcceptanceCuts, GeneratorConfig, OTUSConfig

DEVICES = ("auto", "cpu", "cuda")


def check_device(owner: str, device) -> None:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    if not (device in DEVICES or (isinstance(device, str) and device.startswith("cuda:") and device[5:].isdigit())):
        raise ConfigError(f"{owner}.device = {device!r}: must be auto, cpu, cuda or cuda:N", "device", device,
                          "auto | cpu | cuda | cuda:N", reason="must be auto, cpu, cuda or cuda:N")


def _check_str(owner: str, name: str, value, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{owner}.{name} = {value!r}: must be a non-empty string", name, value, "a non-empty string",
                          reason="must be a non-empty string")


@dataclass
class Stage:
    """One stage of an OTUS schedule (OTUS §6.3.3).

    Loss (Eq. 12 with the optional Eq. 14 term):
        MSE(x, x̃) + λ·SW(z, z̃) + βE·anchor(x, z̃) + βD·anchor(z, x̃′) + τ·SW(x, x̃′)
    ``train="decoder"`` freezes the encoder and minimises SW(x, D(z)) alone (decoder fine-tuning).
    The learning rate in epoch e of the stage is lr / (1 + lr_decay·e).
    """

    name: str
    epochs: int
    lam: float = 1.0
    beta_e: float = 0.0
    beta_d: float = 0.0
    tau: float = 0.0
    lr: float = 1e-3
    lr_decay: float = 0.0
    train: str = "both"  # "both" | "decoder"

    # field → inclusive (min, max); a stage of 0 epochs is skipped
    BOUNDS: ClassVar[dict[str, tuple]] = {
        "epochs": (0, 5000), "lam": (0.0, 1e6), "beta_e": (0.0, 1e6), "beta_d": (0.0, 1e6), "tau": (0.0, 1e6),
        "lr": (1e-8, 1.0), "lr_decay": (0.0, 1e3),
    }

    def __post_init__(self):
        self.validate()

    def validate(self) -> "Stage":
        """Raise :class:`otviz.errors.ConfigError` naming the first field out of range."""
        _check_str("Stage", "name", self.name)
        check_bounds(self)
        check_choice(f"Stage {self.name!r}", "train", self.train, ("both", "decoder"))
        return self


@dataclass
class TrainConfig:
    model: str = "otus-zee"
    train_data: str = "data/zee_train.nc"
    test_data: str | None = "data/zee_test.nc"
    stages: list[Stage] = field(default_factory=list)
    batch_size: int = 20_000
    n_projections: int = 1000
    loss_space: str = "standardised"  # "standardised" | "raw" (GeV)
    anchor_particle: str = "e-"
    mass_feature: bool = True  # append the system's invariant mass to the distance features
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 5  # epochs
    max_nan_retries: int = 3
    nan_lr_factor: float = 0.5
    max_events: int | None = None  # subsample the training data (quick runs, tests)
    # semi-supervised OTUS (§7, Eq. 20–21): this fraction of the training events is also seen as
    # (z, x) pairs, adding paired_weight·[c(x, D(z)) + c(z, E(x))] on them; 0: unsupervised (the paper)
    paired_fraction: float = 0.0
    paired_weight: float = 1.0
    model_config: OTUSConfig = field(default_factory=OTUSConfig)

    # field → inclusive (min, max), None for open; ``epochs`` / ``finetune_epochs`` are the
    # preset's arguments (``otus_zee_config``): the main schedule and the decoder fine-tune
    BOUNDS: ClassVar[dict[str, tuple]] = {
        "epochs": (1, 5000), "finetune_epochs": (0, 5000),
        "batch_size": (1, 10_000_000), "n_projections": (1, 10_000), "seed": (0, 2 ** 32 - 1),
        "checkpoint_every": (1, 5000), "max_nan_retries": (0, 100), "nan_lr_factor": (1e-3, 1.0),
        "max_events": (1, 100_000_000), "paired_fraction": (0.0, 1.0), "paired_weight": (0.0, 1e6),
    }

    def __post_init__(self):
        self.validate()

    def validate(self) -> "TrainConfig":
        """Raise :class:`otviz.errors.ConfigError` (a ValueError) naming the first field that is
        out of range or of the wrong type; called on construction, after the presets' overrides
        and before a run directory is created."""
        own = "TrainConfig"
        _check_str(own, "model", self.model)
        _check_str(own, "train_data", self.train_data)
        _check_str(own, "test_data", self.test_data, optional=True)
        check_bounds(self)
        check_choice(own, "loss_space", self.loss_space, ("standardised", "raw"))
        check_device(own, self.device)
        if not isinstance(self.mass_feature, bool):
            raise ConfigError(f"{own}.mass_feature = {self.mass_feature!r}: must be true or false", "mass_feature",
                              self.mass_feature, reason="must be true or false")
        if not isinstance(self.stages, list) or not all(isinstance(s, Stage) for s in self.stages):
            raise ConfigError(f"{own}.stages: must be a list of Stage", "stages")
        for i, s in enumerate(self.stages):
            try:
                s.validate()
            except ConfigError as exc:
                raise exc.nested(f"stages[{i}]")
        hi = self.BOUNDS["epochs"][1] + self.BOUNDS["finetune_epochs"][1]
        if not 1 <= self.total_epochs <= hi:
            raise ConfigError(f"{own}.stages: {self.total_epochs} epochs in all; allowed 1 … {hi}", "epochs",
                              self.total_epochs, f"1 … {hi}",
                              reason=f"{self.total_epochs} epochs in all stages; allowed 1 … {hi}")
        mc = self.model_config
        if not isinstance(mc, OTUSConfig):
            raise ConfigError(f"{own}.model_config: must be an OTUSConfig", "model_config")
        for name in ("z_particles", "x_particles"):
            parts = getattr(mc, name)
            if not parts or not all(isinstance(p, str) and p for p in parts):
                raise ConfigError(f"OTUSConfig.{name} = {parts!r}: must be a non-empty list of particle names", name)
        for name, g in (("encoder", mc.encoder), ("decoder", mc.decoder)):
            if not isinstance(g, GeneratorConfig):
                raise ConfigError("OTUSConfig.encoder/decoder: must be GeneratorConfig", "model_config")
            if hasattr(g, "validate"):
                try:
                    g.validate()
                except ConfigError as exc:
                    raise exc.nested(f"model_config.{name}")
        if self.anchor_particle not in mc.x_particles or self.anchor_particle not in mc.z_particles:
            raise ConfigError(f"{own}.anchor_particle = {self.anchor_particle!r}: must be one of the particles in "
                              f"both z {list(mc.z_particles)} and x {list(mc.x_particles)}", "anchor_particle")
        return self

    @property
    def total_epochs(self) -> int:
        return sum(s.epochs for s in self.stages)

    def disk_plan(self) -> tuple[int, int]:
        """(weight files kept besides model.pt and the checkpoint, epochs at most): the run's
        disk estimate (``otviz.train.registry.estimate_disk_bytes``)."""
        return 0, self.total_epochs

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        d = json.loads(text)
        if not isinstance(d, dict):
            raise ConfigError("a training config must be a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"unknown training config fields: {sorted(unknown)}", sorted(unknown)[0],
                              reason=f"unknown field{'s' * (len(unknown) > 1)} {', '.join(sorted(unknown))}")
        try:
            stages = []
            for i, s in enumerate(d.get("stages", [])):
                try:
                    stages.append(Stage(**s))
                except ConfigError as exc:
                    raise exc.nested(f"stages[{i}]")
            d["stages"] = stages
            for name in ("encoder", "decoder"):  # name the generator of a bad field
                try:
                    GeneratorConfig(**d["model_config"][name])
                except ConfigError as exc:
                    raise exc.nested(f"model_config.{name}")
            try:
                d["model_config"] = OTUSConfig.from_dict(d["model_config"])
            except ConfigError as exc:
                raise exc.nested("model_config")
            return cls(**d)
        except ConfigError:
            raise
        except (TypeError, KeyError, AttributeError) as exc:
            raise ConfigError(f"malformed training config: {type(exc).__name__}: {exc}") from exc


def otus_zee_config(epochs: int = 90, finetune_epochs: int = 20, **overrides) -> TrainConfig:
    """The staged Z→ee schedule of OTUS §6.3.3 scaled to ``epochs``: an anchor stage
    (βE = βD = 50, the paper's 80 of 880 epochs ≈ 9 %), then the anchors off with the learning
    rate decaying as 1/(1 + e/10); then ``finetune_epochs`` (default 20, the shipped run's; 0: none)
    of decoder-only fine-tuning on SW(x, D(z)) at lr 1e-3 (it sets the decoder's noise, hence the
    m_ee width of D(z), which the joint loss leaves too narrow). Batches of 5,000 (20 Adam steps
    per epoch on the 100k shipped events); both generators start near the identity (``out_init_scale`` 0.1).
    Masses of the Minkowski layer: the table ``otviz.physics.masses`` (m_e)."""
    for name, value in (("epochs", epochs), ("finetune_epochs", finetune_epochs)):
        check_number("otus_zee_config", name, value, *TrainConfig.BOUNDS[name], integer=True)
    anchor = max(1, round(epochs * 80 / 880))
    stages = [
        Stage("anchor", anchor, lam=1.0, beta_e=50.0, beta_d=50.0, tau=1.0),
        Stage("main", max(epochs - anchor, 0), lam=1.0, tau=1.0, lr_decay=0.1),
    ]
    if finetune_epochs:
        stages.append(Stage("decoder-finetune", finetune_epochs, lr=1e-3, train="decoder"))
    cfg = TrainConfig(
        model="otus-zee",
        stages=[s for s in stages if s.epochs > 0],
        batch_size=5000,
        model_config=OTUSConfig(
            z_particles=("e-", "e+"),
            x_particles=("e-", "e+"),
            encoder=GeneratorConfig(hidden=128, input_residual=True, out_init_scale=0.1),
            decoder=GeneratorConfig(hidden=128, input_residual=True, out_init_scale=0.1),
        ),
    )
    for k, v in overrides.items():
        if not hasattr(cfg, k):
            raise ConfigError(f"unknown training option {k!r}", k)
        setattr(cfg, k, v)
    return cfg.validate()


TTBAR_TAG = "otus-ttbar"
TTBAR_Z = ("e-", "nu_e~", "b", "b~", "u", "d~")
TTBAR_X = ("e-", "MET", "jet1", "jet2", "jet3", "jet4")


@dataclass
class TtbarConfig(TrainConfig):
    """An OTUS run on semileptonic tt̄ with a restricted decoder (OTUS §6.2.3, §6.3.2): a
    :class:`TrainConfig` whose config.json names its kind (``"kind": "otus-ttbar"``) and whose
    model config holds the acceptance cuts of S (Eq. 16), so ``load_run`` rebuilds them."""

    kind: str = TTBAR_TAG
    model: str = "otus-ttbar"
    train_data: str = "data/ttbar_train.nc"
    test_data: str | None = "data/ttbar_test.nc"

    def validate(self) -> "TtbarConfig":
        super().validate()
        if self.kind != TTBAR_TAG:
            raise ConfigError(f"TtbarConfig.kind = {self.kind!r}: must be {TTBAR_TAG!r}", "kind", self.kind, TTBAR_TAG)
        if not isinstance(self.model_config.acceptance, AcceptanceCuts):
            raise ConfigError("TtbarConfig.model_config.acceptance: the tt̄ model needs its acceptance cuts "
                              "(restricted decoder, OTUS Eq. 16–19)", "acceptance")
        try:  # residual_pairing may have been set after the model config was built
            self.model_config.check_residual_pairing()
        except ConfigError as exc:
            raise exc.nested("model_config")
        return self

    @classmethod
    def from_json(cls, text: str) -> "TtbarConfig":
        d = json.loads(text)
        if not isinstance(d, dict) or d.get("kind") != TTBAR_TAG:
            got = d.get("kind") if isinstance(d, dict) else None
            raise ConfigError(f"not an {TTBAR_TAG} config (its kind field is {got!r})", "kind", got, TTBAR_TAG)
        return super().from_json(text)


def otus_ttbar_config(epochs: int = 600, finetune_epochs: int = 10, **overrides) -> TtbarConfig:
    """The tt̄ OTUS of §6.2.3/§6.3.3 on CPU: λ = 20, βE = βD = 0 (the input-to-output residual
    makes the anchors redundant), Adam lr 1e-3 for ``epochs``, then ``finetune_epochs`` of
    decoder-only SW(x, p̄_D(x)) with the encoder frozen at lr 1e-4 (the paper: ~1000 + 10 epochs
    of batches of 20,000 on 423k events). Batches of 5,000: 10 Adam steps per epoch on the 50k
    shipped events; pilots on the shared 2-core machine: 1.7 s of CPU per epoch when idle, 5.4 s
    when loaded (load 7–9), so the default takes 17–55 min of CPU.
    Both generators: fixed 18-d N(0, 1) noise, the residual BatchNorm core (K = 64), the
    input-to-output residual, starting near the identity (``out_init_scale`` 0.1); Minkowski
    masses from the table (b 4.7 GeV); acceptance: lepton pT > 10 GeV, |η| < 2.5, four jets
    pT > 20 GeV, |η| < 4.5. No mass coordinate in the distances (the paper's setup)."""
    for name, value in (("epochs", epochs), ("finetune_epochs", finetune_epochs)):
        check_number("otus_ttbar_config", name, value, *TrainConfig.BOUNDS[name], integer=True)
    stages = [Stage("main", epochs, lam=20.0, lr=1e-3)]
    if finetune_epochs:
        stages.append(Stage("decoder-finetune", finetune_epochs, lr=1e-4, train="decoder"))
    gen = dict(hidden=64, conditional_noise=False, noise_dim=18, residual_core=True, input_residual=True,
               out_init_scale=0.1)
    cfg = TtbarConfig(
        stages=stages,
        batch_size=5000,
        mass_feature=False,
        model_config=OTUSConfig(z_particles=TTBAR_Z, x_particles=TTBAR_X, encoder=GeneratorConfig(**gen),
                                decoder=GeneratorConfig(**gen), acceptance=AcceptanceCuts()),
    )
    for k, v in overrides.items():
        if not hasattr(cfg, k):
            raise ConfigError(f"unknown training option {k!r}", k)
        setattr(cfg, k, v)
    return cfg.validate()


PRESETS = {"otus-zee": otus_zee_config, "otus-ttbar": otus_ttbar_config}


def config_to_json(cfg) -> str:
    """A config dataclass as indented JSON (``dataclasses.asdict``: nested configs become objects)."""
    return json.dumps(dataclasses.asdict(cfg), indent=2)


def tagged_config_from_json(cls, text: str, tag: str, what: str, nested=None):
    """``cls`` from the JSON of its ``to_json``: the ``kind`` field must be ``tag``; unknown fields,
    a nested config's errors (``nested``: field → factory from a dict, e.g. ``ModelConfig.from_dict``,
    its ConfigError re-raised as ``field.sub``) and malformed values are a ConfigError naming the
    field; ``what`` names the config in messages ("tagger", "Turbo-Sim", …)."""
    d = json.loads(text)
    if not isinstance(d, dict) or d.get("kind") != tag:
        got = d.get("kind") if isinstance(d, dict) else None
        raise ConfigError(f"not a {tag} config (its kind field is {got!r})", "kind", got, tag)
    unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ConfigError(f"unknown {what} config fields: {sorted(unknown)}", sorted(unknown)[0])
    try:
        for name, make in (nested or {}).items():
            if name in d:
                try:
                    d[name] = make(d[name])
                except ConfigError as exc:
                    raise exc.nested(name)
        return cls(**d)
    except ConfigError:
        raise
    except (TypeError, KeyError, AttributeError) as exc:
        raise ConfigError(f"malformed {what} config: {type(exc).__name__}: {exc}") from exc
