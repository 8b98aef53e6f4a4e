"""A jet tagger whose 128-d latent space is the target of OT calibration ("Mind the Gap", issue 14).

A Particle Flow Network (Komiske, Metodiev, Thaler, "Energy Flow Networks: Deep Sets for Particle
Jets", JHEP 01 (2019) 121, Eq. 1.2): a permutation-invariant function of the jet's constituents,

    z₁₂₈ = F( Σ_{i=1}^{N} Φ(f_i) ),

with per-particle features, from the (pT, η, φ) constituents of a jet centred on its axis
(``otviz.data.pythia.centre_constituents``: Δη = η, Δφ = φ),

    f_i = ( log pT_i/GeV,  pT_i / Σ_j pT_j,  Δη_i,  Δφ_i ),

standardised per feature with the μ and σ of the training jets' real particles (buffers, saved
with the weights). Zero-padded slots (pT = 0) are masked: Φ(f_i) is multiplied by m_i = [pT_i > 0]
before the sum, so padding and the order of the particles do not change z₁₂₈.

Φ and F are MLPs with GELU activations (Φ's output activated too, as in the PFN); F's last layer
is a Linear to 128: z₁₂₈ is that pre-activation output, the first 128-d layer of the head as in "Mind the Gap". The rest of the
head, as there,

    z'₁₂₈ = W₂ GELU(z₁₂₈) + b₂          (Linear 128 → 128)
    logit = w₃ · GELU(z'₁₂₈) + b₃       (Linear 128 → 1),   score = σ(logit) = P(signal | jet),

is :meth:`PFNTagger.head_from_latent`, which applies equally to a *calibrated* latent T(z₁₂₈):
calibrate z₁₂₈, push it through the rest of the head. :func:`tagger_latents` and
:func:`tagger_outputs_from_latent` are the array-in, array-out versions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

LATENT = 128  # the calibration target's dimension (z₁₂₈, z'₁₂₈)
N_FEATURES = 4  # log pT, pT/ΣpT, Δη, Δφ
FEATURE_NAMES = ("log_pt", "pt_fraction", "deta", "dphi")


@dataclass
class TaggerModelConfig:
    phi_hidden: tuple[int, ...] = (100, 100)  # Φ's hidden widths (PFN: 100, 100)
    phi_out: int = 128  # the per-particle embedding's dimension ℓ (PFN: 128)
    f_hidden: tuple[int, ...] = (100, 100)  # F's hidden widths before the Linear to z₁₂₈

    BOUNDS: ClassVar[dict[str, tuple]] = {"phi_out": (1, 4096)}

    def __post_init__(self):
        self.phi_hidden, self.f_hidden = tuple(self.phi_hidden), tuple(self.f_hidden)
        self.validate()

    def validate(self) -> "TaggerModelConfig":
        from ..errors import ConfigError, check_bounds

        check_bounds(self)
        for name in ("phi_hidden", "f_hidden"):
            widths = getattr(self, name)
            if not all(isinstance(w, int) and not isinstance(w, bool) and 1 <= w <= 4096 for w in widths):
                raise ConfigError(f"TaggerModelConfig.{name} = {list(widths)!r}: must be a list of widths in 1 … 4096",
                                  name, list(widths), "1 … 4096 each", reason="must be a list of widths in 1 … 4096")
        return self

    @classmethod
    def from_dict(cls, d):
        return cls(**dict(d))


def mlp(n_in: int, widths, n_out: int) -> nn.Sequential:
    """Linear → GELU through ``widths``, then Linear to ``n_out`` (no activation after it)."""
    mods, n = [], n_in
    for w in widths:
        mods += [nn.Linear(n, w), nn.GELU()]
        n = w
    mods.append(nn.Linear(n, n_out))
    return nn.Sequential(*mods)


def particle_features(jets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(f, mask) of centred jets (B, N, 3) of (pT, η, φ): f (B, N, 4) = (log pT, pT/ΣpT, Δη, Δφ),
    zero on padded slots; mask (B, N) float, 1 where pT > 0."""
    pt, eta, phi = jets[..., 0], jets[..., 1], jets[..., 2]
    real = pt > 0
    mask = real.to(jets.dtype)
    ht = (pt * mask).sum(1, keepdim=True).clamp_min(torch.finfo(jets.dtype).tiny)
    log_pt = torch.where(real, torch.log(torch.where(real, pt, torch.ones_like(pt))), torch.zeros_like(pt))
    f = torch.stack([log_pt, pt * mask / ht, eta * mask, phi * mask], -1)
    return f, mask


