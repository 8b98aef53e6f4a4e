"""β-annealing of the EMD-VAE (Collins, §2 and appendix A.1; Fu et al. 2019).

A schedule is data: a list of passes, each a list of β values. The paper's schedule is a rising
*priming* pass, zig-zag re-sweeps back down, then a rising *production* pass repeating the priming
values; the weights are kept from one β step to the next. Each β step trains until its
validation loss plateaus: the learning rate restarts at ``lr`` for every step, is multiplied by
``lr_factor`` (√0.1) after ``plateau_patience`` epochs without improvement, and the step stops
after ``early_stop_patience`` such epochs or ``max_epochs`` epochs.

Run directory (besides the files of :mod:`otviz.train.trainer`)::

    steps.json                 one record per finished β step: pass, β, epochs, why it stopped,
                               validation rate R, distortion D = ⟨EMD²⟩, loss, per-dimension KL
    steps/NNN_PASS_bBETA.pt    model weights at the end of every β step (atomic)
    checkpoint.pt              after every epoch: model, optimiser, schedule position, plateau
                               state, RNG — a killed run resumes in the middle of a β step

β is dimensionless (EMD in units of H_T·R); ``β × ⟨H_T⟩`` is the resolution in GeV.

Defaults, and where they depart from seed 001 (App. A.1) — each measured on the closed-form case
of one-particle Gaussian jets (``tests/train/test_annealing_gaussian.py``, D₁ and D₂ within 0.35 of
the exact values):

* the encoder inputs are standardised (:meth:`EMDVAE.fit_standardisation`); the paper's code feeds
  raw (pT/H_T, η, cos φ, sin φ). Without it a direction of small spread is never encoded at any β:
  its KL stays 0 and the distortion stays at its variance, however long each step trains;
* an epoch is ``steps_per_epoch`` = 250 batches of 100 (the paper: 1000), at most ``max_epochs``
  = 30 per β step (50), the learning rate cut by √0.1 after 3 epochs without a better validation
  loss (5) and the step stopped after 5 (10): the same plateau criteria on a CPU budget;
* Adam's learning rate restarts at 1e-3 per β step (the paper: 3e-5 for a 1024-wide network;
  the default 128-wide one converges in a few thousand steps at 1e-3, and the plateau cuts
  take it down to 1e-5 and below);
* the preset's schedule is one step at the smallest β followed by the rising production pass
  (``schedule="paper"``: the rising priming pass, a zig-zag and the production pass, about 3×
  the cost), over β ∈ [10^-1.8, 10^0.6] (the paper: 10^-5 … 1 for a 256-d latent).
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from ..data.io import load as load_sample
from ..errors import ConfigError, check_bounds, check_choice, check_number
from ..data.jets import normalised_jets, trim_padding
from ..losses.emdvae import emdvae_loss
from ..models.emdvae import EMDVAE, EMDVAEConfig
from ..paths import resolve as resolve_path
from .trainer import BackgroundRun, TrainingFailed, atomic_torch_save, atomic_write_json, check_sample


@dataclass
class AnnealPass:
    name: str  # "priming" | "zigzag" | "production" | anything
    betas: list[float]


def annealing_schedule(beta_min: float = 10 ** -2.4, beta_max: float = 1.0, n: int = 9,
                       priming: bool = True, zigzags: int = 1, production: bool = True) -> list[AnnealPass]:
    """The paper's schedule shape on ``n`` log-spaced β in [beta_min, beta_max]: a rising priming
    pass, ``zigzags`` down-up-down re-sweeps (each ending at the smallest β), a rising production
    pass. ``priming=False, zigzags=0`` gives a production pass alone."""
    grid = [float(b) for b in np.geomspace(beta_min, beta_max, n)]
    passes = []
    if priming:
        passes.append(AnnealPass("priming", grid))
    for k in range(zigzags):
        # from the top down to the middle, back up, then down to the bottom
        mid = n // 2
        zz = grid[::-1][1:n - mid] + grid[mid:][1:] + grid[::-1][1:]
        passes.append(AnnealPass(f"zigzag{k + 1}" if zigzags > 1 else "zigzag", zz))
    if production:
        passes.append(AnnealPass("production", grid))
    return passes


@dataclass
class AnnealConfig:
    kind: str = "emdvae-anneal"
    model: str = "emdvae-wjets"
    train_data: str = "data/wjets_centred.nc"
    schedule: list[AnnealPass] = field(default_factory=lambda: annealing_schedule(priming=False, zigzags=0))
    model_config: EMDVAEConfig = field(default_factory=EMDVAEConfig)
    batch_size: int = 100
    steps_per_epoch: int | None = 250  # batches between validations; None: one pass over the jets
    lr: float = 1e-3  # restarted at every β step
    lr_factor: float = 0.1 ** 0.5
    plateau_patience: int = 3
    early_stop_patience: int = 5
    max_epochs: int = 30
    min_delta: float = 1e-3  # relative improvement of the validation loss that counts
    val_fraction: float = 0.1
    emd_backend: str = "auto"
    R: float = 1.0
    seed: int = 0
    device: str = "auto"
    threads: int | None = None  # torch CPU threads (1 per job when several run in parallel)
    max_events: int | None = None
    max_nan_retries: int = 5
    nan_lr_factor: float = 0.5

    # field → inclusive (min, max), None for open. ``n_steps``: β steps of the whole schedule,
    # ``beta``: every β of it (the presets' n_betas, beta_min, beta_max use the same ranges).
    BOUNDS: ClassVar[dict[str, tuple]] = {
        "batch_size": (1, 100_000), "steps_per_epoch": (1, 1_000_000), "lr": (1e-8, 1.0),
        "lr_factor": (1e-3, 1.0), "plateau_patience": (1, 200), "early_stop_patience": (1, 200),
        "max_epochs": (1, 200), "min_delta": (0.0, 0.999), "val_fraction": (0.001, 0.9), "R": (1e-3, 100.0),
        "seed": (0, 2 ** 32 - 1), "threads": (1, 1024), "max_events": (2, 100_000_000),
        "max_nan_retries": (0, 100), "nan_lr_factor": (1e-3, 1.0),
        "n_steps": (1, 40), "beta": (1e-6, 100.0),
    }

    def __post_init__(self):
        self.validate()

    def validate(self) -> "AnnealConfig":
        """Raise :class:`otviz.errors.ConfigError` (a ValueError) naming the first field that is
        out of range or of the wrong type; called on construction, after the presets' overrides
        and before a run directory is created."""
        from .config import _check_str, check_device

        own = "AnnealConfig"
        check_choice(own, "kind", self.kind, ("emdvae-anneal",))
        _check_str(own, "model", self.model)
        _check_str(own, "train_data", self.train_data)
        check_bounds(self)
        check_choice(own, "emd_backend", self.emd_backend, ("auto", "exact", "sinkhorn"))
        check_device(own, self.device)
        if not isinstance(self.model_config, EMDVAEConfig):
            raise ConfigError(f"{own}.model_config: must be an EMDVAEConfig", "model_config")
        try:
            self.model_config.validate()
        except ConfigError as exc:
            raise exc.nested("model_config")
        if not isinstance(self.schedule, list) or not all(
                isinstance(p, AnnealPass) and isinstance(p.betas, list) for p in self.schedule):
            raise ConfigError(f"{own}.schedule: must be a list of passes (name, betas)", "schedule")
        lo, hi = self.BOUNDS["n_steps"]
        n = sum(len(p.betas) for p in self.schedule)
        if not lo <= n <= hi:
            raise ConfigError(f"{own}.schedule has {n} β steps: allowed {lo} … {hi}"
                              + (" (the annealing schedule has no β steps)" if n == 0 else ""), "n_steps", n,
                              f"{lo} … {hi}", reason=f"the schedule has {n} β steps; allowed {lo} … {hi}")
        lo, hi = self.BOUNDS["beta"]
        for p in self.schedule:
            for b in p.betas:
                if isinstance(b, bool) or not isinstance(b, (int, float)) or not (lo <= b <= hi):
                    raise ConfigError(f"{own}.schedule: every β must be > 0 and in [{lo:g}, {hi:g}]; got {b!r} "
                                      f"in pass {p.name!r}", "beta", b, f"[{lo:g}, {hi:g}]",
                                      reason=f"every β must be in [{lo:g}, {hi:g}]; got {b!r} in pass {p.name!r}")
        return self

    @property
    def steps(self) -> list[tuple[str, float]]:
        """The flat schedule: (pass name, β) per β step."""
        return [(p.name, float(b)) for p in self.schedule for b in p.betas]

    def disk_plan(self) -> tuple[int, int]:
        """(weight files: one per β step, epochs at most): the run's disk estimate."""
        return len(self.steps), len(self.steps) * self.max_epochs

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "AnnealConfig":
        d = json.loads(text)
        if not isinstance(d, dict):
            raise ConfigError("an annealing config must be a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"unknown annealing config fields: {sorted(unknown)}", sorted(unknown)[0],
                              reason=f"unknown field{'s' * (len(unknown) > 1)} {', '.join(sorted(unknown))}")
        if d.get("kind", "emdvae-anneal") != "emdvae-anneal":
            raise ConfigError(f"not an annealing config (kind={d.get('kind')!r})", "kind", d.get("kind"),
                              reason="not an annealing config")
        try:
            d["schedule"] = [AnnealPass(**p) for p in d.get("schedule", [])]
            try:
                d["model_config"] = EMDVAEConfig(**d.get("model_config", {}))
            except ConfigError as exc:
                raise exc.nested("model_config")
            return cls(**d)
        except ConfigError:
            raise
        except (TypeError, KeyError, AttributeError) as exc:
            raise ConfigError(f"malformed annealing config: {type(exc).__name__}: {exc}") from exc


