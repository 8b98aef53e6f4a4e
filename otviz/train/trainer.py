"""Background training runs with atomic checkpoints, resume and NaN roll-back.

A :class:`TrainingRun` owns a run directory and a background thread (:mod:`otviz.background`:
cancelled and waited for when the interpreter exits). The UI (or the CLI) calls
``start()``, polls ``events_since(i)`` / ``status`` and may ``cancel()``; nothing trains in a
caller's thread. Run directory::

    config.json        the TrainConfig
    checkpoint.pt      latest state (model, optimiser, epoch, RNG, history), atomic
    model.pt           final model weights, atomic
    history.json       one record per epoch (each loss term, lr, events/s, seconds)
    status.json        state of the run (running / done / cancelled / failed / interrupted +
                       message); while running also the training process (pid, host) and a
                       heartbeat time, so :func:`run_status` shows a killed run as "interrupted"

All checkpoint files are written to a temporary file and renamed, and read with
``torch.load(..., weights_only=True)``; orphaned temporary files of a killed process are removed
when the run is opened again (here and by ``load_run``), and a resumed run trims history.json to
its checkpoint.

Opening a directory (``TrainingRun(rundir, config)`` / ``AnnealingRun``): the config is validated
and the data checked before anything is written; a directory holding a run with other settings
is refused (:class:`otviz.errors.RunExistsError` naming the differing fields) unless
``restart=True``, which replaces it; the same settings resume it (a finished run — model.pt —
is left as it is); a run that never wrote a checkpoint starts fresh; a run another live process
trains is refused (:class:`otviz.errors.RunBusyError`).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import socket
import threading
import time
import traceback
from pathlib import Path

import torch

from ..atomic import write_bytes
from ..background import exiting, start_thread
from ..data.io import DataValidationError
from ..data.io import load as load_sample
from ..errors import RunBusyError, RunExistsError
from ..losses.otus import otus_loss
from ..models.otus import OTUS
from ..paths import resolve as resolve_path
from ..physics import fourvec as fv
from .config import TrainConfig, TtbarConfig
from .pairing import PairedSampler


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
    """Training gave up (e.g. a persistent non-finite loss); the run's status is "failed"."""


# ---------------------------------------------------------------------- run directory state
HEARTBEAT_S = 10.0  # a running run rewrites status.json this often
STALE_S = 120.0  # a run on another host whose heartbeat is older than this counts as interrupted
RUNTIME_FIELDS = ("device", "threads", "checkpoint_every")  # may differ between a run's starts without refusing
RUN_FILES = ("checkpoint.pt", "model.pt", "history.json", "status.json", "steps.json", "metrics.nc",
             "metrics.json", "dimension.nc")
_ACTIVE: set[str] = set()  # run directories trained by a thread of this process
_ACTIVE_LOCK = threading.Lock()


def _proc_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux /proc), to tell a reused pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return None if fields[0] == "Z" else fields[19]
    except (OSError, IndexError):
        return None


def _pid_alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if os.path.exists(f"/proc/{pid}"):
        now = _proc_start(pid)
        if now is None or (start is not None and now != start):
            return False  # a zombie, or the pid now belongs to another process
    return True


def _key(rundir) -> str:
    return str(Path(rundir).resolve())


