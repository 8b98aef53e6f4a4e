"""Fidelity of a learned OTUS model on a test sample, each number next to its truth-vs-truth floor.

The test sample is split at random into halves A and B. Every statistic compares truth from A
with a model output computed from B, and its *floor* is the same statistic between truth A and
truth B: equal sample sizes, independent samples, so value/floor ≈ 1 means "as close as two
independent draws of the truth". Values and floors are averaged over ``n_splits`` random splits
(``split_halves``). One function, ``statistic_with_floor``, defines every 1-D value and its floor;
``model_outputs`` defines the model's outputs on the test sample (z̃, x̃, x̃′ with fixed seeds).
``otviz evaluate`` and the dashboard's Residuals page both use these two, so the number beside a
plot is the number in metrics.nc.

    (z, z̃)  : z_A   vs E(x_B)
    (x, x̃)  : x_A   vs D(E(x_B))
    (x, x̃′) : x_A   vs D(z_B)

Statistics: SW² (L = 1000, GeV², OTUS Eq. 14–15) on the flattened four-vectors; per component and
per derived mass: 1-D Wasserstein-1 (scipy), two-sample KS distance (scipy), and reduced χ² of the
binned ratio r = h₂/h₁ with σ_r = r·√(1/h₁ + 1/h₂) (OTUS Evaluation, footnote 7).

m_ee width: inter-quartile range (q₇₅ − q₂₅) of the whole m_ee sample and the FWHM of a Voigt
fit of the peak (``otviz.metrics.peak``), for truth and model output, per comparison.

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
from ..physics.ttbar import ttbar_masses
from ..progress import Steps
from .peak import fit_peak

STATISTICS = ("ks", "w1", "chi2r")
COMPARISONS = ("z_vs_z_tilde", "x_vs_x_tilde", "x_vs_x_tilde_prime")
# comparison → (truth array, model output array) in the dicts of ``model_outputs``
COMPARISON_ARRAYS = {"z_vs_z_tilde": ("z", "z_tilde"), "x_vs_x_tilde": ("x", "x_tilde"),
                     "x_vs_x_tilde_prime": ("x", "x_tilde_prime")}
N_SPLITS = 5
PEAK_STATISTICS = ("mass", "fwhm", "iqr")


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
        "ks": float(stats.ks_2samp(truth, other, method="asymp").statistic),  # the p-value method does not change D
        "w1": float(stats.wasserstein_distance(truth, other)),
        "chi2r": chi2_reduced(truth, other)[0],
    }


def quantities(p4: np.ndarray, particles, derived: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Per-component columns ("e-.px", …) and derived invariant masses of a (N, P, 4) array: the
    ``derived`` member masses (m_ee) and, for the tt̄ layouts, the four masses of
    :func:`otviz.physics.ttbar.ttbar_masses`."""
    out = {}
    for i, name in enumerate(particles):
        for j, comp in enumerate(fv.COMPONENTS):
            out[f"{name}.{comp}"] = p4[:, i, j]
    for mname, members in derived.items():
        idx = [list(particles).index(m) for m in members if m in particles]
        if len(idx) == len(members):
            out[mname] = fv.invariant_mass(p4[:, idx].astype(np.float64))
    # tt̄ samples: m_tt, m_W^had, m_t^lep, m_t^had (from partons for z, reconstructed for x)
    with np.errstate(invalid="ignore", divide="ignore"):  # empty/zero rows (listing names) give NaN, not warnings
        out.update(ttbar_masses(np.asarray(p4, dtype=np.float64), particles))
    return out


def derived_masses(particles) -> dict[str, list[str]]:
    if set(particles) >= {"e-", "e+"}:
        return {"m_ee": ["e-", "e+"]}
    return {}


def split_halves(n: int, n_splits: int = N_SPLITS, seed: int = 0):
    """The ``n_splits`` random splits of ``n`` events into halves (A, B) of n//2 events each:
    permutations drawn in turn from ``numpy.random.default_rng(seed)``. Yields (a, b) indices."""
    rng = np.random.default_rng(seed)
    half = n // 2
    for _ in range(n_splits):
        perm = rng.permutation(n)
        yield perm[:half], perm[half:2 * half]


