"""Parametrised, seeded detector response.

Every number lives in :class:`DetectorConfig`, which is stored (as JSON) in each dataset's
attributes. Defaults are ATLAS-like design values:

* EM calorimeter (electrons, photons): σ_E/E = 10 %/√E ⊕ 0.7 % (ATLAS LAr design; the
  ``../shared/REFERENCE.md`` §6 values), electrons accepted for pT > 10 GeV, |η| < 2.47,
  identification efficiency 95 % (ATLAS "medium" electron ID is 90–95 % at these pT).
* Jets and neutral hadrons: σ_E/E = 60 %/√E ⊕ 3 % for jets (inside the 50–100 %/√E ⊕ 3 %
  ATLAS range), 50 %/√E ⊕ 3 % for single neutral hadrons (ATLAS Tile design); jets
  accepted for pT > 20 GeV, |η| < 4.5 (OTUS selection); calorimeter coverage |η| < 4.9.
* Tracking (charged particles, |η| < 2.5, pT > 0.5 GeV): σ_pT/pT = 0.05 %·pT ⊕ 1 %
  (ATLAS inner detector design).
* Angles: electrons 0.001, photons 0.005, neutral hadrons 0.02, jets 0.02 in η and φ
  (cell granularity 0.025 / 0.1 divided by √12, tracks finer still).

Energy resolution (Eq. in every calorimeter TDR): σ_E / E = a/√E ⊕ b ⊕ c/E, where ⊕ is
the sum in quadrature.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import ClassVar

import awkward as ak
import numpy as np

from ..errors import ConfigError, check_bounds
from ..physics import fourvec as fv


@dataclass(frozen=True)
class Resolution:
    """Relative energy resolution σ_E/E = a/√E ⊕ b ⊕ c/E (E in GeV)."""

    a: float  # stochastic term, GeV^1/2
    b: float  # constant term
    c: float = 0.0  # noise term, GeV

    BOUNDS: ClassVar[dict[str, tuple]] = {"a": (0.0, 10.0), "b": (0.0, 10.0), "c": (0.0, 1000.0)}

    def __post_init__(self):
        check_bounds(self)

    def relative(self, energy):
        e = np.maximum(np.asarray(energy, dtype=float), 1e-9)
        return np.sqrt(self.a ** 2 / e + self.b ** 2 + (self.c / e) ** 2)


ETA_FULL = 1e3  # an |η| coverage that means 'everything' (|η| = 1000 needs pT/E ≈ e^-1000)


@dataclass(frozen=True)
class DetectorConfig:
    """All detector parameters; ``to_json``/``from_json`` round-trip into dataset attributes."""

    electron_energy: Resolution = field(default_factory=lambda: Resolution(0.10, 0.007))
    electron_angle: float = 0.001
    electron_pt_min: float = 10.0
    electron_eta_max: float = 2.47
    electron_efficiency: float = 0.95
    electron_dressing_dr: float = 0.1  # FSR photons within ΔR are added to the electron

    photon_energy: Resolution = field(default_factory=lambda: Resolution(0.10, 0.007))
    photon_angle: float = 0.005
    photon_e_min: float = 0.5

    hadron_energy: Resolution = field(default_factory=lambda: Resolution(0.50, 0.03))
    hadron_angle: float = 0.02
    hadron_e_min: float = 1.0

    track_pt_res_slope: float = 0.0005  # σ_pT/pT = slope·pT ⊕ const
    track_pt_res_const: float = 0.01
    track_angle: float = 0.0005
    track_pt_min: float = 0.5
    track_eta_max: float = 2.5

    calo_eta_max: float = 4.9

    jet_energy: Resolution = field(default_factory=lambda: Resolution(0.60, 0.03))
    jet_angle: float = 0.02
    jet_r: float = 0.5
    jet_pt_min: float = 20.0
    jet_eta_max: float = 4.5
    n_jets: int = 4

    fatjet_r: float = 1.0
    constituent_r: float = 0.07
    n_constituents: int = 50

    # field → inclusive (min, max) (otviz.errors.check_bounds; also usable as widget bounds).
    # n_jets is fixed: the ttbar layout stores exactly four jets.
    BOUNDS: ClassVar[dict[str, tuple]] = {
        "electron_angle": (0.0, 1.0), "electron_pt_min": (0.0, 1e4), "electron_eta_max": (0.0, ETA_FULL),
        "electron_efficiency": (0.0, 1.0), "electron_dressing_dr": (0.0, 2.0),
        "photon_angle": (0.0, 1.0), "photon_e_min": (0.0, 1e4),
        "hadron_angle": (0.0, 1.0), "hadron_e_min": (0.0, 1e4),
        "track_pt_res_slope": (0.0, 1.0), "track_pt_res_const": (0.0, 1.0), "track_angle": (0.0, 1.0),
        "track_pt_min": (0.0, 1e4), "track_eta_max": (0.0, ETA_FULL), "calo_eta_max": (0.0, ETA_FULL),
        "jet_angle": (0.0, 1.0), "jet_r": (0.01, 2.0), "jet_pt_min": (0.0, 1e4), "jet_eta_max": (0.0, ETA_FULL),
        "n_jets": (4, 4), "fatjet_r": (0.1, 3.0), "constituent_r": (0.001, 1.0), "n_constituents": (1, 500),
    }
    RESOLUTIONS: ClassVar[tuple[str, ...]] = ("electron_energy", "photon_energy", "hadron_energy", "jet_energy")

    def __post_init__(self):
        for name in self.RESOLUTIONS:
            if not isinstance(getattr(self, name), Resolution):
                raise ConfigError(f"DetectorConfig.{name} = {getattr(self, name)!r}: must be a resolution "
                                  '{"a": …, "b": …, "c": …}', name)
        check_bounds(self)

    # what scaled_resolution scales: the particle-flow resolutions (tracks σ_pT/pT = slope·pT ⊕ const;
    # hadron and photon σ_E/E stochastic a and constant b) and every angular resolution
    SCALED_FIELDS: ClassVar[tuple[str, ...]] = ("track_pt_res_slope", "track_pt_res_const")
    SCALED_RESOLUTIONS: ClassVar[tuple[str, ...]] = ("hadron_energy", "photon_energy")
    ANGLES: ClassVar[tuple[str, ...]] = ("electron_angle", "photon_angle", "hadron_angle", "track_angle", "jet_angle")

    def scaled_resolution(self, factor: float) -> "DetectorConfig":
        """A copy with the particle-flow resolutions ``factor`` times worse: track pT slope and
        constant, hadron and photon energy terms a and b (c, the noise term, kept) and all
        angular resolutions (electron, photon, hadron, track, jet) multiplied by ``factor``.
        Electron and jet energy resolutions, thresholds and acceptances are unchanged."""
        factor = float(factor)
        if not factor > 0:
            raise ConfigError(f"resolution scale {factor!r}: must be > 0", "resolution_scale")
        kw = {name: getattr(self, name) * factor for name in self.SCALED_FIELDS + self.ANGLES}
        for name in self.SCALED_RESOLUTIONS:
            r = getattr(self, name)
            kw[name] = Resolution(r.a * factor, r.b * factor, r.c)
        return dataclasses.replace(self, **kw)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str = "detector config") -> "DetectorConfig":
        """Parse overrides of any field; unknown keys, wrong types and out-of-range values raise
        :class:`otviz.errors.ConfigError` naming ``source`` and the field."""
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{source}: not valid JSON: {exc}") from exc
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: must be a JSON object of DetectorConfig fields")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"{source}: unknown DetectorConfig field(s) {unknown}", unknown[0])
        kw = {}
        try:
            for name, v in d.items():
                if name in cls.RESOLUTIONS:
                    if not isinstance(v, dict) or not set(v) <= {"a", "b", "c"} or not {"a", "b"} <= set(v):
                        raise ConfigError(f'DetectorConfig.{name} = {v!r}: must be {{"a": …, "b": …[, "c": …]}}',
                                          name)
                    try:
                        kw[name] = Resolution(**v)
                    except ConfigError as exc:
                        raise ConfigError(str(exc).replace("Resolution.", f"DetectorConfig.{name}."), name) from exc
                else:
                    kw[name] = v
            return cls(**kw)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}", exc.field, exc.value, exc.allowed) from exc


# ----------------------------------------------------------------------------- smearing


def smear_energy(energy, resolution: Resolution, rng: np.random.Generator):
    """E' = E·(1 + σ_E/E · N(0,1)), kept positive (a 1 MeV floor)."""
    energy = np.asarray(energy, dtype=float)
    out = energy * (1.0 + resolution.relative(energy) * rng.standard_normal(energy.shape))
    return np.maximum(out, 1e-3)


