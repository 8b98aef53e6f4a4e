"""Event generation with Pythia 8 (``pythia8mc``) and the parametrised detector.

Four processes, each yielding parton-level four-vectors ``z`` (the hard-process partons) and
detector-level ``x`` for the same events:

``zee``    pp → Z/γ* → e⁺e⁻ at 13 TeV, m̂ > 60 GeV.
           z = (e⁻, e⁺) from the Z decay; x = the reconstructed (e⁻, e⁺), FSR-dressed, smeared.
``ttbar``  pp → tt̄, t → bW, W⁻ → e⁻ν̄, W⁺ → ud̄.
           z = (e⁻, ν̄, b, b̄, u, d̄) from the top and W decays; x = (e⁻, MET, jet1..jet4),
           exactly four anti-kT R = 0.5 jets with pT > 20 GeV ordered by pT (OTUS §5.2).
``wjets``  pp → WZ, Z → νν̄, W → qq̄', p̂T > 450 GeV. The leading anti-kT R = 1.0 jet of the
           particle-flow objects with 500 < pT < 600 GeV, |η| < 2, 75 < m < 110 GeV; its
           constituents reclustered with R = 0.07, leading 50 as (pT, η, φ), zero-padded;
           optionally centred on the jet axis (EMD-VAE). z = (q, q̄') from the W decay.
``qcd``    pp → dijets (``HardQCD:all``), p̂T > 450 GeV: the background to ``wjets``, with exactly
           its fat-jet extraction and selection (:func:`fatjet_constituents`), so W and QCD jets
           differ only in substructure. z = the two outgoing partons of the hard 2 → 2 process
           (|status| = 23), the one nearer (ΔR) the selected jet first.

"Fast" settings (default) switch off what x does not need: for ``zee`` multiparton
interactions and hadronisation (x holds only electrons), for ``ttbar``/``wjets`` multiparton
interactions (no underlying event). ``fast=False`` runs full Pythia. A generation ``domain``
(:mod:`otviz.data.domains`: ``sim``, ``data``) appends its own Pythia settings.
"""
from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np

from . import detector as det
from ..physics import fourvec as fv

COMMON = [
    "Beams:eCM = 13000",
    "Print:quiet = on",
    "Next:numberCount = 0",
    "Random:setSeed = on",
]


@dataclass(frozen=True)
class Process:
    name: str
    description: str
    settings: tuple[str, ...]
    fast_settings: tuple[str, ...]
    z_particles: tuple[str, ...]
    x_particles: tuple[str, ...] | None  # None: x is a constituent list, not four-vectors


PROCESSES: dict[str, Process] = {
    "zee": Process(
        "zee",
        "pp -> Z/gamma* -> e+ e- at 13 TeV",
        ("WeakSingleBoson:ffbar2gmZ = on", "23:onMode = off", "23:onIfAny = 11", "PhaseSpace:mHatMin = 60"),
        ("PartonLevel:MPI = off", "HadronLevel:all = off"),
        ("e-", "e+"),
        ("e-", "e+"),
    ),
    "ttbar": Process(
        "ttbar",
        "pp -> t tbar, W- -> e- nu_e~, W+ -> u d~ at 13 TeV",
        (
            "Top:gg2ttbar = on",
            "Top:qqbar2ttbar = on",
            "24:onMode = off",
            "24:onPosIfMatch = 1 2",
            "24:onNegIfMatch = 11 12",
        ),
        ("PartonLevel:MPI = off",),
        ("e-", "nu_e~", "b", "b~", "u", "d~"),
        ("e-", "MET", "jet1", "jet2", "jet3", "jet4"),
    ),
    "wjets": Process(
        "wjets",
        "pp -> W Z, Z -> nu nu~, W -> q q~', pTHat > 450 GeV at 13 TeV; boosted W jets",
        (
            "WeakDoubleBoson:ffbar2ZW = on",
            "23:onMode = off",
            "23:onIfAny = 12 14 16",
            "24:onMode = off",
            "24:onIfAny = 1 2 3 4",
            "PhaseSpace:pTHatMin = 450",
        ),
        ("PartonLevel:MPI = off",),
        ("q", "q~"),
        None,
    ),
    "qcd": Process(
        "qcd",
        "pp -> dijets (HardQCD:all), pTHat > 450 GeV at 13 TeV; boosted QCD jets",
        ("HardQCD:all = on", "PhaseSpace:pTHatMin = 450"),
        ("PartonLevel:MPI = off",),
        ("parton1", "parton2"),
        None,
    ),
}
FATJET_PROCESSES = ("wjets", "qcd")  # x = the constituents of one selected fat jet

