"""Background training runs with atomic checkpoints, resume and NaN roll-back.

A :class:`TrainingRun` owns a run directory and a daemon thread. The UI (or the CLI) calls
``start()``, polls ``events_since(i)`` / ``status`` and may ``cancel()``; nothing trains in a
caller's thread. Run directory::

    config.json        the TrainConfig
    checkpoint.pt      latest state (model, optimiser, epoch, RNG, history), atomic
    model.pt           final model weights, atomic
    history.json       one record per epoch (each loss term, lr, events/s, seconds)
    status.json        state of the run (running / done / cancelled / failed + message)

All checkpoint files are written to a temporary file and renamed, and read with
``torch.load(..., weights_only=True)``.
"""
from __future__ import annotations

import json
import math
import threading
import time
import traceback
from pathlib import Path

import torch

from ..atomic import write_bytes
from ..data.io import load as load_sample
from ..models.otus import OTUS
from ..paths import resolve as resolve_path
from ..physics import fourvec as fv
from .config import TrainConfig
from .otus_loss import otus_loss


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA device (use --device auto or cpu)")
    return torch.device(device)


def atomic_torch_save(obj, path: Path):
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes(path, buf.getvalue())


def atomic_write_json(path: Path, obj):
    write_bytes(path, json.dumps(obj, indent=1).encode())


def four_vectors(ds, name) -> torch.Tensor:
    return torch.as_tensor(ds[name].values, dtype=torch.float32)


class TrainingFailed(RuntimeError):
    pass


