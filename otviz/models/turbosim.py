"""Turbo-Sim: a generalised autoencoder whose latent space is the parton-level space
(Quétant et al., arXiv 2112.10629; the slides of seed 003), with the wiring its text describes.

Encoder E: x → z̃ (unfolding) and decoder D: z → x̃ (fast simulation), each an MLP on the
per-feature standardised four-vectors (the published 24 → [256, 128, 64] → 24 for tt̄, 8-d for
Z→ee) that outputs standardised 3-momenta; the Minkowski layer E = sqrt(|p|² + m²) (OTUS Eq. 10)
with the masses of ``otviz.physics.masses`` puts every output particle on its mass shell, as in
OTUS. Stochasticity ("random noise is added to the input of both the encoder and the decoder"):
Gaussian noise of standard deviation ``input_noise`` added to the standardised input — a new
tensor, never the caller's (the public code's in-place noise corrupted its targets) — and, with
``noise_dim`` > 0, that many N(0, 1) inputs concatenated to it.

Four critics C_z̃, C_ẑ, C_x̃, C_x̂ (MLPs [256, 128, 64] → 1 on the standardised four-vectors) score
the four generated marginals against the data's for the WGAN-GP terms of
:mod:`otviz.losses.turbosim`. With ``critic_masses`` = k ≥ 2 (otviz's addition; 0 is the
published critic) each critic of ``critic_mass_spaces`` (default x: C_x̃, C_x̂) also sees log(1 + m/GeV) of the invariant mass of every combination
of 2 … k particles of its space and of all of them (standardised on the training sample): a
resonance mass is a square root of a difference of squares of the inputs, which an MLP on
four-vectors learns only roughly, and the masses are what the physics of a tt̄ event is built on.
(On the parton side the W and top masses are nearly sharp: standardised, a few GeV off is many σ,
and in a 60-epoch tt̄ pilot those z critics swamped the encoder — KS of p_z(b) 0.18 — hence x only.)

With ``canonical_frame`` (otviz's addition) each map acts in the frame of its input's first
particle (the electron in the tt̄ and Z→ee spaces): the event is rotated about the beam to put it at
φ = 0 and reflected to give it p_z ≥ 0, mapped, and turned back (:class:`Mapper`). A pp collision and
a detector symmetric in φ and η are invariant under both, so the true maps are equivariant; this
makes the learned ones exactly so, and their output marginals inherit the input's symmetry (the
unfolded b quark's p_z median was 16 GeV off zero without it in the stop-22 run).

Standardisation is per feature (the public code used one scalar mean and std for all 24
features): μ and σ of each flattened component, fitted on the training sample by
``fit_standardisation`` and stored in the model's buffers (saved with its weights), so
``load_run`` rebuilds the exact map. ``encode``/``decode`` take and return raw GeV tensors
(events, particles, 4), like OTUS.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..physics import fourvec as fv
from ..physics.masses import mass_of
from .otus import CONSTANT_STD, fit_standardisation, sort_by_pt

CRITICS = ("z_tilde", "z_hat", "x_tilde", "x_hat")  # C_z̃ (E(x)), C_ẑ (E(D(z))), C_x̃ (D(z)), C_x̂ (D(E(x)))
CRITIC_SPACE = {"z_tilde": "z", "z_hat": "z", "x_tilde": "x", "x_hat": "x"}


@dataclass
class TurboSimModelConfig:
    z_particles: tuple[str, ...] = ("e-", "e+")
    x_particles: tuple[str, ...] = ("e-", "e+")
    hidden: tuple[int, ...] = (256, 128, 64)  # encoder and decoder hidden widths (published)
    critic_hidden: tuple[int, ...] = (256, 128, 64)  # the four critics' hidden widths (published)
    noise_dim: int = 0  # N(0, 1) inputs concatenated to the standardised input
    input_noise: float = 0.0  # σ of the Gaussian noise added to the standardised input
    input_residual: bool = False  # add the input 3-momenta (slot i → slot i) to the output
    out_init_scale: float = 1.0  # scales the initial last layer (small: start near the identity with input_residual)
    masses: dict[str, float] | None = None  # name → GeV for the Minkowski layer; missing: the table's
    pt_order: tuple[str, ...] = ()  # x particles the decoder outputs in decreasing pT (the detector's jet order)
    critic_masses: int = 0  # ≥ 2: the critics also see the masses of all 2 … k-particle combinations (0: published)
    critic_mass_spaces: tuple[str, ...] = ("x",)  # whose critics see them: x (C_x̃, C_x̂) and/or z (C_z̃, C_ẑ)
    canonical_frame: bool = False  # E and D act in the frame of their input's first particle (otviz's addition)

    BOUNDS: ClassVar[dict[str, tuple]] = {"noise_dim": (0, 1024), "input_noise": (0.0, 10.0),
                                          "out_init_scale": (0.0, 10.0), "critic_masses": (0, 64)}

    def __post_init__(self):
        self.z_particles, self.x_particles = tuple(self.z_particles), tuple(self.x_particles)
        self.pt_order = tuple(self.pt_order)
        self.critic_mass_spaces = tuple(self.critic_mass_spaces)
        self.hidden, self.critic_hidden = tuple(self.hidden), tuple(self.critic_hidden)
        self.validate()
        given = dict(self.masses or {})
        try:
            self.masses = {n: float(given[n]) if n in given else mass_of(n)
                           for n in dict.fromkeys((*self.z_particles, *self.x_particles))}
        except KeyError as exc:
            raise ValueError(f"TurboSimModelConfig: {exc.args[0]}; give its mass in masses={{name: GeV}}") from None

    def validate(self) -> "TurboSimModelConfig":
        from ..errors import ConfigError, check_bounds

        check_bounds(self)
        for name in ("z_particles", "x_particles"):
            parts = getattr(self, name)
            if not parts or not all(isinstance(p, str) and p for p in parts):
                raise ConfigError(f"TurboSimModelConfig.{name} = {parts!r}: must be a non-empty list of particle "
                                  "names", name)
        for name in ("hidden", "critic_hidden"):
            widths = getattr(self, name)
            if not widths or not all(isinstance(w, int) and not isinstance(w, bool) and 1 <= w <= 4096 for w in widths):
                raise ConfigError(f"TurboSimModelConfig.{name} = {list(widths)!r}: must be a non-empty list of "
                                  "widths in 1 … 4096", name, list(widths), "1 … 4096 each")
        for name in self.pt_order:
            if name not in self.x_particles:
                raise ConfigError(f"TurboSimModelConfig.pt_order: {name!r} is not an x particle {list(self.x_particles)}",
                                  "pt_order", name)
        if not set(self.critic_mass_spaces) <= {"x", "z"}:
            raise ConfigError(f"TurboSimModelConfig.critic_mass_spaces = {list(self.critic_mass_spaces)!r}: "
                              "x and/or z", "critic_mass_spaces", list(self.critic_mass_spaces), "x, z")
        if self.critic_masses == 1:
            raise ConfigError("TurboSimModelConfig.critic_masses = 1: a mass needs at least 2 particles (0: off)",
                              "critic_masses", 1, "0 or 2 … 64")
        if not isinstance(self.canonical_frame, bool):
            raise ConfigError(f"TurboSimModelConfig.canonical_frame = {self.canonical_frame!r}: must be true or false",
                              "canonical_frame", self.canonical_frame, "true, false")
        if self.input_residual and len(self.z_particles) != len(self.x_particles):
            raise ConfigError("TurboSimModelConfig.input_residual: needs as many z as x particles", "input_residual")
        return self

    def particle_masses(self, space: str) -> list[float]:
        return [self.masses[n] for n in (self.z_particles if space == "z" else self.x_particles)]

    @classmethod
    def from_dict(cls, d):
        return cls(**dict(d))


def mlp(n_in: int, n_out: int, widths) -> nn.Sequential:
    """Linear → ReLU through ``widths``, then Linear to ``n_out``."""
    mods, n = [], n_in
    for w in widths:
        mods += [nn.Linear(n, w), nn.ReLU()]
        n = w
    mods.append(nn.Linear(n, n_out))
    return nn.Sequential(*mods)


class Mapper(nn.Module):
    """One direction, raw four-vectors (B, P_in, 4) → raw four-vectors (B, P_out, 4):
    ū = (u − μ_u)/σ_u (per feature), ū + input_noise·N(0, 1), [ū, ε] → MLP → w̄,
    w = μ_v + σ_v·w̄ (or p_u + σ_v·w̄ with the input residual), E = sqrt(|w|² + m²).

    With ``canonical_frame`` the map is M(u) = F⁻¹ M₀(F u), F the rotation about the beam by −φ
    of the input's first particle (the electron in both tt̄ and Z→ee spaces) and the reflection
    p_z → −p_z when its p_z < 0 (:func:`otviz.physics.fourvec.to_frame`). A pp collision and the
    detector are symmetric under both, so the true p(x|z) and p(z|x) are equivariant; this makes
    the learned maps exactly equivariant (for the same noise), and their output marginals then
    inherit the input's symmetry in φ and under p_z → −p_z instead of learning it from 50k events.
    The standardisation is the one fitted in the raw frame: inside the frame it only sets each
    feature's scale, and the standardised inputs stay of order one (the electron's p_y is then 0)."""

    def __init__(self, n_in: int, n_out: int, cfg: TurboSimModelConfig, out_masses):
        super().__init__()
        self.cfg, self.n_in, self.n_out = cfg, n_in, n_out
        self.net = mlp(4 * n_in + cfg.noise_dim, 3 * n_out, cfg.hidden)
        if cfg.out_init_scale != 1.0:
            with torch.no_grad():
                self.net[-1].weight.mul_(cfg.out_init_scale)
                self.net[-1].bias.mul_(cfg.out_init_scale)
        self.register_buffer("in_mean", torch.zeros(4 * n_in))
        self.register_buffer("in_std", torch.ones(4 * n_in))
        self.register_buffer("out_mean", torch.zeros(3 * n_out))
        self.register_buffer("out_std", torch.ones(3 * n_out))
        self.register_buffer("out_mass", torch.as_tensor(out_masses, dtype=torch.float32).clone())

    def fit_standardisation(self, u: torch.Tensor, v: torch.Tensor):
        """Per-feature μ, σ of the raw training samples u (B, P_in, 4) and of v's 3-momenta."""
        fit_standardisation(self, u, v)

    def standardise(self, u: torch.Tensor) -> torch.Tensor:
        """(u − μ_u)/σ_u flattened to (B, 4·P_in): a new tensor."""
        return (u.reshape(u.shape[0], -1) - self.in_mean) / self.in_std

    def forward(self, u: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if not self.cfg.canonical_frame:
            return self._map(u, generator)
        phi_ref, sign = fv.reference_frame(u[:, 0])
        return fv.to_frame(self._map(fv.to_frame(u, phi_ref, sign), generator), phi_ref, sign, inverse=True)

    def _map(self, u: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        b = u.shape[0]
        ubar = self.standardise(u)
        if self.cfg.input_noise:
            ubar = ubar + self.cfg.input_noise * torch.randn(ubar.shape, generator=generator, device=ubar.device,
                                                             dtype=ubar.dtype)
        if self.cfg.noise_dim:
            eps = torch.randn((b, self.cfg.noise_dim), generator=generator, device=ubar.device, dtype=ubar.dtype)
            ubar = torch.cat([ubar, eps], 1)
        wbar = self.net(ubar)
        base = u[..., :3].reshape(b, -1) if self.cfg.input_residual else self.out_mean
        w = base + wbar * self.out_std
        constant = self.out_std <= CONSTANT_STD * 1.001  # constant in the training data (MET p_z ≡ 0)
        if bool(constant.any()):
            w = torch.where(constant, self.out_mean, w)
        return fv.minkowski(w.reshape(b, self.n_out, 3), self.out_mass)


def mass_combinations(n_particles: int, k_max: int) -> torch.Tensor:
    """(C, P) 0/1 matrix: one row per combination of 2 … ``k_max`` of the ``n_particles`` particles
    (in itertools order), then the row of all of them (unless already listed); empty when k_max < 2."""
    if k_max < 2 or n_particles < 2:
        return torch.zeros((0, n_particles))
    rows = [c for k in range(2, min(k_max, n_particles) + 1) for c in itertools.combinations(range(n_particles), k)]
    if len(rows[-1]) < n_particles:
        rows.append(tuple(range(n_particles)))
    m = torch.zeros((len(rows), n_particles))
    for i, c in enumerate(rows):
        m[i, list(c)] = 1.0
    return m


def log_combination_masses(p4: torch.Tensor, combos: torch.Tensor) -> torch.Tensor:
    """log(1 + m/GeV) of the summed four-vector of each combination: p4 (B, P, 4), combos (C, P) →
    (B, C). m = sqrt(max(E² − |p|², 0) + 10⁻⁶ GeV²) keeps the gradient finite at m = 0 (there
    ∂m/∂m² = 500 GeV⁻¹)."""
    tot = torch.einsum("cp,bpk->bck", combos.to(p4.dtype), p4)
    m2 = tot[..., 3].pow(2) - tot[..., :3].pow(2).sum(-1)
    return torch.log1p(torch.sqrt(m2.clamp_min(0.0) + 1e-6))


def _momenta(features: torch.Tensor) -> torch.Tensor:
    """(B, 4·P) standardised (px, py, pz, E) per particle → (B, 3·P) without E."""
    return features.reshape(features.shape[0], -1, 4)[..., :3].reshape(features.shape[0], -1)


class TurboSim(nn.Module):
    """Encoder x → z̃, decoder z → x̃ and the four critics. No restricted decoder (``acceptance``
    is None): the trainer and ``otviz evaluate`` treat it like an unrestricted OTUS model."""

    acceptance = None
    KS_GOAL = {"goal_model": "Turbo-Sim", "component_cap": None}  # its KS-table goal (otviz.metrics.ks_table)

    def __init__(self, cfg: TurboSimModelConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        nz, nx = len(cfg.z_particles), len(cfg.x_particles)
        self.encoder = Mapper(nx, nz, cfg, cfg.particle_masses("z"))
        self.decoder = Mapper(nz, nx, cfg, cfg.particle_masses("x"))
        self._ordered = [list(cfg.x_particles).index(n) for n in cfg.pt_order]
        for space, n in (("z", nz), ("x", nx)):
            combos = mass_combinations(n, cfg.critic_masses if space in cfg.critic_mass_spaces else 0)
            self.register_buffer(f"{space}_combos", combos)
            if len(combos):  # only then: models saved without the option load unchanged
                self.register_buffer(f"{space}_mass_mean", torch.zeros(len(combos)))
                self.register_buffer(f"{space}_mass_std", torch.ones(len(combos)))
        self.critics = nn.ModuleDict({name: mlp(self._critic_width(CRITIC_SPACE[name]), 1, cfg.critic_hidden)
                                      for name in CRITICS})

    def _critic_width(self, space: str) -> int:
        n = len(self.cfg.z_particles if space == "z" else self.cfg.x_particles)
        return 4 * n + len(getattr(self, f"{space}_combos"))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for space in ("z", "x"):  # the combination matrices are fixed by the config
            state_dict.setdefault(prefix + f"{space}_combos", getattr(self, f"{space}_combos"))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def fit_standardisation(self, x: torch.Tensor, z: torch.Tensor):
        """Per-feature standardisation of both directions from the training sample (marginals)."""
        self.encoder.fit_standardisation(x, z)
        self.decoder.fit_standardisation(z, x)
        for space, a in (("z", z), ("x", x)):
            combos = getattr(self, f"{space}_combos")
            if len(combos):
                lm = log_combination_masses(torch.as_tensor(a, dtype=torch.float32), combos).double()
                getattr(self, f"{space}_mass_mean").copy_(lm.mean(0))
                getattr(self, f"{space}_mass_std").copy_(lm.std(0).clamp_min(1e-6))

    def critic_features(self, space: str, a: torch.Tensor) -> torch.Tensor:
        """What the critics of ``space`` (z or x) see of raw four-vectors a (B, P, 4): the standardised
        four-vectors, then (``critic_masses``) the standardised log masses of the combinations."""
        feats = self.z_features(a) if space == "z" else self.x_features(a)
        combos = getattr(self, f"{space}_combos")
        if not len(combos):
            return feats
        lm = log_combination_masses(a, combos)
        lm = (lm - getattr(self, f"{space}_mass_mean")) / getattr(self, f"{space}_mass_std")
        return torch.cat([feats, lm], 1)

    def x_features(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised flattened x four-vectors (B, 4·P_x): the space of the x losses and critics."""
        return self.encoder.standardise(x)

    def z_features(self, z: torch.Tensor) -> torch.Tensor:
        """Standardised flattened z four-vectors (B, 4·P_z)."""
        return self.decoder.standardise(z)

    def x_momenta(self, x: torch.Tensor) -> torch.Tensor:
        """The standardised 3-momenta of x (B, 3·P_x): the space of the x MSE terms (E is a
        function of p on the mass shell; in the MSE it would weigh |p| twice and bias the regression)."""
        return _momenta(self.x_features(x))

    def z_momenta(self, z: torch.Tensor) -> torch.Tensor:
        """The standardised 3-momenta of z (B, 3·P_z)."""
        return _momenta(self.z_features(z))

    def critic(self, name: str, a: torch.Tensor) -> torch.Tensor:
        """C_name on raw four-vectors a (B, P, 4) → scores (B,)."""
        return self.critics[name](self.critic_features(CRITIC_SPACE[name], a))[:, 0]

    def generator_parameters(self):
        return [*self.encoder.parameters(), *self.decoder.parameters()]

    def critic_parameters(self):
        return list(self.critics.parameters())

    def encode(self, x, generator=None) -> torch.Tensor:
        """Unfolding: x (B, P_x, 4) GeV → z̃ (B, P_z, 4) GeV."""
        return self.encoder(self._as_tensor(x), generator)

    def decode(self, z, generator=None) -> torch.Tensor:
        """Fast simulation: z (B, P_z, 4) GeV → x̃ (B, P_x, 4) GeV, the ``pt_order`` slots sorted
        by decreasing pT (as the detector orders its jets; the sort is a permutation, so every
        output keeps its gradient)."""
        return sort_by_pt(self.decoder(self._as_tensor(z), generator), self._ordered)

    def _as_tensor(self, a):
        p = self.encoder.in_mean
        return torch.as_tensor(a, dtype=p.dtype, device=p.device)
