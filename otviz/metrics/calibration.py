"""Closure of a latent-space calibration ("Mind the Gap" §5): PCA views, discriminator AUCs, working points.

Pure functions on arrays; :func:`calibration_metrics` gathers them into one xarray Dataset.

* **PCA** (paper Fig. 3): :func:`fit_pca` — ``n`` whitened principal components fitted on the
  *target* (data) latents, u = Λ^{-1/2} Vᵀ (z − μ_target); source, target and calibrated latents are
  all projected with the target's components.
* **Discriminator AUC** (paper Fig. 4, Table 3): :func:`discriminator_auc` trains a dense network
  (scikit-learn ``MLPClassifier``) to separate two samples on one half and returns the ROC AUC on the
  other half. 0.5 = indistinguishable. The floor is the AUC between two halves of the target itself.
  Two readings of "calibrated vs data": a *new* discriminator trained on calibrated vs data (what
  any classifier can still find; the paper's Sec. 5.1 finds AUC ≈ 1 in z₁₂₈ this way), and the
  paper's Fig. 4a protocol, the *frozen* sim-vs-data discriminator scoring the calibrated held-out
  simulation against the same held-out data (how much of the gap it saw is gone).
* **Whitened view** (otviz's addition): a tagger's pre-activation latent fills a thin curved sheet —
  a few principal axes carry nearly all of the variance — so a map's errors *across* the sheet are
  invisible to a discriminator on per-feature-standardised z₁₂₈, though they separate the samples
  almost perfectly. Space ``z128w`` repeats the z₁₂₈ comparison in the data's whitened principal
  coordinates (:func:`fit_whitening`, all components, one transform for both sides): an optimal
  classifier does not care about an invertible linear transform, a trained MLP does.
* **Working point**: :func:`efficiency_at_mistag` — the tagger's signal efficiency ε_S at the score
  cut where the background efficiency (mistag rate) is ``mistag`` in the same domain, with a
  bootstrap error that includes the cut's own fluctuation; and :func:`rates_at_cut` — ε_S and the
  mistag rate of each domain above the *data's* cut (the working point an analysis fixes on data;
  their ratios to data's are the tagging scale factors a calibration should bring to 1).
* **Transport cost**: E‖T(z) − z‖².
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from .roc import roc_auc

FROZEN = "calibrated vs data (sim-vs-data D)"
COMPARISONS = ("sim vs data", "calibrated vs data", "data vs data", FROZEN)
COMPARISON_DESCRIPTIONS = {
    "sim vs data": "a discriminator trained and tested on simulation vs data: the gap",
    "calibrated vs data": "a new discriminator trained and tested on calibrated simulation vs data: what any "
                          "classifier can still find, the map's own errors included",
    "data vs data": "the same on two halves of the data: the floor",
    FROZEN: "the sim-vs-data discriminator, unchanged, scoring the calibrated held-out simulation against "
            "the same held-out data (the paper's Fig. 4a protocol): how much of the gap it saw is gone",
}
COMPARISON_HEADS = {"sim vs data": "sim vs data", FROZEN: "calibrated vs data, frozen D",
                    "calibrated vs data": "calibrated vs data, new D", "data vs data": "floor: data vs data"}
TRAINED = COMPARISONS[:3]  # each trains its own discriminator; FROZEN reuses the sim-vs-data one
DISPLAY_ORDER = ("sim vs data", FROZEN, "calibrated vs data", "data vs data")  # tables' column order
SPACES = ("z128", "z128w", "z128p", "score")
SPACE_DESCRIPTIONS = {
    "z128": "the tagger latent z128 (per-feature standardised inputs)",
    "z128w": "z128 in the data's whitened principal coordinates: sees a map's errors across the thin sheet "
             "the latents fill, which the z128 row misses",
    "z128p": "the head's next layer z'128",
    "score": "the tagger score",
}
SEED_OFFSET = {"z128": 0, "z128p": 1, "score": 2, "z128w": 3}  # each space's discriminator seed
DOMAINS = ("sim", "data", "calibrated")


def displayed_comparisons(metrics) -> list[str]:
    """The comparisons of a metrics Dataset in table order (``DISPLAY_ORDER``; older runs lack the frozen one)."""
    have = [str(c) for c in metrics.comparison.values]
    return [c for c in DISPLAY_ORDER if c in have] + [c for c in have if c not in DISPLAY_ORDER]


def fit_pca(target, n_components: int = 5):
    """(mean, projection) with u = (z − mean) @ projection: the ``n_components`` leading principal
    axes of ``target`` scaled to unit variance (whitened). projection is (d, n)."""
    t = np.asarray(target, dtype=np.float64)
    mean = t.mean(0)
    u, s, vt = np.linalg.svd(t - mean, full_matrices=False)
    sd = s[:n_components] / np.sqrt(max(len(t) - 1, 1))
    return mean, (vt[:n_components].T / np.maximum(sd, 1e-12))


def project(z, mean, projection) -> np.ndarray:
    """Whitened PCA coordinates of ``z`` (n, d) → (n, k)."""
    return (np.asarray(z, dtype=np.float64) - mean) @ projection


def fit_whitening(target, floor: float = 1e-12):
    """(mean, W) with u = (z − mean) @ W in whitened coordinates of ``target``: all d principal axes,
    each scaled to unit variance (eigenvalues below ``floor`` × the largest are raised to it)."""
    t = np.asarray(target, dtype=np.float64)
    mean = t.mean(0)
    lam, vec = np.linalg.eigh(np.cov(t - mean, rowvar=False))
    lam = np.maximum(lam, floor * max(float(lam.max()), 1e-300))
    return mean, vec / np.sqrt(lam)


def train_discriminator(a, b, seed: int = 0, hidden=(128, 128), max_iter: int = 200, train_fraction: float = 0.5):
    """A dense classifier separating sample ``a`` (label 1) from ``b`` (label 0), trained (standardised
    inputs, Adam, early stopping) on ``train_fraction`` of each. Returns ``(score, test_a, test_b)``:
    ``score(x)`` the classifier's P(a | x) and the row indices of ``a`` and ``b`` it did not train on."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim == 1:
        a, b = a[:, None], b[:, None]
    rng = np.random.default_rng(seed)
    ia, ib = rng.permutation(len(a)), rng.permutation(len(b))
    na, nb = int(train_fraction * len(a)), int(train_fraction * len(b))
    if min(na, nb, len(a) - na, len(b) - nb) < 10:
        raise ValueError(f"discriminator_auc: too few points ({len(a)}, {len(b)}) for a train/test split")
    x_tr = np.concatenate([a[ia[:na]], b[ib[:nb]]])
    y_tr = np.r_[np.ones(na), np.zeros(nb)]
    scaler = StandardScaler().fit(x_tr)
    clf = MLPClassifier(hidden_layer_sizes=tuple(hidden), max_iter=max_iter, early_stopping=True,
                        n_iter_no_change=10, random_state=seed)
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(scaler.transform(x_tr), y_tr)

    def score(x):
        x = np.asarray(x, dtype=np.float64)
        return clf.predict_proba(scaler.transform(x[:, None] if x.ndim == 1 else x))[:, 1]

    return score, np.sort(ia[na:]), np.sort(ib[nb:])