def smear_pt_track(pt, slope: float, const: float, rng: np.random.Generator):
    """Tracking: pT' = pT·(1 + σ N(0,1)), σ = slope·pT ⊕ const."""
    pt = np.asarray(pt, dtype=float)
    sigma = np.hypot(slope * pt, const)
    return np.maximum(pt * (1.0 + sigma * rng.standard_normal(pt.shape)), 1e-3)


def smear_angles(eta, phi, sigma: float, rng: np.random.Generator):
    """Gaussian smearing of η and φ by ``sigma`` (φ re-wrapped)."""
    eta = np.asarray(eta, dtype=float)
    phi = np.asarray(phi, dtype=float)
    eta2 = eta + sigma * rng.standard_normal(eta.shape)
    phi2 = fv.wrap_phi(phi + sigma * rng.standard_normal(phi.shape))
    return eta2, phi2


def calorimeter_object(p4, resolution: Resolution, angle: float, rng):
    """Smear a (.., 4) array of true four-vectors as massless calorimeter objects.

    The energy is smeared, E' = E(1 + σ_E/E·N(0,1)), and the whole momentum scaled by E'/E
    (pT' = pT·E'/E); η and φ are smeared by ``angle``; the object is then stored massless,
    E = |p| (OTUS Eq. 9–10 with m = 0). With zero resolution the 3-momentum is unchanged.
    """
    p4 = np.asarray(p4, dtype=float)
    e = smear_energy(p4[..., 3], resolution, rng)
    pt = fv.pt(p4) * e / np.maximum(p4[..., 3], 1e-12)
    eta, phi = smear_angles(fv.eta(p4), fv.phi(p4), angle, rng)
    return fv.from_ptetaphim(pt, eta, phi, 0.0)


