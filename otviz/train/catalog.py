"""The catalogue of runs on disk: list them (kind, data, status, key metrics with floors, size,
date) and delete one. Shared by ``otviz runs`` and the dashboard's Runs page.

Shipped runs (under ``data/pretrained``) are listed with ``shipped=True`` and never deleted
unless asked for explicitly (``allow_shipped=True``).
"""
from __future__ import annotations

import datetime
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import paths

ACTIVE = ("queued", "starting", "running")


@dataclass
class RunInfo:
    path: str
    name: str  # e.g. "pretrained/otus-zee", "runs/ui/20261123-…"
    kind: str
    data: str
    status: str
    metrics: str  # key metrics with their floors, one line
    size_mb: float  # the run's own files, without the derived caches the tools add (cache_mb)
    date: str  # when the run recorded its status (status.json), local time "YYYY-MM-DD HH:MM"
    shipped: bool
    cache_mb: float = 0.0  # derived-*.npz caches the dashboard keeps in the run

    def as_dict(self) -> dict:
        return asdict(self)


def _json(f: Path, default=None):
    try:
        return json.loads(f.read_text())
    except (OSError, ValueError):
        return default


CACHE_PREFIX = "derived-"  # arrays the dashboard derives from a run (otviz.train.products.stored_arrays)


def is_cache(f) -> bool:
    """A file the tools derive from a run and keep in it (not part of the run itself)."""
    return Path(f).name.startswith(CACHE_PREFIX)


def run_date(path) -> str:
    """When the run recorded its last status (status.json ``time``, else its ``heartbeat``),
    local time; a run without a recorded time falls back to config.json's modification time.
    Never a file's mtime when a time is recorded: a copy or a clone does not change the date."""
    path = Path(path)
    st = _json(path / "status.json", {})
    t = None
    if isinstance(st, dict):
        for k in ("time", "heartbeat"):
            if isinstance(st.get(k), (int, float)) and st[k] > 0:
                t = float(st[k])
                break
    if t is None:
        cfg = path / "config.json"
        t = (cfg if cfg.exists() else path).stat().st_mtime
    return datetime.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M")


def dir_size(path) -> int:
    """Bytes of all files under ``path``."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def key_metrics(path) -> str:
    """The run's headline numbers: OTUS sliced Wasserstein and KS(m_ee) of x̃′ = D(z) against
    their truth-vs-truth floors (metrics.json);
    EMD-VAE the number of finished β steps and the last (β, R, D)."""
    path = Path(path)
    m = _json(path / "metrics.json")
    c = m.get("comparisons", {}).get("x_vs_x_tilde_prime", {}) if isinstance(m, dict) else {}
    if isinstance(c, dict) and c:
        parts = []
        if "sw" in c and "sw_floor" in c:
            parts.append(f"SW(x, x̃′) {c['sw']:.3g} (floor {c['sw_floor']:.3g}) GeV²")
        ks = c.get("quantities", {}).get("m_ee", {}).get("ks", {})
        if "value" in ks and "floor" in ks:
            parts.append(f"KS(m_ee) {ks['value']:.4f} (floor {ks['floor']:.4f})")
        return ", ".join(parts)
    steps = _json(path / "steps.json")
    if isinstance(steps, list) and steps:
        s = steps[-1]
        parts = [f"{len(steps)} β steps"]
        if "beta" in s:
            parts.append(f"last β {float(s['beta']):.3g}")
        for k, name in (("rate", "R"), ("distortion", "D")):
            if isinstance(s.get(k), (int, float)):
                parts.append(f"{name} {float(s[k]):.3g}")
        return ", ".join(parts)
    return ""


def _evaluate_hint(path: Path, kind) -> str:
    """What to type to get an OTUS run's metrics when it has none yet."""
    if kind is None or "evaluate" not in kind.commands or kind.report:  # report: evaluated when training ended
        return ""
    try:
        shown = str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        shown = str(path)
    import shlex

    return f"run `otviz evaluate {shlex.quote(shown)}`"