def check_anneal_preset(n_betas, beta_min, beta_max) -> None:
    """The presets' schedule arguments against ``AnnealConfig.BOUNDS`` (n_steps, beta)."""
    check_number("emdvae_wjets_config", "n_betas", n_betas, *AnnealConfig.BOUNDS["n_steps"], integer=True)
    for name, b in (("beta_min", beta_min), ("beta_max", beta_max)):
        check_number("emdvae_wjets_config", name, b, *AnnealConfig.BOUNDS["beta"])
    if beta_min > beta_max:
        raise ConfigError(f"emdvae_wjets_config: beta_min = {beta_min:g} exceeds beta_max = {beta_max:g}",
                          "beta_min", beta_min, f"≤ beta_max ({beta_max:g})",
                          reason=f"exceeds the largest β, {beta_max:g}")


SCHEDULES = ("primed", "production", "paper")


def emdvae_wjets_config(centred: bool = True, schedule: str = "primed", n_betas: int = 9,
                        beta_min: float = 10 ** -1.8, beta_max: float = 10 ** 0.6, **overrides) -> AnnealConfig:
    """Preset: the small CPU EMD-VAE on the shipped W jets, ``n_betas`` log-spaced β from
    ``beta_min`` (≈ 8.6 GeV × ⟨H_T⟩/545 GeV) to ``beta_max`` (≈ 2.2 TeV). ``schedule``:

    * ``primed`` (default): one step at the smallest β, then the rising production pass — the
      production pass's first step continues a model already trained there, so its distortion is
      not left above that of the next β (a from-scratch first step was: D₂ < 0 between the two
      smallest β of the shipped runs before);
    * ``production``: the rising production pass alone;
    * ``paper``: seed 001's rising priming pass, one zig-zag and the production pass (≈ 3× the cost).

    The default β range starts at 10^-1.8: below it the 32-dimensional CPU model does not converge
    within 30 epochs per step (measured on the shipped jets: at β = 0.004 the validation
    distortion was still falling after 7,500 batches, and a later, larger β reached a lower one)."""
    if schedule not in SCHEDULES:
        raise ConfigError(f"unknown schedule {schedule!r}: {', '.join(SCHEDULES)}", "schedule")
    check_anneal_preset(n_betas, beta_min, beta_max)
    paper = schedule == "paper"
    passes = annealing_schedule(beta_min, beta_max, n_betas, priming=paper, zigzags=int(paper))
    if schedule == "primed":
        passes.insert(0, AnnealPass("priming", [passes[0].betas[0]]))
    cfg = AnnealConfig(
        model="emdvae-wjets-centred" if centred else "emdvae-wjets",
        train_data="data/wjets_centred.nc" if centred else "data/wjets.nc",
        schedule=passes,
    )
    for k, v in overrides.items():
        if not hasattr(cfg, k):
            raise ConfigError(f"unknown annealing option {k!r}", k)
        setattr(cfg, k, v)
    return cfg.validate()


