"""Fidelity of a learned OTUS model on a test sample, each number next to its truth-vs-truth floor.

The test sample is split at random into halves A and B. Every statistic compares truth from A
with a model output computed from B, and its *floor* is the same statistic between truth A and
truth B: equal sample sizes, independent samples, so value/floor ≈ 1 means "as close as two
independent draws of the truth". Values and floors are averaged over ``n_splits`` random splits.

    (z, z̃)  : z_A   vs E(x_B)
    (x, x̃)  : x_A   vs D(E(x_B))
    (x, x̃′) : x_A   vs D(z_B)

Statistics: SW² (L = 1000, GeV², OTUS Eq. 14–15) on the flattened four-vectors; per component and
per derived mass: 1-D Wasserstein-1 (scipy), two-sample KS distance (scipy), and reduced χ² of the
binned ratio r = h₂/h₁ with σ_r = r·√(1/h₁ + 1/h₂) (OTUS Evaluation, footnote 7).

Transfer-function closure (possible because otviz keeps the true (z, x) pairs): in quantile bins
of each z component, the mean and width of x for the true pairs against those of D(z).
"""
from __future__ import annotations

import numpy as np
import torch
import xarray as xr
from scipy import stats

from ..ot.sliced import sliced_wasserstein
from ..physics import fourvec as fv
from .peak import fit_peak

STATISTICS = ("ks", "w1", "chi2r")
COMPARISONS = ("z_vs_z_tilde", "x_vs_x_tilde", "x_vs_x_tilde_prime")


def chi2_reduced(truth, other, bins: int = 50):
    """Reduced χ² of the ratio other/truth against 1 over ``bins`` bins spanning truth's 0.5–99.5 %
    quantiles; σ_r = r·√(1/h₁ + 1/h₂), bins empty in either sample skipped. Returns (χ²/dof, dof)."""
    lo, hi = np.quantile(truth, [0.005, 0.995])
    if hi <= lo:
        hi = lo + 1e-9
    h1, edges = np.histogram(truth, bins=bins, range=(lo, hi))
    h2, _ = np.histogram(other, bins=edges)
    ok = (h1 > 0) & (h2 > 0)
    if ok.sum() == 0:
        return float("inf"), 0
    r = (h2[ok] / len(other)) / (h1[ok] / len(truth))
    sr = r * np.sqrt(1.0 / h1[ok] + 1.0 / h2[ok])
    chi2 = (((r - 1.0) / sr) ** 2).sum()
    dof = int(ok.sum())
    return float(chi2 / dof), dof


def one_d_stats(truth, other) -> dict:
    truth = np.asarray(truth, dtype=np.float64)
    other = np.asarray(other, dtype=np.float64)
    return {
        "ks": float(stats.ks_2samp(truth, other).statistic),
        "w1": float(stats.wasserstein_distance(truth, other)),
        "chi2r": chi2_reduced(truth, other)[0],
    }


