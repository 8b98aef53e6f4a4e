"""The EMD-VAE objective (Collins, seed Eq. 1):

    L = ⟨EMD²(x, ρ(z))⟩ / (2β²) + Σ_k KL_k,   KL_k = KL(N(μ_k, σ_k²) ‖ N(0, 1)),   z = μ + σ·ε

with exact (POT) or Sinkhorn EMDs between jets as (pT/H_T, η, φ) point clouds (:mod:`otviz.ot.emd`).
The rate R = Σ_k KL_k and distortion D = ⟨EMD²⟩ are what D₁, D₂ differentiate.
"""
from __future__ import annotations

import torch

from ..models.emdvae import EMDVAE
from ..ot.emd import emd


def kl_per_dimension(mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, 1)) per latent dimension, averaged over the batch: (latent,)."""
    return 0.5 * (mu ** 2 + log_var.exp() - log_var - 1.0).mean(0)


def emdvae_loss(model: EMDVAE, jets: torch.Tensor, beta: float, backend: str = "auto",
                generator: torch.Generator | None = None, R: float = 1.0):
    """Return (loss, terms): loss = mean EMD²/(2β²) + Σ KL; terms holds the mean EMD², the rate
    R = Σ_k KL_k, the distortion D = mean EMD² and the per-dimension KL (a tensor)."""
    jets = torch.as_tensor(jets, dtype=model.mu.weight.dtype, device=model.mu.weight.device)
    mu, log_var = model.posterior(jets)
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    recon = model.decode(mu + torch.exp(0.5 * log_var) * eps)
    d = emd(jets[..., 0], jets[..., 1:], recon[..., 0], recon[..., 1:], backend=backend, R=R)
    dist = (d ** 2).mean()
    kl = kl_per_dimension(mu, log_var)
    rate = kl.sum()
    loss = dist / (2 * beta ** 2) + rate
    return loss, {"loss": float(loss.detach()), "distortion": float(dist.detach()), "rate": float(rate.detach()),
                  "kl_per_dim": kl.detach()}
