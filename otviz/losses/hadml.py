"""HadML's adversarial objectives (seed 004; REFERENCE §5).

Non-saturating GAN (the paper's; v1 and v2), on discriminator logits d:

    L_D = E_real[softplus(−d)] + E_fake[softplus(d)]      (= BCE with labels 1 / 0)
    L_G = E_fake[softplus(−d)]                            (= −E log σ(d_fake), non-saturating)

WGAN-GP (v1 alternative, Gulrajani et al. 2017), on critic values f:

    L_D = E_fake[f] − E_real[f] + λ E_x̂[(‖∇_x̂ f(x̂)‖₂ − 1)²],  x̂ = u x_real + (1 − u) x_fake, u ~ U(0, 1)
    L_G = −E_fake[f]

BCE with an R1 penalty (Mescheder, Geiger, Nowozin 2018): L_D += γ/2 E_real ‖∇_x D(x)‖², which
damps the oscillations (and the azimuthal mode collapse) the plain objective shows on the toys.

Alternating steps: n_critic discriminator steps per generator step, Adam for both.
"""
from __future__ import annotations

import torch
from torch.nn.functional import softplus

LOSSES = ("bce", "wgan-gp")


def d_loss_bce(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """E softplus(−d_real) + E softplus(d_fake)."""
    return softplus(-d_real).mean() + softplus(d_fake).mean()


def g_loss_bce(d_fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss E softplus(−d_fake) = −E log σ(d_fake)."""
    return softplus(-d_fake).mean()


def gradient_penalty(critic, x_real: torch.Tensor, x_fake: torch.Tensor, generator=None) -> torch.Tensor:
    """E (‖∇f(x̂)‖₂ − 1)² on random interpolates of the (n, k) critic inputs."""
    u = torch.rand((len(x_real), 1), generator=generator).to(x_real.device, x_real.dtype)
    xh = (u * x_real + (1 - u) * x_fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(xh).sum(), xh, create_graph=True)
    return ((grad.norm(dim=1) - 1) ** 2).mean()


def r1_penalty(d_real: torch.Tensor, x_real: torch.Tensor) -> torch.Tensor:
    """R1 = E_real ‖∇_x D(x)‖² (Mescheder, Geiger, Nowozin 2018); ``x_real`` must require grad."""
    (grad,) = torch.autograd.grad(d_real.sum(), x_real, create_graph=True)
    return (grad * grad).sum(1).mean()


def d_loss_wgan(f_real: torch.Tensor, f_fake: torch.Tensor, gp: torch.Tensor, lam: float = 10.0) -> torch.Tensor:
    """E f_fake − E f_real + λ·gp."""
    return f_fake.mean() - f_real.mean() + lam * gp


def g_loss_wgan(f_fake: torch.Tensor) -> torch.Tensor:
    """−E f_fake."""
    return -f_fake.mean()
