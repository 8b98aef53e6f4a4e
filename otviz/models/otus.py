"""OTUS: a sliced-Wasserstein autoencoder whose latent space is the parton-level space.

Encoder E: x → z (unfolding) and decoder D: z → x (fast detector simulation) are both
implicit conditional generators (OTUS §6.2.2). For a map u → v:

1. standardise the input four-vectors: ū = (u − μ_u)/σ_u (flattened, per feature);
2. noise: ε = μ(ū) + σ(ū)·N(0, 1) from a noise network (σ = softplus, last bias = 1 so the
   noise starts wide), or fixed ε ~ N(0, 1) (the tt̄ variant, §6.2.3);
3. core network on [ū, ε] → w̄, the standardised 3-momenta of the output particles
   (an MLP, or Linear → 2×[BatchNorm, ReLU, Linear] + skip → Linear for the tt̄ variant);
4. un-standardise w = μ_v + σ_v·w̄, or with the input-to-output residual w = p_u + σ_v·w̄
   (p_u: the input 3-momenta paired to the output slots by ``residual_pairing``, below;
   ``out_init_scale`` < 1 shrinks the core's initial last layer, so that training starts near
   the identity map p_u with a little noise — components start at their floor; 0 is the exact
   identity, from which the noise amplitude gets no gradient); an output component constant in
   the training data (σ_v = 0: MET p_z) is set to that constant;
5. Minkowski layer: E = sqrt(|p|² + m²) with the output particles' masses (OTUS Eq. 10), taken
   from ``OTUSConfig.masses`` (by particle name, default the table ``otviz.physics.masses``:
   electrons 0.511 MeV, jets and MET 0, b quarks 4.7 GeV), never from the data.

Restricted decoder (OTUS §6.3.2, Eq. 16): ``OTUSConfig.acceptance`` (:class:`AcceptanceCuts`,
persisted with the config) defines the valid region S of x space; ``OTUS.accepts(x)`` is 1_S(x)
and the loss weights the data term by 1_S(x̃)/P_D(S) (Eq. 17–19, ``otviz.losses.otus``).
``OTUSConfig.pt_order`` (an otviz addition, off by default) names x particles whose slots the
decoder fills in decreasing pT, as the detector orders its jets.

``OTUSConfig.residual_pairing`` (an otviz addition) chooses which input particle's 3-momentum
each output slot's residual p_u starts from: ``"slot"`` (default) input slot i → output slot i;
``"ttbar"`` the physical pairing of semileptonic tt̄ (z = e⁻ ν̄ b b̄ u d̄, x = e⁻ MET jet1..4):
decoder e⁻ → e⁻, ν̄ → MET, the four quarks in decreasing pT → jet1..jet4; encoder e⁻ → e⁻,
MET → ν̄, and the jets by the χ² assignment of ``otviz.physics.ttbar.reconstruct_ttbar`` (the
electron makes t̄ → b̄ e⁻ ν̄ leptonic): leptonic b jet → b̄, hadronic b jet → b, the higher-pT W
jet → u, the other → d̄. The permutations carry no gradient; the 3-momenta they pick do. It
acts on the generators with ``input_residual`` only.

``encode``/``decode`` take and return raw GeV tensors shaped (events, particles, 4).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from ..physics import fourvec as fv
from ..physics.masses import mass_of


CONSTANT_STD = 1e-6  # an output component whose training spread is below this is that constant (MET p_z = 0)


@dataclass
class GeneratorConfig:
    hidden: int = 128
    layers: int = 1  # hidden layers of the MLP core
    conditional_noise: bool = True  # False: ε ~ N(0, 1) (tt̄ variant)
    noise_dim: int | None = None  # None: the output dimension (3 × particles)
    residual_core: bool = False  # Linear → 2×[BN, ReLU, Linear] + skip → Linear
    input_residual: bool = False  # add the input 3-momenta to the output (needs equal particle counts)
    out_init_scale: float = 1.0  # scales the initial weights of the core's last layer (0 with input_residual: identity)

    # field → inclusive (min, max) (otviz.errors.check_bounds; also the dashboard's widget bounds)
    BOUNDS: ClassVar[dict[str, tuple]] = {"hidden": (1, 4096), "layers": (0, 16), "noise_dim": (1, 4096)}

    def __post_init__(self):
        self.validate()

    def validate(self) -> "GeneratorConfig":
        from ..errors import check_bounds

        check_bounds(self)
        return self


@dataclass
class Cut:
    """Every particle of ``particles`` must have pT > ``pt_min`` (GeV) and |η| < ``eta_max``."""

    particles: tuple[str, ...]
    pt_min: float = 0.0
    eta_max: float | None = None  # None: no η cut

    def __post_init__(self):
        self.particles = tuple(self.particles)
        if not self.particles or not all(isinstance(p, str) and p for p in self.particles):
            raise ValueError(f"Cut.particles = {self.particles!r}: must be a non-empty list of particle names")
        if not (isinstance(self.pt_min, (int, float)) and self.pt_min >= 0):
            raise ValueError(f"Cut.pt_min = {self.pt_min!r}: must be a number ≥ 0 (GeV)")
        if self.eta_max is not None and not (isinstance(self.eta_max, (int, float)) and self.eta_max > 0):
            raise ValueError(f"Cut.eta_max = {self.eta_max!r}: must be a number > 0 or null")


@dataclass
class AcceptanceCuts:
    """The valid region S of a restricted decoder (OTUS §6.3.2, Eq. 16): an event is in S when
    it passes every cut. Default: the tt̄ selection (lepton pT > 10 GeV, |η| < 2.5; four jets
    pT > 20 GeV, |η| < 4.5)."""

    cuts: tuple[Cut, ...] = field(default_factory=lambda: (Cut(("e-",), 10.0, 2.5),
                                                           Cut(("jet1", "jet2", "jet3", "jet4"), 20.0, 4.5)))

    def __post_init__(self):
        self.cuts = tuple(c if isinstance(c, Cut) else Cut(**c) for c in self.cuts)

    def mask(self, x: torch.Tensor, particles) -> torch.Tensor:
        """1_S(x) as a bool tensor (B,) for raw x (B, P, 4) whose particles are ``particles``."""
        names = list(particles)
        ok = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        for c in self.cuts:
            p = x[:, [names.index(n) for n in c.particles]]
            ok &= (fv.pt(p) > c.pt_min).all(1)
            if c.eta_max is not None:
                ok &= (fv.eta(p).abs() < c.eta_max).all(1)
        return ok


@dataclass
class OTUSConfig:
    z_particles: tuple[str, ...] = ("e-", "e+")
    x_particles: tuple[str, ...] = ("e-", "e+")
    encoder: GeneratorConfig = field(default_factory=GeneratorConfig)
    decoder: GeneratorConfig = field(default_factory=GeneratorConfig)
    # particle name → mass in GeV for the Minkowski layer; names not given (or None: all) are
    # filled from the table otviz.physics.masses at construction, so config.json records them
    masses: dict[str, float] | None = None
    acceptance: AcceptanceCuts | None = None  # restricted decoder: the valid region S of x (None: all of x)
    pt_order: tuple[str, ...] = ()  # x particles the decoder outputs in decreasing pT (e.g. the jets)
    residual_pairing: str = "slot"  # input-to-output residual pairing: "slot" (i → i) | "ttbar" (physical)

    RESIDUAL_PAIRINGS: ClassVar[tuple[str, ...]] = ("slot", "ttbar")

    def __post_init__(self):
        self.check_residual_pairing()
        if isinstance(self.acceptance, dict):
            self.acceptance = AcceptanceCuts(**self.acceptance)
        self.pt_order = tuple(self.pt_order)
        for name in {n for c in (self.acceptance.cuts if self.acceptance else ()) for n in c.particles} | set(self.pt_order):
            if name not in self.x_particles:
                raise ValueError(f"OTUSConfig.acceptance/pt_order: {name!r} is not an x particle {list(self.x_particles)}")
        given = dict(self.masses or {})
        names = dict.fromkeys((*self.z_particles, *self.x_particles))
        try:
            self.masses = {n: float(given[n]) if n in given else mass_of(n) for n in names}
        except KeyError as exc:
            raise ValueError(f"OTUSConfig: {exc.args[0]}; give its mass in masses={{name: GeV}}") from None

    def check_residual_pairing(self) -> None:
        """Raise :class:`otviz.errors.ConfigError` naming ``residual_pairing`` when it is not one of
        ``RESIDUAL_PAIRINGS``, or is ``"ttbar"`` with particles other than the tt̄ layout's."""
        from ..errors import ConfigError, check_choice
        from ..physics.ttbar import X_PARTICLES, Z_PARTICLES

        check_choice("OTUSConfig", "residual_pairing", self.residual_pairing, self.RESIDUAL_PAIRINGS)
        if self.residual_pairing == "ttbar" and (sorted(self.z_particles) != sorted(Z_PARTICLES)
                                                 or sorted(self.x_particles) != sorted(X_PARTICLES)):
            raise ConfigError(f"OTUSConfig.residual_pairing = 'ttbar': needs z particles {list(Z_PARTICLES)} and x "
                              f"particles {list(X_PARTICLES)} (any order), got {list(self.z_particles)} and "
                              f"{list(self.x_particles)}", "residual_pairing", self.residual_pairing,
                              reason="needs the tt̄ particles")

    def particle_masses(self, space: str) -> list[float]:
        """Masses (GeV) of the particles of ``space`` ("z" or "x"), in order."""
        return [self.masses[n] for n in (self.z_particles if space == "z" else self.x_particles)]

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        """From ``to_dict`` output; configs written before ``masses`` (``acceptance``,
        ``pt_order``, ``residual_pairing``) existed get the table's (no restriction, no
        ordering, ``"slot"``)."""
        d = dict(d)
        d["z_particles"] = tuple(d["z_particles"])
        d["x_particles"] = tuple(d["x_particles"])
        d["encoder"] = GeneratorConfig(**d["encoder"])
        d["decoder"] = GeneratorConfig(**d["decoder"])
        return cls(**d)


