"""The cluster Dataset: clusters, their two constituent partons and their two decay hadrons.

One layout for Herwig cluster files (:mod:`otviz.data.herwig`), otviz's reference cluster model on
Pythia partons (:mod:`otviz.data.clusters`) and HadML (:mod:`otviz.models.hadml`):

    cluster(cluster, component)                 cluster four-momentum
    hadron(cluster, hadron, component)          the two decay hadrons (hadron = 0, 1)
    hadron_pid(cluster, hadron)                 PDG ids (111 π⁰, ±211 π±, …)
    parton(cluster, parton, component)          the two constituents (parton 0 the quark,
                                                parton 1 the antiquark; zeros where unknown)
    parton_pid(cluster, parton)                 PDG ids (0 where unknown)
    parton_mask(cluster, parton)                True where the parton is known (Herwig's
                                                ``88,0,0,0,0`` placeholder → False)
    perturbative(cluster, parton)               True where the constituent is a perturbative
                                                quark (from the hard process or shower, not a
                                                non-perturbative gluon splitting)
    event(cluster)                              the event each cluster came from (0, 1, …)

component = (px, py, pz, E), GeV. Hadron 0 is the one holding parton 0's flavour. The file's
attributes record where it came from (``source``), generator settings, seed and versions.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from otviz.atomic import atomic_path
from otviz.physics.fourvec import COMPONENTS

VARIABLES = ("cluster", "hadron", "hadron_pid", "parton", "parton_pid", "parton_mask", "perturbative", "event")
PLACEHOLDER_PID = 88  # Herwig's "unknown parton" record
CLUSTER_PID = 81  # Herwig's cluster id


class ClusterDataError(ValueError):
    """A cluster file or Dataset fails validation; the message names the source and the problem."""


def make_cluster_dataset(cluster, hadron, hadron_pid, event, parton=None, parton_pid=None, parton_mask=None,
                         perturbative=None, attrs=None) -> xr.Dataset:
    """Build the cluster Dataset from arrays (shapes as in the module docstring; missing parton
    information becomes zeros with ``parton_mask`` False)."""
    cluster = np.asarray(cluster, dtype=np.float64).reshape(-1, 4)
    n = len(cluster)
    hadron = np.asarray(hadron, dtype=np.float64).reshape(n, 2, 4)
    parton = np.zeros((n, 2, 4)) if parton is None else np.asarray(parton, dtype=np.float64).reshape(n, 2, 4)
    parton_pid = np.zeros((n, 2), np.int32) if parton_pid is None else np.asarray(parton_pid, np.int32)
    if parton_mask is None:
        parton_mask = parton_pid != 0
    parton_mask = np.asarray(parton_mask, bool).reshape(n, 2)
    perturbative = np.zeros((n, 2), bool) if perturbative is None else np.asarray(perturbative, bool).reshape(n, 2)
    comp = {"component": list(COMPONENTS)}
    ds = xr.Dataset(
        {
            "cluster": (("cluster", "component"), cluster, {"units": "GeV"}),
            "hadron": (("cluster", "hadron", "component"), hadron, {"units": "GeV"}),
            "hadron_pid": (("cluster", "hadron"), np.asarray(hadron_pid, np.int32).reshape(n, 2)),
            "parton": (("cluster", "parton", "component"), parton, {"units": "GeV"}),
            "parton_pid": (("cluster", "parton"), parton_pid.reshape(n, 2)),
            "parton_mask": (("cluster", "parton"), parton_mask),
            "perturbative": (("cluster", "parton"), perturbative & parton_mask),
            "event": (("cluster",), np.asarray(event, np.int64).reshape(n)),
        },
        coords=comp,
        attrs=dict(attrs or {}),
    )
    ds.attrs.setdefault("kind", "clusters")
    return ds


def conservation_residual(ds: xr.Dataset) -> np.ndarray:
    """Per cluster, max over components of |cluster − hadron₀ − hadron₁| in GeV."""
    return np.abs(ds["cluster"].values - ds["hadron"].values.sum(1)).max(-1)


def check_cluster_dataset(ds: xr.Dataset, source: str = "<clusters>") -> xr.Dataset:
    """Raise :class:`ClusterDataError` naming ``source`` if variables, shapes or values are wrong."""
    missing = [v for v in VARIABLES if v not in ds]
    if missing:
        raise ClusterDataError(f"{source}: not a cluster Dataset (missing {', '.join(missing)})")
    for name in ("cluster", "hadron", "parton"):
        if not np.isfinite(ds[name].values).all():
            raise ClusterDataError(f"{source}: non-finite values in {name!r}")
    if ds.sizes.get("hadron") != 2 or ds.sizes.get("parton") != 2 or ds.sizes.get("component") != 4:
        raise ClusterDataError(f"{source}: expected 2 hadrons, 2 partons and 4 components per cluster")
    if len(ds["event"]) and np.any(np.diff(ds["event"].values) < 0):
        raise ClusterDataError(f"{source}: clusters are not grouped by event (event must not decrease)")
    return ds


def save_clusters(ds: xr.Dataset, path, overwrite: bool = False) -> Path:
    """Check ``ds`` and write it atomically to ``path`` (netCDF-4, zlib + shuffle)."""
    path = Path(path)
    check_cluster_dataset(ds, f"refusing to write {path}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: exists (pass overwrite=True / --force to replace it)")
    # cluster/hadron/parton share their names with dimensions, so xarray keeps them as coordinates:
    # compress every variable but the component labels
    encoding = {name: {"zlib": True, "complevel": 4, "shuffle": True} for name in ds.variables if name != "component"}
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf", encoding=encoding)
        load_clusters(tmp)
    return path


def load_clusters(path) -> xr.Dataset:
    """Read a cluster file fully: an otviz cluster netCDF, or a Herwig cluster text file
    (``.dat``/``.txt``, via :func:`otviz.data.herwig.read_herwig_clusters`)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix.lower() in (".dat", ".txt"):
        from otviz.data.herwig import read_herwig_clusters

        return read_herwig_clusters(path)
    try:
        with xr.open_dataset(path, engine="h5netcdf") as f:
            ds = f.load()
    except (OSError, ValueError) as err:
        raise ClusterDataError(f"{path}: not a readable netCDF cluster file ({err})") from None
    return check_cluster_dataset(ds, str(path))