# ----------------------------------------------------------------------------- awkward helpers


def p4_numpy(records) -> np.ndarray:
    """(n, 4) float64 array from an awkward/record array with px, py, pz, e|E fields."""
    e = records["e"] if "e" in ak.fields(records) else records["E"]
    return np.stack([ak.to_numpy(records[k]) for k in ("px", "py", "pz")] + [ak.to_numpy(e)], -1).astype(float)


def _jagged_pt_eta_phi(p):
    """(pT, η, φ) of jagged records with px, py, pz (FastJet's jets) via scikit-hep ``vector``."""
    import vector

    v = vector.zip({"px": p.px, "py": p.py, "pz": p.pz})
    return v.pt, v.eta, v.phi


# ----------------------------------------------------------------------------- electrons


def reconstruct_electron(prt, charge_id: int, cfg: DetectorConfig, rng):
    """Leading final-state electron of PDG id ``charge_id`` (11 = e⁻, −11 = e⁺), dressed with
    the final-state photons within ``electron_dressing_dr``, then smeared.

    Returns ``(p4, ok, used)``: (n, 4) massless reconstructed four-vectors, a boolean mask of
    events where the electron is found, accepted and identified, and the jagged mask of the
    particles (electron and its photons) it used, so that jets can exclude them.
    """
    final = prt.status > 0
    p = prt.p
    pt, eta, phi = _jagged_pt_eta_phi(p)
    is_e = final & (prt.id == charge_id)
    n = len(prt)
    has = ak.to_numpy(ak.any(is_e, axis=1))
    idx = ak.argmax(ak.where(is_e, pt, -1.0), axis=1, keepdims=True)
    local = ak.local_index(prt.id, axis=1)
    lead = local == idx  # jagged mask: the leading electron
    e_eta = ak.firsts(eta[lead])
    e_phi = ak.firsts(phi[lead])
    is_gamma = final & (prt.id == 22)
    dr = np.sqrt((eta - e_eta) ** 2 + fv.wrap_phi(phi - e_phi) ** 2)
    dressed = ak.fill_none(lead | (is_gamma & (dr < cfg.electron_dressing_dr)), False)
    tot = {k: ak.to_numpy(ak.sum(ak.where(dressed, p[k], 0.0), axis=1)) for k in ("px", "py", "pz", "e")}
    true_p4 = np.stack([tot["px"], tot["py"], tot["pz"], tot["e"]], -1)
    true_p4[~has] = [1.0, 0.0, 0.0, 1.0]  # placeholder, masked out below
    reco = calorimeter_object(true_p4, cfg.electron_energy, cfg.electron_angle, rng)
    ok = (
        has
        & (fv.pt(reco) > cfg.electron_pt_min)
        & (np.abs(fv.eta(reco)) < cfg.electron_eta_max)
        & (rng.random(n) < cfg.electron_efficiency)
    )
    return reco, ok, dressed


