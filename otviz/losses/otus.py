"""The OTUS objective (OTUS §6.3, Eq. 11–19).

For a batch x ~ p(x) and an *independent* batch z ~ p(z) (training never sees a pair):

    z̃ = E(x),  x̃ = D(z̃),  x̃′ = D(z)
    L = c(x, x̃) + λ·SW(z, z̃) + βE·c_A(x, z̃) + βD·c_A(z, x̃′) + τ·SW(x, x̃′)      (Eq. 12, 14)

and, semi-supervised (§7), + η·[c(xᵢ, D(zᵢ)) + c(zᵢ, E(xᵢ))] on known pairs (Eq. 20–21).

c(u, v) = ‖u − v‖² (mean over the batch), SW the sliced Wasserstein distance (Eq. 15) with L
directions redrawn every batch, c_A(u, v) = 1 − p̂_u·p̂_v on one particle's 3-momentum (Eq. 13).
With a restricted decoder (``model.acceptance``), the data term becomes
mean[1_S(x̃)·c(x, x̃)] / P_D(S) with P_D(S) ≈ mean 1_S(x̃′) (Eq. 17–19), and SW(x, x̃′) compares x
with the accepted x̃′ only (in both stages: SW(p(x), p̄_D(x)), §6.3.3). The batch's P_D(S)
estimate is returned as the term ``p_accept`` (the trainer's history averages it per epoch).

Distances are computed on the flattened four-vectors, in GeV or divided by the per-feature
standard deviation of the training data (``scale``), which balances px, py, pz and E.
Optionally (``mass_feature`` in the config, an otviz addition to the paper) the invariant mass
m of the particle system is appended as one more coordinate of every distance: the marginals of
px, py, pz, E alone constrain the e⁺e⁻ correlations, hence m_ee, only weakly. The coordinate is
the Cauchy (Breit–Wigner) CDF transform

    u(m) = (2/π)·atan((m − m₀)/γ) ∈ (−1, 1),   m₀ = median, γ = IQR/2 of the truth batch's m

(for a Breit–Wigner peak of half-width γ at m₀, u is uniform: the probability integral
transform). u resolves the peak on the scale of its width and keeps the far tails (m̂ > 60 GeV
reaches 60 GeV below the Z peak) from dominating the squared distances; m divided by its
standard deviation, as before, left SW blind to the m_ee width (measured, data/pretrained/README.md).
m₀ and γ come from the truth side of each distance (x for MSE(x, x̃) and SW(x, x̃′), z for
SW(z, z̃)) and the same transform is applied to both of its samples.
"""
from __future__ import annotations

import torch

from ..ot.sliced import sliced_wasserstein
from ..physics import fourvec as fv


def anchor_cost(u: torch.Tensor, v: torch.Tensor, iu: int, iv: int) -> torch.Tensor:
    """mean over the batch of 1 − cos between the 3-momenta of particle ``iu`` of u and ``iv`` of v."""
    pu, pv = u[:, iu, :3], v[:, iv, :3]
    cos = (pu * pv).sum(-1) / (pu.norm(dim=-1) * pv.norm(dim=-1)).clamp_min(1e-12)
    return (1.0 - cos).mean()


