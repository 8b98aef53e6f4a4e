"""The cluster Dataset: construction, checks, atomic save/load round trip, event grouping."""
import numpy as np
import pytest
import torch

from otviz.data.clusterset import (ClusterDataError, check_cluster_dataset, conservation_residual, event_hadrons,
                                   load_clusters, make_cluster_dataset, save_clusters)
from otviz.physics import twobody


def _toy(n=7, seed=0):
    rng = np.random.default_rng(seed)
    M = rng.uniform(1, 5, n)
    P = rng.normal(0, 5, (n, 3))
    cl = np.concatenate([P, np.sqrt(M**2 + (P**2).sum(-1))[:, None]], -1)
    m = np.full(n, 0.13957039)
    had = twobody.two_body_decay(cl, m, m, rng.uniform(-1, 1, n), rng.uniform(-3, 3, n))
    return make_cluster_dataset(cl, had, np.tile([211, -211], (n, 1)), event=[0, 0, 0, 1, 2, 2, 2][:n],
                                attrs={"source": "test"})


def test_round_trip_and_conservation(tmp_path):
    ds = _toy()
    assert conservation_residual(ds).max() < 1e-9
    path = save_clusters(ds, tmp_path / "c.nc")
    back = load_clusters(path)
    np.testing.assert_array_equal(back["hadron"].values, ds["hadron"].values)
    assert back.attrs["source"] == "test" and not back["parton_mask"].values.any()
    with pytest.raises(FileExistsError):
        save_clusters(ds, path)


def test_checks_name_the_source():
    ds = _toy().drop_vars("event")
    with pytest.raises(ClusterDataError, match="mine.nc.*event"):
        check_cluster_dataset(ds, "mine.nc")


def test_event_hadrons_numpy_and_torch():
    ds = _toy()
    h, mask, ids = event_hadrons(ds)
    assert h.shape == (3, 6, 4) and mask.sum(1).tolist() == [6, 2, 6] and ids.tolist() == [0, 1, 2]
    np.testing.assert_allclose(h[mask].sum(0), ds["hadron"].values.reshape(-1, 4).sum(0))
    np.testing.assert_allclose(h[1, :2], ds["hadron"].values[3])
    t = torch.tensor(ds["hadron"].values, requires_grad=True)
    ht, mt, _ = event_hadrons(ds, t)
    np.testing.assert_allclose(ht.detach().numpy(), h)
    ht.sum().backward()
    assert t.grad.shape == t.shape


def test_decay_axis_follows_the_perturbative_quark():
    from otviz.data.clusterset import decay_axis

    rng = np.random.default_rng(3)
    n = 300
    q = np.concatenate([rng.normal(0, 3, (n, 3)), np.zeros((n, 1))], -1)
    qb = np.concatenate([rng.normal(0, 3, (n, 3)), np.zeros((n, 1))], -1)
    m = 0.325
    q[:, 3] = np.sqrt(m**2 + (q[:, :3] ** 2).sum(-1))
    qb[:, 3] = np.sqrt(m**2 + (qb[:, :3] ** 2).sum(-1))
    cl = q + qb
    pert = np.stack([rng.random(n) < 0.5, rng.random(n) < 0.5], -1)
    ds = make_cluster_dataset(cl, np.zeros((n, 2, 4)), np.zeros((n, 2)), np.arange(n),
                              parton=np.stack([q, qb], 1), parton_pid=np.tile([2, -2], (n, 1)), perturbative=pert)
    axis, from_quark = decay_axis(ds)
    rest_q = twobody.boost_to_rest(q, cl)[:, :3]
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
    # in the cluster rest frame the two constituents are back to back: both rules give ±q's direction
    sel = from_quark
    np.testing.assert_allclose(unit(axis[sel]), unit(rest_q[sel]), atol=1e-9)
    np.testing.assert_allclose(unit(axis[~sel]), unit(cl[~sel, :3]), atol=1e-12)
    np.testing.assert_array_equal(from_quark, pert.any(1))
