"""Storage of event samples as xarray Datasets in netCDF-4 files, validated on read and write.

Layout (one Dataset per sample)::

    z(event, z_particle, component)     parton-level four-vectors, component = px, py, pz, E
    x(event, x_particle, component)     detector-level four-vectors (zee, ttbar)
    x(event, constituent, feature)      jet constituents, feature = pt, eta, phi (wjets)
    jet(event, jet_feature)             the W jet's pt, eta, phi, m (wjets)

Attributes record the process, Pythia settings, detector configuration, seed and package
versions. :func:`save` validates before writing, writes to a temporary file in the target
folder and renames it over the target, so a crash or a bad dataset never leaves a partial
file under the final name nor replaces a good one. :func:`load` validates on read and raises
:class:`DataValidationError` naming the file and the problem.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from ..atomic import atomic_path
from ..physics.fourvec import COMPONENTS

FEATURES = ("pt", "eta", "phi")
JET_FEATURES = ("pt", "eta", "phi", "m")
# E² − |p|² may go negative only by float32 rounding: allow −(REL·E² + ABS) GeV².
MASS_SHELL_REL = 1e-5
MASS_SHELL_ABS = 1e-6

FOUR_VECTOR_DIMS = {"z": ("event", "z_particle", "component"), "x": ("event", "x_particle", "component")}
CONSTITUENT_DIMS = ("event", "constituent", "feature")


class DataValidationError(ValueError):
    """A dataset file or object fails validation; the message names the file and the problem."""


def make_dataset(z, x, z_particles, x_particles=None, jet=None, attrs=None) -> xr.Dataset:
    """Build the canonical Dataset from numpy arrays (stored as float32).

    ``x_particles=None`` means ``x`` holds jet constituents (event, constituent, feature).
    """
    z = np.asarray(z, dtype=np.float32)
    x = np.asarray(x, dtype=np.float32)
    coords = {"z_particle": list(z_particles), "component": list(COMPONENTS)}
    data = {"z": (FOUR_VECTOR_DIMS["z"], z)}
    if x_particles is None:
        data["x"] = (CONSTITUENT_DIMS, x)
        coords["feature"] = list(FEATURES)
    else:
        data["x"] = (FOUR_VECTOR_DIMS["x"], x)
        coords["x_particle"] = list(x_particles)
    if jet is not None:
        data["jet"] = (("event", "jet_feature"), np.asarray(jet, dtype=np.float32))
        coords["jet_feature"] = list(JET_FEATURES)
    ds = xr.Dataset(data, coords=coords, attrs=dict(attrs or {}))
    ds["z"].attrs["units"] = "GeV"
    ds["z"].attrs["long_name"] = "parton-level four-vectors (hard process)"
    ds["x"].attrs["units"] = "GeV"
    ds["x"].attrs["long_name"] = "detector-level objects"
    return ds


# unit of each four-vector component / constituent feature / jet feature ("" for none)
UNITS = {"px": "GeV", "py": "GeV", "pz": "GeV", "E": "GeV", "pt": "GeV", "eta": "", "phi": "rad", "m": "GeV"}
# what each variable holds ("x" of a jet sample: "x_constituents")
CONTENTS = {
    "z": "parton-level four-vectors of the hard process",
    "x": "detector-level four-vectors",
    "x_constituents": "jet constituents: one weighted point cloud per jet (weight pt, position eta, phi; "
                      "zero-padded)",
    "jet": "the W jet's pt, eta, phi and mass",
}


def describe_variables(ds: xr.Dataset) -> list[dict]:
    """One record per data variable of a sample: ``name``, ``dims``, ``shape``, ``dtype``, ``units``
    (one unit, or ``"pt: GeV, eta, phi: rad"`` along a feature/component axis), ``particles`` (of a
    four-vector variable, else empty) and ``contents``."""
    out = []
    for name, var in ds.data_vars.items():
        last = var.dims[-1] if var.dims else None
        labels = [str(v) for v in ds[last].values] if last in ds.coords else []
        if labels and all(v in UNITS for v in labels):
            units = {UNITS[v] for v in labels}
            unit = units.pop() if len(units) == 1 else ", ".join(f"{v}: {UNITS[v]}" if UNITS[v] else v for v in labels)
        else:
            unit = str(var.attrs.get("units", ""))
        axis = var.dims[1] if len(var.dims) > 1 else None
        four_vector = axis is not None and axis.endswith("_particle") and axis in ds.coords
        particles = [str(v) for v in ds[axis].values] if four_vector else []
        key = "x_constituents" if name == "x" and "constituent" in var.dims else name
        out.append({"name": name, "dims": tuple(var.dims), "shape": tuple(var.shape), "dtype": str(var.dtype),
                    "units": unit, "particles": particles,
                    "contents": CONTENTS.get(key) or str(var.attrs.get("long_name", ""))})
    return out


def validate(ds: xr.Dataset, source: str = "<dataset>") -> xr.Dataset:
    """Check structure and physics of a sample; raise :class:`DataValidationError` otherwise."""

    def fail(msg):
        raise DataValidationError(f"{source}: {msg}")

    for name in ("z", "x"):
        if name not in ds.variables:
            fail(f"missing variable {name!r} (have {sorted(ds.data_vars)})")
    if "process" not in ds.attrs:
        fail("missing attribute 'process'")
    expect = {"z": FOUR_VECTOR_DIMS["z"]}
    expect["x"] = CONSTITUENT_DIMS if "constituent" in ds["x"].dims else FOUR_VECTOR_DIMS["x"]
    if "jet" in ds.variables:
        expect["jet"] = ("event", "jet_feature")
    for name, dims in expect.items():
        if ds[name].dims != dims:
            fail(f"variable {name!r} has dims {ds[name].dims}, expected {dims}")
    if tuple(ds["component"].values.tolist()) != COMPONENTS:
        fail(f"coordinate 'component' is {list(ds['component'].values)}, expected {list(COMPONENTS)}")
    if "feature" in ds.coords and tuple(ds["feature"].values.tolist()) != FEATURES:
        fail(f"coordinate 'feature' is {list(ds['feature'].values)}, expected {list(FEATURES)}")
    if ds.sizes["event"] == 0:
        fail("no events")
    for name in expect:
        v = np.asarray(ds[name].values)
        bad = ~np.isfinite(v)
        if bad.any():
            idx = np.argwhere(bad)[0]
            where = ", ".join(f"{d}={i}" for d, i in zip(ds[name].dims, idx))
            fail(f"variable {name!r} has {int(bad.sum())} NaN/inf values (first at {where})")
    for name in ("z", "x"):
        if ds[name].dims[-1] != "component":
            continue
        p = ds[name].values.astype(np.float64)
        e2 = p[..., 3] ** 2
        m2 = e2 - (p[..., :3] ** 2).sum(-1)
        bad = (m2 < -(MASS_SHELL_REL * e2 + MASS_SHELL_ABS)) | (p[..., 3] < 0)
        if bad.any():
            ev, part = np.argwhere(bad)[0]
            dim = ds[name].dims[1]
            label = ds[dim].values[part] if dim in ds.coords else part
            fail(
                f"variable {name!r}: {int(bad.sum())} four-vectors with E² < |p|² or E < 0 "
                f"(first at event={ev}, {dim}={label}, E²−|p|²={m2[ev, part]:.4g} GeV²)"
            )
    if "constituent" in ds["x"].dims:
        ptv = ds["x"].sel(feature="pt").values
        if (ptv < 0).any():
            ev = int(np.argwhere(ptv < 0)[0][0])
            fail(f"variable 'x': negative constituent pt (first at event={ev})")
    return ds


def open_raw(path, what: str = "file") -> xr.Dataset:
    """Read any netCDF-4 file fully without validating it as a sample (``otviz info`` of a
    sweep.nc or metrics.nc); one-line errors for a directory, a missing or an unreadable file
    (``what`` names what was expected in the last)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; give a sample file (.nc)")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with xr.open_dataset(path, engine="h5netcdf") as f:
            return f.load()
    except Exception as exc:  # h5py/netCDF errors for truncated or foreign files
        raise DataValidationError(
            f"{path}: cannot be read as a netCDF-4 {what} (truncated or not an otviz file?): "
            f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}") from exc


def is_sample(ds: xr.Dataset) -> bool:
    """Whether ``ds`` claims to be an event sample (has ``z``, ``x`` or the ``process``
    attribute); such a file is validated as one, anything else is only described."""
    return "z" in ds.variables or "x" in ds.variables or "process" in ds.attrs


def load(path) -> xr.Dataset:
    """Open, fully read and validate a sample file; the file is closed on return."""
    return validate(open_raw(path, "sample"), str(Path(path)))


def save(ds: xr.Dataset, path, overwrite: bool = False) -> Path:
    """Validate ``ds`` and write it atomically to ``path`` (netCDF-4, zlib + shuffle)."""
    path = Path(path)
    validate(ds, f"refusing to write {path}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: exists (pass overwrite=True / --force to replace it)")
    encoding = {
        name: {"zlib": True, "complevel": 4, "shuffle": True}
        for name in ds.data_vars
        if np.issubdtype(ds[name].dtype, np.floating)
    }
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf", encoding=encoding)
        load(tmp)  # read back what was written before it may replace anything
    return path