def step_file(index: int, pass_name: str, beta: float) -> str:
    return f"steps/{index:03d}_{pass_name}_b{beta:.4g}.pt"


class AnnealingRun(BackgroundRun):
    """A (possibly resumed) β-annealing run of the EMD-VAE in ``rundir``; same API as
    :class:`otviz.train.trainer.TrainingRun` (``start``, ``events_since``, ``cancel``…).

    Events: ``step`` (batch), ``epoch``, ``beta_step`` (a finished β step with its metrics),
    ``checkpoint``, ``resumed``, ``nan_rollback``, ``done`` / ``cancelled`` / ``failed``."""

    def __init__(self, rundir, config: AnnealConfig | None = None, restart: bool = False):
        self.steps_done: list[dict] = []
        self._open(rundir, config, AnnealConfig, restart=restart)
        self.loss_fn = emdvae_loss  # replaceable in tests
        self.model: EMDVAE | None = None

    def _check_data(self, config):
        check_sample(resolve_path(config.train_data), "jets", "train_data")

    # ------------------------------------------------------------------ data
    def _load_data(self):
        cfg = self.config
        path = resolve_path(cfg.train_data)
        jets, _ = normalised_jets(load_sample(path), cfg.max_events)
        jets = torch.as_tensor(jets)
        perm = torch.randperm(len(jets), generator=torch.Generator().manual_seed(cfg.seed))
        n_val = max(int(round(cfg.val_fraction * len(jets))), 1)
        return jets[perm[n_val:]].to(self.device), jets[perm[:n_val]].to(self.device)

    def evaluate(self, model, jets, beta) -> dict:
        """Validation metrics at β with a fixed posterior-sampling seed: loss, R, D, KL per dim."""
        cfg = self.config
        gen = torch.Generator(device=self.device).manual_seed(cfg.seed + 99)
        model.eval()
        sums, kl, n = {"loss": 0.0, "rate": 0.0, "distortion": 0.0}, 0.0, 0
        with torch.no_grad():
            for i in range(0, len(jets), 500):
                xb = trim_padding(jets[i:i + 500])
                _, t = self.loss_fn(model, xb, beta, cfg.emd_backend, gen, cfg.R)
                for k in sums:
                    sums[k] += t[k] * len(xb)
                kl = kl + t["kl_per_dim"].double().cpu() * len(xb)
                n += len(xb)
        model.train()
        out = {k: v / n for k, v in sums.items()}
        out["kl_per_dim"] = (kl / n).tolist()
        return out

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint(self, model, opt, pos: dict):
        state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "pos": pos,
                 "history": self.history, "steps_done": self.steps_done}
        atomic_torch_save(state, self.rundir / "checkpoint.pt")
        atomic_write_json(self.rundir / "history.json", self.history)
        atomic_write_json(self.rundir / "steps.json", self.steps_done)

    def _train(self):
        cfg = self.config
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        train, val = self._load_data()
        torch.manual_seed(cfg.seed)
        model = EMDVAE(cfg.model_config).to(self.device)
        model.fit_standardisation(train)  # encoder inputs to unit spread (a checkpoint overrides it)
        self.model = model
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        steps = cfg.steps
        # position in the schedule: β-step index, epoch within it, plateau state, lr, NaN retries
        pos = {"step": 0, "epoch": 0, "best": math.inf, "bad": 0, "since_best": 0, "lr": cfg.lr,
               "retries": 0, "lr_scale": 1.0, "epoch_total": 0}
        ckpt = self.rundir / "checkpoint.pt"
        if ckpt.exists():
            state = torch.load(ckpt, map_location=self.device, weights_only=True)
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            pos = dict(state["pos"])
            self.history = list(state["history"])
            self.steps_done = list(state["steps_done"])
            # history.json / steps.json may be ahead of the weights after a kill: trim them
            atomic_write_json(self.rundir / "history.json", self.history)
            atomic_write_json(self.rundir / "steps.json", self.steps_done)
            self._emit(type="resumed", beta_step=pos["step"], epoch=pos["epoch"])
        else:
            self._checkpoint(model, opt, pos)
        good = torch.load(ckpt, map_location=self.device, weights_only=True)
        n = len(train)
        bs = min(cfg.batch_size, n)
        n_batches = cfg.steps_per_epoch or max(n // bs, 1)
        while pos["step"] < len(steps):
            if self._cancel.is_set():
                return
            pass_name, beta = steps[pos["step"]]
            for g in opt.param_groups:
                g["lr"] = pos["lr"]
            seed = cfg.seed * 1_000_003 + pos["epoch_total"]
            order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(self.device)
            gen = torch.Generator(device=self.device).manual_seed(seed + 7)
            sums: dict[str, float] = {}
            t0 = time.perf_counter()
            nan = False
            for b in range(n_batches):
                if self._cancel.is_set():
                    return
                idx = order[(b * bs) % n:(b * bs) % n + bs]
                xb = trim_padding(train[idx])
                loss, terms = self.loss_fn(model, xb, beta, cfg.emd_backend, gen, cfg.R)
                if not math.isfinite(float(loss.detach())):
                    nan = True
                    break
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                for k in ("loss", "rate", "distortion"):
                    sums[k] = sums.get(k, 0.0) + terms[k]
                self._emit(type="step", beta_step=pos["step"], total_steps=len(steps), beta=beta,
                           pass_name=pass_name, epoch=pos["epoch"], max_epochs=cfg.max_epochs, batch=b,
                           batches=n_batches,
                           jets_per_s=(b + 1) * bs / (time.perf_counter() - t0),
                           **{k: terms[k] for k in ("loss", "rate", "distortion")})
            seconds = time.perf_counter() - t0
            vm = self.evaluate(model, val, beta) if not nan else {"loss": math.nan}
            if nan or not math.isfinite(vm["loss"]):
                # the roll-back restores the weights and the schedule position, but the retry
                # count and the learning-rate cut run on (they are the run's, not the checkpoint's)
                # and are checkpointed at once, so a resume keeps them too
                retries, lr_scale = pos["retries"] + 1, pos["lr_scale"] * cfg.nan_lr_factor
                if retries > cfg.max_nan_retries:
                    raise TrainingFailed(f"non-finite loss at β step {pos['step'] + 1}/{len(steps)} ({pass_name}, "
                                         f"β = {beta:.4g}), epoch {pos['epoch'] + 1}; gave up after "
                                         f"{cfg.max_nan_retries} roll-backs")
                gp = good["pos"]
                pos = dict(gp, retries=retries, lr_scale=lr_scale, lr=gp["lr"] * lr_scale / gp["lr_scale"])
                model.load_state_dict(good["model"])
                opt = torch.optim.Adam(model.parameters(), lr=pos["lr"])
                self.history = list(good["history"])
                self.steps_done = list(good["steps_done"])
                self._checkpoint(model, opt, pos)
                good = torch.load(ckpt, map_location=self.device, weights_only=True)
                self._emit(type="nan_rollback", beta_step=pos["step"], epoch=pos["epoch"],
                           retries=pos["retries"], lr_scale=pos["lr_scale"])
                continue
            rec = {f"train_{k}": v / n_batches for k, v in sums.items()}
            rec.update(beta_step=pos["step"], pass_name=pass_name, beta=beta, epoch=pos["epoch"], lr=pos["lr"],
                       seconds=seconds, jets_per_s=n_batches * bs / seconds,
                       val_loss=vm["loss"], val_rate=vm["rate"], val_distortion=vm["distortion"])
            self.history.append(rec)
            pos["epoch"] += 1
            pos["epoch_total"] += 1
            # plateau bookkeeping (ReduceLROnPlateau + EarlyStopping on the validation loss)
            if vm["loss"] < pos["best"] * (1 - cfg.min_delta):
                pos["best"], pos["bad"], pos["since_best"] = vm["loss"], 0, 0
            else:
                pos["bad"] += 1
                pos["since_best"] += 1
                if pos["bad"] >= cfg.plateau_patience:
                    pos["lr"] *= cfg.lr_factor
                    pos["bad"] = 0
            self._emit(type="epoch", total_steps=len(steps), **rec)
            stop = ("early-stop" if pos["since_best"] >= cfg.early_stop_patience
                    else "max-epochs" if pos["epoch"] >= cfg.max_epochs else None)
            if stop:
                fname = step_file(pos["step"], pass_name, beta)
                (self.rundir / "steps").mkdir(exist_ok=True)
                atomic_torch_save({"model": model.state_dict()}, self.rundir / fname)
                done = {"beta_step": pos["step"], "pass_name": pass_name, "beta": beta, "epochs": pos["epoch"],
                        "stopped": stop, "file": fname, "loss": vm["loss"], "rate": vm["rate"],
                        "distortion": vm["distortion"], "kl_per_dim": vm["kl_per_dim"],
                        "seconds": sum(h["seconds"] for h in self.history if h["beta_step"] == pos["step"])}
                self.steps_done.append(done)
                self._emit(type="beta_step", total_steps=len(steps), **done)
                # every β step restarts the learning rate (and Adam's moments)
                pos.update(step=pos["step"] + 1, epoch=0, best=math.inf, bad=0, since_best=0,
                           lr=cfg.lr * pos["lr_scale"])
                opt = torch.optim.Adam(model.parameters(), lr=cfg.lr * pos["lr_scale"])
            self._checkpoint(model, opt, pos)
            good = torch.load(ckpt, map_location=self.device, weights_only=True)
            self._emit(type="checkpoint", beta_step=pos["step"], epoch=pos["epoch"])
        model.eval()
        atomic_torch_save({"model": model.state_dict()}, self.rundir / "model.pt")