def statistic_with_floor(truth, other, n_splits: int = N_SPLITS, seed: int = 0) -> tuple[dict, dict]:
    """KS, W₁ and χ²/dof of a model output against the truth, each with its truth-vs-truth floor.

    ``truth`` and ``other`` are 1-D per-event values where ``other[i]`` was computed from event i
    (e.g. E(x_i) against z_i). Over the splits (A, B) of ``split_halves(len(truth), n_splits, seed)``:

        value = mean over splits of S(truth[A], other[B]),   floor = mean of S(truth[A], truth[B])

    Returns ({statistic: value}, {statistic: floor}) for the statistics in ``STATISTICS``."""
    truth = np.asarray(truth, dtype=np.float64)
    other = np.asarray(other, dtype=np.float64)
    value = dict.fromkeys(STATISTICS, 0.0)
    floor = dict.fromkeys(STATISTICS, 0.0)
    for a, b in split_halves(len(truth), n_splits, seed):
        v, f = one_d_stats(truth[a], other[b]), one_d_stats(truth[a], truth[b])
        for s in STATISTICS:
            value[s] += v[s] / n_splits
            floor[s] += f[s] / n_splits
    return value, floor


def width_iqr(m) -> float:
    """Inter-quartile range q₇₅ − q₂₅ of a mass sample (GeV): a width that needs no fit."""
    q25, q75 = np.quantile(np.asarray(m, dtype=np.float64), [0.25, 0.75])
    return float(q75 - q25)


def peak_summary(m) -> dict:
    """{mass: Voigt-fit peak m₀, fwhm: Voigt FWHM, iqr: inter-quartile range} of a mass sample,
    GeV; the fit entries are NaN when the peak cannot be fitted."""
    try:
        f = fit_peak(m)
        mass, fwhm = f.mass, f.fwhm
    except (RuntimeError, ValueError):
        mass = fwhm = float("nan")
    return {"mass": mass, "fwhm": fwhm, "iqr": width_iqr(m)}


PREDICT_BATCH = 50_000  # events per forward pass of ``model_outputs``


@torch.no_grad()
def _predict(model, fn, a, batch=PREDICT_BATCH, seed=0, step=None, what=""):
    gen = torch.Generator(device="cpu").manual_seed(seed)
    outs = []
    for i in range(0, len(a), batch):
        t = torch.from_numpy(np.array(a[i:i + batch], dtype=np.float32))  # a copy: inputs may be read-only
        outs.append(fn(t, gen).numpy())
        if step is not None:
            step(what)
    return np.concatenate(outs)


MAX_REDRAWS = 50  # restricted decoder: redraws of D(z) for an event until it lands in S


@torch.no_grad()
def _restrict(model, z_in, out, seed):
    """Events of a restricted decoder's output ``out = D(z_in)`` outside S redrawn (fresh noise,
    generator seeded ``seed``) until they pass, at most ``MAX_REDRAWS`` times: a sample of
    p_D(x | z, S) = p_D(x | z)·1_S(x)/P_D(S | z) per event — the law of x given z in a sample
    selected by S, like the test sample (OTUS Eq. 17–19). Returns (out, first-pass acceptance)."""
    accepts = getattr(model, "accepts", None)
    if accepts is None or getattr(getattr(model, "cfg", None), "acceptance", None) is None:
        return out, 1.0
    ok = accepts(torch.from_numpy(out)).numpy()
    first = float(ok.mean()) if len(ok) else 1.0
    gen = torch.Generator(device="cpu").manual_seed(seed)
    for _ in range(MAX_REDRAWS):
        redo = np.flatnonzero(~ok)
        if not len(redo):
            break
        draw = model.decode(torch.from_numpy(np.array(z_in[redo], dtype=np.float32)), gen)
        passed = accepts(draw).numpy()
        out[redo[passed]] = draw.numpy()[passed]
        ok[redo[passed]] = True
    return out, first


