"""HadML: a conditional GAN for cluster hadronisation (seed 004, REFERENCE §5).

A cluster C (a colour-singlet q q̄ system, four-momentum P, mass M) decays into two hadrons. The
generator G maps the cluster and noise to

    v = (v_x, v_y, v_z),  cos θ = v_z/|v|,  φ = atan2(v_y, v_x)
                                                       (hadron 0's direction in the cluster rest
                                                        frame, about ``clusterset.decay_axis``)
    y = GumbelSoftmax(ℓ + log mask, τ)                  (the species pair, item 4)

from the condition c = [P scaled to [−1, 1] by the training clusters' min/max (buffers),
M scaled likewise, from_quark, the constituents' flavour one-hots (u, d, s, c, b and their
antiquarks, per parton; zeros where unknown)] and noise z ~ N(0, 1)^{noise_dim}. The direction is that of a generated
3-vector rather than the paper's cos θ = tanh(a), φ = π·tanh(b): φ is periodic, and the tanh forms
starve the edges (cos θ = ±1, φ = ±π) of the isotropic decays of non-perturbative clusters, which
a 3-vector gets from Gaussian noise alone (on the closed-form toy of tests/train/test_hadml.py,
same plain-BCE training: W₁(cos θ) of the isotropic clusters 0.26 with tanh, 0.07–0.09 with the
3-vector).

Species: the pair (hadron 0, hadron 1) is one of ``PAIRS`` = π⁰π⁰, π⁺π⁻, π⁻π⁺, π⁺π⁰, π⁰π⁺, π⁻π⁰,
π⁰π⁻. The cluster's charge Q (from its constituents' pids when known, else from the data's hadron
pids in training, or given) masks the pairs of another charge: ℓ_k = −∞ for Q_k ≠ Q, so charge is
conserved exactly by construction. Training uses the soft one-hot
y = softmax((ℓ + g)/τ), g ~ Gumbel(0, 1), with the hadron masses mᵢ = Σ_k y_k m_{k,i} (differentiable);
sampling takes argmax(ℓ + g) — an exact draw from softmax(ℓ) (Gumbel-max), with the exact masses.

Kinematics (exact for any masses; ``otviz.physics.twobody``): in the rest frame
|p*| = sqrt(λ(M², m₀², m₁²)) / 2M (Källén), E₀* = (M² + m₀² − m₁²)/2M, E₁* = M − E₀*, hadron 0 along
(θ, φ) about the decay axis, hadron 1 back to back; both boosted to the lab by the exact boost
with P. Masses come from ``otviz.physics.masses.mass_of_pid`` (PDG 2024), never scaled; the two
bugs of the public code (pion mass × 0.01, a p₀/2 boost exact only for equal masses) cannot occur:
Σ hadrons = P and hᵢ² = mᵢ² to rounding for every (M, m₀, m₁) with M ≥ m₀ + m₁.

Discriminators
    v1 ``Discriminator``: MLP on (cos θ, cos φ, sin φ, y, c) — the per-cluster decay.
    v2 ``EventDiscriminator`` (Deep Sets): D_E(event) = F( (1/n) Σᵢ Φ(hᵢ) ) over the event's
       hadrons only (:func:`hadron_features`), as real data would give them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from ..physics.masses import mass_of_pid
from ..physics.twobody import two_body_decay

PAIRS = ((111, 111), (211, -211), (-211, 211), (211, 111), (111, 211), (-211, 111), (111, -211))
PAIR_NAMES = ("π⁰π⁰", "π⁺π⁻", "π⁻π⁺", "π⁺π⁰", "π⁰π⁺", "π⁻π⁰", "π⁰π⁻")
_PID_CHARGE = {111: 0, 211: 1, -211: -1}
PAIR_CHARGE = tuple(_PID_CHARGE[a] + _PID_CHARGE[b] for a, b in PAIRS)
SPECIES = (111, 211, -211)  # per-hadron species of the event discriminator's one-hot
N_PAIRS = len(PAIRS)
N_FLAVOURS = 5  # d, u, s, c, b (PDG 1 … 5)
# quark charges in units of e/3 by PDG id (antiquarks: minus)
_QUARK_CHARGE3 = {1: -1, 2: 2, 3: -1, 4: 2, 5: -1}
N_COND = 4 + 1 + 1 + 2 * 2 * N_FLAVOURS  # scaled P, scaled M, from_quark, flavour one-hots
N_HADRON_FEATURES = 5 + len(SPECIES)


@dataclass
class HadMLModelConfig:
    noise_dim: int = 10  # the paper's
    g_hidden: tuple[int, ...] = (256, 256)  # generator hidden widths (paper: 2 × 256)
    d_hidden: tuple[int, ...] = (256, 256)  # v1 discriminator hidden widths
    phi_hidden: tuple[int, ...] = (64, 64)  # v2 Deep Sets: per-hadron network Φ
    phi_out: int = 64
    f_hidden: tuple[int, ...] = (64,)  # v2 Deep Sets: F on the mean of Φ
    slope: float = 0.2  # LeakyReLU negative slope

    BOUNDS: ClassVar[dict[str, tuple]] = {"noise_dim": (1, 1024), "phi_out": (1, 4096), "slope": (0.0, 1.0)}

    def __post_init__(self):
        for name in ("g_hidden", "d_hidden", "phi_hidden", "f_hidden"):
            setattr(self, name, tuple(getattr(self, name)))
        self.validate()

    def validate(self) -> "HadMLModelConfig":
        from ..errors import ConfigError, check_bounds

        check_bounds(self)
        for name in ("g_hidden", "d_hidden", "phi_hidden", "f_hidden"):
            widths = getattr(self, name)
            if not widths or not all(isinstance(w, int) and not isinstance(w, bool) and 1 <= w <= 4096 for w in widths):
                raise ConfigError(f"HadMLModelConfig.{name} = {list(widths)!r}: must be a non-empty list of widths "
                                  "in 1 … 4096", name, list(widths), "1 … 4096 each",
                                  reason="must be a non-empty list of widths in 1 … 4096")
        return self

    @classmethod
    def from_dict(cls, d):
        return cls(**dict(d))


def mlp(n_in: int, widths, n_out: int, slope: float = 0.2) -> nn.Sequential:
    """Linear → LeakyReLU(slope) through ``widths``, then a Linear to ``n_out``."""
    mods, n = [], n_in
    for w in widths:
        mods += [nn.Linear(n, w), nn.LeakyReLU(slope)]
        n = w
    mods.append(nn.Linear(n, n_out))
    return nn.Sequential(*mods)


# ---------------------------------------------------------------------- species and flavour
def pair_masses() -> np.ndarray:
    """(N_PAIRS, 2) masses in GeV of (hadron 0, hadron 1) of each pair (PDG 2024)."""
    return np.asarray([[mass_of_pid(a), mass_of_pid(b)] for a, b in PAIRS], dtype=np.float64)


def pair_index(hadron_pid) -> np.ndarray:
    """Index into ``PAIRS`` of each (n, 2) pid pair; −1 for pairs that are not pion pairs."""
    pid = np.asarray(hadron_pid, np.int64).reshape(-1, 2)
    out = np.full(len(pid), -1, np.int64)
    for k, (a, b) in enumerate(PAIRS):
        out[(pid[:, 0] == a) & (pid[:, 1] == b)] = k
    return out


def parton_charge(parton_pid) -> np.ndarray:
    """Cluster charge (n,) in units of e from the constituents' pids (quarks 1 … 5 and their
    antiquarks); a float NaN where a constituent is unknown or not a light/heavy quark."""
    pid = np.asarray(parton_pid, np.int64).reshape(-1, 2)
    q3 = np.zeros(pid.shape)
    for f, c in _QUARK_CHARGE3.items():
        q3[pid == f], q3[pid == -f] = c, -c
    ok = np.isin(np.abs(pid), list(_QUARK_CHARGE3))
    total = q3.sum(1) / 3.0
    return np.where(ok.all(1), np.round(total), np.nan)


def hadron_charge(hadron_pid) -> np.ndarray:
    """Total charge (n,) of each cluster's pion pair from the pids; NaN where not pions."""
    pid = np.asarray(hadron_pid, np.int64).reshape(-1, 2)
    q = np.zeros(len(pid))
    ok = np.ones(len(pid), bool)
    for i in range(2):
        known = np.isin(pid[:, i], list(_PID_CHARGE))
        ok &= known
        q += np.where(pid[:, i] == 211, 1, 0) - np.where(pid[:, i] == -211, 1, 0)
    return np.where(ok, q, np.nan)


