"""Herwig cluster text files: read into (and write from) the cluster Dataset of
:mod:`otviz.data.clusterset`.

Format (the cluster files of HadML's Herwig data, REFERENCE §5)::

    1,12.0,1.0,2.0,3.0;-1,8.0,...;81,20.0,...;211,10.1,...;-211,9.9,...|88,0,0,0,0;88,0,0,0,0;81,...;...|

- one event per line; blank lines are skipped (line numbers in messages still count them);
- cluster records separated by ``|``; a trailing ``|`` is normal;
- a record is five objects ``pid,E,px,py,pz;`` — **energy first** — in the order parton 0,
  parton 1, cluster (pid 81), hadron 0, hadron 1; the final ``;`` may be missing;
- an unknown parton is Herwig's placeholder ``88,0,0,0,0`` (clusters from heavy-cluster splitting):
  ``parton_mask`` False, ``parton_pid`` 0, momentum zero;
- a parton object may carry a sixth field, Herwig's ``Pert`` flag (1: perturbative constituent).

Four-vectors are converted to otviz's (px, py, pz, E) order. ``event(cluster)`` is the index of the
event line among the non-blank lines (0, 1, …).

Perturbative constituents. The file has no flag in HadML's event files; HadML's cluster-decay
converter (hep-lbdl/hadml, ``hadml/datamodules/components/herwig.py``,
``HerwigClusterDataset.convert_cluster_decay``) reads a sixth parton field ``q[5]`` as the ``Pert``
flag ("to tell if the quark info is preserved to hadrons") and selects its decay modes on it. Rule
here: a sixth parton field, when present, is that flag; without it, a listed (non-placeholder)
parton counts as perturbative — the constituent whose direction Herwig's ``ClDir`` option uses —
and placeholders never do. Pass ``perturbative="none"`` to mark nothing perturbative instead.

Parton order. The layout wants parton 0 to be the colour-triplet end (quark or anti-diquark) and
hadron 0 the one holding parton 0's flavour. Herwig lists hadron i with constituent i's flavour
(e.g. ``1;-1;81;-211;211``: the d quark ends in the π⁻), so when the file lists the anti-triplet end
first both the partons and the hadrons of that record are swapped, keeping each pairing.

Momentum conservation. Per cluster and component the residual |cluster − hadron₀ − hadron₁| is
compared with the rounding of the printed numbers: tolerance = ulp(cluster) + ulp(hadron₀) +
ulp(hadron₁), where ulp is one unit in the last printed decimal of that field (10⁻ᵈ for d
decimals, 10⁻⁵·|x| for exponent notation). Exact decays printed with rounding stay within half of
that, for fixed decimals (``%.6f``) and significant digits (``%g``, Herwig's default stream format)
alike. A ``%g`` field whose trailing zeros were dropped ("18.67") gets the coarser unit it shows —
looser, never falsely strict. Anything beyond is reported (``on_violation``: "warn", "error" or "ignore") and counted in
``attrs["n_nonconserving"]``.
"""
from __future__ import annotations

import re
import warnings
from itertools import repeat
from pathlib import Path

import numpy as np
import xarray as xr

from otviz.atomic import atomic_path
from otviz.data.clusterset import (CLUSTER_PID, PLACEHOLDER_PID, ClusterDataError, check_cluster_dataset,
                                   make_cluster_dataset)

_OBJECTS = ("parton 0", "parton 1", "cluster", "hadron 0", "hadron 1")
_VIOLATION_MODES = ("warn", "error", "ignore")
_FIELD = r"[^,;|\s]+"
_OBJ = rf"{_FIELD}(?:,{_FIELD}){{4}}"
_REC = rf"{_OBJ};{_OBJ};{_OBJ};{_OBJ};{_OBJ};?"
_LINE = re.compile(rf"{_REC}(?:\|{_REC})*\|?")
_SPACES = re.compile(r"\s*([,;|])\s*")


def _is_triplet(pid):
    """Colour-triplet ends: quarks (1…6) and anti-diquarks (< −1000)."""
    return ((pid > 0) & (pid < 10)) | (pid < -1000)


def _is_antitriplet(pid):
    return ((pid < 0) & (pid > -10)) | (pid > 1000)