@torch.no_grad()
def fit_standardisation(gen: nn.Module, u: torch.Tensor, v: torch.Tensor) -> None:
    """Per-feature μ, σ of raw u (B, P_in, 4) and of v's 3-momenta into the buffers ``in_mean``,
    ``in_std``, ``out_mean``, ``out_std`` of a generator (OTUS's and Turbo-Sim's)."""
    uf = u.reshape(len(u), -1).double()
    vf = v[..., :3].reshape(len(v), -1).double()
    gen.in_mean.copy_(uf.mean(0))
    gen.in_std.copy_(uf.std(0).clamp_min(1e-6))
    gen.out_mean.copy_(vf.mean(0))
    gen.out_std.copy_(vf.std(0).clamp_min(CONSTANT_STD))


def sort_by_pt(x: torch.Tensor, slots) -> torch.Tensor:
    """x (B, P, 4) with the particles at indices ``slots`` reordered by decreasing pT (as a
    detector orders its jets); a permutation, so every output keeps its gradient."""
    if len(slots) < 2:
        return x
    idx = torch.tensor(list(slots), device=x.device)
    part = x[:, idx]
    order = torch.argsort(fv.pt(part), dim=1, descending=True)
    x = x.clone()
    x[:, idx] = torch.gather(part, 1, order[..., None].expand(-1, -1, 4))
    return x


