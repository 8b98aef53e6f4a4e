"""ROC AUC from scores (ties ½) and the Bayes-optimal AUC from two pmfs."""
import numpy as np
import pytest

from otviz.data.toy import multiplicity_pmf
from otviz.metrics.roc import auc_from_pmfs, roc_auc


def test_roc_auc_is_the_mann_whitney_probability_with_ties_half():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 6, 300)
    y = rng.random(300) < 0.4
    brute = np.mean([(a > b) + 0.5 * (a == b) for a in s[y] for b in s[~y]])
    assert roc_auc(s, y) == pytest.approx(brute, abs=1e-12)
    assert roc_auc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0 and roc_auc([1, 1], [0, 1]) == 0.5
    with pytest.raises(ValueError, match="both classes"):
        roc_auc([1, 2], [1, 1])


def test_auc_from_pmfs_ranks_by_the_likelihood_ratio():
    # ratio p_S/p_B: 0.25, 1, 4 on k = 0, 1, 2 → AUC = P(k_S > k_B) + ½ P(k_S = k_B) here
    ps, pb = np.array([0.1, 0.3, 0.6]), np.array([0.4, 0.3, 0.15]) / 0.85
    pb = pb / pb.sum()
    brute = sum(ps[i] * pb[j] * ((i > j) + 0.5 * (i == j)) for i in range(3) for j in range(3))
    r = ps / pb
    assert np.all(np.diff(r) > 0) and auc_from_pmfs(ps, pb) == pytest.approx(brute)
    # a non-monotone ratio: the optimum re-orders the support and beats ranking by k
    ps2, pb2 = np.array([0.45, 0.1, 0.45]), np.array([0.1, 0.8, 0.1])
    # ratio 4.5, 1/8, 4.5: the groups {0, 2} (p_S 0.9, p_B 0.2) above {1} (p_S 0.1, p_B 0.8)
    assert auc_from_pmfs(ps2, pb2) == pytest.approx(0.9 * 0.8 + 0.5 * (0.9 * 0.2 + 0.1 * 0.8))
    by_k = sum(ps2[i] * pb2[j] * ((i > j) + 0.5 * (i == j)) for i in range(3) for j in range(3))
    assert by_k == pytest.approx(0.5) and auc_from_pmfs(ps2, pb2) > by_k
    assert auc_from_pmfs(ps, ps) == pytest.approx(0.5)
    # Monte Carlo check of the Poisson toy's optimum (ranking by N)
    rng = np.random.default_rng(1)
    ns = rng.choice(51, 20_000, p=multiplicity_pmf(12))
    nb = rng.choice(51, 20_000, p=multiplicity_pmf(8))
    mc = roc_auc(np.r_[ns, nb], np.r_[np.ones(len(ns)), np.zeros(len(nb))])
    assert mc == pytest.approx(auc_from_pmfs(multiplicity_pmf(12), multiplicity_pmf(8)), abs=0.01)