def mass_transform(truth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(m₀, γ) of the mass coordinate from a truth batch (B, P, 4): median and half the
    inter-quartile range of its invariant mass, without gradient."""
    with torch.no_grad():
        m = fv.invariant_mass(truth)
        q = torch.quantile(m.double(), torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64, device=m.device))
        return q[1].to(m.dtype), ((q[2] - q[0]) / 2).clamp_min(1e-6).to(m.dtype)


def features(a, scale, mass=None):
    """Flattened four-vectors divided by ``scale``; with ``mass`` = (m₀, γ), the invariant mass m
    of all particles (m_ee for Z→ee) is appended as u = (2/π)·atan((m − m₀)/γ)."""
    f = a.reshape(a.shape[0], -1) / scale
    if mass is None:
        return f
    m0, gamma = mass
    u = (2.0 / torch.pi) * torch.atan((fv.invariant_mass(a) - m0) / gamma)
    return torch.cat([f, u[:, None]], 1)


def otus_loss(model, x, z, stage, n_projections, generator, x_scale, z_scale, anchor_x: int, anchor_z: int,
              x_mass_scale=None, z_mass_scale=None, x_pair=None, z_pair=None, paired_weight: float = 1.0):
    """Return (total loss, dict of the terms as floats). ``x_scale``/``z_scale``: per-feature
    divisors (flattened 4×P) applied before the squared distances; ``*_mass_scale``: None turns
    the mass coordinate off; otherwise it is on, with m₀, γ from the truth batch
    (``mass_transform``; the value passed is not needed).

    Semi-supervised (OTUS §7, Eq. 20–21): ``x_pair``, ``z_pair`` (the same events) add
    paired_weight·(paired_x + paired_z), paired_x = mean c(xᵢ, D(zᵢ)) (Eq. 20) and
    paired_z = mean c(zᵢ, E(xᵢ)) (Eq. 21); the decoder fine-tune stage adds paired_x only."""
    b = x.shape[0]
    xm = None if x_mass_scale is None else mass_transform(x)
    zm = None if z_mass_scale is None else mass_transform(z)
    xs = lambda a: features(a, x_scale, xm)  # noqa: E731
    zs = lambda a: features(a, z_scale, zm)  # noqa: E731
    terms = {}
    x_prime = model.decode(z, generator)
    accept = getattr(model, "acceptance", None)
    if accept is not None:
        ok_prime = accept(x_prime)
        p_hat = ok_prime.float().mean()  # Eq. 19
        terms["p_accept"] = p_hat.detach()
    if stage.train == "decoder":
        xp = x_prime if accept is None else x_prime[ok_prime]
        n = min(len(xp), b)
        sw_x = sliced_wasserstein(xs(x[:n]), xs(xp[:n]), n_projections, generator)
        terms["sw_x"] = sw_x
        total = sw_x
    else:
        z_tilde = model.encode(x, generator)
        x_tilde = model.decode(z_tilde, generator)
        c = (xs(x) - xs(x_tilde)).pow(2).sum(1)
        if accept is not None:
            mse = (accept(x_tilde).float() * c).mean() / p_hat.clamp_min(1.0 / b)
        else:
            mse = c.mean()
        terms["mse"] = mse
        terms["sw_z"] = sliced_wasserstein(zs(z), zs(z_tilde), n_projections, generator)
        total = mse + stage.lam * terms["sw_z"]
        if stage.beta_e:
            terms["anchor_e"] = anchor_cost(x, z_tilde, anchor_x, anchor_z)
            total = total + stage.beta_e * terms["anchor_e"]
        if stage.beta_d:
            terms["anchor_d"] = anchor_cost(z, x_prime, anchor_z, anchor_x)
            total = total + stage.beta_d * terms["anchor_d"]
        if stage.tau:
            xp = x_prime if accept is None else x_prime[ok_prime]
            n = min(len(xp), b)
            terms["sw_x"] = sliced_wasserstein(xs(x[:n]), xs(xp[:n]), n_projections, generator)
            total = total + stage.tau * terms["sw_x"]
    if x_pair is not None and len(x_pair) and paired_weight:
        terms["paired_x"] = (xs(x_pair) - xs(model.decode(z_pair, generator))).pow(2).sum(1).mean()
        total = total + paired_weight * terms["paired_x"]
        if stage.train != "decoder":
            terms["paired_z"] = (zs(z_pair) - zs(model.encode(x_pair, generator))).pow(2).sum(1).mean()
            total = total + paired_weight * terms["paired_z"]
    terms["loss"] = total
    return total, {k: float(v.detach()) for k, v in terms.items()}
