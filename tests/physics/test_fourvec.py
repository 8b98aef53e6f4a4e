import math

import numpy as np
import pytest
import torch
import vector

from otviz.physics import fourvec as fv

MZ = 91.1876


def random_p4(n=1000, seed=0, massless=False):
    rng = np.random.default_rng(seed)
    pt = rng.exponential(40.0, n) + 1.0
    eta = rng.uniform(-4, 4, n)
    phi = rng.uniform(-math.pi, math.pi, n)
    m = np.zeros(n) if massless else rng.uniform(0, 20, n)
    return fv.from_ptetaphim(pt, eta, phi, m), (pt, eta, phi, m)


def test_mass_of_known_four_vectors():
    assert fv.mass(np.array([0.0, 0.0, 0.0, MZ])) == pytest.approx(MZ)
    # Z at rest decaying to massless e+e- back to back along an arbitrary axis
    n = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    e1 = np.r_[n * MZ / 2, MZ / 2]
    e2 = np.r_[-n * MZ / 2, MZ / 2]
    assert fv.invariant_mass(np.stack([e1, e2])) == pytest.approx(MZ, rel=1e-12)
    # the same pair boosted along z: the invariant mass is unchanged
    boost = vector.obj(px=0.0, py=0.0, pz=0.0, E=1.0)
    ve = [vector.obj(px=p[0], py=p[1], pz=p[2], E=p[3]).boostZ(beta=0.9) for p in (e1, e2)]
    boosted = np.array([[v.px, v.py, v.pz, v.E] for v in ve])
    assert fv.invariant_mass(boosted) == pytest.approx(MZ, rel=1e-9)
    del boost
    # top quark: a b quark and a W at rest-frame momentum from the Källén function
    mt, mb, mw = 172.76, 4.7, 80.379
    p = math.sqrt((mt**2 - (mb + mw) ** 2) * (mt**2 - (mb - mw) ** 2)) / (2 * mt)
    b = np.array([0, 0, p, math.hypot(p, mb)])
    w = np.array([0, 0, -p, math.hypot(p, mw)])
    assert fv.invariant_mass(np.stack([b, w])) == pytest.approx(mt, rel=1e-12)
    assert fv.mass(b) == pytest.approx(mb, rel=1e-9)