def charge_mask(charge) -> np.ndarray:
    """(n, N_PAIRS) bool: the pairs whose charge equals the cluster's; every pair where the charge
    is unknown (NaN). A known charge no pair has (|Q| > 1) is refused."""
    q = np.asarray(charge, np.float64).reshape(-1)
    known = np.isfinite(q)
    mask = (np.asarray(PAIR_CHARGE)[None, :] == np.where(known, q, 0)[:, None]) | ~known[:, None]
    bad = ~mask.any(1)
    if bad.any():
        raise ValueError(f"HadML: cluster charge {q[bad][0]:g} has no pion pair (allowed charges −1, 0, +1)")
    return mask


def flavour_onehot(parton_pid) -> np.ndarray:
    """(n, 20) float32: per constituent a one-hot over d u s c b d̄ ū s̄ c̄ b̄ (zeros where unknown)."""
    pid = np.asarray(parton_pid, np.int64).reshape(-1, 2)
    out = np.zeros((len(pid), 2, 2 * N_FLAVOURS), np.float32)
    a = np.abs(pid)
    ok = (a >= 1) & (a <= N_FLAVOURS)
    idx = np.where(ok, a - 1 + N_FLAVOURS * (pid < 0), 0)
    rows, cols = np.nonzero(ok)
    out[rows, cols, idx[rows, cols]] = 1.0
    return out.reshape(len(pid), -1)