def model_outputs(model, z, x, seed: int = 0, progress=None) -> dict[str, np.ndarray]:
    """The model's outputs on a test sample, as evaluated: z̃ = E(x), x̃ = D(z̃), x̃′ = D(z), each
    drawn in batches of 50,000 events with its own generator seeded ``seed`` + 1, 2, 3. For a
    restricted decoder (a model with acceptance cuts) x̃ and x̃′ are drawn in S (:func:`_restrict`,
    generators ``seed`` + 5, 6) and ``p_accept`` holds the first-pass fraction in S of x̃′ = D(z),
    P_D(S) (Eq. 19). Returns float32 arrays {z, x, z_tilde, x_tilde, x_tilde_prime}
    (events, particles, 4) in GeV (and ``p_accept``). ``progress``: see :mod:`otviz.progress`
    (one step per batch)."""
    model = model.cpu().eval()
    z = np.asarray(z, dtype=np.float32)
    x = np.asarray(x, dtype=np.float32)
    step = progress if isinstance(progress, Steps) else Steps(
        progress, 3 * max(1, -(-len(z) // PREDICT_BATCH)), "model outputs")
    z_tilde = _predict(model, model.encode, x, seed=seed + 1, step=step, what="z̃ = E(x)")
    x_tilde = _predict(model, model.decode, z_tilde, seed=seed + 2, step=step, what="x̃ = D(z̃)")
    x_prime = _predict(model, model.decode, z, seed=seed + 3, step=step, what="x̃′ = D(z)")
    x_tilde, _ = _restrict(model, z_tilde, x_tilde, seed + 5)
    x_prime, p_accept = _restrict(model, z, x_prime, seed + 6)
    out = {"z": z, "x": x, "z_tilde": z_tilde, "x_tilde": x_tilde, "x_tilde_prime": x_prime}
    if getattr(getattr(model, "cfg", None), "acceptance", None) is not None:
        out["p_accept"] = np.float64(p_accept)
    return out


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


def evaluate_otus(model, test, n_projections: int = 1000, seed: int = 0, n_splits: int = N_SPLITS,
                  progress=None) -> xr.Dataset:
    """All fidelity numbers of ``model`` on the test Dataset ``test`` as an xarray Dataset: per
    comparison and quantity ``statistic_with_floor`` on ``model_outputs(model, z, x, seed)``,
    SW² with its floor over the same splits, the m_ee peak and widths, transfer-function closure.
    ``progress``: see :mod:`otviz.progress` (model batches, then each quantity, split and closure)."""
    zp = list(test["z_particle"].values)
    xp = list(test["x_particle"].values)
    parts = {"z": zp, "x": xp}
    qnames = []
    for space in ("z", "x"):
        head = np.asarray(test[space].values[:2], dtype=np.float32)
        qnames += [q for q in quantities(head, parts[space], derived_masses(parts[space])) if q not in qnames]
    n_batches = 3 * max(1, -(-test.sizes["event"] // PREDICT_BATCH))
    step = Steps(progress, n_batches + len(COMPARISONS) * len(qnames) + n_splits + 1, "otviz evaluate")
    out = model_outputs(model, test["z"].values, test["x"].values, seed=seed, progress=step)
    z, x, x_prime = out["z"], out["x"], out["x_tilde_prime"]
    value = np.full((len(COMPARISONS), len(qnames), len(STATISTICS)), np.nan)
    floor = np.full_like(value, np.nan)
    peak = np.full((len(COMPARISONS), 2, len(PEAK_STATISTICS)), np.nan)
    for ci, comp in enumerate(COMPARISONS):
        t_name, o_name = COMPARISON_ARRAYS[comp]
        p = parts[t_name]
        qt, qo = (quantities(out[n], p, derived_masses(p)) for n in (t_name, o_name))
        for qi, q in enumerate(qnames):
            if q in qt:
                v, f = statistic_with_floor(qt[q], qo[q], n_splits, seed)
                value[ci, qi] = [v[s] for s in STATISTICS]
                floor[ci, qi] = [f[s] for s in STATISTICS]
            step(f"{comp}: {q}")
        if "m_ee" in qt:
            for si, m in enumerate((qt["m_ee"], qo["m_ee"])):
                ps = peak_summary(m)
                peak[ci, si] = [ps[s] for s in PEAK_STATISTICS]
    sw = np.zeros(len(COMPARISONS))
    sw_floor = np.zeros(len(COMPARISONS))
    gen = torch.Generator().manual_seed(seed + 4)
    for a, b in split_halves(len(z), n_splits, seed):
        for ci, comp in enumerate(COMPARISONS):
            truth, other = (out[n] for n in COMPARISON_ARRAYS[comp])
            ta = torch.as_tensor(truth[a], dtype=torch.float64)
            sw[ci] += float(sliced_wasserstein(ta, torch.as_tensor(other[b], dtype=torch.float64), n_projections, gen))
            sw_floor[ci] += float(sliced_wasserstein(ta, torch.as_tensor(truth[b], dtype=torch.float64), n_projections, gen))
        step("sliced Wasserstein")
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
        attrs={"n_test": len(z), "n_half": len(z) // 2, "n_splits": n_splits, "n_projections": n_projections,
               "seed": seed, "sw_units": "GeV^2",
               "split": "mean over n_splits random halves: truth = half A, model output computed from half B"},
    )
    ds["ratio"] = ds["value"] / ds["floor"]
    ds["sw_ratio"] = ds["sw"] / ds["sw_floor"]
    if "m_ee" in qnames:
        ds["m_ee_peak"] = xr.DataArray(peak, dims=("comparison", "peak_sample", "peak_statistic"),
                                       coords={"peak_sample": ["truth", "model"], "peak_statistic": list(PEAK_STATISTICS)},
                                       attrs={"units": "GeV", "mass": "Voigt fit m0", "fwhm": "Voigt fit FWHM",
                                              "iqr": "q75 - q25 of the whole sample"})
        pk = ds["m_ee_peak"].sel(comparison="x_vs_x_tilde_prime")
        px, pp = pk.sel(peak_sample="truth"), pk.sel(peak_sample="model")
        ds.attrs.update(m_ee_peak_x=float(px.sel(peak_statistic="mass")),
                        m_ee_peak_x_tilde_prime=float(pp.sel(peak_statistic="mass")),
                        m_ee_peak_shift=float(pp.sel(peak_statistic="mass") - px.sel(peak_statistic="mass")),
                        m_ee_fwhm_x=float(px.sel(peak_statistic="fwhm")),
                        m_ee_fwhm_x_tilde_prime=float(pp.sel(peak_statistic="fwhm")))
    clo = closure(z, x, x_prime, zp, xp)
    step("closure")
    ds = ds.merge(clo)
    rel_mean = np.abs(clo.closure_mean_learned - clo.closure_mean_true) / clo.closure_width_true
    ds["closure_mean_pull"] = rel_mean.mean("zbin")
    ds["closure_width_ratio"] = (clo.closure_width_learned / clo.closure_width_true).mean("zbin")
    return ds


def metrics_to_json(ds: xr.Dataset) -> dict:
    """A plain-JSON view: per comparison SW with floor and ratio, per quantity each statistic
    with floor and ratio, the m_ee peak and widths of truth and model (``m_ee_peak``), closure
    summaries."""
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
        if "m_ee_peak" in ds:
            pk = ds.m_ee_peak.sel(comparison=comp)
            t, m = ({s: float(pk.sel(peak_sample=w, peak_statistic=s)) for s in ds.peak_statistic.values}
                    for w in ("truth", "model"))
            c["m_ee_peak"] = {"truth": t, "model": m, "shift": m["mass"] - t["mass"],
                              "fwhm_ratio": m["fwhm"] / t["fwhm"], "iqr_ratio": m["iqr"] / t["iqr"]}
        out["comparisons"][str(comp)] = c
    out["closure"] = {
        str(q): {"mean_pull": float(ds.closure_mean_pull.sel(closure_quantity=q)),
                 "width_ratio": float(ds.closure_width_ratio.sel(closure_quantity=q))}
        for q in ds.closure_quantity.values
    }
    return out