def event_hadrons(ds: xr.Dataset, hadrons=None):
    """Hadrons grouped by event: (n_events, max_hadrons, 4) zero-padded array, (n_events,
    max_hadrons) mask, and the event ids. ``hadrons`` (n_clusters, 2, 4) replaces ``ds.hadron``
    (e.g. generated ones); a torch tensor gives torch outputs (differentiable)."""
    event = ds["event"].values
    ids, inverse, counts = np.unique(event, return_inverse=True, return_counts=True)
    h = ds["hadron"].values if hadrons is None else hadrons
    n_ev, width = len(ids), 2 * int(counts.max()) if len(counts) else 0
    # slot of each hadron in its event: 2 × (rank of the cluster within its event) + hadron index
    order = np.argsort(inverse, kind="stable")
    rank = np.empty(len(event), np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank[order] = np.arange(len(event)) - np.repeat(starts, counts)
    rows = np.repeat(inverse, 2)
    cols = (2 * rank[:, None] + np.arange(2)).reshape(-1)
    mask = np.zeros((n_ev, width), bool)
    mask[rows, cols] = True
    flat = h.reshape(-1, 4)
    if isinstance(h, np.ndarray):
        out = np.zeros((n_ev, width, 4), h.dtype)
        out[rows, cols] = flat
        return out, mask, ids
    import torch

    out = torch.zeros((n_ev, width, 4), dtype=h.dtype, device=h.device)
    out = out.index_put((torch.as_tensor(rows, device=h.device), torch.as_tensor(cols, device=h.device)), flat)
    return out, torch.as_tensor(mask, device=h.device), ids


def decay_axis(ds: xr.Dataset, cluster=None, parton=None, perturbative=None):
    """The z axis, in each cluster's rest frame, about which hadron 0's decay angles are measured
    (HadML's generator output and the Hadronisation page alike), and whether it is a quark's:

    - parton 0 perturbative: its direction in the cluster rest frame (hadron 0 holds its flavour
      and Herwig emits it along that direction, smeared);
    - else parton 1 perturbative: minus its direction (hadron 1 goes along it, hadron 0 opposite);
    - else the helicity axis, the cluster's flight direction (``twobody.helicity_axis``).

    Returns ``(axis (n, 3), from_quark (n,) bool)``. Arrays may replace the Dataset's variables.
    """
    from otviz.physics.twobody import boost_to_rest

    cl = ds["cluster"].values if cluster is None else np.asarray(cluster, dtype=np.float64)
    pa = ds["parton"].values if parton is None else np.asarray(parton, dtype=np.float64)
    pert = ds["perturbative"].values if perturbative is None else np.asarray(perturbative, bool)
    rest = boost_to_rest(pa, cl[:, None, :])[..., :3]
    axis = cl[:, :3].copy()
    axis = np.where(pert[:, 1, None], -rest[:, 1], axis)
    axis = np.where(pert[:, 0, None], rest[:, 0], axis)
    # a cluster at rest has no flight direction: the lab z axis
    still = (axis**2).sum(-1) < 1e-24
    axis[still] = (0.0, 0.0, 1.0)
    return axis, pert.any(1)


def summary(ds: xr.Dataset) -> dict:
    """What ``otviz info`` prints of a cluster Dataset: counts, the cluster-mass quantiles (GeV),
    the fractions with a perturbative constituent and made by fission, the largest four-momentum
    mismatch per cluster (GeV) and the hadron species counts."""
    from otviz.physics.fourvec import mass

    n_clusters = int(ds.sizes["cluster"])
    n_events = int(len(np.unique(ds["event"].values)))
    m = mass(ds["cluster"].values)
    pids, counts = np.unique(ds["hadron_pid"].values, return_counts=True)
    out = {
        "events": n_events,
        "clusters": n_clusters,
        "clusters_per_event": n_clusters / max(n_events, 1),
        "mass_quantiles_GeV": dict(zip(("5%", "25%", "50%", "75%", "95%"),
                                       np.quantile(m, [0.05, 0.25, 0.5, 0.75, 0.95]).tolist() if n_clusters else [])),
        "perturbative_fraction": float(ds["perturbative"].values.any(1).mean()) if n_clusters else 0.0,
        "max_conservation_residual_GeV": float(conservation_residual(ds).max()) if n_clusters else 0.0,
        "hadron_species": {int(p): int(c) for p, c in zip(pids, counts)},
    }
    if "fission" in ds:
        out["fission_fraction"] = float(ds["fission"].values.mean()) if n_clusters else 0.0
    return out