def _ulp(fields, values: np.ndarray, exponents: bool = True) -> np.ndarray:
    """One unit in the last printed decimal of each numeric string (an object array of str)."""
    n = len(fields)
    length = np.fromiter(map(len, fields), np.int64, count=n)
    dot = np.fromiter(map(str.find, fields, repeat(".")), np.int64, count=n)
    ulp = 10.0 ** -np.where(dot >= 0, length - dot - 1, 0).astype(np.float64)
    if exponents:
        expo = np.fromiter((("e" in f) or ("E" in f) for f in fields), bool, count=n)
        ulp = np.where(expo, 1e-5 * np.abs(values), ulp)
    return ulp


def _to_float(strings: list) -> np.ndarray:
    """Parse numeric strings in C (``np.fromstring``); any string it cannot read completely
    falls back to Python's ``float``, which raises ValueError for the caller to diagnose."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = np.fromstring(",".join(strings), dtype=np.float64, sep=",")
    except (AttributeError, ValueError):  # a NumPy without text fromstring, or unreadable text
        out = ()
    if len(out) != len(strings):
        out = np.fromiter(map(float, strings), np.float64, count=len(strings))
    return out


def _parse_general(path, line_no, line, numbers, perts):
    """Per-object parse of a line (sixth Pert field on partons allowed); raises with the line,
    record and problem when the line is malformed."""
    records = line.split("|")
    if not records[-1].strip():
        records.pop()
    if not records:
        raise _diagnose(path, line_no, line)
    new_numbers, new_perts = [], []
    for rec in records:
        objs = rec.split(";")
        if not objs[-1].strip():
            objs.pop()
        if len(objs) != 5:
            raise _diagnose(path, line_no, line)
        for j, obj in enumerate(objs):
            fields = obj.split(",")
            if len(fields) == 5:
                new_numbers.extend(fields)
                if j < 2:
                    new_perts.append("")
            elif len(fields) == 6 and j < 2:
                new_numbers.extend(fields[:5])
                new_perts.append(fields[5])
            else:
                raise _diagnose(path, line_no, line)
    numbers.extend(new_numbers)
    perts.extend(new_perts)


def _bad(path, line_no, record, msg):
    where = f"{path}:{line_no}: " + (f"record {record}: " if record else "")
    return ClusterDataError(where + msg)


def _diagnose(path, line_no, line):
    """Find the first malformed record of a line (slow path, only after the fast path failed)."""
    records = [r for r in line.split("|")]
    if records and not records[-1].strip():
        records = records[:-1]
    if not records or (len(records) == 1 and not records[0].strip()):
        return _bad(path, line_no, 0, "no cluster records")
    for k, rec in enumerate(records, 1):
        objs = rec.strip().split(";")
        if objs and not objs[-1].strip():
            objs = objs[:-1]
        if len(objs) != 5:
            return _bad(path, line_no, k, f"expected 5 objects 'pid,E,px,py,pz;' "
                                          f"(parton, parton, cluster, hadron, hadron), found {len(objs)}")
        for j, obj in enumerate(objs):
            fields = obj.split(",")
            allowed = (5, 6) if j < 2 else (5,)
            if len(fields) not in allowed:
                return _bad(path, line_no, k, f"{_OBJECTS[j]} has {len(fields)} fields, expected "
                                              f"{' or '.join(map(str, allowed))} (pid,E,px,py,pz"
                                              f"{'[,pert]' if j < 2 else ''})")
            for name, f in zip(("pid", "E", "px", "py", "pz", "pert"), fields):
                try:
                    v = float(f)
                except ValueError:
                    return _bad(path, line_no, k, f"{_OBJECTS[j]} field {name} is not a number: {f.strip()!r}")
                if not np.isfinite(v):
                    return _bad(path, line_no, k, f"{_OBJECTS[j]} field {name} is not finite: {f.strip()!r}")
                if name in ("pid", "pert") and v != int(v):
                    return _bad(path, line_no, k, f"{_OBJECTS[j]} {name} is not an integer: {f.strip()!r}")
        cl_pid = float(objs[2].split(",")[0])
        if cl_pid != CLUSTER_PID:
            return _bad(path, line_no, k, f"third object must be the cluster (pid {CLUSTER_PID}), "
                                          f"found pid {objs[2].split(',')[0].strip()}")
    return _bad(path, line_no, 0, "malformed line")


def read_herwig_clusters(path, on_violation: str = "warn", perturbative: str = "auto") -> xr.Dataset:
    """Read a Herwig cluster text file into the cluster Dataset (see the module docstring).

    ``on_violation``: what a cluster whose four-momentum is not conserved beyond rounding does —
    "warn" (one warning for the file), "error" (:class:`ClusterDataError` naming the first line)
    or "ignore" (no check). ``perturbative``: "auto" (the file's Pert flag, else listed partons)
    or "none". Malformed input raises :class:`ClusterDataError` as ``"{path}:{line}: record k: …"``.
    """
    if on_violation not in _VIOLATION_MODES:
        raise ValueError(f"on_violation must be one of {_VIOLATION_MODES}, not {on_violation!r}")
    if perturbative not in ("auto", "none"):
        raise ValueError(f"perturbative must be 'auto' or 'none', not {perturbative!r}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        text = path.read_text()
    except UnicodeDecodeError as err:
        raise ClusterDataError(f"{path}: not a text file ({err})") from None

    numbers: list[str] = []  # 25 per cluster: the five objects' pid,E,px,py,pz
    perts: list[str] = []  # 2 per cluster ("" where absent)
    counts: list[int] = []  # clusters per event
    line_of_event: list[int] = []
    lines = text.splitlines()
    for line_no, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        if " " in line or "\t" in line:
            line = _SPACES.sub(r"\1", line)
        n_before = len(numbers)
        if _LINE.fullmatch(line):  # fast path: the plain five-field layout
            parts = list(filter(None, line.replace("|", ",").replace(";", ",").split(",")))
            numbers.extend(parts)
            perts.extend([""] * (2 * (len(parts) // 25)))
        else:
            _parse_general(path, line_no, line, numbers, perts)
        counts.append((len(numbers) - n_before) // 25)
        line_of_event.append(line_no)
    if not counts:
        raise ClusterDataError(f"{path}: empty file (no cluster records)")

    event = np.repeat(np.arange(len(counts)), counts)
    line_of_cluster = np.repeat(np.asarray(line_of_event), counts)
    try:
        values = _to_float(numbers).reshape(-1, 5, 5)
        pert_values = np.fromiter((float(p) if p else np.nan for p in perts), np.float64, count=len(perts))
        ok = np.isfinite(values).all((1, 2))
    except ValueError:
        ok = None
    if ok is None or not ok.all():
        # locate the offending line and let the slow path name the record and field
        bad_event = 0 if ok is None else event[np.argmin(ok)]
        for ev, line_no in enumerate(line_of_event):
            if ok is not None and ev != bad_event:
                continue
            err = _diagnose(path, line_no, lines[line_no - 1].strip())
            if err.args[0].endswith("malformed line") and ok is None:
                continue
            raise err
        raise ClusterDataError(f"{path}: unreadable numbers")
    pert_values = pert_values.reshape(-1, 2)
    pid = values[:, :, 0]
    if np.any(pid != np.round(pid)):
        c = int(np.argmax((pid != np.round(pid)).any(1)))
        raise _diagnose(path, int(line_of_cluster[c]), lines[line_of_cluster[c] - 1].strip())
    pid = pid.astype(np.int64)
    if np.any(pid[:, 2] != CLUSTER_PID):
        c = int(np.argmax(pid[:, 2] != CLUSTER_PID))
        raise _diagnose(path, int(line_of_cluster[c]), lines[line_of_cluster[c] - 1].strip())
    # E-first → (px, py, pz, E)
    p4 = values[:, :, [2, 3, 4, 1]]

    tol_detail = "ulp(cluster) + ulp(hadron0) + ulp(hadron1) per component (last printed decimal)"
    n_bad, max_res, first_lines = 0, 0.0, []
    if on_violation != "ignore" and len(p4):
        residual = np.abs(p4[:, 2] - p4[:, 3] - p4[:, 4])
        idx = (25 * np.arange(len(p4))[:, None, None] + 5 * np.arange(2, 5)[:, None] + np.arange(1, 5)).ravel()
        ulp = _ulp(np.asarray(numbers, dtype=object)[idx], values[:, 2:, 1:].ravel(), "e" in text or "E" in text)
        ulp = ulp.reshape(-1, 3, 4)[:, :, [1, 2, 3, 0]].sum(1)
        bad = (residual > ulp).any(1)
        n_bad = int(bad.sum())
        max_res = float(residual.max())
        first_lines = sorted(set(line_of_cluster[bad].tolist()))[:5]
        if n_bad and on_violation == "error":
            c = int(np.argmax(bad))
            rec = int(c - np.searchsorted(event, event[c])) + 1
            raise _bad(path, int(line_of_cluster[c]), rec,
                       f"cluster four-momentum not conserved: |cluster − hadron0 − hadron1| = "
                       f"{residual[c].max():.3g} GeV beyond the printed precision ({ulp[c].max():.3g} GeV)")
        if n_bad:
            warnings.warn(f"{path}: {n_bad} of {len(p4)} clusters do not conserve four-momentum beyond the "
                          f"printed precision (max residual {max_res:.3g} GeV); first lines: "
                          f"{', '.join(map(str, first_lines))}", stacklevel=2)

    parton_pid = pid[:, :2].copy()
    mask = parton_pid != PLACEHOLDER_PID
    parton = np.where(mask[..., None], p4[:, :2], 0.0)
    parton_pid[~mask] = 0
    hadron, hadron_pid = p4[:, 3:].copy(), pid[:, 3:].copy()
    if perturbative == "auto":
        pert = np.where(np.isnan(pert_values), mask, pert_values == 1) & mask
    else:
        pert = np.zeros_like(mask)
    swap = _is_antitriplet(parton_pid[:, 0]) & _is_triplet(parton_pid[:, 1])
    for arr in (parton, parton_pid, mask, pert, hadron, hadron_pid):
        arr[swap] = arr[swap][:, ::-1]

    attrs = {
        "source": "herwig",
        "path": str(path),
        "n_events": len(counts),
        "n_clusters": len(p4),
        "n_placeholder_partons": int((~mask).sum()),
        "perturbative_rule": "Pert flag (6th parton field)" if np.isfinite(pert_values).any() else
        ("listed parton = perturbative" if perturbative == "auto" else "none"),
        "conservation_check": "skipped" if on_violation == "ignore" else tol_detail,
        "n_nonconserving": n_bad,
        "max_conservation_residual_GeV": max_res,
    }
    ds = make_cluster_dataset(p4[:, 2], hadron, hadron_pid, event, parton=parton, parton_pid=parton_pid,
                              parton_mask=mask, perturbative=pert, attrs=attrs)
    return check_cluster_dataset(ds, str(path))


def _fmt(pid, p4, decimals, pert=None):
    px, py, pz, e = p4
    s = f"{int(pid)},{e:.{decimals}f},{px:.{decimals}f},{py:.{decimals}f},{pz:.{decimals}f}"
    return s if pert is None else f"{s},{int(pert)}"


def write_herwig_clusters(ds: xr.Dataset, path, decimals: int = 6, overwrite: bool = False,
                          pert_flag: bool = True) -> Path:
    """Write a cluster Dataset as a Herwig cluster text file (E first, one event per line, a
    trailing ``|``, ``88,0,0,0,0`` for unknown partons), atomically. ``pert_flag`` appends the
    perturbative flag as a sixth field to known partons (read back by :func:`read_herwig_clusters`).
    Refuses to replace an existing file unless ``overwrite``."""
    path = Path(path)
    check_cluster_dataset(ds, f"refusing to write {path}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: exists (pass overwrite=True / --force to replace it)")
    cl, had, hpid = ds["cluster"].values, ds["hadron"].values, ds["hadron_pid"].values
    par, ppid, mask = ds["parton"].values, ds["parton_pid"].values, ds["parton_mask"].values
    pert, event = ds["perturbative"].values, ds["event"].values
    placeholder = f"{PLACEHOLDER_PID},0,0,0,0"
    lines, current = [], []
    for i in range(len(cl)):
        objs = [_fmt(ppid[i, k], par[i, k], decimals, pert[i, k] if pert_flag else None) if mask[i, k]
                else placeholder for k in range(2)]
        objs.append(_fmt(CLUSTER_PID, cl[i], decimals))
        objs += [_fmt(hpid[i, k], had[i, k], decimals) for k in range(2)]
        current.append(";".join(objs) + ";")
        if i + 1 == len(cl) or event[i + 1] != event[i]:
            lines.append("|".join(current) + "|")
            current = []
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return path
