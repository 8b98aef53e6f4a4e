"""Grids of training runs (``otviz sweep``): one Dask task per run, one xarray Dataset of metrics.

``run_sweep(preset, {"lam": [1, 20, 100], "beta_anchor": [0, 50]}, "runs/sweep-lam", workers=2,
epochs=10)`` trains every combination of the settings with ``preset`` (any preset of
:mod:`otviz.kinds`), each in its own run directory under ``out`` named by its swept settings
(``lam=20__beta_anchor=50``), and writes ``out/sweep.nc``. A setting with several values is a
dimension of the grid; one with a single value (and every ``**options`` keyword) is fixed.

Settings (``grid`` keys, ``--set FIELD=V1,V2,…``, and ``**options``):

* a scalar field of the kind's config (``batch_size``, ``n_projections``, ``seed``, ``max_events``,
  ``train_data``, ``device``, …);
* an argument of the preset function (``otus-zee``: ``epochs``, ``finetune_epochs``);
* a field of the config's stages (a list of named dataclasses, e.g. OTUS ``Stage``: ``lam``,
  ``beta_e``, ``beta_d``, ``tau``, ``lr``, ``lr_decay``): ``STAGE.FIELD`` (``anchor.lam``) sets it
  on the stage of that name; a bare ``FIELD`` sets it on every stage where the preset has the
  term on (a non-zero value), or on the first stage where it has it on nowhere — ``lam`` on every
  stage, ``beta_e`` on otus-zee's anchor stage, on otus-ttbar's main stage (its anchors are off);
* an alias of :data:`ALIASES`: ``beta_anchor`` sets ``beta_e`` and ``beta_d`` (βE = βD, the
  anchor terms of OTUS Eq. 12) together, by the same rule.

Values are parsed by the type of the field's default and every point's config is built and
validated before anything is written (one-line :class:`otviz.errors.ConfigError` naming the
setting). Resumable: a run directory with ``model.pt`` and ``sweep.json`` (written when the run
and its kind's products, e.g. ``metrics.nc``, are done) is skipped; any other resumes from its
checkpoint. ``sweep.nc`` holds per run its status, training time, every numeric field of the
last ``history.json`` record as ``final_FIELD`` (losses, and any scalar a kind logs per epoch),
and every variable and numeric attribute of the stored products (``metrics.nc``: SW, KS/floor per
observable, …; tt̄: ``ks_table.nc``'s ``ks``, ``ks_floor``, ``ks_ratio`` over the slide's ten
observables, masses included), over the swept dimensions; its attributes record the command and settings.
"""
from __future__ import annotations

import dataclasses
import inspect
import itertools
import json
import numbers
import time
from pathlib import Path

from .. import kinds
from ..errors import ConfigError

SWEEP_FILE = "sweep.nc"
DONE_FILE = "sweep.json"  # in a run directory: the run and its products are done
PRODUCT_FILES = ("metrics.nc", "ks_table.nc", "dimension.nc")  # products whose variables go into sweep.nc
ALIASES = {"beta_anchor": ("beta_e", "beta_d")}  # setting → the stage fields it sets together
_SCALARS = (bool, int, float, str, type(None))


# ---------------------------------------------------------------------------- settings
@dataclasses.dataclass(frozen=True)
class Setting:
    """Where a setting goes: ``where`` is "preset", "config" or "stage"; for stages ``fields``
    are the stage fields and ``stage`` the stage name (None: every stage with the term on)."""

    name: str
    where: str
    fields: tuple[str, ...]
    default: object
    stage: str | None = None


