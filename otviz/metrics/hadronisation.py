"""Fidelity of generated cluster decays against the reference, each number beside its
truth-vs-truth floor (HadML, issue 15).

A generator (HadML, or any model) produces two hadrons for every cluster of a reference cluster
Dataset (:mod:`otviz.data.clusterset`). The clusters are split at random into halves A and B
(``otviz.metrics.fidelity.split_halves``, by cluster — or by event for event-level observables);
every statistic S compares the reference from A with the generated decays of B, and its floor is
S between the reference of A and of B:

    value = mean over splits of S(reference[A], generated[B]),  floor = mean of S(reference[A], reference[B])

S ∈ {KS distance, Wasserstein-1 (scipy), reduced χ² of the binned ratio} (``fidelity.one_d_stats``).

Observables
    cos_theta, phi   hadron 0's decay angles in the cluster rest frame about
                     ``clusterset.decay_axis`` (the perturbative quark's direction, else the
                     cluster's flight direction), per cluster
    E, pT, eta       lab-frame energy (GeV), transverse momentum to the beam (GeV) and
                     pseudorapidity of each hadron (both hadrons of a cluster)
    min_dR           per event, the smallest ΔR = sqrt(Δη² + Δφ²) between any two of its hadrons
                     (HadML v2's "going beyond inputs and outputs" check); event-level, so only
                     in the ``all`` mass bin and origin

Selections: cluster-mass bins ``MASS_EDGES`` (GeV; ``all`` too) × origin (``all``,
``perturbative`` = with a perturbative constituent, ``non-perturbative``). Species: the fraction
of each (hadron 0, hadron 1) PDG-id pair, generated against reference.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from ..data.clusterset import decay_axis, event_hadrons
from ..physics import fourvec as fv
from ..physics import twobody
from .fidelity import N_SPLITS, STATISTICS, one_d_stats, split_halves

MASS_EDGES = (0.0, 1.5, 3.0, np.inf)  # GeV: three cluster-mass bins
ORIGINS = ("all", "perturbative", "non-perturbative")
ANGLES = ("cos_theta", "phi")
LAB = ("E", "pT", "eta")
OBSERVABLES = ANGLES + LAB + ("min_dR",)
UNITS = {"cos_theta": "", "phi": "rad", "E": "GeV", "pT": "GeV", "eta": "", "min_dR": ""}
LABELS = {"cos_theta": "cos θ*", "phi": "φ* [rad]", "E": "hadron E [GeV]", "pT": "hadron pT [GeV]",
          "eta": "hadron η", "min_dR": "min ΔR between hadrons"}
GOAL_FACTOR = 2.0  # issue 15: W₁ within 2 × the truth-vs-truth floor
MIN_PER_HALF = 2  # fewer finite values in a half (reference A, B or generated B): the statistic is NaN
MIN_CLUSTERS = 4  # selections with fewer clusters (or events, for min ΔR) are not evaluated (NaN)


def mass_bin_labels(edges=MASS_EDGES) -> list[str]:
    """``["all", "0–1.5 GeV", "1.5–3 GeV", "> 3 GeV"]`` for ``MASS_EDGES``."""
    out = ["all"]
    for lo, hi in zip(edges[:-1], edges[1:]):
        out.append(f"> {lo:g} GeV" if not np.isfinite(hi) else f"{lo:g}–{hi:g} GeV")
    return out


def decay_observables(ds: xr.Dataset, hadron=None, axis=None) -> dict[str, np.ndarray]:
    """cos θ* and φ* of hadron 0 about ``decay_axis`` in the cluster rest frame, per cluster, for
    the Dataset's hadrons or the given (n, 2, 4) ``hadron`` array (``axis``: ``decay_axis(ds)``'s
    axes when already computed)."""
    h = ds["hadron"].values if hadron is None else np.asarray(hadron, dtype=np.float64)
    if axis is None:
        axis, _ = decay_axis(ds)
    c, p = twobody.decay_angles(h[:, 0], ds["cluster"].values, axis)
    return {"cos_theta": c, "phi": p}


def lab_observables(hadron) -> dict[str, np.ndarray]:
    """E, pT and η of each hadron, (n, 2) arrays (lab frame, GeV)."""
    h = np.asarray(hadron, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"E": h[..., 3], "pT": fv.pt(h), "eta": fv.eta(h)}


def min_delta_r(ds: xr.Dataset, hadron=None) -> np.ndarray:
    """Per event (ordered as ``np.unique(ds.event)``), the smallest ΔR between two of its hadrons
    (NaN for events with fewer than two hadrons)."""
    h, mask, _ = event_hadrons(ds, None if hadron is None else np.asarray(hadron, dtype=np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        eta, phi = fv.eta(h), fv.phi(h)
    out = np.full(len(h), np.nan)
    for start in range(0, len(h), 512):  # chunks bound the (events, n, n) pair arrays
        sl = slice(start, start + 512)
        dr = fv.delta_r(eta[sl, :, None], phi[sl, :, None], eta[sl, None, :], phi[sl, None, :])
        m = mask[sl, :, None] & mask[sl, None, :]
        m &= ~np.eye(h.shape[1], dtype=bool)[None]
        dr = np.where(m & np.isfinite(dr), dr, np.inf)
        best = dr.min((1, 2))
        out[sl] = np.where(np.isfinite(best), best, np.nan)
    return out


def statistics_with_floor(ref, gen, selection, splits) -> tuple[dict, dict]:
    """Mean over ``splits`` of S(ref[A], gen[B]) (value) and S(ref[A], ref[B]) (floor), each half
    restricted to the units (clusters or events) of the boolean ``selection``; ``ref``/``gen``
    hold one row per unit (columns, e.g. both hadrons, are pooled), NaNs dropped; ``splits`` are
    (A, B) index arrays over all units (``fidelity.split_halves``). NaN for every statistic when the
    selection holds fewer than ``MIN_CLUSTERS`` units or a half has fewer than ``MIN_PER_HALF``
    finite values (too few to compare)."""
    selection = np.asarray(selection, bool)
    n = len(selection)
    ref, gen = np.asarray(ref).reshape(n, -1), np.asarray(gen).reshape(n, -1)
    nan = dict.fromkeys(STATISTICS, float("nan"))
    idx = np.flatnonzero(selection)
    if len(idx) < MIN_CLUSTERS or not len(splits):
        return nan, dict(nan)
    value = dict.fromkeys(STATISTICS, 0.0)
    floor = dict.fromkeys(STATISTICS, 0.0)
    for a, b in splits:
        a, b = idx[np.isin(idx, a)], idx[np.isin(idx, b)]
        ra, rb, gb = (x.reshape(-1) for x in (ref[a], ref[b], gen[b]))
        ra, rb, gb = ra[np.isfinite(ra)], rb[np.isfinite(rb)], gb[np.isfinite(gb)]
        if min(len(ra), len(rb), len(gb)) < MIN_PER_HALF:
            return nan, dict(nan)
        v, f = one_d_stats(ra, gb), one_d_stats(ra, rb)
        for s in STATISTICS:
            value[s] += v[s] / len(splits)
            floor[s] += f[s] / len(splits)
    return value, floor


def _pair_key(pid) -> np.ndarray:
    pid = np.asarray(pid, dtype=np.int64)
    return np.array([f"{a},{b}" for a, b in pid]) if len(pid) else np.array([], dtype=str)


def hadronisation_metrics(reference: xr.Dataset, hadron, hadron_pid=None, mass_edges=MASS_EDGES,
                          n_splits: int = N_SPLITS, seed: int = 0) -> xr.Dataset:
    """Every observable's KS, W₁ and χ²/dof against the reference, beside its floor, per
    cluster-mass bin and origin; species fractions; as an xarray Dataset (``metrics.nc``).

    ``hadron`` (n, 2, 4) GeV are the generated decays of ``reference``'s n clusters, in its order;
    ``hadron_pid`` (n, 2) their PDG ids (None: species not compared).
    """
    gen = np.asarray(hadron, dtype=np.float64)
    n = reference.sizes["cluster"]
    if gen.shape != (n, 2, 4):
        raise ValueError(f"hadron has shape {gen.shape}; expected ({n}, 2, 4) for the reference's clusters")
    mass = fv.mass(reference["cluster"].values)
    axis, from_quark = decay_axis(reference)
    ref_ang, gen_ang = decay_observables(reference, axis=axis), decay_observables(reference, gen, axis=axis)
    ref_lab, gen_lab = lab_observables(reference["hadron"].values), lab_observables(gen)
    per_cluster = {k: (ref_ang[k], gen_ang[k]) for k in ANGLES} | {k: (ref_lab[k], gen_lab[k]) for k in LAB}

    bins = mass_bin_labels(mass_edges)
    shape = (len(OBSERVABLES), len(bins), len(ORIGINS), len(STATISTICS))
    value, floor = np.full(shape, np.nan), np.full(shape, np.nan)
    count = np.zeros((len(bins), len(ORIGINS)), np.int64)
    splits = list(split_halves(n, n_splits, seed))
    for ib in range(len(bins)):
        in_bin = np.ones(n, bool) if ib == 0 else (mass >= mass_edges[ib - 1]) & (mass < mass_edges[ib])
        for io, origin in enumerate(ORIGINS):
            sel = in_bin & (True if origin == "all" else (from_quark if origin == "perturbative" else ~from_quark))
            count[ib, io] = int(sel.sum())
            for iobs, obs in enumerate(OBSERVABLES[:-1]):
                v, f = statistics_with_floor(*per_cluster[obs], sel, splits)
                value[iobs, ib, io] = [v[s] for s in STATISTICS]
                floor[iobs, ib, io] = [f[s] for s in STATISTICS]
    ref_dr, gen_dr = min_delta_r(reference), min_delta_r(reference, gen)
    ev_splits = list(split_halves(len(ref_dr), n_splits, seed + 1))
    v, f = statistics_with_floor(ref_dr, gen_dr, np.ones(len(ref_dr), bool), ev_splits)
    value[-1, 0, 0] = [v[s] for s in STATISTICS]
    floor[-1, 0, 0] = [f[s] for s in STATISTICS]

    coords = {"observable": list(OBSERVABLES), "mass_bin": bins, "origin": list(ORIGINS), "statistic": list(STATISTICS)}
    out = xr.Dataset(
        {
            "value": (("observable", "mass_bin", "origin", "statistic"), value),
            "floor": (("observable", "mass_bin", "origin", "statistic"), floor),
            "n_clusters": (("mass_bin", "origin"), count),
        },
        coords=coords,
        attrs={"mass_edges_GeV": [float(e) for e in mass_edges if np.isfinite(e)],  # last bin open if inf
               "n_splits": n_splits, "seed": seed, "goal_factor": GOAL_FACTOR,
               "n_events": int(len(ref_dr))},
    )
    if hadron_pid is not None:
        ref_key, gen_key = _pair_key(reference["hadron_pid"].values), _pair_key(hadron_pid)
        pairs = sorted(set(ref_key.tolist()) | set(gen_key.tolist()))
        out["species_reference"] = ("pair", np.array([(ref_key == p).mean() for p in pairs]))
        out["species_generated"] = ("pair", np.array([(gen_key == p).mean() for p in pairs]))
        out = out.assign_coords(pair=pairs)
    return out


def goal_table(metrics: xr.Dataset, statistic: str = "w1", origin: str = "all",
               observables=("cos_theta", "phi", "E", "pT")) -> list[dict]:
    """Per observable and mass bin (not ``all``): value, floor, value/floor and whether it meets
    value ≤ ``goal_factor`` × floor (issue 15's done-when), with ``n_clusters`` of the cell.

    A cell whose value or floor is NaN (too few clusters, see ``MIN_CLUSTERS``) is not evaluable:
    ``met`` None, ``ratio`` NaN (:func:`format_goal_row` prints "n/a (N clusters)")."""
    factor = float(metrics.attrs.get("goal_factor", GOAL_FACTOR))
    rows = []
    for obs in observables:
        for b in metrics["mass_bin"].values[1:]:
            sel = dict(observable=obs, mass_bin=b, origin=origin, statistic=statistic)
            v, f = float(metrics["value"].sel(sel)), float(metrics["floor"].sel(sel))
            n = int(metrics["n_clusters"].sel(mass_bin=b, origin=origin)) if "n_clusters" in metrics else -1
            if not (np.isfinite(v) and np.isfinite(f)):
                ratio, met = float("nan"), None
            else:
                ratio, met = (v / f if f > 0 else float("inf")), bool(v <= factor * f)
            rows.append({"observable": obs, "mass_bin": str(b), "value": v, "floor": f, "ratio": ratio,
                         "met": met, "n_clusters": n})
    return rows


def format_goal_row(row: dict) -> str:
    """One goal-table row as text: ``cos_theta  0–1.5 GeV  0.01 / 0.008 = 1.25`` (W₁ in the
    observable's unit, ``(above 2)`` when not met), or ``n/a (N clusters)`` when not evaluable."""
    obs, unit = row["observable"], UNITS.get(row["observable"], "")
    head = f"{obs:<10} {row['mass_bin']:<12}"
    if row.get("met") is None:
        return f"{head} n/a ({row.get('n_clusters', 0)} clusters)"
    u = f" {unit}" if unit else ""
    return (f"{head} {row['value']:.4g} / {row['floor']:.4g}{u} = {row['ratio']:.2f}"
            f"{'' if row['met'] else f'  (above {GOAL_FACTOR:g})'}")
