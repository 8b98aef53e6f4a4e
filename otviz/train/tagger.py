"""Jet-tagger training (W vs QCD): config, preset, the background run, and the latents file.

The tagger (:class:`otviz.models.tagger.PFNTagger`) learns P(signal | jet) by binary cross-entropy
on the logit, AdamW, mini-batches drawn in a seeded order per epoch. The jets of the ``signal``
(label 1) and ``background`` (label 0) files — the first ``max_events`` of each — are split per
class, at random from ``seed``, into train / validation / test parts (``split.json`` in the run
directory records the indices into each file). Per epoch the history records the training loss,
the validation loss and AUC, the learning rate, seconds and jets/s; when training ends the test
part's loss and AUC are written to ``evaluation.json``. Checkpoints, resume (a cancelled run
resumed gives the weights of an uninterrupted one), NaN roll-back (bounded retries, learning rate
× ``nan_lr_factor``) and ``--device auto`` are those of :class:`otviz.train.trainer.BackgroundRun`.

:func:`write_latents` computes the tagger's z₁₂₈ of sample files into one ``latents.nc`` (the
input of OT calibration, issue 14).
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
from ..metrics.roc import roc_auc
from ..models.tagger import LATENT, PFNTagger, TaggerModelConfig, tagger_latents
from ..paths import resolve as resolve_path
from .config import _check_str, check_device, config_to_json, tagged_config_from_json
from .trainer import BackgroundRun, TrainingFailed, atomic_torch_save, atomic_write_json

TAG = "tagger"
SPLIT_FILE = "split.json"
EVALUATION_FILE = "evaluation.json"
PARTS = ("train", "val", "test")
LABELS = {"signal": 1, "background": 0}


@dataclass
class TaggerConfig:
    kind: str = TAG
    model: str = "tagger-wjets"
    signal: str = "data/calibration/wjets_sim.nc"  # label 1
    background: str = "data/calibration/qcd_sim.nc"  # label 0
    max_events: int | None = None  # per class: the first N jets of each file (None: all)
    val_fraction: float = 0.15  # of each class
    test_fraction: float = 0.15  # of each class
    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3  # AdamW
    weight_decay: float = 1e-2  # AdamW's decoupled weight decay
    lr_decay: float = 0.0  # lr / (1 + lr_decay·epoch)
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 1
    max_nan_retries: int = 3
    nan_lr_factor: float = 0.5
    model_config: TaggerModelConfig = field(default_factory=TaggerModelConfig)

    BOUNDS: ClassVar[dict[str, tuple]] = {
        "max_events": (1, 100_000_000), "val_fraction": (0.01, 0.5), "test_fraction": (0.01, 0.5),
        "epochs": (1, 5000), "batch_size": (1, 1_000_000), "lr": (1e-8, 1.0), "weight_decay": (0.0, 10.0),
        "lr_decay": (0.0, 1e3), "seed": (0, 2 ** 32 - 1), "checkpoint_every": (1, 5000), "max_nan_retries": (0, 100),
        "nan_lr_factor": (1e-3, 1.0),
    }

    def __post_init__(self):
        if isinstance(self.model_config, dict):
            self.model_config = TaggerModelConfig.from_dict(self.model_config)
        self.validate()

    def validate(self) -> "TaggerConfig":
        own = "TaggerConfig"
        if self.kind != TAG:
            raise ConfigError(f"{own}.kind = {self.kind!r}: must be {TAG!r}", "kind", self.kind, TAG)
        for name in ("model", "signal", "background"):
            _check_str(own, name, getattr(self, name))
        check_bounds(self)
        check_device(own, self.device)
        if not isinstance(self.model_config, TaggerModelConfig):
            raise ConfigError(f"{own}.model_config: must be a TaggerModelConfig", "model_config")
        try:
            self.model_config.validate()
        except ConfigError as exc:
            raise exc.nested("model_config")
        return self

    @property
    def total_epochs(self) -> int:
        return self.epochs

    def schedule_text(self) -> str:
        jets = f"the first {self.max_events} jets of each class" if self.max_events else "every jet"
        return (f"schedule: {self.epochs} epoch{'s' * (self.epochs != 1)} of BCE, AdamW lr {self.lr:g}, batches of "
                f"{self.batch_size}, on {jets} ({1 - self.val_fraction - self.test_fraction:.0%} train, "
                f"{self.val_fraction:.0%} validation, {self.test_fraction:.0%} test)")

    def disk_plan(self) -> tuple[int, int]:
        return 0, self.epochs

    def to_json(self) -> str:
        return config_to_json(self)

    @classmethod
    def from_json(cls, text: str) -> "TaggerConfig":
        return tagged_config_from_json(cls, text, TAG, "tagger", {"model_config": lambda d: TaggerModelConfig(**d)})


def tagger_wjets_config(epochs: int = 20, **overrides) -> TaggerConfig:
    """The W-vs-QCD tagger of issue 14, trained on the simulation domain only: W jets
    (data/calibration/wjets_sim.nc) against QCD jets (qcd_sim.nc), the first 20,000 of each,
    70/15/15 % train/validation/test, PFN Φ 4 → [100, 100] → 128, F 128 → [100, 512] → z₁₂₈,
    20 epochs of AdamW (lr 10⁻³, weight decay 10⁻², batches of 256).

    F's last hidden layer is wider than z₁₂₈ on purpose: with the PFN's 100 there, z₁₂₈ = A·GELU(h) + c
    lies on a 100-d subspace, crowded against the faces where GELU saturates near 0, and *any* map
    that does not know that structure is spotted by a discriminator — moving the simulated latents
    by the sim→data mean difference alone gave a z₁₂₈ AUC of 0.97 against data (0.54 before). A
    512 → 128 projection makes z₁₂₈ a full-rank, smooth image, as the paper's z₁₂₈ (a Linear of a
    512-d token) is."""
    check_number("tagger_wjets_config", "epochs", epochs, *TaggerConfig.BOUNDS["epochs"], integer=True)
    cfg = TaggerConfig(epochs=epochs, max_events=20_000,
                       model_config=TaggerModelConfig(phi_hidden=(100, 100), phi_out=128, f_hidden=(100, 512)))
    for k, v in overrides.items():
        if not hasattr(cfg, k):
            raise ConfigError(f"unknown training option {k!r}", k)
        setattr(cfg, k, v)
    return cfg.validate()


PRESETS = {"tagger-wjets": tagger_wjets_config}


# ---------------------------------------------------------------------- data
def check_jet_file(path, what: str) -> None:
    """Check (lazily) that ``path`` is a jet sample, x(event, constituent, feature) centred on the
    jet axis; a one-line error naming the file and the config field ``what`` otherwise."""
    import xarray as xr

    from ..data.io import DataValidationError

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} ({what}): no such file")
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            dims = tuple(ds["x"].dims) if "x" in ds.variables else None
            centred = ds.attrs.get("centred")
            process = ds.attrs.get("process", "unknown")
    except Exception as exc:  # h5py/netCDF errors of truncated or foreign files
        raise DataValidationError(f"{path} ({what}): cannot be read as a netCDF-4 sample: "
                                  f"{type(exc).__name__}: {exc}") from exc
    if dims != ("event", "constituent", "feature"):
        raise DataValidationError(f"{path} ({what}): a {process} sample with x{dims}; the tagger needs jet "
                                  "constituents x(event, constituent, feature=[pt, eta, phi])")
    if centred is not None and not int(centred):
        raise DataValidationError(f"{path} ({what}): its jets are not centred on the jet axis (attribute "
                                  "centred = 0); the tagger reads η, φ as Δη, Δφ — generate with --centre")


def load_jets(path, max_events: int | None = None) -> np.ndarray:
    """The first ``max_events`` jets (n, N, 3) float32 of (pT, η, φ) of a validated sample file."""
    from ..data.io import load as load_sample

    ds = load_sample(resolve_path(path))
    return np.asarray(ds["x"].values[:max_events], dtype=np.float32)


def split_indices(n: int, val_fraction: float, test_fraction: float, seed: int, salt: int) -> dict[str, list[int]]:
    """A seeded random split of range(n) into train / val / test (sorted index lists); at least one
    jet in each part when n ≥ 3."""
    order = np.random.default_rng([seed, salt]).permutation(n)
    n_test = max(int(round(n * test_fraction)), 1 if n >= 3 else 0)
    n_val = max(int(round(n * val_fraction)), 1 if n >= 3 else 0)
    parts = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
    return {k: sorted(int(i) for i in parts[k]) for k in PARTS}


def make_split(config: TaggerConfig, counts: dict[str, int]) -> dict:
    """The run's split: for each class (``signal``, ``background``) its file, jet count and the
    train / val / test indices into the file."""
    out = {"seed": config.seed, "val_fraction": config.val_fraction, "test_fraction": config.test_fraction}
    for salt, cls in enumerate(LABELS):
        out[cls] = {"file": getattr(config, cls), "label": LABELS[cls], "n": counts[cls],
                    **split_indices(counts[cls], config.val_fraction, config.test_fraction, config.seed, salt)}
    return out


def read_split(rundir) -> dict:
    """A tagger run's split.json (:func:`make_split`)."""
    return json.loads((Path(rundir) / SPLIT_FILE).read_text())


