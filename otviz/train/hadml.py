"""HadML training (issue 15): config, presets and the background run, v1 and v2.

v1 (``mode="v1"``) fits the per-cluster cGAN (:class:`otviz.models.hadml.HadML`) on the decays of
a cluster file (``data``: an otviz cluster netCDF or a Herwig ``.dat``; clusters whose hadrons
are not a pion pair of ``PAIRS`` are left out of training): the discriminator sees (cos θ, φ,
species pair, condition) of real decays against generated ones.

v2 (``mode="v2"``) starts from a v1 run (``init_from``: its weights and condition scaler) and
fits the same generator against the event-level Deep Sets discriminator: real = the hadrons of
whole events of the ``target`` file (the "data"), fake = generated hadrons for the clusters of
``data``'s events, grouped by event (``clusterset.event_hadrons``). Only hadrons of whole events
are seen — as real data would give them. ``anchor_nonperturbative`` keeps the generator's raw
outputs for clusters without a perturbative quark near v1's (whole events cannot tell which
clusters' decays changed; the angular smearing concerns only the perturbative ones).

Both: events are split at random from ``seed`` into train / validation / test (``split.json``);
``n_critic`` discriminator steps per generator step, Adam; the Gumbel-softmax temperature τ falls
linearly from ``tau_start`` to ``tau_end`` over all training steps. Per epoch the history records
d_loss, g_loss, mean D(real)/D(fake) logits (WGAN-GP: the Wasserstein estimate and the penalty),
τ, the validation W₁ (of the kept generator, the EMA of its weights) of cos θ and φ of hadron 0
(and of cos θ and its mean for the clusters with a perturbative quark) in the cluster rest frame (v2: on the target's
validation clusters, the truth the reference generator knows), seconds and clusters/s. At the end
``model.pt``, ``evaluation.json`` (the test W₁ per cluster-mass bin beside the truth-vs-truth
floors: ``otviz.metrics.hadronisation.goal_table``) and ``metrics.nc``
(``hadronisation_metrics`` on the test split). Checkpoints, resume (a cancelled run resumed equals
an uninterrupted one), NaN roll-back and ``--device auto`` as in :mod:`otviz.train.tagger`.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ..errors import ConfigError, check_bounds, check_number
from ..losses import hadml as L
from ..models.hadml import (PAIRS, SPECIES, HadML, HadMLModelConfig, charge_mask, hadron_charge, pair_index,
                            parton_charge)
from ..paths import resolve as resolve_path
from .config import _check_str, check_device, config_to_json, tagged_config_from_json
from .trainer import BackgroundRun, TrainingFailed, atomic_torch_save, atomic_write_json

TAG = "hadml"
SPLIT_FILE = "split.json"
EVALUATION_FILE = "evaluation.json"
PARTS = ("train", "val", "test")
MIN_EVENTS = 3  # split_events gives every part an event from 3 events on
MODES = ("v1", "v2")


@dataclass
class HadMLConfig:
    kind: str = TAG
    model: str = "hadml"
    data: str = "data/clusters/zqq_clusters.nc"  # .nc cluster Dataset or Herwig .dat (v2: the simulation)
    mode: str = "v1"
    target: str | None = None  # v2: the "data" whose events' hadrons are the real sample
    init_from: str | None = None  # v2: the v1 run the generator starts from
    max_events: int | None = None  # only the first N events of each file
    val_fraction: float = 0.1  # of the events
    test_fraction: float = 0.2  # of the events
    seed: int = 0
    epochs: int = 30
    batch_size: int = 64  # clusters (v1) or events (v2) per step
    lr_g: float = 2e-4  # Adam
    lr_d: float = 4e-4
    beta1: float = 0.5  # Adam β₁ (β₂ = 0.999)
    lr_end_factor: float = 0.1  # both learning rates fall linearly over the epochs to this × their start
    n_critic: int = 3  # discriminator steps per generator step
    loss: str = "bce"  # "bce" (non-saturating, the paper's) or "wgan-gp" (v1 only)
    gp_lambda: float = 10.0
    anchor: float = 0.0  # v2: + anchor · Σ (θ − θ_init)² over the generator's weights (what events cannot see stays)
    anchor_nonperturbative: float = 0.0  # v2: + this × E‖G(c, z) − G_init(c, z)‖² over the non-perturbative
    # clusters (raw generator outputs, same noise): the angular smearing only concerns perturbative ones
    ema: float = 0.995  # the kept generator: exponential moving average of its weights per G step (0: last)
    r1_gamma: float = 0.1  # bce: R1 penalty γ/2 E_real ‖∇_x D(x)‖² (Mescheder et al. 2018); 0: none
    tau_start: float = 1.0
    tau_end: float = 0.1
    val_clusters: int = 20000  # at most this many validation clusters for the per-epoch W₁
    device: str = "auto"
    checkpoint_every: int = 1
    max_nan_retries: int = 3
    nan_lr_factor: float = 0.5
    model_config: HadMLModelConfig = field(default_factory=HadMLModelConfig)

    BOUNDS: ClassVar[dict[str, tuple]] = {
        "max_events": (1, 100_000_000), "val_fraction": (0.01, 0.5), "test_fraction": (0.01, 0.5),
        "seed": (0, 2 ** 32 - 1), "epochs": (1, 100_000), "batch_size": (2, 1_000_000), "lr_g": (1e-8, 1.0),
        "lr_d": (1e-8, 1.0), "beta1": (0.0, 0.999), "lr_end_factor": (0.0, 1.0), "n_critic": (1, 100), "gp_lambda": (0.0, 1e4), "r1_gamma": (0.0, 1e4), "ema": (0.0, 0.99999), "anchor": (0.0, 1e6), "anchor_nonperturbative": (0.0, 1e6),
        "tau_start": (1e-3, 100.0), "tau_end": (1e-3, 100.0), "val_clusters": (10, 100_000_000),
        "checkpoint_every": (1, 100_000), "max_nan_retries": (0, 100), "nan_lr_factor": (1e-3, 1.0),
    }

    def __post_init__(self):
        if isinstance(self.model_config, dict):
            self.model_config = HadMLModelConfig.from_dict(self.model_config)
        self.validate()

    def validate(self) -> "HadMLConfig":
        own = "HadMLConfig"
        if self.kind != TAG:
            raise ConfigError(f"{own}.kind = {self.kind!r}: must be {TAG!r}", "kind", self.kind, TAG)
        for name in ("model", "data"):
            _check_str(own, name, getattr(self, name))
        _check_str(own, "target", self.target, optional=True)
        _check_str(own, "init_from", self.init_from, optional=True)
        if self.mode not in MODES:
            raise ConfigError(f"{own}.mode = {self.mode!r}: must be v1 or v2", "mode", self.mode, "v1 | v2",
                              reason="must be v1 or v2")
        if self.loss not in L.LOSSES:
            raise ConfigError(f"{own}.loss = {self.loss!r}: must be one of {', '.join(L.LOSSES)}", "loss", self.loss,
                              " | ".join(L.LOSSES), reason=f"must be one of {', '.join(L.LOSSES)}")
        if self.mode == "v2":
            for name in ("target", "init_from"):
                if getattr(self, name) is None:
                    raise ConfigError(f"{own}.{name}: required for mode v2", name, None, "a path",
                                      reason="required for mode v2")
            if self.loss != "bce":
                raise ConfigError(f"{own}.loss = {self.loss!r}: v2 trains with bce", "loss", self.loss, "bce",
                                  reason="v2 trains with bce")
        check_bounds(self)
        check_device(own, self.device)
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ConfigError(f"{own}.test_fraction = {self.test_fraction!r}: with val_fraction {self.val_fraction} "
                              "it leaves under 10 % for training", "test_fraction", self.test_fraction)
        if not isinstance(self.model_config, HadMLModelConfig):
            raise ConfigError(f"{own}.model_config: must be a HadMLModelConfig", "model_config")
        try:
            self.model_config.validate()
        except ConfigError as exc:
            raise exc.nested("model_config")
        return self

    @property
    def total_epochs(self) -> int:
        return self.epochs

    def schedule_text(self) -> str:
        what = (f"v2: the generator of {self.init_from} against a Deep Sets event discriminator on {self.target}'s "
                f"events, batches of {self.batch_size} events" if self.mode == "v2" else
                f"v1 cGAN ({self.loss}), batches of {self.batch_size} clusters")
        return (f"schedule: {self.epochs} epoch{'s' * (self.epochs != 1)} of {what}, Adam lr G {self.lr_g:g} / "
                f"D {self.lr_d:g}, n_critic {self.n_critic}, τ {self.tau_start:g} → {self.tau_end:g}; events split "
                f"{1 - self.val_fraction - self.test_fraction:.0%}/{self.val_fraction:.0%}/{self.test_fraction:.0%}")

    def disk_plan(self) -> tuple[int, int]:
        return 0, self.epochs

    def to_json(self) -> str:
        return config_to_json(self)

    @classmethod
    def from_json(cls, text: str) -> "HadMLConfig":
        return tagged_config_from_json(cls, text, TAG, "hadml", {"model_config": lambda d: HadMLModelConfig(**d)})


def _apply(cfg: HadMLConfig, overrides) -> HadMLConfig:
    for k, v in overrides.items():
        if not hasattr(cfg, k):
            raise ConfigError(f"unknown training option {k!r}", k)
        setattr(cfg, k, v)
    return cfg.validate()


def hadml_config(epochs: int = 30, **overrides) -> HadMLConfig:
    """HadML v1 on the reference cluster model's Z → q q̄ sample (data/clusters/zqq_clusters.nc):
    non-saturating GAN with an R1 penalty (γ 0.1) on the discriminator, generator and
    discriminator 2 × 256 LeakyReLU, noise 10, Adam (β₁ 0.5) G 2·10⁻⁴ / D 4·10⁻⁴ falling linearly
    to a tenth, 3 discriminator steps per generator step, batches of 64 clusters, τ 1 → 0.1.

    Chosen on the closed-form toy of tests/train/test_hadml.py (16,000 clusters, 16 epochs, W₁ of
    cos θ against the exact laws): plain BCE oscillates and collapses in φ (W₁(φ) ≈ 1.6, all
    decays at one azimuth); R1 γ 1 leaves the isotropic cos θ at 0.09; WGAN-GP (n_critic 3) gave
    0.012 (narrow law) / 0.069 (isotropic); BCE + R1 γ 0.1 with n_critic 3 gave 0.005 / 0.016."""
    check_number("hadml_config", "epochs", epochs, *HadMLConfig.BOUNDS["epochs"], integer=True)
    return _apply(HadMLConfig(epochs=epochs), overrides)


def hadml_v2_config(epochs: int = 60, **overrides) -> HadMLConfig:
    """HadML v2: the v1 generator (data/pretrained/hadml-v1) refitted against the Deep Sets event
    discriminator on the events of the sample made with another angular smearing
    (data/clusters/zqq_clusters_smear.nc), conditions from data/clusters/zqq_clusters.nc;
    batches of 64 events, τ held at 0.1 (v1's end), Adam G 2·10⁻⁴ / D 10⁻³, 5 discriminator
    steps per generator step, and the non-perturbative clusters' raw generator outputs anchored to
    v1's (``anchor_nonperturbative`` 1): the smearing concerns the clusters holding a perturbative
    quark, and whole events cannot tell which clusters changed.

    Without that anchor (D 10⁻³, 5 steps, G 5·10⁻⁵, 60 epochs) the perturbative clusters' mean
    cos θ went 0.33 → 0.73 (data 0.80) but the generator also tilted the non-perturbative decays
    forward: the validation W₁ of cos θ over all clusters rose 0.12 → 0.23. A weaker critic
    (D 2·10⁻⁴, 3 steps) also spoiled φ (W₁ 0.04 → 0.41 in 20 epochs), which whole events hardly
    constrain; a weight-space anchor to v1 (``anchor``) only slowed both."""
    check_number("hadml_v2_config", "epochs", epochs, *HadMLConfig.BOUNDS["epochs"], integer=True)
    cfg = HadMLConfig(model="hadml-v2", mode="v2", epochs=epochs, target="data/clusters/zqq_clusters_smear.nc",
                      init_from="data/pretrained/hadml-v1", batch_size=64, lr_g=2e-4, lr_d=1e-3, n_critic=5,
                      anchor_nonperturbative=1.0,
                      tau_start=0.1, tau_end=0.1)
    return _apply(cfg, overrides)


PRESETS = {"hadml": hadml_config, "hadml-v2": hadml_v2_config}


# ---------------------------------------------------------------------- data
def check_cluster_file(path, what: str) -> None:
    """A one-line error naming the file and config field unless ``path`` is a readable cluster file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} ({what}): no such file")
    if path.suffix.lower() not in (".nc", ".dat", ".txt"):
        raise ValueError(f"{path} ({what}): not a cluster file (give an otviz cluster .nc or a Herwig .dat)")