def _status(path: Path) -> str:
    try:
        from .trainer import run_status

        return str(run_status(path).get("status", "unknown"))
    except Exception:  # an unreadable status never hides the run from the list
        st = _json(path / "status.json", {})
        return str(st.get("status", "unknown")) if isinstance(st, dict) else "unknown"


def run_info(path, base: Path | None = None, tag: str = "", shipped: bool = False) -> RunInfo:
    """One run directory's row."""
    from .. import kinds

    path = Path(path)
    cfg = _json(path / "config.json", {}) or {}
    k = kinds.for_config_dict(cfg) if isinstance(cfg, dict) else None
    data = cfg.get("train_data") or cfg.get("data") or ""
    files = [f for f in path.rglob("*") if f.is_file()]
    own = sum(f.stat().st_size for f in files if not is_cache(f))
    cache = sum(f.stat().st_size for f in files if is_cache(f))
    name = f"{tag}/{path.relative_to(base)}" if base is not None else path.name
    status = _status(path)
    metrics = key_metrics(path) or (_evaluate_hint(path, k) if status == "done" else "")
    return RunInfo(path=str(path), name=name, kind=k.name if k is not None else "unknown", data=str(data), status=status,
                   metrics=metrics, size_mb=round(own / 2 ** 20, 2), date=run_date(path), shipped=shipped,
                   cache_mb=round(cache / 2 ** 20, 2))


def roots() -> list[tuple[Path, str, bool]]:
    """(directory, label, shipped) of the places runs are listed from."""
    return [(paths.pretrained_dir(), "pretrained", True), (paths.runs_dir(), "runs", False)]


def list_runs(bases=None) -> list[RunInfo]:
    """Every run directory (one holding config.json) under the shipped and the runs roots,
    shipped first, then newest first."""
    out = []
    for base, tag, shipped in (bases or roots()):
        base = Path(base)
        if not base.exists():
            continue
        rows = []
        for cfg in base.rglob("config.json"):
            d = cfg.parent
            if any(p.name == "steps" for p in d.relative_to(base).parents if p.name):
                continue  # per-β weights inside a run are not runs
            rows.append(run_info(d, base, tag, shipped))
        out += sorted(rows, key=lambda r: r.date, reverse=True) if not shipped else sorted(rows, key=lambda r: r.name)
    return out


def is_shipped(path) -> bool:
    try:
        Path(path).resolve().relative_to(paths.pretrained_dir().resolve())
        return True
    except ValueError:
        return False


def delete_run(path, allow_shipped: bool = False) -> int:
    """Delete a run directory; returns the bytes freed. Refuses (ValueError, one line) a
    directory that is not a run, a shipped run unless ``allow_shipped``, and a run that is
    queued or training."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise ValueError(f"{path}: not a run directory (no config.json)")
    if is_shipped(path) and not allow_shipped:
        raise ValueError(f"{path}: a shipped run under data/pretrained is not deleted")
    status = _status(path)
    if status in ACTIVE:
        raise ValueError(f"{path}: the run is {status}; cancel it first")
    try:
        from . import registry

        entry = registry.get_entry(path)
        if entry is not None and entry.active:
            raise ValueError(f"{path}: the run is {entry.state}; cancel it first")
    except ImportError:
        pass
    size = dir_size(path)
    shutil.rmtree(path)
    return size


def format_table(rows: list[RunInfo]) -> str:
    """The listing as aligned text columns (``otviz runs``)."""
    head = ("run", "kind", "status", "size MB", "date", "data", "key metrics")
    table = [head] + [(r.name, r.kind, r.status, f"{r.size_mb:.1f}" + (f" (+{r.cache_mb:.1f} cache)" if r.cache_mb >= 0.05 else ""),
                       r.date, r.data, r.metrics) for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(head) - 1)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row[:-1], widths)) + "  " + str(row[-1])
                     for row in table).rstrip()