def gumbel_softmax(logits: torch.Tensor, tau: float, generator: torch.Generator | None = None,
                   hard: bool = False) -> torch.Tensor:
    """softmax((ℓ + g)/τ) with g ~ Gumbel(0, 1) (logits may hold −∞ for forbidden classes);
    ``hard``: the one-hot of argmax(ℓ + g), an exact draw from softmax(ℓ)."""
    u = torch.rand(logits.shape, generator=generator, dtype=torch.float32).to(logits.device, logits.dtype)
    g = -torch.log(-torch.log(u.clamp(1e-20, 1 - 1e-7)))
    x = logits + g
    if hard:
        return nn.functional.one_hot(x.argmax(-1), logits.shape[-1]).to(logits.dtype)
    return torch.softmax(x / tau, -1)


# ---------------------------------------------------------------------- event features
def hadron_features(hadron: torch.Tensor, species: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-hadron features (B, W, N_HADRON_FEATURES) of whole events, from the hadrons alone:

        log(E/GeV),  |cos α|, log(p_T,rel/GeV + 10⁻³)      α: angle to the event's sphericity axis
                                                             (largest-eigenvalue eigenvector of
                                                             Σ pᵢ pᵢᵀ / Σ |pᵢ|², held fixed)
        log(1 − max_{j≠i} cos θᵢⱼ + 10⁻⁶)                    closeness to the nearest other hadron
        log(|p|/GeV)
        species one-hot (π⁰, π⁺, π⁻; soft for generated hadrons)

    zero on padded slots. ``hadron`` (B, W, 4) (px, py, pz, E); ``species`` (B, W, 3); ``mask`` (B, W)."""
    m = mask.to(hadron.dtype)
    p = hadron[..., :3] * m[..., None]
    pabs = torch.sqrt((p * p).sum(-1) + 1e-12)
    E = torch.where(mask, hadron[..., 3], torch.ones_like(pabs))
    with torch.no_grad():
        s = torch.einsum("bwi,bwj->bij", p, p) / (pabs * pabs * m).sum(1).clamp_min(1e-12)[:, None, None]
        s = torch.nan_to_num(s.double()) + 1e-9 * torch.eye(3, dtype=torch.float64, device=s.device)
        axis = torch.linalg.eigh(s)[1][..., -1].to(hadron.dtype)  # (B, 3)
    u = p / pabs[..., None]
    cos_a = (u * axis[:, None, :]).sum(-1)
    pt_rel = pabs * torch.sqrt((1 - cos_a * cos_a).clamp_min(0) + 1e-12)
    cosij = torch.einsum("bwi,bvi->bwv", u, u)
    eye = torch.eye(cosij.shape[-1], dtype=torch.bool, device=cosij.device)
    invalid = eye[None] | ~mask[:, None, :]
    nearest = cosij.masked_fill(invalid, -1.0).amax(-1)
    f = torch.stack([torch.log(E.clamp_min(1e-6)), cos_a.abs(), torch.log(pt_rel + 1e-3),
                     torch.log((1 - nearest).clamp_min(0) + 1e-6), torch.log(pabs.clamp_min(1e-6))], -1)
    f = torch.cat([f, species.to(hadron.dtype)], -1)
    return f * m[..., None]


class EventDiscriminator(nn.Module):
    """Deep Sets critic of whole events: D_E = F( Σᵢ mᵢ Φ(fᵢ) / Σᵢ mᵢ ), f = :func:`hadron_features`.
    Invariant under permutations of an event's hadrons and under padding."""

    def __init__(self, cfg: HadMLModelConfig):
        super().__init__()
        self.phi = nn.Sequential(mlp(N_HADRON_FEATURES, cfg.phi_hidden, cfg.phi_out, cfg.slope), nn.LeakyReLU(cfg.slope))
        self.f = mlp(cfg.phi_out, cfg.f_hidden, 1, cfg.slope)

    def forward(self, hadron, species, mask) -> torch.Tensor:
        f = hadron_features(hadron, species, mask)
        m = mask.to(f.dtype)[..., None]
        pooled = (self.phi(f) * m).sum(1) / m.sum(1).clamp_min(1.0)
        return self.f(pooled).squeeze(-1)


# ---------------------------------------------------------------------- the model
@dataclass
class Decay:
    """One generated (or real) decay: angles about the decay axis and the species pair."""

    cos_theta: torch.Tensor  # (n,)
    phi: torch.Tensor  # (n,)
    pair: torch.Tensor  # (n, N_PAIRS) soft or hard one-hot


class HadML(nn.Module):
    """Generator (``generator``), v1 ``discriminator`` and v2 ``event_discriminator`` with the
    condition scaler (buffers ``cond_lo``/``cond_hi`` of (px, py, pz, E, M)). ``sample(cluster)``
    takes (n, 4) GeV cluster four-momenta and returns (n, 2, 4) hadron four-momenta in GeV."""

    def __init__(self, cfg: HadMLModelConfig | None = None):
        super().__init__()
        cfg = cfg or HadMLModelConfig()
        self.config = cfg
        self.generator = mlp(N_COND + cfg.noise_dim, cfg.g_hidden, 3 + N_PAIRS, cfg.slope)
        self.discriminator = mlp(3 + N_PAIRS + N_COND, cfg.d_hidden, 1, cfg.slope)
        self.event_discriminator = EventDiscriminator(cfg)
        self.register_buffer("cond_lo", -torch.ones(5, dtype=torch.float64))
        self.register_buffer("cond_hi", torch.ones(5, dtype=torch.float64))
        self.register_buffer("pair_mass", torch.as_tensor(pair_masses()))

    # -------------------------------------------------------------- conditions
    @staticmethod
    def _cluster_array(cluster) -> np.ndarray:
        c = cluster.detach().cpu().numpy() if torch.is_tensor(cluster) else np.asarray(cluster)
        c = np.asarray(c, np.float64)
        if c.ndim != 2 or c.shape[-1] != 4:
            raise ValueError(f"HadML: cluster four-momenta must be (n, 4) of (px, py, pz, E) in GeV; got {c.shape}")
        return c

    @staticmethod
    def _pm(cluster: np.ndarray) -> np.ndarray:
        m = np.sqrt(np.clip(cluster[:, 3] ** 2 - (cluster[:, :3] ** 2).sum(1), 0, None))
        return np.concatenate([cluster, m[:, None]], 1)

    @torch.no_grad()
    def fit_scaler(self, cluster) -> None:
        """Min and max of (px, py, pz, E, M) over the training clusters (scaled to [−1, 1])."""
        pm = self._pm(self._cluster_array(cluster))
        self.cond_lo.copy_(torch.as_tensor(pm.min(0)))
        self.cond_hi.copy_(torch.as_tensor(np.maximum(pm.max(0), pm.min(0) + 1e-9)))

    def condition(self, cluster, parton_pid=None, from_quark=None) -> torch.Tensor:
        """(n, N_COND) float32 condition on the model's device (see the module docstring)."""
        c = self._cluster_array(cluster)
        n = len(c)
        lo, hi = self.cond_lo.cpu().numpy(), self.cond_hi.cpu().numpy()
        scaled = 2 * (self._pm(c) - lo) / (hi - lo) - 1
        fq = np.zeros(n) if from_quark is None else np.asarray(from_quark, np.float64).reshape(n)
        fl = flavour_onehot(np.zeros((n, 2)) if parton_pid is None else parton_pid)
        out = np.concatenate([scaled, fq[:, None], fl], 1)
        return torch.as_tensor(out, dtype=torch.float32, device=self.cond_lo.device)

    # -------------------------------------------------------------- generator
    def generate(self, cond: torch.Tensor, mask: torch.Tensor, tau: float = 0.1,
                 generator: torch.Generator | None = None, hard: bool = False) -> Decay:
        """The generator's decay for conditions ``cond`` (n, N_COND) and allowed pairs ``mask``
        (n, N_PAIRS) bool; noise and Gumbel draws from ``generator`` (a CPU torch.Generator)."""
        z = torch.randn((len(cond), self.config.noise_dim), generator=generator).to(cond.device, cond.dtype)
        out = self.generator(torch.cat([cond, z], 1))
        v = out[:, :3]
        cos_theta = (v[:, 2] / torch.sqrt((v * v).sum(1) + 1e-12)).clamp(-1.0, 1.0)
        phi = torch.atan2(v[:, 1], v[:, 0])
        logits = out[:, 3:].masked_fill(~mask, float("-inf"))
        pair = gumbel_softmax(logits, tau, generator, hard=hard)
        return Decay(cos_theta, phi, pair)

    def critic_input(self, decay: Decay, cond: torch.Tensor) -> torch.Tensor:
        """The v1 discriminator's input (n, 3 + N_PAIRS + N_COND)."""
        return torch.cat([decay.cos_theta[:, None], torch.cos(decay.phi)[:, None], torch.sin(decay.phi)[:, None],
                          decay.pair.to(cond.dtype), cond], 1)

    def hadrons(self, cluster: torch.Tensor, axis: torch.Tensor, decay: Decay) -> torch.Tensor:
        """(n, 2, 4) float64 lab hadrons of the exact two-body decay of ``cluster`` (n, 4) with
        hadron 0 at ``decay``'s angles about ``axis`` (n, 3; rest frame) and the masses
        Σ_k y_k m_k of its (soft or hard) pair one-hot y."""
        m = decay.pair.to(torch.float64) @ self.pair_mass.to(cluster.device)  # (n, 2)
        return two_body_decay(cluster.to(torch.float64), m[:, 0], m[:, 1], decay.cos_theta.to(torch.float64),
                              decay.phi.to(torch.float64), axis.to(torch.float64))

    # -------------------------------------------------------------- public sampling
    def check_clusters(self, cluster: np.ndarray, mask: np.ndarray) -> None:
        """Refuse clusters no pion pair can come from: non-finite components, not time-like
        (E ≤ |p|), or M below m₀ + m₁ of the lightest pair ``mask`` allows (2 m_π⁰ = 0.26995 GeV
        for neutral or unknown charge, m_π⁰ + m_π± for charged). ValueError naming how many and the
        first index."""
        c = np.asarray(cluster, np.float64)
        finite = np.isfinite(c).all(1)
        cf = np.where(finite[:, None], c, 0.0)
        p2 = (cf[:, :3] ** 2).sum(1)
        timelike = finite & (cf[:, 3] > np.sqrt(p2))
        m = np.sqrt(np.clip(cf[:, 3] ** 2 - p2, 0, None))
        thr = np.where(mask, self.pair_mass.sum(1).cpu().numpy()[None, :], np.inf).min(1)
        for bad, what in ((~finite, "non-finite four-momentum components"),
                          (finite & ~timelike, "space-like or light-like four-momenta (E ≤ |p|)"),
                          (timelike & (m < thr), "masses below the lightest pion pair their charge allows "
                                                 "(2 m_π⁰ neutral, m_π⁰ + m_π± charged)")):
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                detail = f"M = {m[i]:.5g} GeV < {thr[i]:.5g} GeV" if what.startswith("masses") else f"{c[i].tolist()}"
                raise ValueError(f"HadML: {int(bad.sum())} of {len(c)} clusters have {what}; the first is index {i} "
                                 f"({detail}); clusters are (px, py, pz, E) in GeV, E last")

    def _inputs(self, cluster, parton=None, parton_pid=None, perturbative=None, charge=None):
        from ..data.clusterset import decay_axis

        c = self._cluster_array(cluster)
        n = len(c)
        pa = np.zeros((n, 2, 4)) if parton is None else np.asarray(
            parton.detach().cpu().numpy() if torch.is_tensor(parton) else parton, np.float64).reshape(n, 2, 4)
        pert = np.zeros((n, 2), bool) if perturbative is None else np.asarray(perturbative, bool).reshape(n, 2)
        pid = np.zeros((n, 2), np.int64) if parton_pid is None else np.asarray(parton_pid, np.int64).reshape(n, 2)
        if charge is None:
            q = parton_charge(pid)
        else:
            q = np.broadcast_to(np.asarray(charge, np.float64), (n,)).copy()
        allowed = charge_mask(q)
        self.check_clusters(c, allowed)
        axis, from_quark = decay_axis(None, cluster=c, parton=pa, perturbative=pert)
        mask = torch.as_tensor(allowed, device=self.cond_lo.device)
        cond = self.condition(c, pid, from_quark)
        dev = self.cond_lo.device
        return (torch.as_tensor(c, device=dev), torch.as_tensor(axis, device=dev), cond, mask)

    @torch.no_grad()
    def sample_with_pid(self, cluster, parton=None, parton_pid=None, perturbative=None, charge=None,
                        generator: torch.Generator | None = None):
        """(hadrons (n, 2, 4) GeV, pids (n, 2)) for clusters (n, 4) GeV (NumPy in: NumPy out;
        torch in: float64 tensors on the model's device). Constituent information (``parton``
        (n, 2, 4), ``parton_pid``, ``perturbative`` (n, 2)) sets the decay axis, the flavour
        inputs and the charge; ``charge`` (scalar or (n,)) overrides the latter (NaN: unknown)."""
        was = self.training
        self.eval()
        try:
            c, axis, cond, mask = self._inputs(cluster, parton, parton_pid, perturbative, charge)
            decay = self.generate(cond, mask, generator=generator, hard=True)
            h = self.hadrons(c, axis, decay)
        finally:
            self.train(was)
        pids = torch.as_tensor(PAIRS, device=h.device)[decay.pair.argmax(-1)]
        if torch.is_tensor(cluster):
            return h, pids
        return h.cpu().numpy(), pids.cpu().numpy().astype(np.int32)

    def sample(self, cluster, parton=None, parton_pid=None, perturbative=None, charge=None,
               generator: torch.Generator | None = None):
        """(n, 2, 4) hadron four-momenta in GeV for clusters (n, 4) in GeV (see :meth:`sample_with_pid`)."""
        return self.sample_with_pid(cluster, parton, parton_pid, perturbative, charge, generator)[0]

    def sample_dataset(self, ds, seed: int = 0, charge_from_hadrons: bool = False):
        """(hadrons (n, 2, 4), pids (n, 2)) NumPy for every cluster of a cluster Dataset
        (``otviz.data.clusterset``), its constituents included; ``charge_from_hadrons``: the
        charge of the Dataset's own hadron pair where the partons do not give it."""
        pid = ds["parton_pid"].values * ds["parton_mask"].values
        charge = parton_charge(pid)
        if charge_from_hadrons:
            charge = np.where(np.isfinite(charge), charge, hadron_charge(ds["hadron_pid"].values))
        gen = torch.Generator().manual_seed(int(seed))
        return self.sample_with_pid(ds["cluster"].values, ds["parton"].values, pid, ds["perturbative"].values,
                                    charge, generator=gen)