def load_cluster_data(path, max_events: int | None = None):
    """The cluster Dataset of ``path`` (.nc or Herwig .dat), only its first ``max_events`` events."""
    from ..data.clusterset import load_clusters

    ds = load_clusters(resolve_path(path))
    if max_events is not None:
        ids = np.unique(ds["event"].values)[:max_events]
        ds = ds.isel(cluster=np.flatnonzero(np.isin(ds["event"].values, ids)))
    return ds


def split_events(event, val_fraction: float, test_fraction: float, seed: int, salt: int = 0) -> dict[str, np.ndarray]:
    """Cluster indices of each part, the events split at random from (seed, salt)."""
    ids = np.unique(event)
    order = np.random.default_rng([seed, salt]).permutation(len(ids))
    n_test = max(int(round(len(ids) * test_fraction)), 1 if len(ids) >= 3 else 0)
    n_val = max(int(round(len(ids) * val_fraction)), 1 if len(ids) >= 3 else 0)
    parts = {"test": ids[order[:n_test]], "val": ids[order[n_test:n_test + n_val]], "train": ids[order[n_test + n_val:]]}
    return {k: np.flatnonzero(np.isin(event, parts[k])) for k in PARTS}


def test_clusters(rundir):
    """The test clusters of a HadML run directory, as its ``split.json`` records them: of its
    ``data`` (v1) or of its ``target`` (v2) — what its ``metrics.nc`` was computed on. Raises a
    one-line error naming the file when the split is missing or the cluster file has changed."""
    rundir = Path(rundir)
    cfg = HadMLConfig.from_json((rundir / "config.json").read_text())
    try:
        record = json.loads((rundir / SPLIT_FILE).read_text())
        part = record["target" if cfg.mode == "v2" else "data"]
        test = np.asarray(part["test"], np.int64)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FileNotFoundError(f"{rundir / SPLIT_FILE}: no readable {cfg.mode} split ({type(exc).__name__}: {exc}); "
                                "the run has not started or its directory is incomplete") from None
    ds = load_cluster_data(part["file"], cfg.max_events)
    if ds.sizes["cluster"] != part["n_clusters"] or (len(test) and test.max() >= ds.sizes["cluster"]):
        raise ValueError(f"{part['file']}: holds {ds.sizes['cluster']} clusters, the run split "
                         f"{part['n_clusters']} ({rundir / SPLIT_FILE}): the file changed since the run")
    return ds.isel(cluster=test)