def run_status(path) -> dict:
    """The effective status of a run directory: status.json's record, except that a run recorded
    as "running" whose process is gone (not alive on this host, or no heartbeat from another host
    for ``STALE_S`` seconds) is reported as "interrupted" (``recorded`` keeps "running").
    No status.json: ``{"status": "unknown"}``."""
    path = Path(path)
    try:
        st = json.loads((path / "status.json").read_text())
        if not isinstance(st, dict) or "status" not in st:
            raise ValueError("no status field")
    except FileNotFoundError:
        return {"status": "unknown", "message": ""}
    except (OSError, ValueError) as exc:
        return {"status": "unknown", "message": f"status.json unreadable: {exc}"}
    if st["status"] != "running":
        return st
    pid, host = st.get("pid"), st.get("host")
    beat = float(st.get("heartbeat", st.get("time", 0.0)))
    if pid is not None and host == socket.gethostname():
        if int(pid) == os.getpid():
            with _ACTIVE_LOCK:
                alive = _key(path) in _ACTIVE
        else:
            alive = _pid_alive(int(pid), st.get("proc_start"))
        why = f"the training process (pid {pid} on {host}) is gone"
    else:
        alive = time.time() - beat < STALE_S
        why = f"no heartbeat from {host or 'the training process'} for {time.time() - beat:.0f} s"
    if alive:
        return st
    return dict(st, status="interrupted", recorded="running", message=why)


def clean_temporary_files(rundir) -> list[Path]:
    """Remove the atomic writes' orphaned temporary files (``.NAME.*.tmp``) of a run directory
    and its steps/ folder; call only when no live process trains there. Returns what it removed."""
    rundir, removed = Path(rundir), []
    patterns = [(rundir, f".{name}.*.tmp") for name in (*RUN_FILES, "config.json")] + [(rundir / "steps", ".*.pt.*.tmp")]
    for folder, pattern in patterns:  # only the run's own files: never another writer's in a shared folder
        if folder.is_dir():
            for f in folder.glob(pattern):
                try:
                    f.unlink()
                    removed.append(f)
                except FileNotFoundError:
                    pass
    return removed


def config_differences(stored, new) -> dict[str, tuple]:
    """Flattened field → (stored, new) for every setting that differs, ``RUNTIME_FIELDS`` aside."""
    out: dict[str, tuple] = {}

    def walk(a, b, name):
        if isinstance(a, dict) and isinstance(b, dict):
            for k in dict.fromkeys([*a, *b]):
                walk(a.get(k), b.get(k), f"{name}.{k}" if name else str(k))
        elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b)):
                walk(x, y, f"{name}[{i}]")
        elif a != b:
            out[name] = (_brief(a), _brief(b))

    a, b = dataclasses.asdict(stored), dataclasses.asdict(new)
    for k in RUNTIME_FIELDS:
        a.pop(k, None)
        b.pop(k, None)
    walk(a, b, "")
    return out


def _brief(v):
    """Lists of stages / passes as their names and sizes (``[anchor 8, main 82]``)."""
    if isinstance(v, (list, tuple)) and v and all(isinstance(x, dict) for x in v):
        def one(x):
            size = x.get("epochs", len(x["betas"]) if isinstance(x.get("betas"), list) else "")
            return f"{x.get('name', '?')} {size}".strip()
        return "[" + ", ".join(one(x) for x in v) + "]"
    return v


def format_differences(diff: dict[str, tuple], limit: int = 4) -> str:
    """``field: stored → new`` for the first ``limit`` differences."""
    def show(v):
        return v if isinstance(v, str) and v.startswith("[") else repr(v)

    items = [f"{k}: {show(a)} → {show(b)}" for k, (a, b) in diff.items()]
    more = f", … {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _describe_stored(cfg_path: Path) -> str:
    try:
        d = json.loads(cfg_path.read_text())
    except (OSError, ValueError):
        return "an unreadable config.json"
    from .. import kinds

    k = kinds.for_config_dict(d)
    try:
        if k is not None:
            k.config_class().from_json(json.dumps(d))
            return k.description
    except (ValueError, KeyError, TypeError):
        pass
    return "another kind of run"


def clear_run_files(rundir) -> None:
    """Delete what a run wrote (checkpoint first, then the weights, the records, the per-β-step
    weights and config.json); other files in the directory are left alone."""
    rundir = Path(rundir)
    for name in RUN_FILES:
        (rundir / name).unlink(missing_ok=True)
    steps = rundir / "steps"
    if steps.is_dir():
        for f in steps.glob("*.pt"):
            f.unlink()
        clean_temporary_files(rundir)
        try:
            steps.rmdir()
        except OSError:
            pass
    clean_temporary_files(rundir)
    (rundir / "config.json").unlink(missing_ok=True)