def held_out_auc(score, a, b) -> float:
    """ROC AUC of the classifier ``score`` (P(a | x)) on samples ``a`` (positive) and ``b``."""
    return float(roc_auc(np.r_[score(a), score(b)], np.r_[np.ones(len(a)), np.zeros(len(b))]))


def discriminator_auc(a, b, seed: int = 0, hidden=(128, 128), max_iter: int = 200, train_fraction: float = 0.5) -> float:
    """ROC AUC of a dense classifier separating sample ``a`` (label 1) from ``b`` (label 0): trained
    (:func:`train_discriminator`) on ``train_fraction`` of each, AUC on the rest."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    score, ta, tb = train_discriminator(a, b, seed=seed, hidden=hidden, max_iter=max_iter, train_fraction=train_fraction)
    return held_out_auc(score, a[ta], b[tb])


def auc_standard_error(auc: float, n_pos: int, n_neg: int) -> float:
    """Standard error of a ROC AUC from ``n_pos`` and ``n_neg`` test points (Hanley & McNeil 1982):
    σ² = [A(1−A) + (n₁−1)(Q₁−A²) + (n₂−1)(Q₂−A²)]/(n₁n₂), Q₁ = A/(2−A), Q₂ = 2A²/(1+A)."""
    a = float(auc)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    return float(np.sqrt(max(a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a), 0.0)
                         / (n_pos * n_neg)))


def threshold_at_mistag(score_background, mistag: float) -> float:
    """The score cut above which a fraction ``mistag`` of the background lies."""
    return float(np.quantile(np.asarray(score_background, dtype=np.float64), 1.0 - mistag))


def efficiency_at_mistag(score_signal, score_background, mistag: float = 0.1, n_boot: int = 200,
                         seed: int = 0) -> tuple[float, float, float]:
    """(ε_S, σ(ε_S), cut): signal efficiency at the cut with background efficiency ``mistag``, and its
    bootstrap standard deviation (signal and background resampled, the cut recomputed each time)."""
    s, bkg = np.asarray(score_signal, dtype=np.float64), np.asarray(score_background, dtype=np.float64)
    cut = threshold_at_mistag(bkg, mistag)
    eff = float(np.mean(s > cut))
    rng = np.random.default_rng(seed)
    boots = [np.mean(rng.choice(s, len(s)) > threshold_at_mistag(rng.choice(bkg, len(bkg)), mistag))
             for _ in range(n_boot)]
    return eff, float(np.std(boots, ddof=1)), cut


def rates_at_cut(score_signal, score_background, cut: float) -> tuple[float, float, float, float]:
    """(ε_S, σ(ε_S), ε_B, σ(ε_B)): the fractions of signal and background scores above a fixed ``cut``,
    with binomial errors √(ε(1 − ε)/n) — a working point set elsewhere (e.g. on data) applied here."""
    out = []
    for sc in (score_signal, score_background):
        sc = np.asarray(sc, dtype=np.float64)
        e = float(np.mean(sc > cut))
        out += [e, float(np.sqrt(max(e * (1 - e), 0.0) / max(len(sc), 1)))]
    return tuple(out)


def unclosed(metrics, n_sigma: float = 5.0) -> list[tuple[str, str, float, float]]:
    """(label, space, calibrated-vs-data AUC, floor) wherever the calibrated AUC lies more than
    ``n_sigma`` combined standard errors above the data-vs-data floor: the gap the map left open."""
    out = []
    for lab in metrics.label.values:
        for sp in metrics.space.values:
            a = float(metrics["auc"].sel(label=lab, space=sp, comparison="calibrated vs data"))
            f = float(metrics["auc"].sel(label=lab, space=sp, comparison="data vs data"))
            err = metrics["auc_error"].sel(label=lab, space=sp) if "auc_error" in metrics else None
            sig = (float(np.hypot(err.sel(comparison="calibrated vs data"), err.sel(comparison="data vs data")))
                   if err is not None else 0.01)
            if a > f + n_sigma * sig:
                out.append((str(lab), str(sp), a, f))
    return out


def transport_cost(before, after) -> float:
    """E‖T(z) − z‖² over paired rows."""
    return float(np.mean(np.sum((np.asarray(after, float) - np.asarray(before, float)) ** 2, -1)))


def calibration_metrics(latents: dict, outputs: dict, class_names: dict, mistag: float = 0.1, seed: int = 0,
                        hidden=(128, 128), max_iter: int = 200, max_points: int | None = None) -> xr.Dataset:
    """All closure numbers of one calibration.

    ``latents[domain][label]``: z₁₂₈ arrays (n, d) for domain ∈ sim, data, calibrated (calibrated =
    T(sim), row for row) and label ∈ ``class_names`` (e.g. {1: "W", 0: "QCD"}); ``outputs[domain][label]``
    the tagger head on them: dicts with ``z128p`` (n, d') and ``score`` (n,). Returns::

        auc(label, space, comparison)     discriminator ROC AUC (auc_error: its standard error); space ∈ z128, z128w
                                          (z₁₂₈ in the data's whitened principal coordinates), z128p, score;
                                          comparison ∈ COMPARISONS (COMPARISON_DESCRIPTIONS): sim vs
                                          data, calibrated vs data (a new discriminator), data vs
                                          data (the floor: the data's two halves) and calibrated vs
                                          data scored by the frozen sim-vs-data discriminator
        transport_cost(label)             E‖T(z) − z‖² of the calibration
        efficiency(domain), efficiency_error(domain), cut(domain)
                                          signal efficiency at ``mistag`` background efficiency, per domain
                                          (each domain's own cut)
        efficiency_at_data_cut(domain), mistag_at_data_cut(domain) (+ _error)
                                          signal and background efficiency of each domain above the
                                          data's cut: the working point an analysis fixes on data
        n(label, domain)                  jets per set

    For each label the data are split in two halves (D₁, D₂); every comparison uses |D₁| points per
    side (sim and calibrated subsampled to that size), so the floor is measured at the same size."""
    labels = list(class_names)
    spaces = SPACES
    auc = np.full((len(labels), len(spaces), len(COMPARISONS)), np.nan)
    auc_err = np.full_like(auc, np.nan)
    cost = np.full(len(labels), np.nan)
    n = np.zeros((len(labels), len(DOMAINS)), dtype=int)
    rng = np.random.default_rng(seed)
    for i, lab in enumerate(labels):
        m_data = len(latents["data"][lab])
        perm = rng.permutation(m_data)
        half = m_data // 2
        if max_points:
            half = min(half, max_points)
        d1, d2 = perm[:half], perm[half:2 * half]
        m = min(half, len(latents["sim"][lab]))
        pick = rng.permutation(len(latents["sim"][lab]))[:m]
        d1, d2 = d1[:m], d2[:m]
        cost[i] = transport_cost(latents["sim"][lab], latents["calibrated"][lab])
        for j, dom in enumerate(DOMAINS):
            n[i, j] = len(latents[dom][lab])

        w_mean, w_proj = fit_whitening(latents["data"][lab])

        def space_of(dom, idx, space):
            if space == "z128w":
                return (np.asarray(latents[dom][lab], dtype=np.float64)[idx] - w_mean) @ w_proj
            src = latents[dom][lab] if space == "z128" else outputs[dom][lab][space]
            return np.asarray(src)[idx]

        for k, space in enumerate(spaces):
            pairs = {"sim vs data": (space_of("sim", pick, space), space_of("data", d1, space)),
                     "calibrated vs data": (space_of("calibrated", pick, space), space_of("data", d1, space)),
                     "data vs data": (space_of("data", d2, space), space_of("data", d1, space))}
            for c, comp in enumerate(TRAINED):
                a, b = pairs[comp]
                score, ta, tb = train_discriminator(a, b, seed=seed + 17 * c + SEED_OFFSET[space], hidden=hidden,
                                                    max_iter=max_iter)
                auc[i, k, c] = held_out_auc(score, a[ta], b[tb])
                auc_err[i, k, c] = auc_standard_error(auc[i, k, c], len(ta), len(tb))
                if comp == "sim vs data":  # the same discriminator on T(the same held-out sim) vs the same data
                    cal = pairs["calibrated vs data"][0]
                    fz = COMPARISONS.index(FROZEN)
                    auc[i, k, fz] = held_out_auc(score, cal[ta], b[tb])
                    auc_err[i, k, fz] = auc_standard_error(auc[i, k, fz], len(ta), len(tb))
    sig, bkg = labels[0], labels[1]
    eff = np.zeros(len(DOMAINS))
    err = np.zeros(len(DOMAINS))
    cut = np.zeros(len(DOMAINS))
    for j, dom in enumerate(DOMAINS):
        eff[j], err[j], cut[j] = efficiency_at_mistag(outputs[dom][sig]["score"], outputs[dom][bkg]["score"],
                                                      mistag, seed=seed)
    # the data's working point applied to every domain: the "scale factor" view
    data_cut = cut[DOMAINS.index("data")]
    at_cut = np.array([rates_at_cut(outputs[dom][sig]["score"], outputs[dom][bkg]["score"], data_cut)
                       for dom in DOMAINS])
    label_names = [class_names[lab] for lab in labels]
    ds = xr.Dataset(
        {"auc": (("label", "space", "comparison"), auc), "auc_error": (("label", "space", "comparison"), auc_err),
         "transport_cost": ("label", cost),
         "efficiency": ("domain", eff), "efficiency_error": ("domain", err), "cut": ("domain", cut),
         "efficiency_at_data_cut": ("domain", at_cut[:, 0]), "efficiency_at_data_cut_error": ("domain", at_cut[:, 1]),
         "mistag_at_data_cut": ("domain", at_cut[:, 2]), "mistag_at_data_cut_error": ("domain", at_cut[:, 3]),
         "n": (("label", "domain"), n)},
        coords={"label": label_names, "space": list(spaces), "comparison": list(COMPARISONS), "domain": list(DOMAINS)},
        attrs={"mistag": float(mistag), "signal": class_names[sig], "background": class_names[bkg], "seed": int(seed),
               "discriminator": f"sklearn MLPClassifier {tuple(hidden)}, early stopping, max_iter {max_iter}, "
                                "standardised inputs, trained on half of each set, AUC on the other half"})
    ds["auc"].attrs["long_name"] = "discriminator ROC AUC (0.5: indistinguishable)"
    ds["auc_error"].attrs["long_name"] = "standard error of the AUC on the test half (Hanley & McNeil)"
    ds["transport_cost"].attrs["long_name"] = "transport cost E|T(z) - z|^2"
    ds["efficiency"].attrs["long_name"] = f"signal efficiency at {mistag:g} mistag rate"
    ds["efficiency_at_data_cut"].attrs["long_name"] = (f"signal efficiency above the data's cut (the score at "
                                                       f"{mistag:g} mistag rate in data); binomial errors")
    ds["mistag_at_data_cut"].attrs["long_name"] = "background efficiency (mistag rate) above the data's cut"
    return ds