def cluster_charge(ds) -> np.ndarray:
    """Cluster charge from the constituents where known, else from the Dataset's hadron pair."""
    q = parton_charge(ds["parton_pid"].values * ds["parton_mask"].values)
    return np.where(np.isfinite(q), q, hadron_charge(ds["hadron_pid"].values))


def species_onehot(pid) -> np.ndarray:
    """(…, 4) one-hot over ``SPECIES`` (π⁰, π⁺, π⁻) padded with a zero column (other hadrons: 0)."""
    pid = np.asarray(pid)
    out = np.zeros(pid.shape + (4,), np.float64)
    for i, s in enumerate(SPECIES):
        out[..., i] = pid == s
    return out


CLOSURE_KEY = "smearing_closure"  # v2's evaluation.json entry
CLOSURE_BINS = 10  # cos θ* histogram bins on [−1, 1]


def smearing_closure(rundir, model=None, test=None, fitted=None, start=None) -> dict:
    """HadML v2's closure on the angular smearing, on the run's target ("data") test clusters
    (``test_clusters(rundir)``), for the perturbative and non-perturbative clusters separately:

    * mean cos θ* of hadron 0 (about ``clusterset.decay_axis``) of the data, of the starting point
      (the ``init_from`` v1 model) and of the fitted model (``model``; default the run's);
    * W₁ of each generator's cos θ* to the data and the truth-vs-truth floor, with the half-vs-half
      convention of :mod:`otviz.metrics.hadronisation` (value = mean over splits of
      W₁(data[A], generated[B]), floor = mean of W₁(data[A], data[B]), splits by cluster from the
      run's seed) — the fitted model's perturbative value equals ``metrics.nc``'s
      (cos_theta, all, perturbative, w1) when sampled with the same seed (``cfg.seed + 11``);
    * 10-bin cos θ* histograms on [−1, 1] (fractions of the selection).

    ``fitted``/``start``: precomputed (n, 2, 4) hadrons of ``test`` instead of sampling.
    """
    from ..data.clusterset import decay_axis
    from ..metrics import hadronisation as H
    from ..metrics.fidelity import N_SPLITS, split_halves
    from .run import load_run

    rundir = Path(rundir)
    cfg = HadMLConfig.from_json((rundir / "config.json").read_text())
    if cfg.mode != "v2":
        raise ValueError(f"{rundir}: a {cfg.mode} run; the smearing closure is v2's (a target and an init_from)")
    test = test_clusters(rundir) if test is None else test
    seed = cfg.seed + 11
    if fitted is None:
        model = load_run(rundir, device="cpu").model if model is None else model
        fitted = model.sample_dataset(test, seed=seed, charge_from_hadrons=True)[0]
    if start is None:
        src = load_run(resolve_path(cfg.init_from), device="cpu").model
        start = src.sample_dataset(test, seed=seed, charge_from_hadrons=True)[0]
    axis, from_quark = decay_axis(test)
    cos = {k: H.decay_observables(test, h, axis=axis)["cos_theta"]
           for k, h in (("data", None), ("start", start), ("fitted", fitted))}
    splits = list(split_halves(len(from_quark), N_SPLITS, cfg.seed))
    edges = np.linspace(-1.0, 1.0, CLOSURE_BINS + 1)
    out = {"reference": f"{cfg.target}: the run's target test split ({SPLIT_FILE})", "init_from": cfg.init_from,
           "sample_seed": seed, "n_splits": N_SPLITS, "hist_edges": edges.tolist()}
    for origin, sel in (("perturbative", from_quark), ("non-perturbative", ~from_quark)):
        n_sel = int(sel.sum())
        rec = {"n_clusters": n_sel,
               "mean_cos_theta": {k: float(v[sel].mean()) if n_sel else float("nan") for k, v in cos.items()},
               "w1_to_data": {}, "floor": float("nan"), "hist": {}}
        for k in ("start", "fitted"):
            v, f = H.statistics_with_floor(cos["data"], cos[k], sel, splits)
            rec["w1_to_data"][k], rec["floor"] = v["w1"], f["w1"]
        for k, v in cos.items():
            h, _ = np.histogram(v[sel], bins=edges)
            rec["hist"][k] = (h / max(n_sel, 1)).tolist()
        out[origin] = rec
    return out


