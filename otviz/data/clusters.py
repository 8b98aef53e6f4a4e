"""otviz's reference cluster model: Herwig-like cluster hadronisation of real Pythia 8 partons.

No Herwig is installed here, so HadML's training "truth" is made by this model, which follows
Herwig 7's cluster model (Webber, Nucl. Phys. B238 (1984) 492; Herwig 7 manual, Bellm et al.,
EPJC 76 (2016) 196, §7) step by step on Pythia's parton-level events. Output: the cluster
Dataset of :mod:`otviz.data.clusterset` plus ``fission(cluster)`` (True: made by fission).

1. **Partons.** Pythia 8 e⁺e⁻ → γ*/Z → q q̄ at √s = 91.2 GeV (:data:`PYTHIA_SETTINGS`), Z → u ū or
   d d̄ only (``23:onIfAny = 1 2``): the model pops only u/d pairs and the only hadrons are pions,
   so s, c, b quarks (which would need kaons, D and B mesons and heavy-flavour cluster parameters)
   are left out — likewise the shower's g → q q̄ is limited to u, d (``TimeShower:nGluonToQuark =
   2``) and its photon emission is off (``TimeShower:QEDshowerByQ = off``: every final particle is
   a parton, so the partons carry all of √s). ISR off, FSR (the parton shower) on,
   ``HadronLevel:all = off``. The shower cutoff is ``TimeShower:pTmin = 1.0`` GeV
   (``shower_pt_min``) instead of Pythia's 0.4: Herwig 7's shower stops at pT ≈ 0.65 GeV
   (``PTCutOff:pTmin``) *with* gluons of mass 0.95 GeV, i.e. with fewer soft gluons than Pythia's
   massless shower; with 0.4 (0.655) GeV the cluster-mass spectrum of this model peaks below
   1 GeV, with 1.0 GeV at 1.25–1.5 GeV as Herwig's does. An effective, not a tuned, choice. The final
   partons (status > 0, |id| ≤ 6 or 21) with their colour tags ``col``/``acol`` are read from
   ``Pythia.nextBatch`` (awkward ``events.prt``).
2. **Constituent masses.** Every parton is put on its constituent mass shell (Herwig 7 defaults,
   ``src/defaults/quarks.in`` and ``bosons.in``: u, d 0.325 GeV, g 0.95 GeV) by a common rescaling
   of the three-momenta in the event's rest frame, p_i → ξ p_i with ξ solving
   Σ_i sqrt(m_i² + ξ² |p_i|²) = √s (Newton's method; Σ ξ p_i = 0 stays 0), then boosted back:
   energy and momentum are conserved exactly per event. (Herwig reshuffles within colour-connected
   jet systems rather than the whole event: a simplification.)
3. **Gluon splitting** g → q q̄, u or d with probability ½ each, isotropic in the gluon rest frame
   (cos θ* uniform in [−1, 1], φ* uniform), both at the u/d constituent mass — as Herwig's
   ``PartonSplitter::splitTimeLikeGluon``. The quark takes the gluon's colour tag, the antiquark
   its anticolour tag. Split quarks are *non-perturbative*; the hard-process and shower quarks
   are perturbative.
4. **Clusters.** Each quark (colour tag c) forms a colour-singlet cluster with the antiquark of
   anticolour tag c: parton 0 = quark, parton 1 = antiquark, cluster = their sum.
5. **Fission** C(q₁ q̄₂) → C₁(q₁ q̄) + C₂(q q̄₂) while a cluster is heavy (``ClusterFissioner``,
   static threshold): M^P > Cl_max^P + (m₁ + m₂)^P with P = ClPowLight, and M > m₁ + m₂ + 2m (room
   for the popped pair). The popped flavour q is u or d (½ each; Herwig's PwtUquark = PwtDquark
   = 1, s left out). Daughter masses as Herwig's ``drawChildMass``: M₁ = m₁ + x with x^S uniform
   in [m^S, (M − m₁ − m₂ − m)^S], S = PSplitLight (likewise M₂ with m₂), redrawn until
   M₁ + M₂ ≤ M (up to ``fission_tries`` times; then the cluster is left unsplit, as Herwig).
   Kinematics as Herwig's ``calculateKinematics``: in C's rest frame C₁ moves along q₁'s direction
   u, C₂ opposite; inside C₁, q₁ moves along u and q̄ opposite; inside C₂, q along u and q̄₂
   opposite. A daughter keeps the perturbative flag of the constituent it inherits; the popped
   ones are non-perturbative. Repeated until no cluster is heavy.
6. **Decay** C(q₀ q̄₁) → h₀(q₀ q̄ₚ) + h₁(qₚ q̄₁), popped flavour p = u or d (½ each): u d̄ → π⁺,
   d ū → π⁻, u ū and d d̄ → π⁰, exact PDG masses (:func:`otviz.physics.masses.mass_of_pid`); the
   charge is conserved by construction. Exact two-body kinematics
   (:func:`otviz.physics.twobody.two_body_decay`) with hadron 0 at (θ, φ) about
   :func:`otviz.data.clusterset.decay_axis` (parton 0's rest-frame direction if perturbative, else
   minus parton 1's, else the cluster's flight direction):

   - a cluster with a perturbative constituent (and ``cl_dir``): Herwig's ``ClusterDecayer``
     smearing, cos θ = 1 + S ln r, r uniform in (0, 1], redrawn while cos θ < −1, φ uniform,
     S = ``smearing`` (ClSmrLight); S ≤ 0.001 means no smearing (cos θ = 1). Its CDF on [−1, 1]
     is F(c) = (e^{(c−1)/S} − e^{−2/S}) / (1 − e^{−2/S}) (:func:`smeared_cos_cdf`). The issue
     calls this "Gaussian angular smearing"; this is Herwig's actual rule. Herwig picks the
     smeared hadron at random when both constituents are perturbative; here it is always
     hadron 0 (parton 0), so that the angle is the one ``decay_axis`` measures;
   - otherwise isotropic: cos θ uniform in [−1, 1], φ uniform.

   Clusters always lie above the two-pion threshold (M ≥ 2 × 0.325 GeV > 2 m_π), so Herwig's
   single-hadron ``LightClusterDecayer`` is never needed.

Herwig parameter values (:class:`ClusterModelConfig` defaults): ClMaxLight = 3.528693 GeV,
ClPowLight = 1.849375, PSplitLight = 0.914156, ClDirLight = 1, ClSmrLight = 0.78 — the shipped
defaults of Herwig 7.2/7.3 (``share/Herwig/defaults/Hadronization.in``, 7.3.0p1, as recorded by a
public tuning study that read them from the release); the ClSmrLight = 0.78 and ClDirLight = 1
defaults are the same in every Herwig ``Hadronization.in`` version seen (older versions had
ClMaxLight 3.26–4.02, ClPowLight 1.61–2.14, PSplitLight 0.81).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import sys
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import ConfigError, check_bounds
from ..physics.masses import mass_of_pid
from ..physics.twobody import boost_from_rest, boost_to_rest, two_body_decay
from .clusterset import decay_axis, make_cluster_dataset
from .pythia import chunk_seeds, make_pythia

SOURCE = "otviz reference cluster model"
PYTHIA_SETTINGS = (
    "Print:quiet = on",
    "Next:numberCount = 0",
    "Random:setSeed = on",
    "Beams:idA = 11",
    "Beams:idB = -11",
    "PDF:lepton = off",
    "WeakSingleBoson:ffbar2gmZ = on",
    "23:onMode = off",
    "23:onIfAny = 1 2",
    "PartonLevel:ISR = off",
    "PartonLevel:FSR = on",
    "TimeShower:QEDshowerByQ = off",
    "TimeShower:nGluonToQuark = 2",
    "HadronLevel:all = off",
)
DEFAULT_CHUNK = 1000


@dataclass
class ClusterModelConfig:
    """Parameters of the reference cluster model (defaults: Herwig 7, see the module docstring).

    sqrt_s        e⁺e⁻ centre-of-mass energy (GeV)
    shower_pt_min Pythia's ``TimeShower:pTmin`` (GeV), the shower cutoff (see the module docstring)
    m_gluon       gluon constituent mass (GeV; Herwig g:ConstituentMass 0.95)
    m_light       u, d constituent mass (GeV; Herwig 0.325)
    cl_max        ClMaxLight (GeV): heavy if M^P > cl_max^P + (m₁ + m₂)^P
    cl_pow        ClPowLight, the P above
    p_split       PSplitLight: fission masses M_i = m_i + x, x^p_split uniform
    smearing      ClSmrLight: cos θ = 1 + smearing · ln r about the perturbative quark
    cl_dir        ClDirLight: decay along the perturbative quark (False: all isotropic)
    fission_tries tries to draw M₁ + M₂ ≤ M before a cluster is left unsplit
    """

    sqrt_s: float = 91.2
    shower_pt_min: float = 1.0
    m_gluon: float = 0.95
    m_light: float = 0.325
    cl_max: float = 3.528693
    cl_pow: float = 1.849375
    p_split: float = 0.914156
    smearing: float = 0.78
    cl_dir: bool = True
    fission_tries: int = 100

    BOUNDS: ClassVar[dict[str, tuple]] = {
        "sqrt_s": (10.0, 1000.0),
        "shower_pt_min": (0.1, 10.0),
        "m_gluon": (0.0, 5.0),
        "m_light": (0.0, 2.0),
        "cl_max": (0.1, 100.0),
        "cl_pow": (0.01, 20.0),
        "p_split": (0.01, 20.0),
        "smearing": (0.0, 100.0),
        "fission_tries": (1, 100000),
    }

    def validate(self) -> "ClusterModelConfig":
        """Raise :class:`otviz.errors.ConfigError` naming the first bad field."""
        check_bounds(self)
        if not isinstance(self.cl_dir, (bool, np.bool_)):
            raise ConfigError(f"ClusterModelConfig.cl_dir = {self.cl_dir!r}: must be true or false", "cl_dir",
                              self.cl_dir, "true | false", reason="must be true or false")
        if self.m_gluon < 2 * self.m_light:
            raise ConfigError(f"ClusterModelConfig.m_gluon = {self.m_gluon!r}: must be ≥ 2 × m_light "
                              f"= {2 * self.m_light:g} (a gluon splits into a light q q̄ pair)", "m_gluon",
                              self.m_gluon, f"≥ {2 * self.m_light:g}", reason="must be ≥ 2 × m_light")
        return self

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ClusterModelConfig":
        return cls(**json.loads(text)).validate()


def pythia_settings(seed: int, config: ClusterModelConfig | None = None) -> list[str]:
    """Pythia ``readString`` settings of the parton-level e⁺e⁻ → q q̄ events."""
    config = config or ClusterModelConfig()
    return list(PYTHIA_SETTINGS) + [f"Beams:eCM = {config.sqrt_s:g}", f"TimeShower:pTmin = {config.shower_pt_min:g}",
                                    f"Random:seed = {int(seed)}"]


# ----------------------------------------------------------------------------- the steps


def smeared_cos_cdf(c, smearing: float):
    """CDF on [−1, 1] of Herwig's smeared cos θ = 1 + S ln r (r uniform, redrawn below −1):
    F(c) = (e^{(c−1)/S} − e^{−2/S}) / (1 − e^{−2/S})."""
    c = np.clip(np.asarray(c, dtype=np.float64), -1.0, 1.0)
    if smearing <= 0.001:
        return (c >= 1.0).astype(np.float64)
    lo = np.exp(-2.0 / smearing)
    return (np.exp((c - 1.0) / smearing) - lo) / (1.0 - lo)


def draw_smeared_cos(rng: np.random.Generator, n: int, smearing: float) -> np.ndarray:
    """n draws of cos θ = 1 + S ln r, r uniform in (0, 1], redrawn while < −1 (Herwig's
    ``ClusterDecayer``); S ≤ 0.001 gives cos θ = 1 exactly."""
    out = np.ones(n)
    if smearing <= 0.001 or n == 0:
        return out
    todo = np.arange(n)
    while len(todo):
        r = 1.0 - rng.random(len(todo))  # (0, 1]
        c = 1.0 + smearing * np.log(r)
        ok = c >= -1.0
        out[todo[ok]] = c[ok]
        todo = todo[~ok]
    return out


def _masses3(p):
    return np.sqrt(np.clip(p[..., 3] ** 2 - (p[..., :3] ** 2).sum(-1), 0.0, None))


def reshuffle(p, event, masses, n_events=None, sqrt_s=None):
    """Put partons (n, 4) of events ``event`` (n,) on mass shells ``masses`` (n,), conserving each
    event's four-momentum: in the event rest frame p_i → ξ p_i, E_i = sqrt(m_i² + ξ²|p_i|²) with
    Σ E_i = √ŝ (Newton on ξ), then boosted back to the lab."""
    p = np.asarray(p, dtype=np.float64)
    n_events = int(event.max()) + 1 if n_events is None else n_events
    tot = np.stack([np.bincount(event, p[:, k], minlength=n_events) for k in range(4)], -1)
    rest = boost_to_rest(p, tot[event])
    ecm = _masses3(tot)
    if np.any(np.bincount(event, masses, minlength=n_events) >= ecm - 1e-9):
        raise ValueError("reshuffle: the constituent masses exceed an event's invariant mass")
    p2 = (rest[:, :3] ** 2).sum(-1)
    m2 = masses**2
    xi = np.ones(n_events)
    for _ in range(100):
        e = np.sqrt(m2 + xi[event] ** 2 * p2)
        f = np.bincount(event, e, minlength=n_events) - ecm
        df = np.bincount(event, xi[event] * p2 / e, minlength=n_events)
        step = f / np.where(df > 0, df, 1.0)
        xi = np.clip(xi - step, 1e-12, None)
        if np.all(np.abs(f) < 1e-12 * ecm):
            break
    out = np.empty_like(rest)
    out[:, :3] = xi[event, None] * rest[:, :3]
    out[:, 3] = np.sqrt(m2 + xi[event] ** 2 * p2)
    return boost_from_rest(out, tot[event])


def _isotropic(rng, n):
    return rng.uniform(-1.0, 1.0, n), rng.uniform(-np.pi, np.pi, n)


def _hadron_pid(quark, antiquark):
    """Pion id of (quark pid 1|2, antiquark pid −1|−2): u d̄ → 211, d ū → −211, same flavour → 111."""
    q, a = np.abs(quark), np.abs(antiquark)
    return np.where(q == a, 111, np.where(q == 2, 211, -211)).astype(np.int32)


def _heavy(cl, m0, m1, m_pop, cfg):
    M = _masses3(cl)
    P = cfg.cl_pow
    above = M**P > cfg.cl_max**P + (m0 + m1) ** P
    return above & (M > m0 + m1 + 2 * m_pop), M


def fission(cl, part, pid, pert, fis, event, rng, cfg):
    """Split heavy clusters until none is heavy (module docstring, step 5). Arrays: cluster (n, 4),
    partons (n, 2, 4), parton pids (n, 2), perturbative (n, 2), fission flag (n,), event (n,)."""
    m = cfg.m_light
    frozen = np.zeros(len(cl), bool)  # heavy but no masses found in fission_tries: left unsplit (Herwig)
    S = cfg.p_split
    while True:
        heavy, M = _heavy(cl, m, m, m, cfg)
        idx = np.flatnonzero(heavy & ~frozen)
        if not len(idx):
            break
        n = len(idx)
        Mh = M[idx]
        M1 = np.full(n, np.nan)
        M2 = np.full(n, np.nan)
        todo = np.arange(n)
        for _t in range(cfg.fission_tries):
            hi = (Mh[todo] - 2 * m - m) ** S
            a = m + rng.uniform(m**S, hi) ** (1.0 / S)
            b = m + rng.uniform(m**S, hi) ** (1.0 / S)
            ok = a + b <= Mh[todo]
            M1[todo[ok]], M2[todo[ok]] = a[ok], b[ok]
            todo = todo[~ok]
            if not len(todo):
                break
        done = ~np.isnan(M1)
        frozen[idx[~done]] = True
        idx, M1, M2 = idx[done], M1[done], M2[done]
        n = len(idx)
        if not n:
            continue
        parent = cl[idx]
        # u: direction of q₁ (parton 0) in the parent rest frame
        u = boost_to_rest(part[idx, 0], parent)[:, :3]
        ones, zero, mm = np.ones(n), np.zeros(n), np.full(n, m)
        c12 = two_body_decay(parent, M1, M2, ones, zero, u)  # C₁ along u, C₂ opposite
        pop = np.where(rng.random(n) < 0.5, 1, 2)
        d1 = two_body_decay(c12[:, 0], mm, mm, ones, zero, u)  # q₁ along u, popped q̄ opposite
        d2 = two_body_decay(c12[:, 1], mm, mm, ones, zero, u)  # popped q along u, q̄₂ opposite
        new_pid = np.stack([pop, pid[idx, 1]], 1)
        new_pert = np.stack([np.zeros(n, bool), pert[idx, 1]], 1)
        # C₁ = (q₁, popped q̄) replaces the parent in place; C₂ = (popped q, q̄₂) is appended
        cl[idx] = c12[:, 0]
        part[idx] = d1
        pid[idx, 1] = -pop
        pert[idx, 1] = False
        fis[idx] = True
        cl = np.concatenate([cl, c12[:, 1]])
        part = np.concatenate([part, d2])
        pid = np.concatenate([pid, new_pid])
        pert = np.concatenate([pert, new_pert])
        fis = np.concatenate([fis, np.ones(n, bool)])
        event = np.concatenate([event, event[idx]])
        frozen = np.concatenate([frozen, np.zeros(n, bool)])
    return cl, part, pid, pert, fis, event


def decay_clusters(cl, part, pid, pert, rng, cfg):
    """Two-pion decays (module docstring, step 6): returns hadrons (n, 2, 4) and their pids (n, 2)."""
    n = len(cl)
    pop = np.where(rng.random(n) < 0.5, 1, 2)
    hpid = np.stack([_hadron_pid(pid[:, 0], -pop), _hadron_pid(pop, pid[:, 1])], 1)
    m0, m1 = mass_of_pid(hpid[:, 0]), mass_of_pid(hpid[:, 1])
    axis, from_quark = decay_axis(None, cluster=cl, parton=part, perturbative=pert)
    smeared = from_quark & bool(cfg.cl_dir)
    cos, phi = _isotropic(rng, n)
    k = int(smeared.sum())
    cos[smeared] = draw_smeared_cos(rng, k, cfg.smearing)
    phi[smeared] = rng.uniform(-np.pi, np.pi, k)
    had = two_body_decay(cl, np.asarray(m0, float), np.asarray(m1, float), cos, phi, axis)
    return had, hpid


def clusters_from_partons(p, pid, col, acol, event, rng, cfg, n_events):
    """Steps 2–6 for a batch of final partons (flat arrays with their event index, grouped by event)."""
    g = pid == 21
    masses = np.where(g, cfg.m_gluon, cfg.m_light)
    p = reshuffle(p, event, masses, n_events)
    # 3. gluon splitting: quark with the gluon's colour, antiquark with its anticolour
    ng = int(g.sum())
    cos, phi = _isotropic(rng, ng)
    flav = np.where(rng.random(ng) < 0.5, 1, 2)
    mq = np.full(ng, cfg.m_light)
    split = two_body_decay(p[g], mq, mq, cos, phi)
    quark = (pid > 0) & (pid < 7)
    anti = pid < 0
    q_p = np.concatenate([p[quark], split[:, 0]])
    q_id = np.concatenate([pid[quark], flav])
    q_tag = np.concatenate([col[quark], col[g]])
    q_ev = np.concatenate([event[quark], event[g]])
    q_pert = np.concatenate([np.ones(int(quark.sum()), bool), np.zeros(ng, bool)])
    a_p = np.concatenate([p[anti], split[:, 1]])
    a_id = np.concatenate([pid[anti], -flav])
    a_tag = np.concatenate([acol[anti], acol[g]])
    a_ev = np.concatenate([event[anti], event[g]])
    a_pert = np.concatenate([np.ones(int(anti.sum()), bool), np.zeros(ng, bool)])
    # 4. colour singlets: quark (event, col c) with antiquark (event, acol c)
    qo = np.lexsort((q_tag, q_ev))
    ao = np.lexsort((a_tag, a_ev))
    if len(qo) != len(ao) or np.any(q_ev[qo] != a_ev[ao]) or np.any(q_tag[qo] != a_tag[ao]):
        raise RuntimeError("cluster model: the colour lines of an event do not close into q q̄ singlets")
    part = np.stack([q_p[qo], a_p[ao]], 1)
    ppid = np.stack([q_id[qo], a_id[ao]], 1).astype(np.int32)
    pert = np.stack([q_pert[qo], a_pert[ao]], 1)
    cev = q_ev[qo]
    cl = part.sum(1)
    fis = np.zeros(len(cl), bool)
    cl, part, ppid, pert, fis, cev = fission(cl, part, ppid, pert, fis, cev, rng, cfg)
    order = np.argsort(cev, kind="stable")
    cl, part, ppid, pert, fis, cev = cl[order], part[order], ppid[order], pert[order], fis[order], cev[order]
    had, hpid = decay_clusters(cl, part, ppid, pert, rng, cfg)
    return {"cluster": cl, "hadron": had, "hadron_pid": hpid, "parton": part, "parton_pid": ppid,
            "perturbative": pert, "fission": fis, "event": cev}


def _final_partons(prt):
    """Flat arrays (p (n, 4), id, col, acol, event) of the final partons of a batch of events."""
    import awkward as ak

    aid = abs(prt.id)
    sel = (prt.status > 0) & ((aid <= 6) | (aid == 21))
    counts = ak.to_numpy(ak.sum(sel, axis=1))
    p = np.stack([ak.to_numpy(ak.flatten(prt.p[k][sel])) for k in ("px", "py", "pz", "e")], -1).astype(np.float64)
    flat = [ak.to_numpy(ak.flatten(prt[k][sel])).astype(np.int64) for k in ("id", "col", "acol")]
    event = np.repeat(np.arange(len(counts)), counts)
    return p, flat[0], flat[1], flat[2], event


def generate_cluster_chunk(n_events: int, seed: int, chunk: int = 0, config: ClusterModelConfig | None = None,
                           batch: int = 1000) -> dict:
    """Clusters of ``n_events`` Pythia events for chunk ``chunk``; depends on (n_events, seed,
    chunk, config, batch) only (:func:`otviz.data.pythia.chunk_seeds`). Returns the arrays of the
    cluster Dataset plus ``fission``; ``event`` counts from 0 within the chunk."""
    cfg = (config or ClusterModelConfig()).validate()
    pythia_seed, ss = chunk_seeds(seed, chunk)
    rng = np.random.default_rng(ss)
    py = make_pythia(pythia_settings(pythia_seed, cfg))
    parts: list[dict] = []
    done = 0
    while done < n_events:
        want = min(batch, n_events - done)
        prt = py.nextBatch(want).prt
        if len(prt) == 0:
            raise RuntimeError(f"Pythia produced no events (seed {pythia_seed})")
        prt = prt[: n_events - done]
        p, pid, col, acol, ev = _final_partons(prt)
        out = clusters_from_partons(p, pid, col, acol, ev, rng, cfg, len(prt))
        out["event"] = out["event"] + done
        parts.append(out)
        done += len(prt)
    res = {k: np.concatenate([o[k] for o in parts]) for k in parts[0]}
    res["n_events"] = n_events
    return res


def _run_chunk(**kw) -> dict:
    t = time.perf_counter()
    out = generate_cluster_chunk(**kw)
    out["seconds"] = time.perf_counter() - t
    return out


def generate_clusters(n_events: int, seed: int = 1, config: ClusterModelConfig | None = None, workers: int = 2,
                      chunk_size: int | None = None, progress=None, scheduler: str | None = None,
                      command: str | None = None):
    """The reference cluster model on ``n_events`` Pythia events, chunks run on Dask (one
    single-threaded worker process per ``workers``; the result does not depend on it). Returns the
    cluster Dataset (:mod:`otviz.data.clusterset` layout plus ``fission``); timing in its
    attributes (``seconds``, ``events_per_s``). ``progress``: True for a bar on stderr."""
    from dask.distributed import as_completed

    from ..cluster import dask_client
    from .generate import chunk_sizes, package_versions

    cfg = (config or ClusterModelConfig()).validate()
    chunk_size = chunk_size or DEFAULT_CHUNK
    sizes = chunk_sizes(n_events, chunk_size)
    if not scheduler and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"--workers must be at least 1, got {workers!r}")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    results = [None] * len(sizes)
    t0 = time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_events, unit="ev", desc="otviz generate clusters", file=sys.stderr)
    with dask_client(workers, scheduler) as client:
        futures = {client.submit(_run_chunk, pure=False, n_events=n, seed=seed, chunk=i, config=cfg): i
                   for i, n in enumerate(sizes)}
        for fut in as_completed(futures):
            i = futures[fut]
            results[i] = fut.result()
            if bar is not None:
                bar.update(sizes[i])
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - t0
    merged = {k: np.concatenate([r[k] for r in results]) for k in ("cluster", "hadron", "hadron_pid", "parton",
                                                                  "parton_pid", "perturbative", "fission")}
    merged["event"] = np.concatenate([r["event"] + s for r, s in zip(results, starts)])
    n_cl = len(merged["cluster"])
    attrs = {
        "source": SOURCE,
        "description": "Pythia 8 e+e- -> Z -> q qbar (u, d) partons, Herwig-like cluster formation, fission and "
                       "two-pion decays (otviz.data.clusters)",
        "generator": "Pythia 8 (pythia8mc) partons + otviz.data.clusters",
        "pythia_settings": json.dumps(pythia_settings(0, cfg)),
        "pythia_seed_note": "Random:seed = 0 above is replaced per chunk by otviz.data.pythia.chunk_seeds(seed, chunk)",
        "cluster_model_config": cfg.to_json(),
        "smearing": float(cfg.smearing),
        "sqrt_s": float(cfg.sqrt_s),
        "seed": int(seed),
        "chunk_size": int(chunk_size),
        "n_chunks": len(sizes),
        "n_events": int(n_events),
        "n_clusters": int(n_cl),
        "seconds": float(seconds),
        "events_per_s": float(n_events / seconds),
        "workers": int(workers) if not scheduler else str(scheduler),
        "versions": json.dumps(package_versions()),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command or "",
        "units": "GeV",
    }
    ds = make_cluster_dataset(merged["cluster"], merged["hadron"], merged["hadron_pid"], merged["event"],
                              parton=merged["parton"], parton_pid=merged["parton_pid"],
                              parton_mask=np.ones((n_cl, 2), bool), perturbative=merged["perturbative"],
                              attrs=attrs)
    ds["fission"] = (("cluster",), merged["fission"], {"description": "made by cluster fission C -> C C"})
    return ds