def check_sample(path, expect: str, what: str) -> None:
    """Check (lazily, without reading the arrays) that ``path`` is a sample whose ``x``/``z``
    layout is ``expect``: ``"jets"`` (x(event, constituent, feature)) or a tuple of x particle
    names; raise a one-line error naming the file and the ``what`` field otherwise."""
    import xarray as xr

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} ({what}): no such file")
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            process = ds.attrs.get("process", "unknown")
            xdims = tuple(ds["x"].dims) if "x" in ds.variables else None
            xparts = list(ds["x_particle"].values.tolist()) if "x_particle" in ds.coords else None
            zparts = list(ds["z_particle"].values.tolist()) if "z_particle" in ds.coords else None
    except Exception as exc:  # h5py/netCDF errors for truncated or foreign files
        raise DataValidationError(f"{path} ({what}): cannot be read as a netCDF-4 sample (truncated or not an "
                                  f"otviz file?): {type(exc).__name__}: {exc}") from exc
    if xdims is None:
        raise DataValidationError(f"{path} ({what}): no variable 'x' — not an otviz sample")
    if expect == "jets":
        if xdims != ("event", "constituent", "feature"):
            raise DataValidationError(f"{path} ({what}): a {process} sample with x{xdims}; the EMD-VAE trains on "
                                      "jet constituents x(event, constituent, feature) — give a wjets sample")
        return
    xp, zp = list(expect[0]), list(expect[1])
    if xparts != xp or zparts != zp:
        have = f"x particles {xparts}" if xparts is not None else f"x{xdims}"
        raise DataValidationError(f"{path} ({what}): a {process} sample with {have}; this model needs x particles "
                                  f"{xp} and z particles {zp}")


