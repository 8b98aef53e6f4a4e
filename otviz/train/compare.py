"""Comparing runs and sweeps: find ``sweep.nc`` files, name their metrics readably, read runs'
KS/floor tables side by side, diff their configs. Used by the app's Compare runs page.

* :func:`find_sweeps` — every ``sweep.nc`` under the runs root and the shipped ``pretrained/``.
* :func:`sweep_metrics` — every scalar metric of a sweep over its swept dimensions, each a
  :class:`Metric` with a readable label ("KS/floor of m_W^had in x̃′", "SW(x, x̃′) [GeV²]").
* :func:`comparable_runs` — finished runs of the kinds ``otviz evaluate`` takes (OTUS family:
  shipped runs, dashboard runs and sweep members).
* :func:`ks_table` — per observable each run's KS and KS/floor from its ``metrics.nc``.
* :func:`slide_ks_tables` — tt̄ runs' stored KS tables of the Turbo-Sim slide (``ks_table.nc``)
  side by side with the floor and the published OTUS and Turbo-Sim rows.
* :func:`config_diff` — the fields where run configs differ (``stages[1].lam: 1 → 20``).

No Panel here; no kind names either (kinds are looked up in :mod:`otviz.kinds`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .. import kinds, paths
from ..physics.observables import observable
from .sweep import SWEEP_FILE

# comparison of metrics.nc → the model output compared with the truth
OUTPUT_SYMBOLS = {"z_vs_z_tilde": "z̃", "x_vs_x_tilde": "x̃", "x_vs_x_tilde_prime": "x̃′"}
PAIRS = {"z_vs_z_tilde": "z, z̃", "x_vs_x_tilde": "x, x̃", "x_vs_x_tilde_prime": "x, x̃′"}
STATISTIC_NAMES = {"ks": "KS", "w1": "W₁", "chi2r": "χ²/ndf"}
STATISTIC_UNITS = {"ks": "", "w1": "GeV", "chi2r": ""}  # W₁ of a mass or component: GeV; none of a ratio
# scalar variables of sweep.nc (sweep.run_metrics) and numeric attributes of metrics.nc
SCALAR_LABELS = {
    "train_seconds": "training time [s]", "epochs_done": "epochs trained", "p_accept": "P_D(S) (acceptance of D(z))",
    "final_loss": "final training loss", "final_mse": "final MSE(x, x̃)", "final_sw_z": "final SW(z, z̃)",
    "final_sw_x": "final SW(x, x̃′)", "final_anchor_e": "final anchor term (encoder)",
    "final_anchor_d": "final anchor term (decoder)", "final_lr": "final learning rate",
    "final_p_accept": "final P_D(S) (training)",
    "m_ee_peak_x": "m_ee peak of x [GeV]", "m_ee_peak_x_tilde_prime": "m_ee peak of x̃′ [GeV]",
    "m_ee_peak_shift": "m_ee peak shift x̃′ − x [GeV]", "m_ee_fwhm_x": "m_ee FWHM of x [GeV]",
    "m_ee_fwhm_x_tilde_prime": "m_ee FWHM of x̃′ [GeV]",
}
# swept settings (sweep.ALIASES, config and stage fields) → axis label
SETTING_LABELS = {
    "lam": "λ (weight of SW(z, z̃))", "beta_anchor": "β_E = β_D (anchor weight)", "beta_e": "β_E (encoder anchor)",
    "beta_d": "β_D (decoder anchor)", "tau": "τ (weight of SW(x, x̃′))", "lr": "learning rate",
    "lr_decay": "learning-rate decay", "epochs": "epochs", "finetune_epochs": "fine-tune epochs",
    "batch_size": "batch size [events]", "n_projections": "projections L", "max_events": "training events",
    "seed": "seed", "paired_fraction": "paired fraction f (events seen as (z, x) pairs)",
    "system": "model", "n_critic": "critic steps per generator step", "gp_weight": "λ_GP (gradient penalty)",
}


def setting_label(name: str) -> str:
    """Axis label of a swept setting: "lam" → "λ (weight of SW(z, z̃))", "anchor.lam" → "… (anchor stage)"."""
    stage, _, base = name.rpartition(".")
    text = SETTING_LABELS.get(base, base.replace("_", " "))
    return f"{text} ({stage} stage)" if stage else text


def _symbol(q: str) -> str:
    try:
        return observable(q).symbol
    except KeyError:
        return q


# ---------------------------------------------------------------------------- sweeps
def sweep_roots() -> list[tuple[Path, str]]:
    """(directory, label) of the places sweeps are looked for: the runs root, then the shipped runs."""
    return [(paths.runs_dir(), "runs"), (paths.pretrained_dir(), "pretrained")]


def find_sweeps(roots=None) -> dict[str, str]:
    """Label ("runs/sweep-lam") → path of every ``sweep.nc`` under ``roots`` (default
    :func:`sweep_roots`), newest first within a root."""
    out = {}
    for base, tag in roots if roots is not None else sweep_roots():
        base = Path(base)
        if not base.is_dir():
            continue
        found = sorted(base.rglob(SWEEP_FILE), key=lambda f: f.stat().st_mtime, reverse=True)
        for f in found:
            rel = f.parent.relative_to(base)
            out[f"{tag}/{rel}" if str(rel) != "." else tag] = str(f)
    return out


def load_sweep(path):
    """The Dataset of a ``sweep.nc`` (or of the sweep directory holding one), loaded into memory."""
    import xarray as xr

    p = Path(path)
    if p.is_dir():
        p = p / SWEEP_FILE
    with xr.open_dataset(p, engine="h5netcdf") as ds:
        return ds.load()


def swept_dims(ds) -> list[str]:
    """The swept settings of a sweep Dataset, in grid order (its ``dims`` attribute)."""
    try:
        dims = json.loads(ds.attrs.get("dims", "[]"))
    except (TypeError, ValueError):
        dims = []
    return [d for d in dims if d in ds.dims] or [d for d in ds.dims if d in ds.coords and d in SETTING_LABELS]


@dataclass(frozen=True)
class Metric:
    """One scalar of every run of a sweep: variable ``var`` at ``sel`` (its non-swept coordinates)."""

    var: str
    sel: tuple = ()  # ((dim, value), …)
    label: str = ""
    unit: str = ""

    @property
    def key(self) -> str:
        return self.var + ("[" + ",".join(f"{d}={v}" for d, v in self.sel) + "]" if self.sel else "")


def metric_label(var: str, sel: dict, attrs: dict | None = None) -> tuple[str, str]:
    """(readable label, unit) of variable ``var`` of a sweep at coordinates ``sel``:
    ("KS/floor of m_W^had in x̃′", ""), ("W₁ of p_x(e⁻) in z̃", "GeV"), ("SW(x, x̃′)", "GeV²")."""
    attrs = attrs or {}
    comp, q, stat = sel.get("comparison"), sel.get("quantity"), sel.get("statistic")
    where = f" in {OUTPUT_SYMBOLS.get(comp, comp)}" if comp else ""
    if var in ("value", "floor", "ratio") and q is not None and stat is not None:
        name = STATISTIC_NAMES.get(stat, stat)
        if var == "ratio":
            return f"{name}/floor of {_symbol(q)}{where}", ""
        unit = STATISTIC_UNITS.get(stat, "") if _unit_of(q) else ""
        return f"{name}{' floor' if var == 'floor' else ''} of {_symbol(q)}{where}", unit
    if var in ("sw", "sw_floor", "sw_ratio") and comp:
        pair = PAIRS.get(comp, comp)
        unit = "" if var == "sw_ratio" else str(attrs.get("sw_units", "GeV²")).replace("^2", "²")
        return {"sw": f"SW({pair})", "sw_floor": f"SW floor ({pair})", "sw_ratio": f"SW/floor ({pair})"}[var], unit
    if var in ("ks", "ks_floor", "ks_ratio") and "observable" in sel:  # the slide's KS table (ks_table.nc)
        text = {"ks": "KS", "ks_floor": "KS floor", "ks_ratio": "KS/floor"}[var]
        return f"{text} of {_symbol(sel['observable'])} (slide table)", ""
    if var in ("published", "goal") and "observable" in sel:
        who = f" {sel['model']}" if "model" in sel else ""
        return f"{'published' + who + ' KS' if var == 'published' else 'KS goal'} of {_symbol(sel['observable'])}", ""
    if var.startswith("closure_") and "closure_quantity" in sel:
        what = var.removeprefix("closure_").replace("_", " ")
        return f"closure {what} of {_symbol(sel['closure_quantity'])}", ""
    if var in SCALAR_LABELS:
        text = SCALAR_LABELS[var]
        unit = text[text.rfind("[") + 1:-1] if text.endswith("]") else ""
        return (text[:text.rfind("[")].strip() if unit else text), unit
    rest = ", ".join(f"{v}" for v in sel.values())
    return var.replace("_", " ") + (f" ({rest})" if rest else ""), ""


def _unit_of(q) -> str:
    try:
        return observable(q).unit
    except KeyError:
        return ""


def sweep_metrics(ds) -> dict[str, Metric]:
    """Every numeric scalar of the sweep's runs → :class:`Metric`, keyed by its readable label
    (with its unit: "SW(x, x̃′) [GeV²]"). A variable with non-swept dimensions gives one metric per
    combination of their labels (comparison × quantity × statistic of metrics.nc); dimensions
    indexed by numbers (histogram bins) and all-NaN metrics are left out."""
    import itertools

    import numpy as np

    dims = set(swept_dims(ds))
    out: dict[str, Metric] = {}
    for var, da in ds.data_vars.items():
        if da.dtype.kind not in "fiu":
            continue
        extra = [d for d in da.dims if d not in dims]
        if any(d not in da.coords or da.coords[d].dtype.kind not in "OUS" for d in extra):
            continue  # a bin index, not a named metric
        for combo in itertools.product(*[[str(v) for v in da.coords[d].values] for d in extra]):
            sel = dict(zip(extra, combo))
            values = da.sel(sel).values
            if not np.isfinite(values).any():
                continue
            text, unit = metric_label(var, sel, ds.attrs)
            name = f"{text} [{unit}]" if unit else text
            out[name] = Metric(var, tuple(sel.items()), text, unit)
    return out


def default_metric(metrics: dict[str, Metric]) -> str | None:
    """The metric a sweep opens on: KS/floor of m_t^had in the slide table (tt̄), else of the first
    derived mass in x̃′, else SW/floor of x̃′, else the first."""
    for name, m in metrics.items():
        if m.var == "ks_ratio" and dict(m.sel).get("observable") == "m_t_had":
            return name
    for name, m in metrics.items():
        s = dict(m.sel)
        if m.var == "ratio" and s.get("statistic") == "ks" and s.get("comparison") == "x_vs_x_tilde_prime" \
                and str(s.get("quantity", "")).startswith("m_"):
            return name
    for name, m in metrics.items():
        if m.var == "sw_ratio" and dict(m.sel).get("comparison") == "x_vs_x_tilde_prime":
            return name
    return next(iter(metrics), None)


def metric_values(ds, metric: Metric):
    """The metric over the swept dimensions (a DataArray, float)."""
    return ds[metric.var].sel(dict(metric.sel)).astype(float)


# ---------------------------------------------------------------------------- runs
def comparable_runs(roots=None) -> dict[str, str]:
    """Label ("pretrained/otus-zee", "runs/sweep-lam/lam=20__beta_anchor=0") → path of every
    finished run (``model.pt``) of a kind ``otviz evaluate`` takes (the OTUS family), shipped
    runs first."""
    from .catalog import roots as catalog_roots
    from .run import run_kind

    names = {k.name for k in kinds.for_command("evaluate")}
    out = {}
    for base, tag, _ in roots if roots is not None else catalog_roots():
        base = Path(base)
        if not base.is_dir():
            continue
        for cfg in sorted(base.rglob("config.json")):
            d = cfg.parent
            if (d / "model.pt").exists() and run_kind(d) in names:
                out[f"{tag}/{d.relative_to(base)}"] = str(d)
    return out


def short_names(labels) -> dict[str, str]:
    """Label → its shortest trailing path part that is unique among ``labels``
    ("runs/sweep-lam/lam=20__beta_anchor=0" → "lam=20__beta_anchor=0"; "pretrained/otus-zee" → "otus-zee")."""
    labels = list(labels)
    parts = {lab: lab.split("/") for lab in labels}
    out = {}
    for lab in labels:
        for n in range(1, len(parts[lab]) + 1):
            tail = "/".join(parts[lab][-n:])
            if sum("/".join(p[-n:]) == tail for p in parts.values()) == 1:
                out[lab] = tail
                break
        else:
            out[lab] = lab
    return out


def read_config_dict(rundir) -> dict:
    """A run's ``config.json`` as a dict ({} when unreadable)."""
    try:
        d = json.loads((Path(rundir) / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


_ABSENT = object()


def _flatten(obj, prefix: str = "") -> dict[str, object]:
    """Nested dicts/lists → {"stages[1].lam": 20.0, "model_config.encoder.hidden": 128, …}; a list of
    scalars stays one value."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out or {prefix: {}}
    if isinstance(obj, (list, tuple)) and any(isinstance(v, (dict, list, tuple)) for v in obj):
        out = {}
        for i, v in enumerate(obj):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out or {prefix: []}
    return {prefix: list(obj) if isinstance(obj, tuple) else obj}


def _same(a, b) -> bool:
    if a is _ABSENT or b is _ABSENT:
        return a is b
    return json.dumps(a, default=str, sort_keys=True) == json.dumps(b, default=str, sort_keys=True)


def format_value(v) -> str:
    """A config value as the diff shows it: 1.0 → "1", 0.001 → "0.001", absent → "—"."""
    if v is _ABSENT:
        return "—"
    if isinstance(v, float):
        return format(v, "g")
    if isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False)


def config_diff(configs: dict[str, dict]) -> list[tuple[str, list]]:
    """The fields where the configs (label → parsed config.json) differ, in the first config's
    field order: [(field path, [value per config, or "—" when absent]), …], values formatted by
    :func:`format_value` (``("stages[1].lam", ["1", "20"])``)."""
    flat = [_flatten(c) for c in configs.values()]
    order: dict[str, None] = {}
    for f in flat:
        order.update(dict.fromkeys(f))
    rows = []
    for key in order:
        vals = [f.get(key, _ABSENT) for f in flat]
        if not all(_same(v, vals[0]) for v in vals[1:]):
            rows.append((key, [format_value(v) for v in vals]))
    return rows


def format_diff(rows: list[tuple[str, list]]) -> list[str]:
    """``config_diff`` rows as lines: "stages[1].lam: 1 → 20" (three or four runs: "1 → 20 → 100")."""
    return [f"{key}: {' → '.join(vals)}" for key, vals in rows]


def ks_table(runs: dict[str, str], comparison: str = "x_vs_x_tilde_prime", statistic: str = "ks"):
    """Per observable of the runs' ``metrics.nc`` (rows, labelled like "m_W^had [GeV]"), each run's
    statistic and statistic/floor (columns "RUN: KS", "RUN: KS/floor"), for one comparison
    ("x_vs_x_tilde_prime": x̃′ = D(z) vs x; "z_vs_z_tilde": z̃ = E(x) vs z). A run without
    ``metrics.nc`` has empty columns. Returns a pandas DataFrame."""
    import numpy as np
    import pandas as pd

    from .products import read_metrics

    name = STATISTIC_NAMES.get(statistic, statistic)
    cols: dict[str, dict] = {}
    order: list[str] = []
    for label, path in runs.items():
        ds = read_metrics(path)
        v, r = {}, {}
        if ds is not None and comparison in ds.comparison.values:
            val = ds["value"].sel(comparison=comparison, statistic=statistic)
            rat = ds["ratio"].sel(comparison=comparison, statistic=statistic)
            for q in ds.quantity.values:
                q = str(q)
                if np.isfinite(float(val.sel(quantity=q))):
                    v[q], r[q] = float(val.sel(quantity=q)), float(rat.sel(quantity=q))
                    if q not in order:
                        order.append(q)
        cols[f"{label}: {name}"] = v
        cols[f"{label}: {name}/floor"] = r

    def row_label(q):
        try:
            return observable(q).label
        except KeyError:
            return q

    df = pd.DataFrame({c: [d.get(q, np.nan) for q in order] for c, d in cols.items()})
    df.insert(0, "observable", [row_label(q) for q in order])
    return df


def slide_ks_tables(runs: dict[str, str]):
    """The Turbo-Sim slide's KS tables of the runs ({name: run directory}) side by side
    (:func:`otviz.metrics.ks_table.ks_tables_frame`; the data of ``otviz evaluate --table``), from
    their stored ``ks_table.nc``: (DataFrame or None when no run has one, [names of runs without one])."""
    from ..metrics.ks_table import ks_tables_frame
    from .products import read_ks_table

    tables, missing = {}, []
    for name, path in runs.items():
        tab = read_ks_table(path)
        if tab is None:
            missing.append(name)
        else:
            tables[name] = tab
    return (ks_tables_frame(tables) if tables else None), missing


__all__ = ["find_sweeps", "load_sweep", "swept_dims", "sweep_metrics", "default_metric", "metric_values", "Metric",
           "metric_label", "setting_label", "comparable_runs", "short_names", "read_config_dict", "config_diff", "format_diff",
           "ks_table", "slide_ks_tables"]