def test_conversions_agree_with_vector():
    p4, _ = random_p4()
    v = vector.array({"px": p4[:, 0], "py": p4[:, 1], "pz": p4[:, 2], "E": p4[:, 3]})
    np.testing.assert_allclose(fv.pt(p4), v.pt, rtol=1e-12)
    np.testing.assert_allclose(fv.eta(p4), v.eta, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fv.phi(p4), v.phi, rtol=1e-12)
    np.testing.assert_allclose(fv.mass(p4), v.mass, rtol=1e-6, atol=1e-6)
    pair_sum = v[:-1] + v[1:]
    mine = fv.invariant_mass(np.stack([p4[:-1], p4[1:]], 1))
    np.testing.assert_allclose(mine, pair_sum.mass, rtol=1e-8, atol=1e-6)
    np.testing.assert_allclose(
        fv.delta_r(fv.eta(p4[:-1]), fv.phi(p4[:-1]), fv.eta(p4[1:]), fv.phi(p4[1:])),
        v[:-1].deltaR(v[1:]),
        rtol=1e-10,
    )


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_pt_eta_phi_m_round_trip(lib):
    p4, (pt, eta, phi, m) = random_p4(seed=1)
    if lib == "torch":
        p4 = torch.tensor(p4, dtype=torch.float64)
    back = fv.to_ptetaphim(p4)
    back = back.numpy() if lib == "torch" else back
    np.testing.assert_allclose(back[:, 0], pt, rtol=1e-12)
    np.testing.assert_allclose(back[:, 1], eta, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(back[:, 2], phi, rtol=1e-12)
    np.testing.assert_allclose(back[:, 3], m, atol=1e-5)
    again = fv.from_ptetaphim(back[:, 0], back[:, 1], back[:, 2], back[:, 3])
    np.testing.assert_allclose(again, p4 if lib == "numpy" else p4.numpy(), rtol=1e-8, atol=1e-7)


def test_minkowski_energy_gradient():
    p3 = torch.randn(20, 3, dtype=torch.float64, requires_grad=True) * 30
    p3 = p3.detach().requires_grad_(True)
    m = torch.rand(20, dtype=torch.float64) * 5
    assert torch.autograd.gradcheck(lambda p: fv.minkowski_energy(p, m), (p3,))
    e = fv.minkowski_energy(p3, m)
    (g,) = torch.autograd.grad(e.sum(), p3)
    torch.testing.assert_close(g, p3.detach() / e.detach()[:, None])  # dE/dp = p/E
    # finite at the origin for massless particles
    z = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    fv.minkowski_energy(z).sum().backward()
    assert torch.isfinite(z.grad).all()


def test_minkowski_layer_puts_outputs_on_shell():
    p3 = torch.randn(100, 6, 3, dtype=torch.float64) * 50
    m = torch.tensor([0.0, 0.0, 4.7, 4.7, 0.0, 0.0], dtype=torch.float64)
    p4 = fv.minkowski(p3, m)
    assert p4.shape == (100, 6, 4)
    torch.testing.assert_close(fv.mass(p4), m.expand(100, 6), atol=1e-4, rtol=1e-6)
    # in float32, E² − |p|² = m² up to rounding of E² (relative 1e-6)
    p4f = fv.minkowski(p3.float(), m.float()).double()
    resid = fv.mass2(p4f) - m**2
    assert (resid.abs() <= 1e-6 * p4f[..., 3] ** 2 + 1e-4).all()


def test_delta_phi_wraps():
    assert fv.wrap_phi(np.array(3.1 - (-3.1))) == pytest.approx(6.2 - 2 * math.pi)
    assert fv.delta_r(0.0, 3.1, 0.0, -3.1) == pytest.approx(2 * math.pi - 6.2)
    assert fv.delta_r(1.0, 0.0, 0.0, 0.0) == pytest.approx(1.0)
    t = fv.delta_r(torch.tensor([0.5]), torch.tensor([-3.0]), torch.tensor([0.0]), torch.tensor([3.0]))
    assert t.item() == pytest.approx(math.hypot(0.5, 2 * math.pi - 6.0), rel=1e-6)


def test_torch_formulas_agree_with_vector_both_ways():
    """The torch path (written out, differentiable) against scikit-hep vector, which the NumPy
    path uses: (px, py, pz, E) → (pT, η, φ, m) and back, on random massive four-vectors."""
    p4, (pt, eta, phi, m) = random_p4(n=2000, seed=7)
    v = vector.array({"px": p4[:, 0], "py": p4[:, 1], "pz": p4[:, 2], "E": p4[:, 3]})
    got = fv.to_ptetaphim(torch.tensor(p4, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(got[:, 0], v.pt, rtol=1e-13)
    np.testing.assert_allclose(got[:, 1], v.eta, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(got[:, 2], v.phi, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(got[:, 3], v.mass, rtol=1e-6, atol=1e-6)
    w = vector.array({"pt": pt, "eta": eta, "phi": phi, "mass": m})
    t = [torch.tensor(a, dtype=torch.float64) for a in (pt, eta, phi, m)]
    back = fv.from_ptetaphim(*t[:3], t[3]).numpy()
    np.testing.assert_allclose(back, np.stack([w.px, w.py, w.pz, w.E], -1), rtol=1e-12, atol=1e-9)
    # the NumPy path is vector itself, with this module's conventions at the edges
    np.testing.assert_array_equal(fv.pt(p4), v.pt)
    z = np.array([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 5.0, 5.0], [3.0, 4.0, 0.0, 4.0]])
    assert np.isnan(fv.eta(z)[0]) and fv.eta(z)[1] == np.inf
    assert fv.mass(z)[2] == 0.0  # space-like: clipped to 0 (vector gives −3)
    assert np.isnan(fv.eta(torch.tensor(z))[0]) and float(fv.mass(torch.tensor(z))[2]) == 0.0


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_reference_frame_puts_the_reference_in_the_xz_half_plane_and_inverts(lib):
    """to_frame(p, φ_ref, s): the reference particle lands at py = 0, px = pT ≥ 0, pz = |pz|; pT, |η|,
    masses of every particle and of the event are unchanged; inverse=True undoes it exactly."""
    p4 = np.stack([random_p4(500, seed)[0] for seed in range(3)], 1)  # (500, 3, 4)
    a = torch.tensor(p4) if lib == "torch" else p4
    phi_ref, sign = fv.reference_frame(a[:, 0])
    f = fv.to_frame(a, phi_ref, sign)
    f_np = np.asarray(f)
    assert np.allclose(f_np[:, 0, 1], 0.0, atol=1e-9)
    assert np.allclose(f_np[:, 0, 0], np.asarray(fv.pt(a[:, 0])))
    assert (f_np[:, 0, 2] >= 0).all()
    assert np.allclose(np.asarray(fv.pt(f)), np.asarray(fv.pt(a)))
    assert np.allclose(np.abs(np.asarray(fv.eta(f))), np.abs(np.asarray(fv.eta(a))))
    assert np.allclose(np.asarray(fv.invariant_mass(f)), np.asarray(fv.invariant_mass(a)))
    assert np.allclose(np.asarray(fv.to_frame(f, phi_ref, sign, inverse=True)), p4)
    # the azimuths of the others relative to the reference are kept, up to the reflection's sign
    dphi = np.asarray(fv.wrap_phi(fv.phi(a[:, 1]) - fv.phi(a[:, 0])))
    assert np.allclose(np.asarray(fv.phi(f[:, 1])), dphi, atol=1e-9)
