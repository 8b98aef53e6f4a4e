"""Four-vectors stored as (px, py, pz, E) in GeV, natural units.

Every function works on both NumPy arrays and torch tensors: the array namespace is picked from
the input (``_ns``). NumPy arrays go through scikit-hep ``vector`` (``MomentumNumpy4D``) for the
(px, py, pz, E) ↔ (pT, η, φ, m) conversions; torch tensors use the same formulas written out
below, so that they are differentiable (``tests/physics/test_fourvec.py`` checks both against
``vector``). The last axis holds the four components; leading axes broadcast. torch is imported
by whoever passes a tensor, never here, so NumPy users (the generator's Dask workers) do not pay
its import.

Conventions
    pT  = sqrt(px² + py²)
    η   = asinh(pz / pT)                 (pseudorapidity; ±inf along the beam, NaN for p = 0)
    φ   = atan2(py, px) ∈ (-π, π]
    m²  = E² − |p|²                      (clipped at 0 for m)
    px, py, pz = pT cos φ, pT sin φ, pT sinh η   (OTUS Eq. 9)
    E   = sqrt(|p|² + m²)                (OTUS Eq. 10, the "Minkowski layer")
"""
from __future__ import annotations

import math
import sys

import numpy as np

COMPONENTS = ("px", "py", "pz", "E")
PTETAPHIM = ("pt", "eta", "phi", "m")


def _torch():
    """The torch module if it has been imported (a tensor can only exist then), else None."""
    return sys.modules.get("torch")


def _is_tensor(x) -> bool:
    torch = _torch()
    return torch is not None and isinstance(x, torch.Tensor)


def _ns(x):
    """The array namespace of ``x``: ``torch`` for tensors, ``numpy`` otherwise."""
    return _torch() if _is_tensor(x) else np


def _stack(xp, parts):
    return xp.stack(parts, -1)


def _asarray(x):
    """Tensors and array-likes with NumPy ufunc support (ndarray, awkward) pass through."""
    if _is_tensor(x) or hasattr(x, "__array_ufunc__"):
        return x
    return np.asarray(x, dtype=float)


def _vector(p4):
    """A NumPy (…, 4) array as a ``vector`` MomentumNumpy4D, or None for tensors and other
    array types (awkward), which use the written-out formulas."""
    if type(p4) is not np.ndarray or p4.dtype.kind != "f":
        return None
    import vector

    return vector.array({"px": p4[..., 0], "py": p4[..., 1], "pz": p4[..., 2], "E": p4[..., 3]})


def pt(p4):
    """Transverse momentum sqrt(px² + py²)."""
    p4 = _asarray(p4)
    v = _vector(p4)
    if v is not None:
        return np.asarray(v.pt)
    xp = _ns(p4)
    return xp.sqrt(p4[..., 0] ** 2 + p4[..., 1] ** 2)


def phi(p4):
    """Azimuth atan2(py, px) in (-π, π]."""
    p4 = _asarray(p4)
    v = _vector(p4)
    if v is not None:
        return np.asarray(v.phi)
    xp = _ns(p4)
    return xp.arctan2(p4[..., 1], p4[..., 0])


def _eta_numpy(v, p4):
    out = np.asarray(v.eta, dtype=p4.dtype)
    null = (p4[..., 0] == 0) & (p4[..., 1] == 0) & (p4[..., 2] == 0)
    return np.where(null, np.nan, out) if null.any() else out


def eta(p4):
    """Pseudorapidity asinh(pz / pT); ±inf along the beam axis (pT = 0), NaN for p = 0."""
    p4 = _asarray(p4)
    v = _vector(p4)
    if v is not None:
        return _eta_numpy(v, p4)
    xp = _ns(p4)
    with np.errstate(divide="ignore", invalid="ignore"):
        return xp.arcsinh(p4[..., 2] / pt(p4))


def mass2(p4):
    """m² = E² − |p|² (can be slightly negative from rounding)."""
    p4 = _asarray(p4)
    return p4[..., 3] ** 2 - (p4[..., 0] ** 2 + p4[..., 1] ** 2 + p4[..., 2] ** 2)


def mass(p4):
    """m = sqrt(max(E² − |p|², 0))."""
    p4 = _asarray(p4)
    v = _vector(p4)
    if v is not None:  # vector gives −sqrt(|m²|) for space-like vectors
        return np.clip(np.asarray(v.mass), 0.0, None)
    m2 = mass2(p4)
    xp = _ns(m2)
    return xp.sqrt(xp.clip(m2, 0.0, None))


