"""EMD between jets: both backends against POT's exact ot.emd2 on real shipped W jets."""
import math
from pathlib import Path

import numpy as np
import ot
import pytest
import torch

from otviz.data import load
from otviz.ot.emd import emd, ground_cost

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture(scope="module")
def jets():
    c = load(DATA / "wjets_centred.nc")["x"].values.astype(np.float64)[:120]
    w = c[..., 0] / c[..., 0].sum(1, keepdims=True)
    return torch.as_tensor(w), torch.as_tensor(c[..., 1:])


def pot_emd2(wa, pa, wb, pb, R=1.0, beta=1.0):
    out = []
    for k in range(len(wa)):
        m = ground_cost(pa[k:k + 1], pb[k:k + 1], R, beta)[0].numpy()
        out.append(ot.emd2(wa[k].numpy(), wb[k].numpy(), m))
    return np.array(out)


def test_exact_backend_equals_pot(jets):
    w, p = jets
    ref = pot_emd2(w[:60], p[:60], w[60:], p[60:])
    np.testing.assert_allclose(emd(w[:60], p[:60], w[60:], p[60:], backend="exact").numpy(), ref, rtol=1e-10)
    ref2 = pot_emd2(w[:20], p[:20], w[60:80], p[60:80], R=0.4, beta=2.0)
    got2 = emd(w[:20], p[:20], w[60:80], p[60:80], backend="exact", R=0.4, beta=2.0).numpy()
    np.testing.assert_allclose(got2, ref2, rtol=1e-10)


def test_sinkhorn_backend_within_one_percent_on_average(jets):
    w, p = jets
    ref = pot_emd2(w[:60], p[:60], w[60:], p[60:])
    got = emd(w[:60], p[:60], w[60:], p[60:], backend="sinkhorn").numpy()
    rel = (got - ref) / ref
    assert np.abs(rel).mean() < 0.01
    assert rel.min() > -1e-9  # the rounded plan is feasible: never below the exact optimum
    assert np.abs(rel).max() < 0.08  # a few jets converge slowly at ε = 0.003


def test_converged_sinkhorn_rounding_stays_finite(jets):
    # once the plan meets the marginals to float rounding, the rank-one rounding correction must
    # not divide by the rounding residue (it did: values of 1e280 after 50 iterations per ε)
    w, p = jets
    ref = pot_emd2(w[:60], p[:60], w[60:], p[60:])
    got = emd(w[:60], p[:60], w[60:], p[60:], backend="sinkhorn", n_iter=50).numpy()
    rel = (got - ref) / ref
    assert np.isfinite(got).all() and rel.min() > -1e-9 and np.abs(rel).mean() < 0.002


def test_exact_gradients_by_finite_differences(jets):
    w, p = jets
    wa, pa, wb, pb = w[:3].clone(), p[:3].clone(), w[3:6], p[3:6]
    wa.requires_grad_(True)
    pa.requires_grad_(True)
    emd(wa, pa, wb, pb, backend="exact").sum().backward()
    h = 1e-6
    for (k, i, j) in ((0, 0, 0), (1, 2, 1), (2, 1, 0)):  # jet, particle, η/φ of leading particles
        dp = torch.zeros_like(pa)
        dp[k, i, j] = h
        fd = (emd(wa.detach(), pa.detach() + dp, wb, pb, backend="exact")
              - emd(wa.detach(), pa.detach() - dp, wb, pb, backend="exact"))[k] / (2 * h)
        assert float(pa.grad[k, i, j]) == pytest.approx(float(fd), rel=1e-4, abs=1e-8)
    # weights: a direction on the simplex (sum zero) between two real particles
    d = torch.zeros_like(wa)
    d[0, 0], d[0, 1] = 1.0, -1.0
    fd = (emd(wa.detach() + h * d, pa.detach(), wb, pb, backend="exact")
          - emd(wa.detach() - h * d, pa.detach(), wb, pb, backend="exact"))[0] / (2 * h)
    assert float((wa.grad * d).sum()) == pytest.approx(float(fd), rel=1e-4, abs=1e-8)


def test_phi_wraps_and_errors():
    wa = torch.tensor([[1.0]])
    wb = torch.tensor([[1.0]])
    pa = torch.tensor([[[0.0, 3.1]]], dtype=torch.float64)
    pb = torch.tensor([[[0.0, -3.1]]], dtype=torch.float64)
    for backend in ("exact", "sinkhorn"):
        assert float(emd(wa, pa, wb, pb, backend=backend)) == pytest.approx(2 * math.pi - 6.2, rel=1e-6)
    with pytest.raises(ValueError, match="backend"):
        emd(wa, pa, wb, pb, backend="magic")
    with pytest.raises(ValueError, match="weights"):
        emd(wa[0], pa, wb, pb)
