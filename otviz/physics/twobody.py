"""Exact two-body decay kinematics: the Källén function, rest-frame momenta, Lorentz boosts and
decay angles, for any masses. NumPy arrays and torch tensors alike (differentiable in torch).

Four-vectors are (px, py, pz, E) in GeV on the last axis (``otviz.physics.fourvec``).

Formulas
    λ(a, b, c) = a² + b² + c² − 2ab − 2bc − 2ca                      (Källén function)
    p*(M; m1, m2) = sqrt(λ(M², m1², m2²)) / (2M)                      (daughter momentum at rest)
    E1* = (M² + m1² − m2²) / (2M),  E2* = (M² − m1² + m2²) / (2M)
    boost of a rest-frame vector (p*, E*) by a parent (P, E_P) of mass M:
        E = (E_P E* + P·p*) / M,   p = p* + P [ P·p* / (M (E_P + M)) + E* / M ]

HadML's public code takes the pion mass 100× too small and boosts with p₀/2, exact only for
equal masses (REFERENCE §5); here both daughters get their own energies E1*, E2* and the boost is
the exact one above, so the decay conserves four-momentum for any (M, m1, m2) with M ≥ m1 + m2.

Angles (θ, φ) are those of daughter 1 in the parent's rest frame, reached from the lab by the pure
boost above, measured in a right-handed frame whose z axis is ``axis`` (default: the lab z axis;
``helicity_axis`` gives the parent's flight direction) and whose x axis lies in the plane of z and
the lab z axis (the lab x axis when they are parallel).
"""
from __future__ import annotations

from otviz.physics.fourvec import _asarray, _ns


def kallen(a, b, c):
    """λ(a, b, c) = a² + b² + c² − 2ab − 2bc − 2ca."""
    return a * a + b * b + c * c - 2 * a * b - 2 * b * c - 2 * c * a


def rest_momentum(M, m1, m2):
    """|p*| of either daughter in the rest frame of a parent of mass M: sqrt(λ(M², m1², m2²))/(2M).

    Clipped at 0 below threshold (M < m1 + m2 has no physical decay; callers check it).
    """
    M = _asarray(M)
    xp = _ns(M)
    lam = kallen(M * M, m1 * m1, m2 * m2)
    return xp.sqrt(xp.clip(lam, 0.0, None)) / (2 * M)


def _dot3(a, b):
    return (a[..., :3] * b[..., :3]).sum(-1)


def boost_from_rest(p_rest, parent):
    """The lab four-vector of ``p_rest`` given in the rest frame of ``parent`` (both (…, 4))."""
    p_rest, parent = _asarray(p_rest), _asarray(parent)
    xp = _ns(parent)
    M = xp.sqrt(xp.clip(parent[..., 3] ** 2 - (parent[..., :3] ** 2).sum(-1), 1e-300, None))
    Ep = parent[..., 3]
    pdot = _dot3(parent, p_rest)
    E = (Ep * p_rest[..., 3] + pdot) / M
    coef = pdot / (M * (Ep + M)) + p_rest[..., 3] / M
    p3 = p_rest[..., :3] + parent[..., :3] * coef[..., None]
    return xp.concatenate([p3, E[..., None]], -1)


def boost_to_rest(p_lab, parent):
    """``p_lab`` in the rest frame of ``parent`` (the inverse of :func:`boost_from_rest`)."""
    parent = _asarray(parent)
    flipped = parent * _sign_flip(parent)
    return boost_from_rest(p_lab, flipped)


def _sign_flip(p4):
    xp = _ns(p4)
    if xp.__name__ == "numpy":
        return xp.array([-1.0, -1.0, -1.0, 1.0], dtype=p4.dtype)
    return xp.tensor([-1.0, -1.0, -1.0, 1.0], dtype=p4.dtype, device=p4.device)


def _unit(v, eps=1e-30):
    xp = _ns(v)
    return v / xp.sqrt(xp.clip((v * v).sum(-1, keepdims=True), eps, None))