class BackgroundRun:
    """A run directory trained by a daemon thread: ``start()``, ``cancel()``, ``wait()``,
    ``events_since(i)`` and ``status``; subclasses implement ``_train()``. ``run_blocking`` trains
    in the caller's thread (CLI, Dask workers)."""

    def _open(self, rundir, config, config_cls, restart: bool = False):
        """Bind to ``rundir``. ``config=None`` reopens the directory's run with its stored
        settings (to resume). With a ``config``: a new or checkpoint-less directory starts fresh,
        the same settings resume (``RUNTIME_FIELDS`` such as the device may change), other settings
        are refused naming the differing fields unless ``restart`` (start over, replacing the
        run). The config is validated and the data checked before anything is written."""
        self.rundir = Path(rundir)
        cfg_path = self.rundir / "config.json"
        if config is not None:
            config.validate()
            resolve_device(config.device)
            self._check_data(config)
        if self.rundir.exists() and not self.rundir.is_dir():
            raise NotADirectoryError(f"{self.rundir}: not a directory")
        st = run_status(self.rundir)
        if st["status"] == "running":
            raise RunBusyError(f"{self.rundir}: a run is training there (pid {st.get('pid')} on {st.get('host')}); "
                               "cancel it or wait")
        stored, stored_error = None, None
        if cfg_path.exists():
            try:
                stored = config_cls.from_json(cfg_path.read_text())
            except ValueError as exc:
                stored_error = exc
        has_weights = (self.rundir / "checkpoint.pt").exists() or (self.rundir / "model.pt").exists()
        fresh = False
        if config is None:
            if not cfg_path.exists():
                raise FileNotFoundError(f"{self.rundir}: no config.json — not a training run directory")
            if stored_error is not None:
                raise ValueError(f"{cfg_path}: {stored_error}")
            config = stored
        elif not cfg_path.exists() and has_weights and not restart:
            raise RunExistsError(f"{self.rundir}: holds a checkpoint.pt or model.pt but no config.json; "
                                 "--restart replaces them")
        elif restart or not cfg_path.exists() or not has_weights:
            fresh = True
        elif stored_error is not None:
            from .. import kinds

            want = next((k.description for k in kinds.kinds() if k.config_class() is config_cls), "another kind of run")
            raise RunExistsError(f"{self.rundir}: holds {_describe_stored(cfg_path)}, not {want}; "
                                 "--restart replaces it")
        else:
            diff = config_differences(stored, config)
            if diff:
                raise RunExistsError(
                    f"{self.rundir}: holds a run with a different config ({format_differences(diff)}); "
                    "resume it with its stored settings (--resume) or start over, replacing it (--restart)", diff)
        self.config = config
        self.device = resolve_device(config.device)
        if fresh and (cfg_path.exists() or restart):  # only a run's own files; never those of a non-run folder
            clear_run_files(self.rundir)
        self.rundir.mkdir(parents=True, exist_ok=True)
        clean_temporary_files(self.rundir)
        if fresh:
            write_bytes(cfg_path, config.to_json().encode())
        self.fresh = fresh  # a new run (nothing of an earlier one kept)
        self.finished = not fresh and (self.rundir / "model.pt").exists()
        self._events: list[dict] = []
        self._lock = threading.Lock()
        self._status_lock = threading.Lock()
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
        self._thread = start_thread(self._main, name=f"otviz-train-{self.rundir.name}", on_exit=self.cancel)
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
        with self._status_lock:
            self.status, self.message = status, message
            now = time.time()
            atomic_write_json(self.rundir / "status.json", {
                "status": status, "message": message, "time": now, "heartbeat": now, "pid": os.getpid(),
                "host": socket.gethostname(), "proc_start": _proc_start(os.getpid())})

    def _heartbeat(self, stop: threading.Event):
        while not stop.wait(HEARTBEAT_S):
            with self._status_lock:
                if stop.is_set() or self.status != "running":
                    return
                try:
                    path = self.rundir / "status.json"
                    st = json.loads(path.read_text())
                    st["heartbeat"] = time.time()
                    atomic_write_json(path, st)
                except (OSError, ValueError):
                    pass

    def _load_finished(self):
        """A finished run (model.pt) reopened with the same settings: report it, write nothing."""
        for name, attr in (("history.json", "history"), ("steps.json", "steps_done")):
            try:
                setattr(self, attr, json.loads((self.rundir / name).read_text()))
            except (OSError, ValueError):
                pass
        self.status, self.message = "done", "already finished"
        self._emit(type="done", already_finished=True)

    def _main(self):
        if getattr(self, "finished", False):
            self._load_finished()
            return
        key = _key(self.rundir)
        with _ACTIVE_LOCK:
            _ACTIVE.add(key)
        stop = threading.Event()
        try:
            self._set_status("running")
            start_thread(self._heartbeat, stop, name=f"otviz-heartbeat-{self.rundir.name}", on_exit=stop.set,
                         announce=False)
            self._train()
            stop.set()
            if self._cancel.is_set():
                self._set_status("cancelled", "cancelled: the process exited (start it again to resume)"
                                 if exiting() else "cancelled by the user")
                self._emit(type="cancelled")
            else:
                self._set_status("done")
                self._emit(type="done")
        except Exception as exc:  # reported to the UI, never silently swallowed
            stop.set()
            self._set_status("failed", f"{type(exc).__name__}: {exc}")
            self._emit(type="failed", message=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
            if getattr(self, "_progress_cb", None) is not None:
                raise
        except BaseException as exc:  # KeyboardInterrupt / SystemExit: resumable, say so
            stop.set()
            self._set_status("interrupted", f"interrupted ({type(exc).__name__})")
            raise
        finally:
            stop.set()
            with _ACTIVE_LOCK:
                _ACTIVE.discard(key)

    def _check_data(self, config):  # pragma: no cover - abstract
        raise NotImplementedError

    def _train(self):  # pragma: no cover - abstract
        raise NotImplementedError


class TrainingRun(BackgroundRun):
    """A (possibly resumed) training run in ``rundir``.

    ``TrainingRun(rundir, config)`` starts a new run, or resumes the directory's run when its
    stored settings are the same (other settings are refused unless ``restart=True``, which
    starts over); ``TrainingRun(rundir)`` reopens an existing one and resumes from its checkpoint.
    """

    CONFIG = TrainConfig  # the config class this run stores and reads back (a subclass per kind)

    def __init__(self, rundir, config: TrainConfig | None = None, restart: bool = False):
        self._open(rundir, config, self.CONFIG, restart=restart)
        self.loss_fn = otus_loss  # replaceable in tests (e.g. to inject a NaN)
        self.model: OTUS | None = None

    def _check_data(self, config):
        mc = config.model_config
        check_sample(resolve_path(config.train_data), (mc.x_particles, mc.z_particles), "train_data")
        if config.test_data and resolve_path(config.test_data).exists():
            check_sample(resolve_path(config.test_data), (mc.x_particles, mc.z_particles), "test_data")

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
            # history.json may be ahead of the weights after a kill: trim it to the checkpoint
            atomic_write_json(self.rundir / "history.json", self.history)
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
        pairs = PairedSampler(n, cfg.paired_fraction, cfg.seed) if cfg.paired_fraction else None
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
            # independent shuffles of x and z: the unsupervised terms never see a (z, x) pair
            # (with paired_fraction > 0 the supervised terms see the paired subset's pairs)
            gen = torch.Generator(device="cpu").manual_seed(cfg.seed * 1_000_003 + epoch)
            px = torch.randperm(n, generator=gen).to(self.device)
            pz = torch.randperm(n, generator=gen).to(self.device)
            dgen = torch.Generator(device=self.device).manual_seed(cfg.seed * 1_000_003 + epoch + 7)
            paired = pairs.paired_batches(epoch, steps, bs, self.device) if pairs is not None else None
            sums: dict[str, float] = {}
            t0 = time.perf_counter()
            nan = False
            for step in range(steps):
                if self._cancel.is_set():
                    return
                xb = x[px[step * bs:(step + 1) * bs]]
                zb = z[pz[step * bs:(step + 1) * bs]]
                semi = {}
                if paired is not None:  # the same events: x[ip] and z[ip] (otviz.train.pairing)
                    ip = paired[step]
                    semi = dict(x_pair=x[ip], z_pair=z[ip], paired_weight=cfg.paired_weight)
                loss, terms = self.loss_fn(model, xb, zb, stage, cfg.n_projections, dgen, x_scale, z_scale, ax, az,
                                           x_mass_scale=x_ms, z_mass_scale=z_ms, **semi)
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
                # retries and the learning-rate cut are counted for the whole run (never restored
                # from the checkpoint rolled back to) and saved with it, so a resume keeps them
                retries += 1
                if retries > cfg.max_nan_retries:
                    raise TrainingFailed(
                        f"non-finite loss at epoch {epoch} ({stage.name} stage); gave up after "
                        f"{cfg.max_nan_retries} roll-backs"
                    )
                model.load_state_dict(good_state["model"])
                epoch = int(good_state["epoch"])
                lr_scale *= cfg.nan_lr_factor
                opt = self._make_optimizer(model, cfg.stages[self._stage_at(epoch)[0]])
                prev_stage = self._stage_at(epoch)[0]
                self.history = list(good_state["history"])
                self._checkpoint(model, opt, epoch, retries, lr_scale)
                good_state = torch.load(ckpt_path, map_location=self.device, weights_only=True)
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


class TtbarTrainingRun(TrainingRun):
    """A tt̄ OTUS run (:class:`TtbarConfig`): the same training, with the restricted decoder of
    its model config; each history record holds ``p_accept``, the epoch's mean P_D(S) (Eq. 19)."""

    CONFIG = TtbarConfig