def bce(logit: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of logits against 0/1 labels."""
    return torch.nn.functional.binary_cross_entropy_with_logits(logit, label)


def _trim(jets: torch.Tensor) -> torch.Tensor:
    """Drop the trailing slots that are padding in every jet of the batch."""
    real = (jets[..., 0] > 0).any(0).nonzero()
    return jets[:, : int(real[-1]) + 1 if len(real) else 1]


# ---------------------------------------------------------------------- the run
class TaggerRun(BackgroundRun):
    """A (possibly resumed) tagger training run in ``rundir`` (same contract as ``TrainingRun``);
    ``run.model`` is the :class:`PFNTagger` once training started."""

    CONFIG = TaggerConfig

    def __init__(self, rundir, config: TaggerConfig | None = None, restart: bool = False):
        self._open(rundir, config, self.CONFIG, restart=restart)
        if self.fresh:  # this kind's own records of an earlier run
            for name in (SPLIT_FILE, EVALUATION_FILE):
                (self.rundir / name).unlink(missing_ok=True)
        self.loss_fn = bce  # replaceable in tests (e.g. to inject a NaN)
        self.model: PFNTagger | None = None
        self.evaluation: dict = {}

    def _check_data(self, config):
        for what in LABELS:
            check_jet_file(resolve_path(getattr(config, what)), what)

    def _optimizer(self, model, lr_scale):
        return torch.optim.AdamW(model.parameters(), lr=self.config.lr * lr_scale,
                                 weight_decay=self.config.weight_decay)

    def _checkpoint(self, model, opt, epoch, retries, lr_scale):
        atomic_torch_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                           "history": self.history, "nan_retries": retries, "lr_scale": lr_scale},
                          self.rundir / "checkpoint.pt")
        atomic_write_json(self.rundir / "history.json", self.history)

    def _load(self, path):
        return torch.load(path, map_location=self.device, weights_only=True)

    def _data(self):
        """(jets, labels) tensors on the device for each part, and the split record."""
        cfg = self.config
        jets = {cls: load_jets(getattr(cfg, cls), cfg.max_events) for cls in LABELS}
        split = make_split(cfg, {cls: len(j) for cls, j in jets.items()})
        atomic_write_json(self.rundir / SPLIT_FILE, split)
        n_slots = max(j.shape[1] for j in jets.values())
        parts = {}
        for part in PARTS:
            xs, ys = [], []
            for cls, label in LABELS.items():
                j = jets[cls][split[cls][part]]
                xs.append(np.pad(j, ((0, 0), (0, n_slots - j.shape[1]), (0, 0))))
                ys.append(np.full(len(j), float(label), dtype=np.float32))
            x = _trim(torch.as_tensor(np.concatenate(xs)))
            parts[part] = (x.to(self.device), torch.as_tensor(np.concatenate(ys)).to(self.device))
        return parts, split

    @torch.no_grad()
    def _score(self, model, x, y, batch: int = 4096) -> tuple[float, float]:
        """(mean BCE, AUC) of ``model`` on jets ``x`` with labels ``y``."""
        was = model.training
        model.eval()
        logits = torch.cat([model(_trim(x[i:i + batch])) for i in range(0, len(x), batch)])
        model.train(was)
        loss = float(bce(logits, y))
        ok = torch.isfinite(logits).all()
        auc = roc_auc(logits.cpu().numpy(), y.cpu().numpy()) if ok and 0 < float(y.sum()) < len(y) else float("nan")
        return loss, auc

    def _train(self):
        cfg = self.config
        parts, split = self._data()
        x, y = parts["train"]
        if len(x) == 0 or not 0 < float(y.sum()) < len(y):
            raise ValueError(f"tagger: the training part needs jets of both classes (have {int(y.sum())} signal, "
                             f"{int(len(y) - y.sum())} background)")
        torch.manual_seed(cfg.seed)
        model = PFNTagger(cfg.model_config).to(self.device)
        model.fit_standardisation(x)
        self.model = model
        ckpt = self.rundir / "checkpoint.pt"
        epoch, retries, lr_scale = 0, 0, 1.0
        opt = self._optimizer(model, lr_scale)
        if ckpt.exists():
            state = self._load(ckpt)
            model.load_state_dict(state["model"])
            epoch, retries, lr_scale = int(state["epoch"]), int(state["nan_retries"]), float(state["lr_scale"])
            self.history = list(state["history"])
            opt = self._optimizer(model, lr_scale)
            opt.load_state_dict(state["optimizer"])
            atomic_write_json(self.rundir / "history.json", self.history)  # trim it to the checkpoint
            self._emit(type="resumed", epoch=epoch)
        else:  # the initial state is the first "last good" checkpoint
            self._checkpoint(model, opt, 0, 0, 1.0)
        good = self._load(ckpt)
        n = len(x)
        bs = min(cfg.batch_size, n)
        steps = math.ceil(n / bs)
        while epoch < cfg.epochs:
            if self._cancel.is_set():
                return
            lr = cfg.lr * lr_scale / (1.0 + cfg.lr_decay * epoch)
            for g in opt.param_groups:
                g["lr"] = lr
            model.train()
            gen = torch.Generator(device="cpu").manual_seed(cfg.seed * 1_000_003 + epoch)
            perm = torch.randperm(n, generator=gen).to(self.device)
            total, t0, nan = 0.0, time.perf_counter(), False
            for step in range(steps):
                if self._cancel.is_set():
                    return
                idx = perm[step * bs:(step + 1) * bs]
                loss = self.loss_fn(model(_trim(x[idx])), y[idx])
                if not math.isfinite(float(loss.detach())):
                    nan = True
                    break
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
                self._emit(type="step", epoch=epoch, step=step, steps=steps, stage="tagger", total_epochs=cfg.epochs,
                           events_per_s=(step * bs + len(idx)) / (time.perf_counter() - t0), lr=lr,
                           loss=float(loss.detach()))
            if nan:
                retries += 1
                if retries > cfg.max_nan_retries:
                    raise TrainingFailed(f"non-finite loss at epoch {epoch}; gave up after {cfg.max_nan_retries} "
                                         "roll-backs")
                model.load_state_dict(good["model"])
                epoch = int(good["epoch"])
                lr_scale *= cfg.nan_lr_factor
                opt = self._optimizer(model, lr_scale)
                self.history = list(good["history"])
                self._checkpoint(model, opt, epoch, retries, lr_scale)
                good = self._load(ckpt)
                self._emit(type="nan_rollback", epoch=epoch, retries=retries, lr_scale=lr_scale)
                continue
            seconds = time.perf_counter() - t0
            val_loss, val_auc = self._score(model, *parts["val"])
            rec = {"epoch": epoch, "stage": "tagger", "loss": total / n, "val_loss": val_loss, "val_auc": val_auc,
                   "lr": lr, "seconds": seconds, "events_per_s": n / seconds}
            self.history.append(rec)
            epoch += 1
            self._emit(type="epoch", total_epochs=cfg.epochs, **rec)
            if epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs:
                self._checkpoint(model, opt, epoch, retries, lr_scale)
                good = self._load(ckpt)
                self._emit(type="checkpoint", epoch=epoch)
            else:
                atomic_write_json(self.rundir / "history.json", self.history)
        model.eval()
        test_loss, test_auc = self._score(model, *parts["test"])
        yt = parts["test"][1]
        self.evaluation = {"test_loss": test_loss, "test_auc": test_auc, "n_test_signal": int(yt.sum()),
                           "n_test_background": int(len(yt) - yt.sum()),
                           "train_seconds": sum(h["seconds"] for h in self.history)}
        atomic_write_json(self.rundir / EVALUATION_FILE, self.evaluation)
        self._emit(type="evaluation", **self.evaluation)
        atomic_torch_save({"model": model.state_dict()}, self.rundir / "model.pt")

    def _load_finished(self):
        super()._load_finished()
        try:
            self.evaluation = json.loads((self.rundir / EVALUATION_FILE).read_text())
        except (OSError, ValueError):
            pass


def read_evaluation(rundir) -> dict:
    """A finished tagger run's evaluation.json: ``test_auc``, ``test_loss``, test jet counts, seconds."""
    return json.loads((Path(rundir) / EVALUATION_FILE).read_text())


# ---------------------------------------------------------------------- latents
def evaluate_files(model: PFNTagger, signal, background, max_events: int | None = None) -> dict:
    """AUC and mean BCE of a tagger on a signal and a background file (all their jets, or the
    first ``max_events`` of each)."""
    from ..models.tagger import tagger_outputs_from_latent

    js, jb = load_jets(signal, max_events), load_jets(background, max_events)
    z = np.concatenate([tagger_latents(model, js), tagger_latents(model, jb)])
    score = tagger_outputs_from_latent(model, z)["score"]
    label = np.r_[np.ones(len(js)), np.zeros(len(jb))]
    eps = 1e-7
    p = np.clip(score.astype(np.float64), eps, 1 - eps)
    return {"auc": roc_auc(score, label), "bce": float(-np.mean(label * np.log(p) + (1 - label) * np.log(1 - p))),
            "n_signal": len(js), "n_background": len(jb)}


def _domain_of(path: Path, attrs) -> str:
    d = attrs.get("domain")
    if d:
        return str(d)
    stem = path.stem.lower()
    return next((name for name in ("sim", "data") if stem.endswith("_" + name)), "unknown")


def write_latents(run, files, out, labels=None, domains=None, max_events: int | None = None, batch: int = 4096):
    """Compute a tagger's z₁₂₈ of every jet of ``files`` (sample paths) into the netCDF ``out`` and
    return the Dataset::

        z128(jet, latent)   the tagger's latent z₁₂₈ (float32)
        score(jet)          the tagger's output σ(logit) on z₁₂₈ (before any calibration)
        label(jet)          1 signal, 0 background (``labels``: one per file; default from the
                            file's process: 1 for wjets, else 0)
        domain(jet)         "sim" / "data" (``domains``: one per file; default the file's
                            ``domain`` attribute, else its name's _sim/_data suffix)
        sample(jet)         index into the ``samples`` attribute (the file names)

    ``run`` is a tagger run directory or a loaded ``otviz.load_run`` Run; attributes record its path,
    the sample files, their labels and domains. Written atomically."""
    import xarray as xr

    from ..atomic import atomic_path
    from ..models.tagger import tagger_outputs_from_latent
    from .run import load_run

    run = load_run(run) if isinstance(run, (str, Path)) else run
    files = [Path(f) for f in files]
    if not files:
        raise ValueError("write_latents: no sample files")
    for name, given in (("labels", labels), ("domains", domains)):
        if given is not None and len(given) != len(files):
            raise ValueError(f"write_latents: {len(given)} {name} for {len(files)} files")
    zs, lab, dom, sample, names, labs, doms = [], [], [], [], [], [], []
    for i, f in enumerate(files):
        path = resolve_path(f)
        check_jet_file(path, f"files[{i}]")
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            attrs = dict(ds.attrs)
        jets = load_jets(path, max_events)
        label = int(labels[i]) if labels is not None else int(attrs.get("process") == "wjets")
        domain = str(domains[i]) if domains is not None else _domain_of(path, attrs)
        zs.append(tagger_latents(run.model, jets, batch=batch))
        lab.append(np.full(len(jets), label, dtype=np.int8))
        dom.append(np.full(len(jets), domain))
        sample.append(np.full(len(jets), i, dtype=np.int32))
        names.append(path.name)
        labs.append(label)
        doms.append(domain)
    z128 = np.concatenate(zs)
    ds = xr.Dataset(
        {"z128": (("jet", "latent"), z128), "score": ("jet", tagger_outputs_from_latent(run.model, z128)["score"]),
         "label": ("jet", np.concatenate(lab)),
         "domain": ("jet", np.concatenate(dom).astype(str)), "sample": ("jet", np.concatenate(sample))},
        coords={"latent": np.arange(LATENT)},
        attrs={"tagger_run": str(Path(run.path).resolve()), "samples": json.dumps(names),
               "sample_paths": json.dumps([str(resolve_path(f)) for f in files]), "sample_labels": json.dumps(labs),
               "sample_domains": json.dumps(doms), "max_events": -1 if max_events is None else int(max_events),
               "description": "z128: the tagger's first 128-d head layer (pre-activation), the OT calibration "
                              "target; push calibrated latents through otviz.models.tagger.tagger_outputs_from_latent"})
    ds["z128"].attrs["long_name"] = "tagger latent z_128"
    ds["label"].attrs["long_name"] = "1 signal (W), 0 background (QCD)"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")
    return ds