def frame(axis):
    """Orthonormal (x', y', z') for z' = ``axis`` (…, 3): x' in the plane of z' and the lab z axis
    (the lab x axis when z' is along the beam), y' = z' × x'. Returns a (…, 3, 3) array of rows."""
    axis = _asarray(axis)
    xp = _ns(axis)
    z = _unit(axis)
    ez = xp.zeros_like(z)
    ez[..., 2] = 1.0
    ex = xp.zeros_like(z)
    ex[..., 0] = 1.0
    along = xp.abs((z * ez).sum(-1, keepdims=True)) > 1 - 1e-9
    ref = xp.where(along, ex, ez)
    x = _unit(ref - (ref * z).sum(-1, keepdims=True) * z)
    y = xp.stack([z[..., 1] * x[..., 2] - z[..., 2] * x[..., 1],
                  z[..., 2] * x[..., 0] - z[..., 0] * x[..., 2],
                  z[..., 0] * x[..., 1] - z[..., 1] * x[..., 0]], -1)
    return xp.stack([x, y, z], -2)


def direction(cos_theta, phi, axis=None):
    """Unit 3-vectors at polar angle θ and azimuth φ about ``axis`` (None: the lab z axis)."""
    cos_theta = _asarray(cos_theta)
    xp = _ns(cos_theta)
    sin_theta = xp.sqrt(xp.clip(1 - cos_theta * cos_theta, 0.0, None))
    local = xp.stack([sin_theta * xp.cos(phi), sin_theta * xp.sin(phi), cos_theta], -1)
    if axis is None:
        return local
    f = frame(axis)  # rows x', y', z'
    return (local[..., :, None] * f).sum(-2)


def angles(v, axis=None):
    """(cos θ, φ) of 3-vectors ``v`` about ``axis`` (None: the lab z axis), φ ∈ (−π, π]."""
    v = _unit(_asarray(v)[..., :3])
    xp = _ns(v)
    if axis is not None:
        f = frame(axis)
        v = (f * v[..., None, :]).sum(-1)
    return xp.clip(v[..., 2], -1.0, 1.0), xp.arctan2(v[..., 1], v[..., 0])


def decay_at_rest(M, m1, m2, cos_theta, phi, axis=None):
    """Daughter four-vectors (…, 2, 4) in the parent rest frame: daughter 1 along (θ, φ) about
    ``axis``, daughter 2 back to back, energies E1* and E2* from the masses."""
    M = _asarray(M)
    xp = _ns(M)
    p = rest_momentum(M, m1, m2)
    n = direction(cos_theta, phi, axis)
    E1 = (M * M + m1 * m1 - m2 * m2) / (2 * M)
    E2 = (M * M - m1 * m1 + m2 * m2) / (2 * M)
    p1 = n * p[..., None]
    d1 = xp.concatenate([p1, E1[..., None] + 0 * p1[..., :1]], -1)
    d2 = xp.concatenate([-p1, E2[..., None] + 0 * p1[..., :1]], -1)
    return xp.stack([d1, d2], -2)


def two_body_decay(parent, m1, m2, cos_theta, phi, axis=None):
    """Lab four-vectors (…, 2, 4) of the decay parent → 1 + 2 with daughter 1 at (θ, φ) about
    ``axis`` in the parent rest frame (``axis`` given in that rest frame; None: lab-aligned z).

    Exact for any masses: Σ daughters = parent to rounding whenever M ≥ m1 + m2.
    """
    parent = _asarray(parent)
    xp = _ns(parent)
    M = xp.sqrt(xp.clip(parent[..., 3] ** 2 - (parent[..., :3] ** 2).sum(-1), 1e-300, None))
    rest = decay_at_rest(M, m1, m2, cos_theta, phi, axis)
    return boost_from_rest(rest, parent[..., None, :])


def helicity_axis(parent):
    """The parent's flight direction (…, 3): the z axis of the helicity frame in its rest frame
    (a pure boost along it leaves it unchanged)."""
    return _asarray(parent)[..., :3]


def decay_angles(daughter, parent, axis=None):
    """(cos θ, φ) of ``daughter`` in the rest frame of ``parent`` about ``axis`` (a rest-frame
    3-vector; None: lab-aligned z; ``helicity_axis(parent)`` for the helicity frame)."""
    rest = boost_to_rest(daughter, parent)
    return angles(rest[..., :3], axis)