WJET_SELECTION = {"pt_min": 500.0, "pt_max": 600.0, "eta_max": 2.0, "m_min": 75.0, "m_max": 110.0}


def pythia_settings(process: str, seed: int, fast: bool = True, domain: str = "sim") -> list[str]:
    """The full list of Pythia ``readString`` settings for a process, seed and domain
    (:mod:`otviz.data.domains`; ``sim`` adds nothing)."""
    from .domains import get_domain

    proc = get_process(process)
    s = list(COMMON) + [f"Random:seed = {int(seed)}"] + list(proc.settings)
    if fast:
        s += list(proc.fast_settings)
    return s + list(get_domain(domain).pythia_settings)


def get_process(name: str) -> Process:
    try:
        return PROCESSES[name]
    except KeyError:
        raise ValueError(f"unknown process {name!r}; choose one of {sorted(PROCESSES)}") from None


_DEFAULTS = None  # this process's pristine Pythia: the XML settings and particle data, read once


def _defaults():
    """A never-initialised Pythia holding the default settings and particle data, built once per
    process (reading Pythia's XML database takes ≈ 0.2 s, a tenth of that of a 1000-event chunk)."""
    global _DEFAULTS
    if _DEFAULTS is None:
        import pythia8mc

        _DEFAULTS = pythia8mc.Pythia("", False)
    return _DEFAULTS


def make_pythia(settings: list[str]):
    """An initialised Pythia with ``settings`` on top of the defaults. Each call builds a new Pythia
    (one per chunk, so a chunk's events depend on its own settings and seed only), copying the
    default databases from this process's pristine :func:`_defaults` instead of re-reading them."""
    import pythia8mc

    base = _defaults()
    py = pythia8mc.Pythia(base.settings, base.particleData, False)
    for s in settings:
        if not py.readString(s):
            raise ValueError(f"Pythia rejected the setting {s!r}")
    if not py.init():
        raise RuntimeError("Pythia initialisation failed for settings: " + "; ".join(settings))
    return py


# ----------------------------------------------------------------------------- extraction


def _pick(prt, mask):
    """(n, 4) four-vector of the single particle selected by a jagged mask, and whether exactly
    one was selected."""
    one = ak.to_numpy(ak.sum(mask, axis=1)) == 1
    first = ak.firsts(prt.p[mask])
    out = np.zeros((len(prt), 4))
    for i, k in enumerate(("px", "py", "pz", "e")):
        out[:, i] = ak.to_numpy(ak.fill_none(first[k], 0.0))
    return out, one


def _decay_products(prt, mother_abs_id: int, ids):
    """Four-vectors of the given PDG ids among the decay products of a resonance."""
    mid = abs(prt.id[prt.mother1])
    outs, ok = [], np.ones(len(prt), dtype=bool)
    for pid in ids:
        v, one = _pick(prt, (mid == mother_abs_id) & (prt.id == pid))
        outs.append(v)
        ok &= one
    return np.stack(outs, 1), ok


def extract_zee(prt, cfg, rng, charge=None, centre=False):
    z, ok = _decay_products(prt, 23, (11, -11))
    em, ok_m, _ = det.reconstruct_electron(prt, 11, cfg, rng)
    ep, ok_p, _ = det.reconstruct_electron(prt, -11, cfg, rng)
    return {"z": z, "x": np.stack([em, ep], 1)}, ok & ok_m & ok_p


