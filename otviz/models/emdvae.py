"""EMD-VAE (Collins): a VAE on jets as weighted point clouds with an EMD reconstruction loss.

Jets are (B, N, 3) arrays of (pT/H_T, η, φ), zero-padded. The encoder is permutation invariant
(a Particle Flow Network): per-particle layers on (pT/H_T, η, cos φ, sin φ), a sum over the real
particles divided by √width, dense layers, heads μ and log σ². The decoder is dense and outputs
N particles: pT/H_T = softmax over particles, η linear, φ = atan2(c₃, c₂). LeakyReLU(0.1).

    L = EMD²(x, ρ(z)) / (2β²) + KL(N(μ, σ²) ‖ N(0, 1)),   z = μ + σ·ε

(seed Eq. 1; :mod:`otviz.losses.emdvae`). ``EMDVAEConfig.paper()`` gives the published sizes (4 × 1024 per-particle, 4 × 1024
dense, 5 × 1024 decoder, latent 256); the default is a small network that trains on a CPU.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn



@dataclass
class EMDVAEConfig:
    n_particles: int = 50
    latent: int = 32
    width: int = 128
    particle_layers: int = 2
    encoder_layers: int = 2
    decoder_layers: int = 3
    # per-feature standardisation of the encoder inputs, fitted on the training jets (see
    # EMDVAE.fit_standardisation); False: raw (pT/H_T, η, cos φ, sin φ) as in the paper's code
    standardise_inputs: bool = True

    # field → inclusive (min, max) (otviz.errors.check_bounds; also the dashboard's widget bounds)
    BOUNDS: ClassVar[dict[str, tuple]] = {"n_particles": (1, 500), "latent": (1, 256), "width": (1, 1024),
                                          "particle_layers": (1, 8), "encoder_layers": (1, 8),
                                          "decoder_layers": (1, 8)}

    def __post_init__(self):
        self.validate()

    def validate(self) -> "EMDVAEConfig":
        """Raise :class:`otviz.errors.ConfigError` naming the first field out of range."""
        from ..errors import check_bounds

        check_bounds(self)
        return self

    @classmethod
    def paper(cls) -> "EMDVAEConfig":
        return cls(n_particles=50, latent=256, width=1024, particle_layers=4, encoder_layers=4, decoder_layers=5)

    def to_dict(self):
        return dataclasses.asdict(self)


def _stack(n_in, width, layers):
    mods, n = [], n_in
    for _ in range(layers):
        mods += [nn.Linear(n, width), nn.LeakyReLU(0.1)]
        n = width
    return nn.Sequential(*mods)


class EMDVAE(nn.Module):
    def __init__(self, cfg: EMDVAEConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or EMDVAEConfig()
        self.particle = _stack(4, cfg.width, cfg.particle_layers)
        self.dense = _stack(cfg.width, cfg.width, cfg.encoder_layers)
        self.mu = nn.Linear(cfg.width, cfg.latent)
        self.log_var = nn.Linear(cfg.width, cfg.latent)
        self.decoder = nn.Sequential(_stack(cfg.latent, cfg.width, cfg.decoder_layers),
                                     nn.Linear(cfg.width, cfg.n_particles * 4))
        # encoder input standardisation f̄ = (f − m)/s per feature of (pT/H_T, η, cos φ, sin φ);
        # identity until fit_standardisation (and for runs saved before it existed)
        self.register_buffer("in_mean", torch.zeros(4))
        self.register_buffer("in_std", torch.ones(4))

    @staticmethod
    def features(jets: torch.Tensor) -> torch.Tensor:
        """Per-particle encoder inputs (pT/H_T, η, cos φ, sin φ): (B, N, 3) → (B, N, 4)."""
        pt, eta, phi = jets[..., 0], jets[..., 1], jets[..., 2]
        return torch.stack([pt, eta, torch.cos(phi), torch.sin(phi)], -1)

    @torch.no_grad()
    def fit_standardisation(self, jets: torch.Tensor):
        """Set ``in_mean``/``in_std`` to the mean and standard deviation of each encoder input
        feature over the real (pT > 0) particles of ``jets``. Without it a direction of small
        spread (a narrow η or φ distribution, the cos φ ≈ 1 of centred jets) reaches the
        network as a tiny input, and the saddle at which the VAE leaves it unencoded is so
        flat that training never escapes it (the Hessian's negative eigenvalue scales with the
        input variance; seed 001 appendix A.3 gives the loss). Features with no spread keep s = 1."""
        if not self.cfg.standardise_inputs:
            return self
        jets = torch.as_tensor(jets, dtype=self.in_mean.dtype, device=self.in_mean.device)
        f = self.features(jets)[jets[..., 0] > 0].double()
        mean, std = f.mean(0), f.std(0)
        self.in_mean.copy_(mean)
        self.in_std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))
        return self

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """As :meth:`nn.Module.load_state_dict`; weights saved before the input standardisation
        existed load with the identity (their model never standardised)."""
        state_dict = dict(state_dict)
        state_dict.setdefault("in_mean", torch.zeros(4))
        state_dict.setdefault("in_std", torch.ones(4))
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def posterior(self, jets: torch.Tensor):
        """(μ, log σ²) of q(z|x) for jets (B, N, 3) of (pT/H_T, η, φ)."""
        jets = torch.as_tensor(jets, dtype=self.mu.weight.dtype, device=self.mu.weight.device)
        pt = jets[..., 0]
        feats = (self.features(jets) - self.in_mean) / self.in_std
        h = self.particle(feats) * (pt > 0).unsqueeze(-1).to(feats.dtype)  # padding contributes nothing
        h = self.dense(h.sum(1) / math.sqrt(self.cfg.width))
        return self.mu(h), self.log_var(h)

    def encode(self, jets, sample: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """Latent coordinates: the posterior mean, or a sample z = μ + σ·ε."""
        mu, log_var = self.posterior(jets)
        if not sample:
            return mu
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * log_var) * eps

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Jets (B, N, 3) of (pT/H_T, η, φ): weights sum to 1, φ ∈ (−π, π]."""
        latent = torch.as_tensor(latent, dtype=self.mu.weight.dtype, device=self.mu.weight.device)
        c = self.decoder(latent).reshape(len(latent), self.cfg.n_particles, 4)
        pt = torch.softmax(c[..., 0], dim=1)
        return torch.stack([pt, c[..., 1], torch.atan2(c[..., 3], c[..., 2])], -1)