# ----------------------------------------------------------------------------- jets


def _cluster(particles, radius: float):
    """anti-kT clustering of a jagged array of (px, py, pz, E) records (FastJet, multi-event)."""
    import fastjet  # imported lazily: prints a banner on first import

    jetdef = fastjet.JetDefinition(fastjet.antikt_algorithm, radius)
    return fastjet.ClusterSequence(particles, jetdef)


def _zip_p4(px, py, pz, e):
    return ak.zip({"px": px, "py": py, "pz": pz, "E": e})


def visible_mask(prt):
    """Final-state particles a calorimeter sees: not neutrinos."""
    aid = abs(prt.id)
    return (prt.status > 0) & (aid != 12) & (aid != 14) & (aid != 16)


def reconstruct_jets(prt, exclude, cfg: DetectorConfig, rng):
    """anti-kT R = ``jet_r`` jets of the visible final-state particles with |η| < ``calo_eta_max``
    (minus ``exclude``, e.g. the electron), each smeared as a massless calorimeter jet.

    Returns ``(jets, njets_ok, sum_all)``: (n, n_jets, 4) leading accepted jets ordered by pT
    (zero-padded), the number of accepted jets per event (pT > ``jet_pt_min``,
    |η| < ``jet_eta_max``), and (n, 4) the sum of *all* smeared jets (for MET).
    """
    p = prt.p
    _, eta, _ = _jagged_pt_eta_phi(p)
    sel = visible_mask(prt) & ~exclude & (abs(eta) < cfg.calo_eta_max)
    q = p[sel]
    cs = _cluster(_zip_p4(q.px, q.py, q.pz, q.e), cfg.jet_r)
    jets = cs.inclusive_jets()
    counts = ak.to_numpy(ak.num(jets, axis=1))
    flat = p4_numpy(ak.flatten(jets))
    reco = calorimeter_object(flat, cfg.jet_energy, cfg.jet_angle, rng)
    rpt = fv.pt(reco)
    acc = (rpt > cfg.jet_pt_min) & (np.abs(fv.eta(reco)) < cfg.jet_eta_max)
    n = len(counts)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    event_of = np.repeat(np.arange(n), counts)
    sum_all = np.zeros((n, 4))
    np.add.at(sum_all, event_of, reco)
    # order accepted jets by pT within each event
    key = np.where(acc, -rpt, np.inf)
    order = np.lexsort((key, event_of))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order)) - offsets[event_of[order]]
    njets = np.bincount(event_of[acc], minlength=n)
    out = np.zeros((n, cfg.n_jets, 4))
    keep = acc & (rank < cfg.n_jets)
    out[event_of[keep], rank[keep]] = reco[keep]
    return out, njets, sum_all