def quantities(p4: np.ndarray, particles, derived: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Per-component columns ("e-.px", …) and derived invariant masses of a (N, P, 4) array."""
    out = {}
    for i, name in enumerate(particles):
        for j, comp in enumerate(fv.COMPONENTS):
            out[f"{name}.{comp}"] = p4[:, i, j]
    for mname, members in derived.items():
        idx = [list(particles).index(m) for m in members if m in particles]
        if len(idx) == len(members):
            out[mname] = fv.invariant_mass(p4[:, idx].astype(np.float64))
    return out


def derived_masses(particles) -> dict[str, list[str]]:
    if set(particles) >= {"e-", "e+"}:
        return {"m_ee": ["e-", "e+"]}
    return {}


@torch.no_grad()
def _predict(model, fn, a, batch=50_000, seed=0):
    gen = torch.Generator(device="cpu").manual_seed(seed)
    outs = []
    for i in range(0, len(a), batch):
        t = torch.as_tensor(a[i:i + batch], dtype=torch.float32)
        outs.append(fn(t, gen).numpy())
    return np.concatenate(outs)


def closure(z, x, x_learned, z_particles, x_particles, nbins: int = 10) -> xr.Dataset:
    """Mean and width of x_k in quantile bins of z_k for true pairs vs the learned D(z), for the
    particles present in both spaces (same name) and each component k."""
    names, rows = [], []
    for pi, pname in enumerate(z_particles):
        if pname not in x_particles:
            continue
        xi = list(x_particles).index(pname)
        for k, comp in enumerate(fv.COMPONENTS):
            zk = z[:, pi, k]
            edges = np.quantile(zk, np.linspace(0, 1, nbins + 1))
            which = np.clip(np.searchsorted(edges, zk, side="right") - 1, 0, nbins - 1)
            row = np.zeros((5, nbins))
            for b in range(nbins):
                m = which == b
                row[:, b] = [
                    zk[m].mean(),
                    x[m, xi, k].mean(), x_learned[m, xi, k].mean(),
                    x[m, xi, k].std(), x_learned[m, xi, k].std(),
                ]
            names.append(f"{pname}.{comp}")
            rows.append(row)
    arr = np.array(rows)
    return xr.Dataset(
        {
            "closure_z_centre": (("closure_quantity", "zbin"), arr[:, 0]),
            "closure_mean_true": (("closure_quantity", "zbin"), arr[:, 1]),
            "closure_mean_learned": (("closure_quantity", "zbin"), arr[:, 2]),
            "closure_width_true": (("closure_quantity", "zbin"), arr[:, 3]),
            "closure_width_learned": (("closure_quantity", "zbin"), arr[:, 4]),
        },
        coords={"closure_quantity": names, "zbin": np.arange(nbins)},
    )


def evaluate_otus(model, test, n_projections: int = 1000, seed: int = 0, n_splits: int = 5) -> xr.Dataset:
    """All fidelity numbers of ``model`` on the test Dataset ``test`` as an xarray Dataset."""
    model = model.cpu().eval()
    zp = list(test["z_particle"].values)
    xp = list(test["x_particle"].values)
    z = test["z"].values.astype(np.float32)
    x = test["x"].values.astype(np.float32)
    z_tilde = _predict(model, model.encode, x, seed=seed + 1)
    x_tilde = _predict(model, model.decode, z_tilde, seed=seed + 2)
    x_prime = _predict(model, model.decode, z, seed=seed + 3)
    spaces = {  # comparison: (truth, model output for the same events, particle names)
        "z_vs_z_tilde": (z, z_tilde, zp),
        "x_vs_x_tilde": (x, x_tilde, xp),
        "x_vs_x_tilde_prime": (x, x_prime, xp),
    }
    qnames = []
    for t, parts in ((z, zp), (x, xp)):
        qnames += [q for q in quantities(t[:2], parts, derived_masses(parts)) if q not in qnames]
    value = np.zeros((len(COMPARISONS), len(qnames), len(STATISTICS)))
    floor = np.zeros_like(value)
    sw = np.zeros(len(COMPARISONS))
    sw_floor = np.zeros(len(COMPARISONS))
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed + 4)
    half = len(z) // 2
    for _ in range(n_splits):
        perm = rng.permutation(len(z))
        a, b = perm[:half], perm[half:2 * half]
        for ci, comp in enumerate(COMPARISONS):
            truth, out, parts = spaces[comp]
            ta = torch.as_tensor(truth[a], dtype=torch.float64)
            sw[ci] += float(sliced_wasserstein(ta, torch.as_tensor(out[b], dtype=torch.float64), n_projections, gen))
            sw_floor[ci] += float(sliced_wasserstein(ta, torch.as_tensor(truth[b], dtype=torch.float64), n_projections, gen))
            qa, qb, qm = (quantities(arr, parts, derived_masses(parts)) for arr in (truth[a], truth[b], out[b]))
            for qi, q in enumerate(qnames):
                if q not in qa:
                    value[ci, qi] = np.nan
                    continue
                v, f = one_d_stats(qa[q], qm[q]), one_d_stats(qa[q], qb[q])
                value[ci, qi] += [v[s] for s in STATISTICS]
                floor[ci, qi] += [f[s] for s in STATISTICS]
    value /= n_splits
    floor[np.isnan(value)] = np.nan
    floor /= n_splits
    sw /= n_splits
    sw_floor /= n_splits
    ds = xr.Dataset(
        {
            "value": (("comparison", "quantity", "statistic"), value),
            "floor": (("comparison", "quantity", "statistic"), floor),
            "sw": (("comparison",), sw),
            "sw_floor": (("comparison",), sw_floor),
        },
        coords={"comparison": list(COMPARISONS), "quantity": qnames, "statistic": list(STATISTICS)},
        attrs={"n_test": len(z), "n_half": half, "n_splits": n_splits, "n_projections": n_projections,
               "seed": seed, "sw_units": "GeV^2",
               "split": "mean over n_splits random halves: truth = half A, model output computed from half B"},
    )
    ds["ratio"] = ds["value"] / ds["floor"]
    ds["sw_ratio"] = ds["sw"] / ds["sw_floor"]
    if "m_ee" in qnames:
        m_x = fv.invariant_mass(x.astype(np.float64))
        m_xp = fv.invariant_mass(x_prime.astype(np.float64))
        px, pp = fit_peak(m_x), fit_peak(m_xp)
        ds.attrs.update(m_ee_peak_x=px.mass, m_ee_peak_x_tilde_prime=pp.mass, m_ee_peak_shift=pp.mass - px.mass,
                        m_ee_fwhm_x=px.fwhm, m_ee_fwhm_x_tilde_prime=pp.fwhm)
    clo = closure(z, x, x_prime, zp, xp)
    ds = ds.merge(clo)
    rel_mean = np.abs(clo.closure_mean_learned - clo.closure_mean_true) / clo.closure_width_true
    ds["closure_mean_pull"] = rel_mean.mean("zbin")
    ds["closure_width_ratio"] = (clo.closure_width_learned / clo.closure_width_true).mean("zbin")
    return ds


def metrics_to_json(ds: xr.Dataset) -> dict:
    """A plain-JSON view: per comparison SW with floor and ratio, per quantity each statistic
    with floor and ratio, closure summaries and the m_ee peaks."""
    out = {"attrs": {k: (v.item() if hasattr(v, "item") else v) for k, v in ds.attrs.items()}, "comparisons": {}}
    for comp in ds.comparison.values:
        c = {"sw": float(ds.sw.sel(comparison=comp)), "sw_floor": float(ds.sw_floor.sel(comparison=comp)),
             "sw_ratio": float(ds.sw_ratio.sel(comparison=comp)), "quantities": {}}
        for q in ds.quantity.values:
            v = ds.value.sel(comparison=comp, quantity=q)
            if np.isnan(v.values).all():
                continue
            c["quantities"][str(q)] = {
                s: {"value": float(v.sel(statistic=s)), "floor": float(ds.floor.sel(comparison=comp, quantity=q, statistic=s)),
                    "ratio": float(ds.ratio.sel(comparison=comp, quantity=q, statistic=s))}
                for s in ds.statistic.values
            }
        out["comparisons"][str(comp)] = c
    out["closure"] = {
        str(q): {"mean_pull": float(ds.closure_mean_pull.sel(closure_quantity=q)),
                 "width_ratio": float(ds.closure_width_ratio.sel(closure_quantity=q))}
        for q in ds.closure_quantity.values
    }
    return out