def extract_ttbar(prt, cfg, rng, charge=None, centre=False):
    zw, ok_w = _decay_products(prt, 24, (11, -12, 2, -1))
    zb, ok_b = _decay_products(prt, 6, (5, -5))
    z = np.concatenate([zw[:, :2], zb, zw[:, 2:]], 1)  # e-, nu~, b, b~, u, d~
    e, ok_e, used = det.reconstruct_electron(prt, 11, cfg, rng)
    jets, njets, jet_sum = det.reconstruct_jets(prt, used, cfg, rng)
    met = det.missing_momentum(jet_sum + e)
    x = np.concatenate([e[:, None], met[:, None], jets], 1)
    return {"z": z, "x": x}, ok_w & ok_b & ok_e & (njets == cfg.n_jets)


def fatjet_constituents(prt, charge, cfg, rng, centre=False, ok=None):
    """The ``wjets``/``qcd`` detector level: the leading anti-kT R = ``fatjet_r`` particle-flow jet
    with ``WJET_SELECTION`` (500 < pT < 600 GeV, |η| < 2, 75 < m < 110 GeV); its constituents
    reclustered with R = ``constituent_r``, the leading ``n_constituents`` as (pT, η, φ), zero-padded,
    optionally centred. ``ok`` (events with a valid z) is and-ed into the selection.
    Returns ``(constituents (n, N, 3), jet (n, 4) = (pT, η, φ, m), ok)``."""
    pflow = det.particle_flow(prt, charge, cfg, rng)
    fat, cons = det.leading_fatjet(pflow, cfg)
    fat4 = np.stack([ak.to_numpy(ak.fill_none(fat[k], 0.0)) for k in ("px", "py", "pz", "E")], -1)
    jpt, jeta, jphi, jm = np.moveaxis(fv.to_ptetaphim(fat4), -1, 0)
    s = WJET_SELECTION
    sel = (
        (jpt > s["pt_min"]) & (jpt < s["pt_max"]) & (np.abs(jeta) < s["eta_max"])
        & (jm > s["m_min"]) & (jm < s["m_max"])
    )
    if ok is not None:
        sel &= ok
    idx = np.flatnonzero(sel)
    consts = np.zeros((len(prt), cfg.n_constituents, 3))
    if len(idx):
        sub = det.recluster_constituents(cons[idx], cfg)
        if centre:
            sub = centre_constituents(sub)
        consts[idx] = sub
    return consts, np.stack([jpt, jeta, jphi, jm], -1), sel


def extract_wjets(prt, cfg, rng, charge=None, centre=False):
    mid = abs(prt.id[prt.mother1])
    aid = abs(prt.id)
    wq = (mid == 24) & (aid >= 1) & (aid <= 5)
    q, ok_q = _pick(prt, wq & (prt.id > 0))
    qb, ok_qb = _pick(prt, wq & (prt.id < 0))
    consts, jet, ok = fatjet_constituents(prt, charge, cfg, rng, centre, ok_q & ok_qb)
    return {"z": np.stack([q, qb], 1), "x": consts, "jet": jet}, ok


def hard_partons(prt):
    """(n, 2, 4) four-vectors of the two outgoing partons of the hard 2 → 2 process: the entries
    with |status| = 23 (Pythia: "outgoing particles of the hardest subprocess"; negative once
    showered), in event-record order; ``ok`` where there are exactly two (MPI partons are 31–39)."""
    mask = abs(prt.status) == 23
    two = ak.to_numpy(ak.sum(mask, axis=1)) == 2
    p = ak.pad_none(prt.p[mask], 2, axis=1, clip=True)
    out = np.zeros((len(prt), 2, 4))
    for i, k in enumerate(("px", "py", "pz", "e")):
        out[..., i] = ak.to_numpy(ak.fill_none(p[k], 0.0))
    return out, two


def extract_qcd(prt, cfg, rng, charge=None, centre=False):
    z, ok = hard_partons(prt)
    consts, jet, ok = fatjet_constituents(prt, charge, cfg, rng, centre, ok)
    # the parton nearer the selected jet first, its recoil second
    i = np.flatnonzero(ok)
    dr = fv.delta_r(fv.eta(z[i]), fv.phi(z[i]), jet[i, None, 1], jet[i, None, 2])
    swap = i[dr[:, 1] < dr[:, 0]]
    z[swap] = z[swap, ::-1]
    return {"z": z, "x": consts, "jet": jet}, ok