def mlp(n_in, n_out, hidden, layers):
    mods, n = [], n_in
    for _ in range(layers):
        mods += [nn.Linear(n, hidden), nn.ReLU()]
        n = hidden
    mods.append(nn.Linear(n, n_out))
    return nn.Sequential(*mods)


class ResidualCore(nn.Module):
    """(A) Linear(n_in → K); (B) 2 × [BatchNorm, ReLU, Linear(K, K)]; (C) skip; (D) Linear(K → J)."""

    def __init__(self, n_in, n_out, hidden):
        super().__init__()
        self.inp = nn.Linear(n_in, hidden)
        self.block = nn.Sequential(
            nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, hidden),
            nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, hidden),
        )
        self.out = nn.Linear(hidden, n_out)

    def forward(self, u):
        r = self.inp(u)
        return self.out(self.block(r) + r)


class ConditionalGenerator(nn.Module):
    """One direction of OTUS: raw four-vectors (B, P_in, 4) → raw four-vectors (B, P_out, 4).

    ``out_masses``: the output particles' masses in GeV (Minkowski layer E = sqrt(|p|² + m²),
    OTUS Eq. 10); kept in the ``out_mass`` buffer, which ``fit_standardisation`` leaves alone."""

    def __init__(self, n_in_particles: int, n_out_particles: int, cfg: GeneratorConfig, out_masses=None):
        super().__init__()
        self.cfg = cfg
        self.n_in, self.n_out = n_in_particles, n_out_particles
        d_in, d_out = 4 * n_in_particles, 3 * n_out_particles
        self.noise_dim = cfg.noise_dim or d_out
        if cfg.input_residual and n_in_particles != n_out_particles:
            raise ValueError("input_residual needs the same number of input and output particles")
        if cfg.conditional_noise:
            self.noise_net = mlp(d_in, 2 * self.noise_dim, cfg.hidden, 1)
            with torch.no_grad():
                self.noise_net[-1].bias[self.noise_dim:].fill_(1.0)  # σ = softplus(1) ≈ 1.3 at start
        else:
            self.noise_net = None
        n_core_in = d_in + self.noise_dim
        self.core = ResidualCore(n_core_in, d_out, cfg.hidden) if cfg.residual_core else mlp(n_core_in, d_out, cfg.hidden, cfg.layers)
        if cfg.out_init_scale != 1.0:
            last = self.core.out if cfg.residual_core else self.core[-1]
            with torch.no_grad():
                last.weight.mul_(cfg.out_init_scale)
                last.bias.mul_(cfg.out_init_scale)
        self.register_buffer("in_mean", torch.zeros(d_in))
        self.register_buffer("in_std", torch.ones(d_in))
        self.register_buffer("out_mean", torch.zeros(d_out))
        self.register_buffer("out_std", torch.ones(d_out))
        masses = torch.zeros(n_out_particles) if out_masses is None else torch.as_tensor(out_masses, dtype=torch.float32)
        if masses.shape != (n_out_particles,):
            raise ValueError(f"out_masses: expected {n_out_particles} masses, got {tuple(masses.shape)}")
        self.register_buffer("out_mass", masses.clone())

    def fit_standardisation(self, u: torch.Tensor, v: torch.Tensor):
        """Set the input/output standardisation from raw samples u (B, P_in, 4), v (B, P_out, 4).
        In OTUS both come from the (unpaired) training marginals. The output masses are not
        touched: they come from the config's mass table, not from the data."""
        fit_standardisation(self, u, v)

    def noise(self, ubar, generator=None):
        shape = (ubar.shape[0], self.noise_dim)
        eps = torch.randn(shape, generator=generator, device=ubar.device, dtype=ubar.dtype)
        if self.noise_net is None:
            return eps
        h = self.noise_net(ubar)
        mu, s = h[:, : self.noise_dim], h[:, self.noise_dim:]
        return mu + F.softplus(s) * eps

    def forward(self, u: torch.Tensor, generator: torch.Generator | None = None,
                residual: torch.Tensor | None = None) -> torch.Tensor:
        """``residual``: the 3-momenta p_u (B, P_out, 3) that the input-to-output residual adds
        to, in output order (default: the input's own, slot i → slot i); only with ``input_residual``."""
        b = u.shape[0]
        if residual is not None and not self.cfg.input_residual:
            raise ValueError("ConditionalGenerator: a residual was given but input_residual is off")
        ubar = (u.reshape(b, -1) - self.in_mean) / self.in_std
        wbar = self.core(torch.cat([ubar, self.noise(ubar, generator)], 1))
        if self.cfg.input_residual:
            base = u[..., :3] if residual is None else residual
            if base.shape != (b, self.n_out, 3):
                raise ValueError(f"residual: expected shape {(b, self.n_out, 3)}, got {tuple(base.shape)}")
            w = base.reshape(b, -1) + wbar * self.out_std
        else:
            w = self.out_mean + wbar * self.out_std
        constant = self.out_std <= CONSTANT_STD * 1.001  # constant in the training data (MET p_z ≡ 0)
        if bool(constant.any()):
            w = torch.where(constant, self.out_mean, w)
        return fv.minkowski(w.reshape(b, self.n_out, 3), self.out_mass)