def missing_momentum(visible_sum):
    """MET = −Σ p_T(visible reconstructed objects), stored massless: (−Σpx, −Σpy, 0, |Σ p_T|)."""
    mx, my = -visible_sum[..., 0], -visible_sum[..., 1]
    return np.stack([mx, my, np.zeros_like(mx), np.hypot(mx, my)], -1)


# ----------------------------------------------------------------------------- particle flow


def particle_flow(prt, charge, cfg: DetectorConfig, rng):
    """Reconstructed particles ("particle flow") from the visible final state.

    Charged particles inside the tracker (|η| < ``track_eta_max``, pT > ``track_pt_min``) are
    measured by tracking; photons and electrons outside it by the EM calorimeter; other
    hadrons by the hadronic calorimeter. Calorimeter objects below their energy threshold or
    beyond ``calo_eta_max`` are lost. ``charge`` is the jagged charge of each particle.
    Returns a jagged array of massless (px, py, pz, E) records.
    """
    vis = visible_mask(prt)
    p = prt.p[vis]
    q = charge[vis]
    aid = abs(prt.id[vis])
    counts = ak.to_numpy(ak.num(p, axis=1))
    p4 = p4_numpy(ak.flatten(p))
    qf = ak.to_numpy(ak.flatten(q))
    aidf = ak.to_numpy(ak.flatten(aid))
    pt, eta, phi = fv.pt(p4), fv.eta(p4), fv.phi(p4)
    track = (qf != 0) & (np.abs(eta) < cfg.track_eta_max) & (pt > cfg.track_pt_min)
    em = ~track & ((aidf == 22) | (aidf == 11))
    had = ~track & ~em
    out = np.zeros_like(p4)
    keep = np.zeros(len(p4), dtype=bool)
    if track.any():
        tpt = smear_pt_track(pt[track], cfg.track_pt_res_slope, cfg.track_pt_res_const, rng)
        te, tp = smear_angles(eta[track], phi[track], cfg.track_angle, rng)
        out[track] = fv.from_ptetaphim(tpt, te, tp, 0.0)
        keep |= track
    for mask, res, ang, emin in (
        (em, cfg.photon_energy, cfg.photon_angle, cfg.photon_e_min),
        (had, cfg.hadron_energy, cfg.hadron_angle, cfg.hadron_e_min),
    ):
        if mask.any():
            reco = calorimeter_object(p4[mask], res, ang, rng)
            out[mask] = reco
            ok = (reco[:, 3] > emin) & (np.abs(fv.eta(reco)) < cfg.calo_eta_max)
            idx = np.flatnonzero(mask)[ok]
            keep[idx] = True
    flat = _zip_p4(out[keep, 0], out[keep, 1], out[keep, 2], out[keep, 3])
    event_of = np.repeat(np.arange(len(counts)), counts)[keep]
    new_counts = np.bincount(event_of, minlength=len(counts))
    return ak.unflatten(flat, new_counts)


def leading_fatjet(particles, cfg: DetectorConfig):
    """Leading anti-kT R = ``fatjet_r`` jet and its constituents (jagged records) per event."""
    cs = _cluster(particles, cfg.fatjet_r)
    jets = cs.inclusive_jets()
    cons = cs.constituents()
    jpt = np.sqrt(jets.px ** 2 + jets.py ** 2)
    lead = ak.argmax(jpt, axis=1, keepdims=True)
    return ak.firsts(jets[lead]), ak.firsts(cons[lead])


def recluster_constituents(constituents, cfg: DetectorConfig):
    """Recluster jet constituents with anti-kT R = ``constituent_r`` and keep the leading
    ``n_constituents`` as (pT, η, φ), zero-padded: returns an (n, N, 3) array."""
    cs = _cluster(constituents, cfg.constituent_r)
    sub = cs.inclusive_jets()
    pt, eta, phi = _jagged_pt_eta_phi(sub)
    order = ak.argsort(pt, axis=1, ascending=False)
    n = cfg.n_constituents
    cols = []
    for a in (pt, eta, phi):
        a = ak.pad_none(a[order][:, :n], n, axis=1, clip=True)
        cols.append(ak.to_numpy(ak.fill_none(a, 0.0)))
    return np.stack(cols, -1)