def closure_line(closure: dict) -> str:
    """The v2 closure in one line: perturbative mean cos θ* data / start / fitted, W₁ to the data
    against the floor."""
    p = closure["perturbative"]
    m, w = p["mean_cos_theta"], p["w1_to_data"]
    return (f"perturbative clusters ({p['n_clusters']}): mean cos θ* data {m['data']:.3f} / start {m['start']:.3f} / "
            f"fitted {m['fitted']:.3f}; W1 to data start {w['start']:.3f} → fitted {w['fitted']:.3f} "
            f"(floor {p['floor']:.3f})")


# ---------------------------------------------------------------------- the run
class HadMLRun(BackgroundRun):
    """A (possibly resumed) HadML training run in ``rundir``; ``run.model`` is the :class:`HadML`."""

    CONFIG = HadMLConfig

    def __init__(self, rundir, config: HadMLConfig | None = None, restart: bool = False):
        self._open(rundir, config, self.CONFIG, restart=restart)
        if self.fresh:
            for name in (SPLIT_FILE, EVALUATION_FILE):
                (self.rundir / name).unlink(missing_ok=True)
        self.d_loss_fn = None  # replaceable in tests (e.g. to inject a NaN): f(d_real, d_fake) -> loss
        self.model: HadML | None = None
        self.evaluation: dict = {}

    def _check_data(self, config):
        """Before the run directory is touched: the files exist and read as cluster files, the
        ``init_from`` run has weights, and each file's events leave a non-empty test split."""
        check_cluster_file(resolve_path(config.data), "data")
        if config.mode == "v2":
            check_cluster_file(resolve_path(config.target), "target")
            init = resolve_path(config.init_from)
            if not ((init / "model.pt").exists() or (init / "checkpoint.pt").exists()):
                raise FileNotFoundError(f"{init} (init_from): no model.pt or checkpoint.pt — not a trained HadML run")
        self._loaded = {}
        for name in ("data", "target") if config.mode == "v2" else ("data",):
            path = getattr(config, name)
            ds = load_cluster_data(path, config.max_events)
            n_events = len(np.unique(ds["event"].values))
            split = split_events(ds["event"].values, config.val_fraction, config.test_fraction, config.seed)
            if not len(split["test"]) or not len(split["train"]):
                raise ValueError(f"{path} ({name}): {n_events} event{'s' * (n_events != 1)} — too few for "
                                 f"train / validation / test splits (at least {MIN_EVENTS} events)")
            self._loaded[(name, path, config.max_events)] = ds

    # -------------------------------------------------------------- state
    def _optimizers(self, model, lr_scale):
        cfg = self.config
        d_params = (model.event_discriminator if cfg.mode == "v2" else model.discriminator).parameters()
        betas = (cfg.beta1, 0.999)
        return (torch.optim.Adam(model.generator.parameters(), lr=cfg.lr_g * lr_scale, betas=betas),
                torch.optim.Adam(d_params, lr=cfg.lr_d * lr_scale, betas=betas))

    def _checkpoint(self, model, opts, epoch, retries, lr_scale):
        atomic_torch_save({"model": model.state_dict(), "ema": self._ema, "opt_g": opts[0].state_dict(),
                           "opt_d": opts[1].state_dict(),
                           "epoch": epoch, "history": self.history, "nan_retries": retries, "lr_scale": lr_scale},
                          self.rundir / "checkpoint.pt")
        atomic_write_json(self.rundir / "history.json", self.history)

    def _load(self, path):
        return torch.load(path, map_location=self.device, weights_only=True)

    # -------------------------------------------------------------- data
    def _prepare(self, ds, model) -> dict:
        """Tensors of a cluster Dataset on the device: condition, allowed pairs, real angles and
        pair one-hot, the clusters, their decay axes and events."""
        from ..data.clusterset import decay_axis

        dev = self.device
        pid = ds["parton_pid"].values * ds["parton_mask"].values
        from ..metrics.hadronisation import decay_observables

        axis, from_quark = decay_axis(ds)
        angles = decay_observables(ds, axis=axis)
        cos, phi = angles["cos_theta"], angles["phi"]
        pair = pair_index(ds["hadron_pid"].values)
        onehot = np.zeros((len(pair), len(PAIRS)))
        onehot[pair >= 0, pair[pair >= 0]] = 1.0
        q = cluster_charge(ds)
        q = np.where(np.isfinite(q) & (np.abs(np.nan_to_num(q)) > 1), np.nan, q)
        return {"cond": model.condition(ds["cluster"].values, pid, from_quark),
                "mask": torch.as_tensor(charge_mask(q), device=dev),
                "cos": torch.as_tensor(cos, dtype=torch.float32, device=dev),
                "phi": torch.as_tensor(phi, dtype=torch.float32, device=dev),
                "pair": torch.as_tensor(onehot, dtype=torch.float32, device=dev),
                "cluster": torch.as_tensor(ds["cluster"].values, device=dev),
                "axis": torch.as_tensor(axis, device=dev), "event": ds["event"].values, "pair_index": pair,
                "from_quark": from_quark}

    def _model(self):
        cfg = self.config
        torch.manual_seed(cfg.seed)
        model = HadML(cfg.model_config).to(self.device)
        if cfg.mode == "v2":
            from .run import load_run

            src = load_run(resolve_path(cfg.init_from), device=str(self.device))
            if not isinstance(src.model, HadML):
                raise ValueError(f"{cfg.init_from} (init_from): not a HadML run")
            try:
                model.load_state_dict(src.model.state_dict())
            except RuntimeError as exc:
                raise ValueError(f"{cfg.init_from} (init_from): its model_config differs from this run's "
                                 f"({str(exc).splitlines()[0]})") from None
        return model

    def _cluster_data(self, name: str):
        """The cluster Dataset of the config field ``name`` (read once: ``_check_data`` keeps it)."""
        cfg = self.config
        path = getattr(cfg, name)
        ds = getattr(self, "_loaded", {}).pop((name, path, cfg.max_events), None)
        return load_cluster_data(path, cfg.max_events) if ds is None else ds

    def _data(self, model):
        cfg = self.config
        ds = self._cluster_data("data")
        split = split_events(ds["event"].values, cfg.val_fraction, cfg.test_fraction, cfg.seed)
        record = {"seed": cfg.seed, "data": {"file": cfg.data, "n_clusters": int(ds.sizes["cluster"]),
                                             **{k: v.tolist() for k, v in split.items()}}}
        if cfg.mode == "v1":
            train = ds.isel(cluster=split["train"])
            train = train.isel(cluster=np.flatnonzero(pair_index(train["hadron_pid"].values) >= 0))
            if train.sizes["cluster"] < 2:
                raise ValueError(f"{cfg.data}: fewer than 2 training clusters decay into a pion pair")
            model.fit_scaler(train["cluster"].values)
            parts = {"train": train, "val": ds.isel(cluster=split["val"]), "test": ds.isel(cluster=split["test"])}
        else:
            tg = self._cluster_data("target")
            tsplit = split_events(tg["event"].values, cfg.val_fraction, cfg.test_fraction, cfg.seed, salt=1)
            record["target"] = {"file": cfg.target, "n_clusters": int(tg.sizes["cluster"]),
                                **{k: v.tolist() for k, v in tsplit.items()}}
            parts = {"train": ds.isel(cluster=split["train"]), "target": tg.isel(cluster=tsplit["train"]),
                     "val": tg.isel(cluster=tsplit["val"]), "test": tg.isel(cluster=tsplit["test"])}
        if parts["val"].sizes["cluster"] > cfg.val_clusters:
            parts["val"] = parts["val"].isel(cluster=slice(0, cfg.val_clusters))
        atomic_write_json(self.rundir / SPLIT_FILE, record)
        return parts

    # -------------------------------------------------------------- validation
    @torch.no_grad()
    def _val_w1(self, model, val, seed, ema=None) -> dict:
        from scipy.stats import wasserstein_distance

        gen = torch.Generator().manual_seed(int(seed))
        was = model.training
        model.eval()
        current = {k: v.clone() for k, v in model.generator.state_dict().items()}
        if ema is not None:
            model.generator.load_state_dict(ema)
        d = model.generate(val["cond"], val["mask"], generator=gen, hard=True)
        model.generator.load_state_dict(current)
        model.train(was)
        cos, phi = d.cos_theta.cpu().numpy(), d.phi.cpu().numpy()
        rc, rp = val["cos"].cpu().numpy(), val["phi"].cpu().numpy()
        fq = val["from_quark"]
        if not (np.isfinite(cos).all() and np.isfinite(phi).all()):
            return {"val_w1_cos_theta": float("nan"), "val_w1_phi": float("nan"),
                    "val_w1_cos_theta_perturbative": float("nan")}
        return {"val_w1_cos_theta": float(wasserstein_distance(rc, cos)), "val_w1_phi": float(wasserstein_distance(rp, phi)),
                "val_w1_cos_theta_perturbative": float(wasserstein_distance(rc[fq], cos[fq])) if fq.any() else float("nan"),
                "val_mean_cos_theta_perturbative": float(cos[fq].mean()) if fq.any() else float("nan")}

    # -------------------------------------------------------------- training
    def _tau(self, done: int, total: int) -> float:
        cfg = self.config
        f = min(done / max(total - 1, 1), 1.0)
        return cfg.tau_start + (cfg.tau_end - cfg.tau_start) * f

    def _train(self):
        cfg = self.config
        model = self._model()
        parts = self._data(model)
        self.model = model
        tensors = {k: self._prepare(v, model) for k, v in parts.items()}
        ckpt = self.rundir / "checkpoint.pt"
        epoch, retries, lr_scale = 0, 0, 1.0
        opts = self._optimizers(model, lr_scale)
        self._ema = {k: v.detach().clone() for k, v in model.generator.state_dict().items()}
        self._init = {k: v.detach().clone() for k, v in model.generator.named_parameters()}  # v2's anchor
        if ckpt.exists():
            state = self._load(ckpt)
            model.load_state_dict(state["model"])
            epoch, retries, lr_scale = int(state["epoch"]), int(state["nan_retries"]), float(state["lr_scale"])
            self.history = list(state["history"])
            opts = self._optimizers(model, lr_scale)
            opts[0].load_state_dict(state["opt_g"])
            opts[1].load_state_dict(state["opt_d"])
            self._ema = {k: v.clone() for k, v in state["ema"].items()}
            atomic_write_json(self.rundir / "history.json", self.history)
            self._emit(type="resumed", epoch=epoch)
        else:
            self._checkpoint(model, opts, 0, 0, 1.0)
        good = self._load(ckpt)
        if cfg.mode == "v1":
            n = len(tensors["train"]["cos"])
            bs = min(cfg.batch_size, n)
            steps = math.ceil(n / bs)
            event_batches = None
        else:
            events = _event_index(tensors["train"]["event"])
            real = _real_events(parts["target"], self.device)
            n = len(events[0])
            bs = min(cfg.batch_size, n, len(real[0]))
            steps = math.ceil(n / bs)
            event_batches = (events, real)
        while epoch < cfg.epochs:
            if self._cancel.is_set():
                return
            model.train()
            decay = 1.0 - (1.0 - cfg.lr_end_factor) * epoch / max(cfg.epochs - 1, 1)
            for opt, lr in zip(opts, (cfg.lr_g, cfg.lr_d)):
                for g in opt.param_groups:
                    g["lr"] = lr * lr_scale * decay
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
            t0, nan = time.perf_counter(), False
            sums, counts = {}, {}
            n_clusters = 0
            for step in range(steps):
                if self._cancel.is_set():
                    return
                tau = self._tau(epoch * steps + step, cfg.epochs * steps)
                if event_batches is None:
                    perm = torch.randperm(n, generator=gen) if step == 0 else perm
                    idx = perm[step * bs:(step + 1) * bs].to(self.device)
                    rec = self._step_v1(model, opts, tensors["train"], idx, tau, gen, step)
                    n_clusters += len(idx)
                else:
                    perm = torch.randperm(n, generator=gen) if step == 0 else perm
                    rec, k = self._step_v2(model, opts, tensors["train"], event_batches, perm[step * bs:(step + 1) * bs],
                                           tau, gen, step)
                    n_clusters += k
                if not all(math.isfinite(v) for v in rec.values()):
                    nan = True
                    break
                for key, v in rec.items():
                    sums[key] = sums.get(key, 0.0) + v
                    counts[key] = counts.get(key, 0) + 1
                self._emit(type="step", epoch=epoch, step=step, steps=steps, stage=cfg.mode, total_epochs=cfg.epochs,
                           events_per_s=n_clusters / (time.perf_counter() - t0), tau=tau, **rec)
            if nan:
                retries += 1
                if retries > cfg.max_nan_retries:
                    raise TrainingFailed(f"non-finite loss at epoch {epoch}; gave up after {cfg.max_nan_retries} "
                                         "roll-backs")
                model.load_state_dict(good["model"])
                self._ema = {k: v.clone() for k, v in good["ema"].items()}
                epoch = int(good["epoch"])
                lr_scale *= cfg.nan_lr_factor
                opts = self._optimizers(model, lr_scale)
                self.history = list(good["history"])
                self._checkpoint(model, opts, epoch, retries, lr_scale)
                good = self._load(ckpt)
                self._emit(type="nan_rollback", epoch=epoch, retries=retries, lr_scale=lr_scale)
                continue
            seconds = time.perf_counter() - t0
            rec = {"epoch": epoch, "stage": cfg.mode, **{k: v / counts[k] for k, v in sums.items()},
                   "tau": self._tau((epoch + 1) * steps - 1, cfg.epochs * steps),
                   **self._val_w1(model, tensors["val"], cfg.seed + 7, self._ema), "lr_g": cfg.lr_g * lr_scale * decay,
                   "lr_d": cfg.lr_d * lr_scale * decay, "seconds": seconds, "events_per_s": n_clusters / seconds}
            self.history.append(rec)
            epoch += 1
            self._emit(type="epoch", total_epochs=cfg.epochs, **rec)
            if epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs:
                self._checkpoint(model, opts, epoch, retries, lr_scale)
                good = self._load(ckpt)
                self._emit(type="checkpoint", epoch=epoch)
            else:
                atomic_write_json(self.rundir / "history.json", self.history)
        model.eval()
        model.generator.load_state_dict(self._ema)  # the kept generator (the EMA of its weights)
        self.evaluation = self._evaluate(model, parts["test"])
        atomic_write_json(self.rundir / EVALUATION_FILE, self.evaluation)
        self._emit(type="evaluation", **{k: v for k, v in self.evaluation.items() if not isinstance(v, list)})
        atomic_torch_save({"model": model.state_dict()}, self.rundir / "model.pt")

    @torch.no_grad()
    def _update_ema(self, model):
        beta = self.config.ema
        for k, v in model.generator.state_dict().items():
            self._ema[k].mul_(beta).add_(v, alpha=1 - beta)

    def _d_loss(self, d_real, d_fake):
        return (self.d_loss_fn or L.d_loss_bce)(d_real, d_fake)

    def _step_v1(self, model, opts, t, idx, tau, gen, step) -> dict:
        cfg = self.config
        opt_g, opt_d = opts
        cond, mask = t["cond"][idx], t["mask"][idx]
        real = torch.cat([t["cos"][idx, None], torch.cos(t["phi"][idx])[:, None], torch.sin(t["phi"][idx])[:, None],
                          t["pair"][idx], cond], 1)
        with torch.no_grad():
            fake = model.critic_input(model.generate(cond, mask, tau, gen), cond)
        r1 = cfg.loss == "bce" and cfg.r1_gamma > 0
        real.requires_grad_(r1)
        d_real, d_fake = model.discriminator(real).squeeze(-1), model.discriminator(fake).squeeze(-1)
        out = {}
        if cfg.loss == "bce":
            d_loss = self._d_loss(d_real, d_fake)
            out.update(d_real=float(d_real.detach().mean()), d_fake=float(d_fake.detach().mean()))
            if r1:
                pen = L.r1_penalty(d_real, real)
                d_loss = d_loss + 0.5 * cfg.r1_gamma * pen
                out["r1"] = float(pen.detach())
        else:
            gp = L.gradient_penalty(lambda x: model.discriminator(x).squeeze(-1), real, fake, gen)
            d_loss = self.d_loss_fn(d_real, d_fake) if self.d_loss_fn else L.d_loss_wgan(d_real, d_fake, gp, cfg.gp_lambda)
            out.update(wasserstein=float((d_real - d_fake).detach().mean()), gp=float(gp.detach()))
        out["d_loss"] = float(d_loss.detach())
        if not math.isfinite(out["d_loss"]):
            return out
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        if (step + 1) % cfg.n_critic == 0:
            fake = model.critic_input(model.generate(cond, mask, tau, gen), cond)
            f = model.discriminator(fake).squeeze(-1)
            g_loss = L.g_loss_bce(f) if cfg.loss == "bce" else L.g_loss_wgan(f)
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            self._update_ema(model)
            out["g_loss"] = float(g_loss.detach())
        return out

    def _step_v2(self, model, opts, t, event_batches, ev_idx, tau, gen, step) -> tuple[dict, int]:
        cfg = self.config
        opt_g, opt_d = opts
        (starts, counts), (real_h, real_s, real_m) = event_batches
        ev = ev_idx.numpy()
        idx = np.concatenate([np.arange(starts[e], starts[e] + counts[e]) for e in ev])
        pick = torch.randint(len(real_h), (len(ev),), generator=gen).to(self.device)
        rh, rs, rm = _trim(real_h[pick], real_s[pick], real_m[pick])
        cond, mask = t["cond"][idx], t["mask"][idx]
        groups = np.repeat(np.arange(len(ev)), counts[ev])

        def fake_events():
            d = model.generate(cond, mask, tau, gen)
            h = model.hadrons(t["cluster"][idx], t["axis"][idx], d).to(torch.float32)
            sp = _pair_species(d.pair)
            return _group(groups, h, sp)

        with torch.no_grad():
            fh, fs, fm = fake_events()
        d_real = model.event_discriminator(rh, rs, rm)
        d_fake = model.event_discriminator(fh, fs, fm)
        d_loss = self._d_loss(d_real, d_fake)
        out = {"d_loss": float(d_loss.detach()), "d_real": float(d_real.detach().mean()),
               "d_fake": float(d_fake.detach().mean())}
        if not math.isfinite(out["d_loss"]):
            return out, len(idx)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        if (step + 1) % cfg.n_critic == 0:
            g_loss = L.g_loss_bce(model.event_discriminator(*fake_events()))
            if cfg.anchor > 0:
                pen = sum(((p - self._init[k]) ** 2).sum() for k, p in model.generator.named_parameters())
                g_loss = g_loss + cfg.anchor * pen
                out["anchor_penalty"] = float(pen.detach())
            if cfg.anchor_nonperturbative > 0:
                keep = torch.as_tensor(~t["from_quark"][idx], device=cond.device)
                c0 = cond[keep]
                z = torch.randn((len(c0), model.config.noise_dim), generator=gen).to(c0.device, c0.dtype)
                x = torch.cat([c0, z], 1)
                with torch.no_grad():
                    ref = torch.func.functional_call(model.generator, self._init, (x,))
                pen = ((model.generator(x) - ref) ** 2).sum(1).mean() if len(c0) else torch.zeros((), device=x.device)
                g_loss = g_loss + cfg.anchor_nonperturbative * pen
                out["anchor_nonperturbative_penalty"] = float(pen.detach())
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            self._update_ema(model)
            out["g_loss"] = float(g_loss.detach())
        return out, len(idx)

    # -------------------------------------------------------------- evaluation
    def _evaluate(self, model, test) -> dict:
        """Test-split numbers (``evaluation.json``) and ``metrics.nc``
        (``otviz.metrics.hadronisation``; v2 also its ``smearing_closure``)."""
        from ..atomic import atomic_path
        from ..metrics import hadronisation as H

        cfg = self.config
        t0 = time.perf_counter()
        hadrons, pids = model.sample_dataset(test, seed=cfg.seed + 11, charge_from_hadrons=True)
        pairs = pair_index(test["hadron_pid"].values) >= 0
        q = cluster_charge(test)
        known = np.isfinite(q)
        out = {"n_test_clusters": int(test.sizes["cluster"]), "n_test_pion_pairs": int(pairs.sum()),
               "charge_conserved": bool(np.all(hadron_charge(pids)[known] == q[known])),
               "train_seconds": sum(h["seconds"] for h in self.history)}
        m = H.hadronisation_metrics(test, hadrons, pids, seed=cfg.seed)
        with atomic_path(self.rundir / "metrics.nc") as tmp:
            m.to_netcdf(tmp, engine="h5netcdf")
        out["goal"] = H.goal_table(m)
        if cfg.mode == "v2":
            out[CLOSURE_KEY] = smearing_closure(self.rundir, model, test, fitted=hadrons)
        out["goal_met"] = bool(all(r["met"] is True for r in out["goal"]))
        out["goal_not_evaluable"] = sum(r["met"] is None for r in out["goal"])
        out["evaluate_seconds"] = time.perf_counter() - t0
        return out

    def _load_finished(self):
        super()._load_finished()
        try:
            self.evaluation = json.loads((self.rundir / EVALUATION_FILE).read_text())
        except (OSError, ValueError):
            pass