def centre_constituents(c):
    """Centre massless (pT, η, φ) constituents (…, N, 3) so that their summed momentum points
    along (η, φ) = (0, 0): a longitudinal boost by the sum's rapidity (η_i − y) and a rotation
    by its azimuth (φ_i − φ), both exact for massless particles. Zero padding stays zero."""
    c = np.array(c, dtype=float)
    real = c[..., 0] > 0
    p4 = fv.from_ptetaphim(c[..., 0], c[..., 1], c[..., 2], 0.0) * real[..., None]
    tot = p4.sum(-2)
    y = 0.5 * np.log((tot[..., 3] + tot[..., 2]) / (tot[..., 3] - tot[..., 2]))
    ph = fv.phi(tot)
    c[..., 1] = np.where(real, c[..., 1] - y[..., None], 0.0)
    c[..., 2] = np.where(real, fv.wrap_phi(c[..., 2] - ph[..., None]), 0.0)
    return c


EXTRACTORS = {"zee": extract_zee, "ttbar": extract_ttbar, "wjets": extract_wjets, "qcd": extract_qcd}


def _charges(py, prt):
    ids = ak.to_numpy(ak.flatten(prt.id))
    uniq, inv = np.unique(ids, return_inverse=True)
    table = np.array([py.particleData.charge(int(i)) for i in uniq])
    return ak.unflatten(table[inv], ak.num(prt.id, axis=1))


def chunk_seeds(seed: int, chunk: int) -> tuple[int, np.random.SeedSequence]:
    """Independent seeds of one chunk: the Pythia seed (1 … 9×10⁸) and the detector's
    SeedSequence, both derived from (seed, chunk) only, never from the worker count."""
    ss = np.random.SeedSequence([int(seed), int(chunk)])
    pythia_seed = int(ss.generate_state(1)[0] % 900_000_000) + 1
    return pythia_seed, np.random.SeedSequence([int(seed), int(chunk), 1])


def generate_chunk(
    process: str,
    n_events: int,
    seed: int,
    chunk: int = 0,
    cfg: det.DetectorConfig | None = None,
    fast: bool = True,
    centre: bool = False,
    batch: int = 1000,
    domain: str = "sim",
) -> dict:
    """Generate ``n_events`` accepted events for one chunk.

    Pythia is run in batches (``Pythia.nextBatch``) and the detector applied to each batch
    with vectorised awkward/NumPy code until ``n_events`` events pass the selection; surplus
    accepted events of the last batch are dropped. The result depends only on
    (process, n_events, seed, chunk, cfg, fast, centre, batch, domain). ``domain``
    (:mod:`otviz.data.domains`) adds its Pythia settings; ``cfg`` is used as given (the caller
    applies the domain's detector, :meth:`Domain.detector`).
    Returns numpy arrays ``z``, ``x`` (and ``jet`` for wjets/qcd) plus ``n_generated``.
    """
    cfg = cfg or det.DetectorConfig()
    get_process(process)
    pythia_seed, det_ss = chunk_seeds(seed, chunk)
    rng = np.random.default_rng(det_ss)
    py = make_pythia(pythia_settings(process, pythia_seed, fast, domain))
    extract = EXTRACTORS[process]
    parts: dict[str, list] = {}
    accepted = generated = 0
    eff = 1.0
    while accepted < n_events:
        want = int(np.clip((n_events - accepted) / max(eff, 0.01) * 1.1 + 10, 10, batch))
        events = py.nextBatch(want)
        prt = events.prt
        if len(prt) == 0:
            raise RuntimeError(f"Pythia produced no events for {process} (seed {pythia_seed})")
        generated += len(prt)
        charge = _charges(py, prt) if process in FATJET_PROCESSES else None
        arrays, ok = extract(prt, cfg, rng, charge=charge, centre=centre)
        for k, v in arrays.items():
            parts.setdefault(k, []).append(v[ok])
        accepted += int(ok.sum())
        eff = max(accepted / generated, 1e-3)
    out = {k: np.concatenate(v)[:n_events] for k, v in parts.items()}
    out["n_generated"] = generated
    out["sigma_gen_mb"] = float(py.infoPython().sigmaGen())
    return out
