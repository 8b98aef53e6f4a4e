"""Training configuration: plain dataclasses that round-trip through JSON in the run directory."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from ..models.otus import GeneratorConfig, OTUSConfig


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
    model_config: OTUSConfig = field(default_factory=OTUSConfig)

    @property
    def total_epochs(self) -> int:
        return sum(s.epochs for s in self.stages)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        d = json.loads(text)
        d["stages"] = [Stage(**s) for s in d.get("stages", [])]
        d["model_config"] = OTUSConfig.from_dict(d["model_config"])
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown training config fields: {sorted(unknown)}")
        return cls(**d)


def otus_zee_config(epochs: int = 90, finetune_epochs: int = 0, **overrides) -> TrainConfig:
    """The staged Z→ee schedule of OTUS §6.3.3 scaled to ``epochs``: an anchor stage
    (βE = βD = 50, the paper's 80 of 880 epochs ≈ 9 %), then the anchors off with the learning
    rate decaying as 1/(1 + e/10); optionally a decoder-only fine-tune on SW(x, D(z))."""
    anchor = max(1, round(epochs * 80 / 880))
    stages = [
        Stage("anchor", anchor, lam=1.0, beta_e=50.0, beta_d=50.0, tau=1.0),
        Stage("main", max(epochs - anchor, 0), lam=1.0, tau=1.0, lr_decay=0.1),
    ]
    if finetune_epochs:
        stages.append(Stage("decoder-finetune", finetune_epochs, lr=1e-4, train="decoder"))
    cfg = TrainConfig(
        model="otus-zee",
        stages=[s for s in stages if s.epochs > 0],
        model_config=OTUSConfig(
            z_particles=("e-", "e+"),
            x_particles=("e-", "e+"),
            encoder=GeneratorConfig(hidden=128, input_residual=True),
            decoder=GeneratorConfig(hidden=128, input_residual=True),
        ),
    )
    for k, v in overrides.items():
        if not hasattr(cfg, k):
            raise ValueError(f"unknown training option {k!r}")
        setattr(cfg, k, v)
    return cfg


PRESETS = {"otus-zee": otus_zee_config}