def _stage_lists(cfg) -> dict[str, list]:
    """The config's fields holding a non-empty list of dataclasses (OTUS ``stages``)."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if isinstance(v, (list, tuple)) and v and all(dataclasses.is_dataclass(s) for s in v):
            out[f.name] = list(v)
    return out


def _stage_fields(cfg) -> dict[str, object]:
    """Scalar stage field → an example default."""
    out = {}
    for stages in _stage_lists(cfg).values():
        for s in stages:
            for f in dataclasses.fields(s):
                if f.name != "name" and isinstance(getattr(s, f.name), _SCALARS):
                    out.setdefault(f.name, getattr(s, f.name))
    return out


def _stage_names(cfg) -> list[str]:
    return [str(getattr(s, "name", i)) for stages in _stage_lists(cfg).values() for i, s in enumerate(stages)]


def available_settings(preset: str) -> dict[str, object]:
    """Every setting ``preset`` can sweep → its default (stage fields: one stage's value)."""
    kind = kinds.for_preset(preset)
    fn, base = kind.preset(preset), kind.preset(preset)()
    out = {p.name: p.default for p in inspect.signature(fn).parameters.values()
           if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    for f in dataclasses.fields(base):
        v = getattr(base, f.name)
        if f.name != "kind" and isinstance(v, _SCALARS):
            out.setdefault(f.name, v)
    stage = _stage_fields(base)
    out.update({k: v for k, v in stage.items() if k not in out})
    out.update({a: stage[fs[0]] for a, fs in ALIASES.items() if all(f in stage for f in fs)})
    return out


def resolve_setting(preset: str, name: str) -> Setting:
    """The :class:`Setting` ``name`` of ``preset``; a one-line ConfigError for an unknown name."""
    kind = kinds.for_preset(preset)
    fn, base = kind.preset(preset), kind.preset(preset)()
    params = {p.name: p.default for p in inspect.signature(fn).parameters.values()
              if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    stage_name, _, field = name.rpartition(".")
    stage = _stage_fields(base)
    if not stage_name:
        if name in params:
            return Setting(name, "preset", (name,), params[name])
        if name != "kind" and any(f.name == name for f in dataclasses.fields(base)):
            default = getattr(base, name)
            if isinstance(default, _SCALARS):
                return Setting(name, "config", (name,), default)
            raise ConfigError(f"{name}: not a scalar setting of {preset} (a {type(default).__name__})", name)
    fields = ALIASES.get(field, (field,))
    if all(f in stage for f in fields):  # a named stage is looked for when a config is built
        return Setting(name, "stage", fields, stage[fields[0]], stage_name or None)
    known = ", ".join(available_settings(preset))
    raise ConfigError(f"{name}: not a setting of {preset} (settings: {known}; STAGE.FIELD for one stage)", name)


def parse_value(setting: Setting, value):
    """``value`` (a string from the command line, or a Python value) as the setting's type."""
    if not isinstance(value, str):
        if isinstance(setting.default, float) and isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return float(value)  # lam=[1, 20] as in lam=1,20
        return value
    text, d = value.strip(), setting.default
    if text.lower() == "none" and d is None:
        return None
    try:
        if isinstance(d, bool):
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        if isinstance(d, int):
            v = float(text) if any(c in text for c in ".eE") else int(text)
            if isinstance(v, float) and not v.is_integer():
                raise ValueError
            return int(v)
        if isinstance(d, float):
            return float(text)
        if d is None:
            for cast in (int, float):
                try:
                    return cast(text)
                except ValueError:
                    pass
        return text
    except ValueError:
        what = {bool: "true or false", int: "an integer", float: "a number"}[type(d)]
        raise ConfigError(f"{setting.name}={value}: must be {what}", setting.name, value, what) from None


def _apply(cfg, setting: Setting, value, preset: str):
    """Set a stage setting: on the named stage; bare, on every stage where the preset has the
    term on (non-zero), or on the first stage where it has it on nowhere."""
    stages = [(str(getattr(s, "name", i)), s) for lst in _stage_lists(cfg).values() for i, s in enumerate(lst)]
    stages = [(n, s) for n, s in stages if all(hasattr(s, f) for f in setting.fields)]
    if setting.stage:
        hits = [s for n, s in stages if n == setting.stage]
    else:
        hits = [s for _, s in stages if any(getattr(s, f) for f in setting.fields)] or [s for _, s in stages[:1]]
    if not hits:
        raise ConfigError(f"{setting.name}: no stage {setting.stage!r} in this {preset} config (stages: "
                          f"{', '.join(_stage_names(cfg))}); name one as STAGE.{setting.fields[0]}", setting.name)
    for s in hits:
        for f in setting.fields:
            setattr(s, f, value)


def build_config(preset: str, settings: dict[str, object]):
    """The validated config of ``preset`` with ``settings`` (name → parsed value) applied."""
    kind = kinds.for_preset(preset)
    specs = {n: resolve_setting(preset, n) for n in settings}
    args = {n: v for n, v in settings.items() if specs[n].where == "preset"}
    over = {n: v for n, v in settings.items() if specs[n].where == "config"}
    try:
        cfg = kind.preset(preset)(**args, **over)
        # bare stage fields first (they follow the preset's terms), then STAGE.FIELD
        for n in sorted((n for n in settings if specs[n].where == "stage"), key=lambda n: specs[n].stage is not None):
            _apply(cfg, specs[n], settings[n], preset)
        return cfg.validate()
    except ConfigError as exc:
        named = [n for n in settings if n == exc.field or exc.field in specs[n].fields]
        if named and not str(exc).startswith(named[0]):
            n = named[0]
            raise ConfigError(f"{n}={settings[n]!r}: {getattr(exc, 'reason', None) or exc}", n, settings[n]) from None
        raise
    except TypeError as exc:  # a value of the wrong type reached the preset
        raise ConfigError(f"{preset}: {exc}") from None


# ---------------------------------------------------------------------------- the grid
def _label(v) -> str:
    s = format(v, "g") if isinstance(v, float) else str(v)
    return s.replace("/", "_").replace(" ", "_")


def run_name(point: dict) -> str:
    """The run directory of a grid point: its swept settings, ``lam=20__beta_anchor=50``."""
    return "__".join(f"{k}={_label(v)}" for k, v in point.items()) or "run"


@dataclasses.dataclass
class Plan:
    preset: str
    out: Path
    swept: dict[str, list]  # setting → values (the grid's dimensions, in order)
    fixed: dict[str, object]  # settings with one value, and the options
    points: list[dict]  # swept settings of each run, in grid (C) order
    configs: list  # the validated config of each run
    rundirs: list[Path]


def plan_sweep(preset: str, grid: dict, out, **options) -> Plan:
    """Parse and validate every setting and build every run's config (nothing is written)."""
    kind = kinds.for_preset(preset)
    values: dict[str, list] = {}
    for name, vals in {**grid, **options}.items():
        if name in values:
            raise ConfigError(f"{name}: set twice", name)
        spec = resolve_setting(preset, name)
        if name in options or not isinstance(vals, (str, list, tuple)):
            vals = [vals]
        elif isinstance(vals, str):
            vals = vals.split(",")
        if not vals:
            raise ConfigError(f"{name}: no values", name)
        parsed = [parse_value(spec, v) for v in vals]
        if len(set(map(repr, parsed))) != len(parsed):
            raise ConfigError(f"{name}: a value is given twice ({', '.join(map(str, vals))})", name)
        values[name] = parsed
    swept = {k: v for k, v in values.items() if len(v) > 1}
    fixed = {k: v[0] for k, v in values.items() if len(v) == 1}
    points = [dict(zip(swept, combo)) for combo in itertools.product(*swept.values())]
    configs = [build_config(preset, {**fixed, **p}) for p in points]
    for c in configs:
        if kinds.for_config(c) is not kind:
            raise ConfigError(f"{preset}: the preset made a config of another kind")
    out = Path(out)
    return Plan(preset, out, swept, fixed, points, configs, [out / run_name(p) for p in points])


# ---------------------------------------------------------------------------- one run (Dask task)
def is_done(rundir) -> bool:
    """The run and its products are finished (``model.pt`` and ``sweep.json``)."""
    rundir = Path(rundir)
    return (rundir / "model.pt").exists() and (rundir / DONE_FILE).exists()


def train_run(kind_name: str, rundir: str, point: dict) -> dict:
    """Worker task: train (or resume) the run in ``rundir`` with its stored config, compute its
    kind's products, write ``sweep.json``; returns {rundir, status, message, seconds}."""
    import torch

    from ..atomic import write_bytes

    kind = kinds.get(kind_name)
    run = kind.run_class()(rundir)  # the stored config; resumes from the checkpoint
    torch.set_num_threads(getattr(run.config, "threads", None) or 1)
    t0 = time.perf_counter()
    status = run.run_blocking()
    message = run.message
    if status == "done":
        try:
            for product in kind.products:
                kinds.resolve(product)(rundir, progress=False)
        except Exception as exc:  # recorded in sweep.nc's status, never lost
            status, message = "failed", f"products: {type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - t0
    if status == "done":
        write_bytes(Path(rundir) / DONE_FILE, json.dumps({"settings": point, "status": status,
                                                          "time": time.time()}, indent=1).encode())
    return {"rundir": str(rundir), "status": status, "message": message, "seconds": seconds}


def run_phase(rundir, cfg) -> str:
    """What a run of a sweep is doing, read from its files (the tasks run in other processes):
    ``starting``, ``training epoch 3/5`` (OTUS: epochs in history.json of ``cfg.total_epochs``),
    ``β step 2/9`` (β-annealing: steps.json), ``metrics`` (trained, products not yet written),
    ``done``."""
    rundir = Path(rundir)
    if is_done(rundir):
        return "done"
    st = _read_json(rundir / "status.json", {})
    st = st if isinstance(st, dict) else {}
    if st.get("status") == "done":
        return "metrics"
    hist = _read_json(rundir / "history.json", [])
    n = len(hist) if isinstance(hist, list) else 0
    if not n and st.get("status") != "running":
        return "starting"
    total = getattr(cfg, "total_epochs", None)
    if isinstance(total, int):
        return f"training epoch {min(n + 1, total)}/{total}"
    steps = _read_json(rundir / "steps.json", [])
    betas = getattr(cfg, "beta", None) or []
    k = len(steps) if isinstance(steps, list) else 0
    return f"β step {k + 1}/{len(betas)}" if betas else f"training epoch {n + 1}"


# ---------------------------------------------------------------------------- collecting
def _read_json(f: Path, default):
    try:
        return json.loads(f.read_text())
    except (OSError, ValueError):
        return default


def _number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def run_metrics(rundir, reserved=()):
    """One run's numbers as an xarray Dataset: status (``done`` once its products are, else
    ``incomplete`` or the run's own status: ``failed``, ``interrupted``…), training time, ``final_*`` of the last
    history record, and the stored products' variables and numeric attributes (an attribute named
    like a variable or a ``reserved`` name, e.g. a swept setting, as ``STEM_NAME``: ``metrics_seed``)."""
    import xarray as xr

    from .trainer import run_status

    rundir = Path(rundir)
    history = _read_json(rundir / "history.json", [])
    history = history if isinstance(history, list) else []
    status = "done" if is_done(rundir) else run_status(rundir)["status"]
    status = "incomplete" if status == "done" and not is_done(rundir) else status  # its products failed
    data = {"status": ((), str(status)), "run_dir": ((), rundir.name),
            "epochs_done": ((), len(history)),
            "train_seconds": ((), float(sum(h.get("seconds", 0.0) for h in history if isinstance(h, dict))))}
    last = history[-1] if history and isinstance(history[-1], dict) else {}
    for k, v in last.items():
        if _number(v) and k not in ("epoch", "seconds"):
            data[f"final_{k}"] = ((), float(v))
    ds = xr.Dataset(data)
    for name in PRODUCT_FILES:
        if (rundir / name).exists():
            with xr.open_dataset(rundir / name, engine="h5netcdf") as p:
                p = p.load()
            for k, v in p.attrs.items():
                if _number(v) or (hasattr(v, "ndim") and v.ndim == 0 and _number(v.item())):
                    taken = k in reserved or k in p.variables or k in ds.variables
                    p[f"{Path(name).stem}_{k}" if taken else k] = float(v)
            p.attrs = {}
            clash = {k: f"{Path(name).stem}_{k}" for k in p.variables if k in ds.variables or k in ds.dims}
            ds = ds.merge(p.rename(clash), compat="override")  # ks_table's "comparison" beside metrics.nc's
    return ds


def _coord(values: list):
    import numpy as np

    if all(_number(v) for v in values) or all(isinstance(v, bool) for v in values):
        return np.asarray(values)
    return np.asarray([str(v) for v in values])


def collect(plan: Plan, attrs: dict | None = None):
    """``sweep.nc``'s Dataset: every run's :func:`run_metrics` over the swept dimensions (NaN where
    a run has no such number)."""
    import numpy as np
    import xarray as xr

    reserved = {*plan.swept, *plan.fixed, *available_settings(plan.preset)}
    per = [run_metrics(d, reserved) for d in plan.rundirs]
    template: dict[str, xr.DataArray] = {}
    for ds in per:
        for k, v in ds.data_vars.items():
            template.setdefault(k, v)
    filled = []
    for ds in per:
        for k, v in template.items():
            if k not in ds:
                ds[k] = xr.full_like(v, "" if v.dtype.kind in "OUS" else np.nan,
                                     dtype=object if v.dtype.kind in "OUS" else float)
        filled.append(ds)
    dims = list(plan.swept)
    if dims:
        shape = [len(v) for v in plan.swept.values()]
        nested = np.empty(shape, dtype=object)
        for idx, ds in zip(np.ndindex(*shape), filled):
            nested[idx] = ds
        out = xr.combine_nested(nested.tolist(), concat_dim=dims, data_vars="all", coords="different",
                                compat="equals", join="outer", combine_attrs="drop")
        out = out.assign_coords({d: _coord(v) for d, v in plan.swept.items()}).transpose(*dims, ...)
    else:
        out = filled[0]
    out.attrs = dict(attrs or {})
    out.attrs.update(preset=plan.preset, kind=kinds.for_preset(plan.preset).name, dims=json.dumps(dims),
                     swept=json.dumps(plan.swept, default=str), fixed=json.dumps(plan.fixed, default=str),
                     n_runs=len(plan.points))
    for k in ("status", "run_dir"):
        out[k] = out[k].astype(str)
    return out


# ---------------------------------------------------------------------------- the sweep
def run_sweep(preset: str, grid: dict, out, workers: int = 2, scheduler: str | None = None, progress=None,
              command: str | None = None, report=None, **options):
    """Train the grid ``grid`` (setting → values) of ``preset`` under ``out`` as Dask tasks (a
    LocalCluster of ``workers`` processes, or the scheduler at ``scheduler``), skip finished runs,
    resume the others, write and return ``out/sweep.nc`` (see the module docstring).
    ``progress``: see :mod:`otviz.progress` (runs done / total); ``report(result)`` is called
    for each run trained."""
    from ..atomic import atomic_path
    from ..errors import RunExistsError
    from ..progress import as_progress
    from .trainer import format_differences

    plan = plan_sweep(preset, grid, out, **options)
    kind = kinds.for_preset(preset)
    run_cls = kind.run_class()
    todo = []
    for d, c, p in zip(plan.rundirs, plan.configs, plan.points):
        try:  # validates, refuses a directory holding other settings, writes a new run's config.json
            run_cls(d, c)
        except RunExistsError as exc:
            if not exc.differences:
                raise
            raise RunExistsError(f"{d}: holds a run with other settings ({format_differences(exc.differences)}); "
                                 "give another output directory or delete that run", exc.differences) from None
        if not is_done(d):
            todo.append((d, p))
    total = len(plan.points)
    step = as_progress(progress, desc="otviz sweep")
    done = total - len(todo)
    step(done, total, f"{done} finished before")
    results = []
    if todo:
        from dask.distributed import wait

        from ..cluster import dask_client

        number = {Path(d).resolve(): i + 1 for i, d in enumerate(plan.rundirs)}
        configs = {Path(d).resolve(): c for d, c in zip(plan.rundirs, plan.configs)}

        def in_flight(pending_dirs) -> str:  # "run 1/4: training epoch 3/5; run 2/4: metrics"
            return "; ".join(f"run {number[d]}/{total}: {run_phase(d, configs[d])}" for d in pending_dirs)

        with dask_client(workers, scheduler) as client:
            futures = {client.submit(train_run, kind.name, str(d.resolve()), p, pure=False): d.resolve()
                       for d, p in todo}
            pending = set(futures)
            while pending:
                try:
                    finished, pending = wait(pending, timeout=1.0, return_when="FIRST_COMPLETED")
                except Exception:  # dask's TimeoutError: nothing finished within the second
                    finished = set()
                for f in finished:
                    r = f.result()
                    results.append(r)
                    done += 1
                    if report is not None:
                        report(r)
                step(done, total, in_flight(sorted((futures[f] for f in pending), key=number.get)))
    attrs = {"command": command or f"run_sweep({preset!r}, {grid!r}, {str(out)!r}, {options!r})",
             "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "settings": json.dumps({**grid, **options}, default=str)}
    ds = collect(plan, attrs)
    plan.out.mkdir(parents=True, exist_ok=True)
    with atomic_path(plan.out / SWEEP_FILE) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")
    ds.attrs["trained"] = len(results)
    ds.attrs["failed"] = sum(r["status"] != "done" for r in results)
    return ds


def results_table(ds) -> str:
    """A short table of a sweep: one row per grid point, the swept settings, then its status and
    key metrics with their floors (OTUS: SW(x, x̃′) and KS(m_ee) of x̃′ = D(z); β-annealing: the
    last rate and distortion)."""
    import numpy as np

    dims = json.loads(ds.attrs.get("dims", "[]"))
    cols: list[tuple[str, object]] = []
    prime = "x_vs_x_tilde_prime"
    if "sw" in ds and "comparison" in ds.coords and prime in ds.comparison.values:
        cols.append(("SW(x, x̃′) (floor)", lambda p: f"{float(p.sw.sel(comparison=prime)):.3g} "
                                             f"({float(p.sw_floor.sel(comparison=prime)):.3g})"))
    if "value" in ds and "quantity" in ds.coords and "m_ee" in ds.quantity.values:
        def ks(p):
            sel = dict(comparison=prime, quantity="m_ee", statistic="ks")
            return f"{float(p.value.sel(**sel)):.4f} ({float(p.floor.sel(**sel)):.4f})"
        cols.append(("KS(m_ee) (floor)", ks))
    for name, head in (("final_rate", "R"), ("final_distortion", "D"), ("final_loss", "final loss")):
        if len(cols) >= 2:
            break
        if name in ds:
            cols.append((head, lambda p, name=name: f"{float(p[name]):.4g}"))
    head = [*dims, "status", *(c[0] for c in cols)]
    rows = [head]
    for idx in np.ndindex(*(ds.sizes[d] for d in dims)):
        pt = ds.isel(dict(zip(dims, idx)))
        status = str(pt.status.values) if "status" in pt else ""
        vals = []
        for _, fn in cols:
            try:
                v = fn(pt)
                vals.append("—" if "nan" in v else v)
            except (KeyError, ValueError, TypeError):
                vals.append("—")
        rows.append([*(f"{pt[d].values.item():g}" if np.issubdtype(pt[d].dtype, np.number) else str(pt[d].values)
                       for d in dims), status, *vals])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


__all__ = ["run_sweep", "plan_sweep", "build_config", "resolve_setting", "available_settings", "collect",
           "run_metrics", "train_run", "run_phase", "results_table", "ALIASES", "SWEEP_FILE"]


def combine(sweeps: dict, dim: str = "system"):
    """Several ``sweep.nc`` Datasets (e.g. the same ``paired_fraction`` grid for OTUS and
    Turbo-Sim) as one, stacked along a new dimension ``dim`` labelled by the dict's keys; a
    variable one sweep lacks (its kind logs no such number) is NaN there, and the coordinates are
    the union (outer join). Each sweep's attributes are kept as ``ATTR_<key>``; ``dims`` lists the
    first sweep's swept dimensions, then ``dim`` (the Compare runs page draws one line per ``dim``
    value against the first)."""
    import numpy as np
    import xarray as xr

    if not sweeps:
        raise ValueError("sweep.combine: no sweeps given")
    names = list(sweeps)
    variables: dict[str, xr.DataArray] = {}
    for ds in sweeps.values():
        for k, v in ds.data_vars.items():
            variables.setdefault(k, v)
    parts = []
    for name in names:
        ds = sweeps[name].copy()
        for k, v in variables.items():
            if k not in ds:
                ds[k] = xr.full_like(v, "" if v.dtype.kind in "OUS" else np.nan,
                                     dtype=object if v.dtype.kind in "OUS" else float)
        parts.append(ds.drop_attrs() if hasattr(ds, "drop_attrs") else ds.assign_attrs({}))
    out = xr.concat(parts, dim=dim, data_vars="all", coords="different", compat="equals", join="outer",
                    combine_attrs="drop").assign_coords({dim: names})
    for name in names:
        for k, v in sweeps[name].attrs.items():
            out.attrs[f"{k}_{name}"] = v
    try:  # the grid's own dimensions first (the x axis of the Compare page), then the new one
        swept = json.loads(sweeps[names[0]].attrs.get("dims", "[]"))
    except (TypeError, ValueError):
        swept = []
    out.attrs["dims"] = json.dumps([d for d in swept if d in out.dims] + [dim])
    out.attrs["n_runs"] = int(sum(int(ds.attrs.get("n_runs", 0)) for ds in sweeps.values()))
    return out