def _event_index(event) -> tuple[np.ndarray, np.ndarray]:
    """(start, count) of each event's clusters (clusters grouped by event, as the layout requires)."""
    _, starts, counts = np.unique(event, return_index=True, return_counts=True)
    return starts, counts


def _real_events(ds, device):
    """The hadrons (n_ev, W, 4), species (n_ev, W, 3) and mask of a Dataset's events."""
    from ..data.clusterset import event_hadrons

    h, mask, _ = event_hadrons(ds)
    s, _, _ = event_hadrons(ds, species_onehot(ds["hadron_pid"].values))
    return (torch.as_tensor(h, dtype=torch.float32, device=device),
            torch.as_tensor(s[..., :3], dtype=torch.float32, device=device), torch.as_tensor(mask, device=device))


def _pair_species(pair: torch.Tensor) -> torch.Tensor:
    """Per-hadron species probabilities (n, 2, 4) (π⁰, π⁺, π⁻, 0) of a (soft) pair one-hot."""
    table = torch.as_tensor(species_onehot(np.asarray(PAIRS)), dtype=pair.dtype, device=pair.device)  # (P, 2, 4)
    return torch.einsum("np,pik->nik", pair, table)


def _group(groups: np.ndarray, h: torch.Tensor, sp: torch.Tensor):
    """Generated hadrons and species grouped by event (``clusterset.event_hadrons``; differentiable)."""
    import xarray as xr

    from ..data.clusterset import event_hadrons

    ev = xr.Dataset({"event": ("cluster", groups)})
    hh, mask, _ = event_hadrons(ev, h)
    ss, _, _ = event_hadrons(ev, sp)
    return hh, ss[..., :3], mask


def _trim(h, s, m):
    width = int(m.sum(1).max()) if len(m) else 1
    return h[:, :width], s[:, :width], m[:, :width]