class BackgroundRun:
    """A run directory trained by a daemon thread: ``start()``, ``cancel()``, ``wait()``,
    ``events_since(i)`` and ``status``; subclasses implement ``_train()``. ``run_blocking`` trains
    in the caller's thread (CLI, Dask workers)."""

    def _open(self, rundir, config, config_cls):
        """Bind to ``rundir``: a new run writes ``config``; ``config=None`` reopens the directory's
        run (to resume); a directory holding a different config is refused."""
        self.rundir = Path(rundir)
        cfg_path = self.rundir / "config.json"
        if config is None:
            if not cfg_path.exists():
                raise FileNotFoundError(f"{self.rundir}: no config.json — not a training run directory")
            config = config_cls.from_json(cfg_path.read_text())
        elif cfg_path.exists() and config_cls.from_json(cfg_path.read_text()) != config:
            raise FileExistsError(f"{self.rundir}: holds a run with a different config.json; choose a new directory")
        self.config = config
        self.rundir.mkdir(parents=True, exist_ok=True)
        if not cfg_path.exists():
            write_bytes(cfg_path, config.to_json().encode())
        self.device = resolve_device(config.device)
        self._events: list[dict] = []
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self.status = "idle"
        self.message = ""
        self.history: list[dict] = []

    # ------------------------------------------------------------------ public API
    def start(self) -> "BackgroundRun":
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("run already started")
        self._cancel.clear()
        self.status = "running"
        self._thread = threading.Thread(target=self._main, name=f"otviz-train-{self.rundir.name}", daemon=True)
        self._thread.start()
        return self

    def cancel(self):
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> str:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.status

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def events_since(self, i: int = 0) -> list[dict]:
        with self._lock:
            return list(self._events[i:])

    @property
    def n_events(self) -> int:
        with self._lock:
            return len(self._events)

    def run_blocking(self, progress=None) -> str:
        """Train in the calling thread (CLI); ``progress(event)`` is called for each event."""
        self.status = "running"
        self._progress_cb = progress
        self._main()
        return self.status

    # ------------------------------------------------------------------ internals
    def _emit(self, **ev):
        ev.setdefault("time", time.time())
        with self._lock:
            self._events.append(ev)
        cb = getattr(self, "_progress_cb", None)
        if cb is not None:
            cb(ev)

    def _set_status(self, status, message=""):
        self.status, self.message = status, message
        atomic_write_json(self.rundir / "status.json", {"status": status, "message": message, "time": time.time()})

    def _main(self):
        try:
            self._set_status("running")
            self._train()
            if self._cancel.is_set():
                self._set_status("cancelled", "cancelled by the user")
                self._emit(type="cancelled")
            else:
                self._set_status("done")
                self._emit(type="done")
        except Exception as exc:  # reported to the UI, never silently swallowed
            self._set_status("failed", f"{type(exc).__name__}: {exc}")
            self._emit(type="failed", message=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
            if getattr(self, "_progress_cb", None) is not None:
                raise

    def _train(self):  # pragma: no cover - abstract
        raise NotImplementedError


class TrainingRun(BackgroundRun):
    """A (possibly resumed) training run in ``rundir``.

    ``TrainingRun(rundir, config)`` starts a new run (the directory must not hold another run's
    config); ``TrainingRun(rundir)`` reopens an existing one and resumes from its checkpoint.
    """

    def __init__(self, rundir, config: TrainConfig | None = None):
        self._open(rundir, config, TrainConfig)
        self.loss_fn = otus_loss  # replaceable in tests (e.g. to inject a NaN)
        self.model: OTUS | None = None

    def _load_data(self):
        cfg = self.config
        ds = load_sample(resolve_path(cfg.train_data))
        x, z = four_vectors(ds, "x"), four_vectors(ds, "z")
        if cfg.max_events:
            x, z = x[: cfg.max_events], z[: cfg.max_events]
        return x.to(self.device), z.to(self.device)

    def _build(self, x, z):
        cfg = self.config
        torch.manual_seed(cfg.seed)
        model = OTUS(cfg.model_config).to(self.device)
        model.fit_standardisation(x, z)
        return model

    def _make_optimizer(self, model, stage):
        params = model.decoder.parameters() if stage.train == "decoder" else model.parameters()
        return torch.optim.Adam(params, lr=stage.lr)

    def _stage_at(self, epoch):
        """(stage index, epoch within the stage) of a global epoch number."""
        e = epoch
        for i, s in enumerate(self.config.stages):
            if e < s.epochs:
                return i, e
            e -= s.epochs
        return len(self.config.stages), 0

    def _checkpoint(self, model, opt, epoch, retries, lr_scale):
        state = {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "epoch": epoch,  # epochs completed
            "stage": self._stage_at(epoch)[0],
            "history": self.history,
            "nan_retries": retries,
            "lr_scale": lr_scale,
        }
        atomic_torch_save(state, self.rundir / "checkpoint.pt")
        atomic_write_json(self.rundir / "history.json", self.history)
        return state

    def _train(self):
        cfg = self.config
        x, z = self._load_data()
        model = self._build(x, z)
        self.model = model
        ckpt_path = self.rundir / "checkpoint.pt"
        start_epoch, retries, lr_scale = 0, 0, 1.0
        opt = None
        if ckpt_path.exists():
            state = torch.load(ckpt_path, map_location=self.device, weights_only=True)
            model.load_state_dict(state["model"])
            start_epoch = int(state["epoch"])
            self.history = list(state["history"])
            retries, lr_scale = int(state["nan_retries"]), float(state["lr_scale"])
            si, _ = self._stage_at(start_epoch)
            if si < len(cfg.stages):
                opt = self._make_optimizer(model, cfg.stages[si])
                if state["stage"] == si:
                    opt.load_state_dict(state["optimizer"])
            self._emit(type="resumed", epoch=start_epoch)
        total = cfg.total_epochs
        x_scale = x.reshape(len(x), -1).std(0).clamp_min(1e-6) if cfg.loss_space == "standardised" else torch.ones(1, device=self.device)
        z_scale = z.reshape(len(z), -1).std(0).clamp_min(1e-6) if cfg.loss_space == "standardised" else torch.ones(1, device=self.device)
        x_ms = fv.invariant_mass(x).std().clamp_min(1e-6) if cfg.mass_feature else None
        z_ms = fv.invariant_mass(z).std().clamp_min(1e-6) if cfg.mass_feature else None
        ax = list(cfg.model_config.x_particles).index(cfg.anchor_particle)
        az = list(cfg.model_config.z_particles).index(cfg.anchor_particle)
        n = len(x)
        bs = min(cfg.batch_size, n)
        steps = max(n // bs, 1)
        if not ckpt_path.exists():  # the initial state is the first "last good" checkpoint
            self._checkpoint(model, self._make_optimizer(model, cfg.stages[0]), 0, 0, 1.0)
        good_state = torch.load(ckpt_path, map_location=self.device, weights_only=True)
        epoch = start_epoch
        prev_stage = self._stage_at(epoch)[0] if opt is not None else None
        while epoch < total:
            if self._cancel.is_set():
                return
            si, e_in = self._stage_at(epoch)
            stage = cfg.stages[si]
            if si != prev_stage or opt is None:
                opt = self._make_optimizer(model, stage)
                prev_stage = si
            lr = stage.lr * lr_scale / (1.0 + stage.lr_decay * e_in)
            for g in opt.param_groups:
                g["lr"] = lr
            model.train()
            for p in model.encoder.parameters():
                p.requires_grad_(stage.train != "decoder")
            # independent shuffles of x and z: the model never sees a (z, x) pair
            gen = torch.Generator(device="cpu").manual_seed(cfg.seed * 1_000_003 + epoch)
            px = torch.randperm(n, generator=gen).to(self.device)
            pz = torch.randperm(n, generator=gen).to(self.device)
            dgen = torch.Generator(device=self.device).manual_seed(cfg.seed * 1_000_003 + epoch + 7)
            sums: dict[str, float] = {}
            t0 = time.perf_counter()
            nan = False
            for step in range(steps):
                if self._cancel.is_set():
                    return
                xb = x[px[step * bs:(step + 1) * bs]]
                zb = z[pz[step * bs:(step + 1) * bs]]
                loss, terms = self.loss_fn(model, xb, zb, stage, cfg.n_projections, dgen, x_scale, z_scale, ax, az,
                                           x_mass_scale=x_ms, z_mass_scale=z_ms)
                if not math.isfinite(float(loss.detach())):
                    nan = True
                    break
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + v
                done = (step + 1) * bs
                rate = done / (time.perf_counter() - t0)
                self._emit(type="step", epoch=epoch, step=step, steps=steps, stage=stage.name,
                           total_epochs=total, events_per_s=rate, lr=lr, **terms)
            if nan:
                retries += 1
                if retries > cfg.max_nan_retries:
                    raise TrainingFailed(
                        f"non-finite loss at epoch {epoch}; gave up after {cfg.max_nan_retries} roll-backs"
                    )
                model.load_state_dict(good_state["model"])
                epoch = int(good_state["epoch"])
                lr_scale *= cfg.nan_lr_factor
                opt = self._make_optimizer(model, cfg.stages[self._stage_at(epoch)[0]])
                prev_stage = self._stage_at(epoch)[0]
                self.history = list(good_state["history"])
                self._emit(type="nan_rollback", epoch=epoch, retries=retries, lr_scale=lr_scale)
                continue
            seconds = time.perf_counter() - t0
            rec = {k: v / steps for k, v in sums.items()}
            rec.update(epoch=epoch, stage=stage.name, lr=lr, seconds=seconds, events_per_s=steps * bs / seconds)
            self.history.append(rec)
            epoch += 1
            self._emit(type="epoch", total_epochs=total, **rec)
            if epoch % cfg.checkpoint_every == 0 or epoch == total:
                self._checkpoint(model, opt, epoch, retries, lr_scale)
                good_state = torch.load(ckpt_path, map_location=self.device, weights_only=True)
                self._emit(type="checkpoint", epoch=epoch)
            else:
                atomic_write_json(self.rundir / "history.json", self.history)
        model.eval()
        atomic_torch_save({"model": model.state_dict()}, self.rundir / "model.pt")