class OTUS(nn.Module):
    """Encoder x → z and decoder z → x, with the restricted-decoder acceptance of its config.

    ``acceptance``: ``OTUS.accepts`` (raw x (B, P, 4) → bool mask of the events in S) when the
    config has ``acceptance`` cuts, else None; the loss then weights the data term by
    1_S(x̃)/P_D(S) (Eq. 17–19). Built from the config only, so ``load_run`` rebuilds it.
    """

    KS_GOAL = {"goal_model": "OTUS", "component_cap": 3.0}  # its KS-table goal (otviz.metrics.ks_table)

    def __init__(self, cfg: OTUSConfig):
        super().__init__()
        self.cfg = cfg
        nz, nx = len(cfg.z_particles), len(cfg.x_particles)
        self.encoder = ConditionalGenerator(nx, nz, cfg.encoder, cfg.particle_masses("z"))
        self.decoder = ConditionalGenerator(nz, nx, cfg.decoder, cfg.particle_masses("x"))
        self.acceptance: Callable[[torch.Tensor], torch.Tensor] | None = self.accepts if cfg.acceptance else None
        self._ordered = [list(cfg.x_particles).index(n) for n in cfg.pt_order]
        cfg.check_residual_pairing()  # the config may have been changed after construction
        self._ttbar = None
        if cfg.residual_pairing == "ttbar":
            from ..physics.ttbar import X_PARTICLES, Z_PARTICLES

            zi, xi = list(cfg.z_particles).index, list(cfg.x_particles).index
            # z slots in the order (e⁻, ν̄, b, b̄, u, d̄), x slots in the order (e⁻, MET, jet1..4)
            self._ttbar = ([zi(n) for n in Z_PARTICLES], [xi(n) for n in X_PARTICLES])

    def accepts(self, x) -> torch.Tensor:
        """1_S(x): bool (B,) of the raw x events (B, P_x, 4) in the valid region (all True without cuts)."""
        x = self._as_tensor(x)
        if self.cfg.acceptance is None:
            return torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        return self.cfg.acceptance.mask(x, self.cfg.x_particles)

    @torch.no_grad()
    def p_accept(self, z, generator=None) -> float:
        """P_D(S) ≈ (1/M) Σ 1_S(D(z_m)) (Eq. 19) on a sample z (B, P_z, 4) GeV."""
        return float(self.accepts(self.decode(z, generator)).double().mean())

    def fit_standardisation(self, x: torch.Tensor, z: torch.Tensor):
        self.encoder.fit_standardisation(x, z)
        self.decoder.fit_standardisation(z, x)

    def encode(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        """Unfolding: x (B, P_x, 4) GeV → a sample of z (B, P_z, 4) GeV."""
        x = self._as_tensor(x)
        return self.encoder(x, generator, self.encoder_residual(x))

    def decode(self, z: torch.Tensor, generator=None) -> torch.Tensor:
        """Fast simulation: z (B, P_z, 4) GeV → a sample of x (B, P_x, 4) GeV (the ``pt_order``
        slots sorted by decreasing pT)."""
        z = self._as_tensor(z)
        return sort_by_pt(self.decoder(z, generator, self.decoder_residual(z)), self._ordered)

    def decoder_residual(self, z: torch.Tensor) -> torch.Tensor | None:
        """The decoder's residual 3-momenta (B, P_x, 3) for ``residual_pairing="ttbar"`` (None:
        slot pairing): e⁻ → e⁻, ν̄ → MET, the quarks (b, b̄, u, d̄) sorted by decreasing pT →
        jet1..jet4. The order is computed without gradient; the momenta keep theirs."""
        if self._ttbar is None or not self.decoder.cfg.input_residual:
            return None
        (ze, znu, *quarks), (xe, xmet, *jets) = self._ttbar
        quarks_t = torch.tensor(quarks, device=z.device)
        with torch.no_grad():
            order = torch.argsort(fv.pt(z[:, quarks_t]), dim=1, descending=True)  # (B, 4) into quarks
        src = torch.empty(z.shape[0], len(self.cfg.x_particles), dtype=torch.long, device=z.device)
        src[:, xe], src[:, xmet] = ze, znu
        src[:, jets] = quarks_t[order]
        return torch.gather(z[..., :3], 1, src[..., None].expand(-1, -1, 3))

    def encoder_residual(self, x: torch.Tensor) -> torch.Tensor | None:
        """The encoder's residual 3-momenta (B, P_z, 3) for ``residual_pairing="ttbar"`` (None:
        slot pairing): e⁻ → e⁻, MET → ν̄; jets by the χ² assignment of ``reconstruct_ttbar``:
        leptonic b jet → b̄ (t̄ → b̄ e⁻ ν̄), hadronic b jet → b, higher-pT W jet → u, the other → d̄.
        The assignment is computed without gradient; the momenta keep theirs."""
        if self._ttbar is None or not self.encoder.cfg.input_residual:
            return None
        from ..physics.ttbar import JET_ASSIGNMENTS, reconstruct_ttbar

        (ze, znu, zb, zbbar, zu, zdbar), (xe, xmet, *jets) = self._ttbar
        jets_t = torch.tensor(jets, device=x.device)
        with torch.no_grad():
            xl = x[:, self._ttbar[1]]  # the (e⁻, MET, jet1..4) layout reconstruct_ttbar reads
            best = reconstruct_ttbar(xl, return_assignment=True)["assignment"]
            a = torch.as_tensor(JET_ASSIGNMENTS, device=x.device)[best]  # (B, 4): b_lep, b_had, W jets
            pt = fv.pt(xl[:, 2:])
            w1_harder = torch.gather(pt, 1, a[:, 2:3])[:, 0] >= torch.gather(pt, 1, a[:, 3:4])[:, 0]
            w_u = torch.where(w1_harder, a[:, 2], a[:, 3])
            w_d = torch.where(w1_harder, a[:, 3], a[:, 2])
        src = torch.empty(x.shape[0], len(self.cfg.z_particles), dtype=torch.long, device=x.device)
        src[:, ze], src[:, znu] = xe, xmet
        src[:, zbbar], src[:, zb], src[:, zu], src[:, zdbar] = jets_t[a[:, 0]], jets_t[a[:, 1]], jets_t[w_u], jets_t[w_d]
        return torch.gather(x[..., :3], 1, src[..., None].expand(-1, -1, 3))

    def _as_tensor(self, a):
        p = self.encoder.in_mean
        return torch.as_tensor(a, dtype=p.dtype, device=p.device)