class PFNTagger(nn.Module):
    """Particle Flow Network W-vs-QCD tagger: ``latent(jets)`` → z₁₂₈, ``head_from_latent(z)`` →
    z'₁₂₈, logit, score; ``forward(jets)`` → logit. Jets are (B, N, 3) of (pT [GeV], η, φ)."""

    def __init__(self, cfg: TaggerModelConfig | None = None):
        super().__init__()
        cfg = cfg or TaggerModelConfig()
        self.config = cfg
        self.phi = nn.Sequential(mlp(N_FEATURES, cfg.phi_hidden, cfg.phi_out), nn.GELU())  # Φ: activated output
        self.f = mlp(cfg.phi_out, cfg.f_hidden, LATENT)  # F: its last Linear gives z₁₂₈
        self.head_hidden = nn.Linear(LATENT, LATENT)  # z₁₂₈ → z'₁₂₈ (after a GELU)
        self.head_out = nn.Linear(LATENT, 1)  # z'₁₂₈ → logit (after a GELU)
        self.register_buffer("feature_mean", torch.zeros(N_FEATURES))
        self.register_buffer("feature_std", torch.ones(N_FEATURES))

    @torch.no_grad()
    def fit_standardisation(self, jets: torch.Tensor) -> None:
        """μ and σ of each feature over the real particles of ``jets``."""
        f, mask = particle_features(torch.as_tensor(jets, dtype=torch.float32))
        real = f[mask > 0].double()
        self.feature_mean.copy_(real.mean(0))
        self.feature_std.copy_(real.std(0).clamp_min(1e-6))

    def _as_jets(self, jets) -> torch.Tensor:
        p = next(self.parameters())
        jets = torch.as_tensor(np.asarray(jets) if not torch.is_tensor(jets) else jets, dtype=p.dtype, device=p.device)
        if jets.ndim != 3 or jets.shape[-1] != 3:
            raise ValueError(f"PFNTagger: jets must be (B, N, 3) of (pT, eta, phi); got shape {tuple(jets.shape)}")
        return jets

    def latent(self, jets) -> torch.Tensor:
        """z₁₂₈ = F(Σ_i m_i Φ(f_i)) of jets (B, N, 3) → (B, 128)."""
        jets = self._as_jets(jets)
        f, mask = particle_features(jets)
        f = (f - self.feature_mean) / self.feature_std
        pooled = (self.phi(f) * mask[..., None]).sum(1)
        return self.f(pooled)

    def head_from_latent(self, z128: torch.Tensor) -> dict[str, torch.Tensor]:
        """The head after z₁₂₈ (a tagger's latent, or a calibrated one): ``z128p`` = z'₁₂₈ (B, 128),
        ``logit`` (B,) and ``score`` = σ(logit) (B,)."""
        z128p = self.head_hidden(nn.functional.gelu(z128))
        logit = self.head_out(nn.functional.gelu(z128p)).squeeze(-1)
        return {"z128p": z128p, "logit": logit, "score": torch.sigmoid(logit)}

    def forward(self, jets) -> torch.Tensor:
        """The logit (B,) of P(signal | jet)."""
        return self.head_from_latent(self.latent(jets))["logit"]


def _batches(n: int, batch: int):
    for i in range(0, n, batch):
        yield slice(i, min(i + batch, n))


def tagger_latents(model: PFNTagger, jets, batch: int = 4096) -> np.ndarray:
    """z₁₂₈ (n, 128) float32 of jets (n, N, 3) of (pT, η, φ), in batches, without gradients; trailing
    slots that are padding in every jet of a batch are dropped (they change nothing)."""
    jets = np.asarray(jets, dtype=np.float32)
    out = np.empty((len(jets), LATENT), dtype=np.float32)
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            for s in _batches(len(jets), batch):
                b = jets[s]
                real = np.flatnonzero((b[..., 0] > 0).any(0))
                n = int(real[-1]) + 1 if real.size else 1
                out[s] = model.latent(b[:, :n]).cpu().numpy()
    finally:
        model.train(was)
    return out


def tagger_outputs_from_latent(model: PFNTagger, z128, batch: int = 65536) -> dict[str, np.ndarray]:
    """The head applied to latents z₁₂₈ (n, 128), e.g. calibrated ones: ``z128p`` (n, 128) and
    ``score`` (n,), float32 numpy arrays."""
    z128 = np.asarray(z128, dtype=np.float32)
    if z128.ndim != 2 or z128.shape[1] != LATENT:
        raise ValueError(f"tagger_outputs_from_latent: z128 must be (n, {LATENT}); got shape {z128.shape}")
    p = next(model.parameters())
    z128p = np.empty_like(z128)
    score = np.empty(len(z128), dtype=np.float32)
    with torch.no_grad():
        for s in _batches(len(z128), batch):
            h = model.head_from_latent(torch.as_tensor(z128[s], dtype=p.dtype, device=p.device))
            z128p[s] = h["z128p"].cpu().numpy()
            score[s] = h["score"].cpu().numpy()
    return {"z128p": z128p, "score": score}