def to_ptetaphim(p4):
    """(px, py, pz, E) → (pT, η, φ, m) along the last axis."""
    p4 = _asarray(p4)
    v = _vector(p4)
    if v is not None:
        return np.stack([np.asarray(v.pt), _eta_numpy(v, p4), np.asarray(v.phi),
                         np.clip(np.asarray(v.mass), 0.0, None)], -1)
    return _stack(_ns(p4), [pt(p4), eta(p4), phi(p4), mass(p4)])


def from_ptetaphim(pt_, eta_, phi_, m=0.0):
    """(pT, η, φ, m) → (px, py, pz, E); ``m`` broadcasts (0 for massless objects)."""
    pt_ = _asarray(pt_)
    xp = _ns(pt_)
    if xp is np:
        import vector

        pt_, eta_, phi_, m = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (pt_, eta_, phi_, m)))
        v = vector.array({"pt": pt_, "eta": eta_, "phi": phi_, "mass": m})
        return np.stack([np.asarray(v.px), np.asarray(v.py), np.asarray(v.pz), np.asarray(v.E)], -1)
    px = pt_ * xp.cos(phi_)
    py = pt_ * xp.sin(phi_)
    pz = pt_ * xp.sinh(eta_)
    p3 = _stack(xp, [px, py, pz])
    return minkowski(p3, m)


def minkowski_energy(p3, m=0.0, eps: float = 1e-12):
    """E = sqrt(|p|² + m²) for 3-momenta on the last axis (OTUS Eq. 10).

    Differentiable everywhere: ``eps`` keeps the gradient finite at p = 0, m = 0.
    """
    p3 = _asarray(p3)
    xp = _ns(p3)
    if xp is not np:
        m = xp.as_tensor(m, dtype=p3.dtype, device=p3.device)
    return xp.sqrt((p3 ** 2).sum(-1) + m ** 2 + eps)


def minkowski(p3, m=0.0):
    """Append E = sqrt(|p|² + m²) to 3-momenta: (..., 3) → (..., 4) on the mass shell."""
    p3 = _asarray(p3)
    xp = _ns(p3)
    e = minkowski_energy(p3, m)
    return xp.cat([p3, e[..., None]], -1) if xp is not np else np.concatenate([p3, e[..., None]], -1)


def total(p4, axis: int = -2):
    """Sum of four-vectors over the particle axis (default the one before the components)."""
    return _asarray(p4).sum(axis)


def invariant_mass(p4, axis: int = -2):
    """Invariant mass of the system of all particles along ``axis``: m(Σ p_i)."""
    return mass(total(p4, axis))


def wrap_phi(dphi):
    """Wrap an angle difference into [-π, π)."""
    dphi = _asarray(dphi)
    xp = _ns(dphi)
    return xp.remainder(dphi + math.pi, 2 * math.pi) - math.pi


def delta_r(eta1, phi1, eta2, phi2):
    """ΔR = sqrt(Δη² + Δφ²) with Δφ wrapped into [-π, π)."""
    deta = _asarray(eta1) - eta2
    xp = _ns(deta)
    return xp.sqrt(deta ** 2 + wrap_phi(_asarray(phi1) - phi2) ** 2)


def reference_frame(ref):
    """The azimuth φ_ref and the sign s = ±1 of p_z of reference four-vectors ref (..., 4): the
    frame in which ref lies in the x–z half-plane px ≥ 0, py = 0, pz ≥ 0 (see :func:`to_frame`)."""
    ref = _asarray(ref)
    xp = _ns(ref)
    phi_ref = xp.arctan2(ref[..., 1], ref[..., 0])
    sign = xp.where(ref[..., 2] < 0, -1.0, 1.0)
    if xp is not np:
        sign = sign.to(ref.dtype)
    return phi_ref, sign


def to_frame(p4, phi_ref, sign, inverse: bool = False):
    """Rotate four-vectors p4 (..., P, 4) about the beam by −φ_ref and reflect p_z by ``sign``
    (φ_ref, sign of shape (...)), or undo it (``inverse``):
    px' = cos φ px + sin φ py, py' = −sin φ px + cos φ py, pz' = s pz, E' = E.
    Both are symmetries of a pp collision and of a detector symmetric in φ and η: masses, pT and |η|
    are unchanged. A new array; the input is never modified."""
    p4 = _asarray(p4)
    xp = _ns(p4)
    c, s = xp.cos(phi_ref)[..., None], xp.sin(phi_ref)[..., None]
    if inverse:
        s = -s
    sign = sign[..., None]
    px, py, pz, e = p4[..., 0], p4[..., 1], p4[..., 2], p4[..., 3]
    return _stack(xp, [c * px + s * py, -s * px + c * py, sign * pz, e])
