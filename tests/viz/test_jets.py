"""Latent traversals and jet mosaics."""
import time

import numpy as np
import pytest
import torch

from otviz.models.emdvae import EMDVAE, EMDVAEConfig
from otviz.viz.jets import jet_mosaic, jet_points, latent_density, top_kl_dimensions, traversal_plot, traverse


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return EMDVAE(EMDVAEConfig(latent=8, width=32)).eval()


def test_traverse_grid_shape_and_coordinates(model):
    centre = np.arange(8, dtype=np.float32) / 10
    tr = traverse(model, (5, 2), centre=centre, span=2.0, n=7)
    assert tr.jets.shape == (7, 7, 50, 3) and tr.latent.shape == (7, 7, 8)
    assert np.allclose(tr.u, 0.5 + np.linspace(-2, 2, 7)) and np.allclose(tr.v, 0.2 + np.linspace(-2, 2, 7))
    assert np.allclose(tr.latent[3, 1, 5], tr.u[1]) and np.allclose(tr.latent[3, 1, 2], tr.v[3])
    held = np.delete(tr.latent, [2, 5], axis=2)
    assert np.allclose(held, np.delete(centre, [2, 5])[None, None])  # other coordinates held
    # jets are valid: weights sum to 1, φ in (−π, π]
    assert np.allclose(tr.jets[..., 0].sum(-1), 1, atol=1e-5) and (tr.jets[..., 0] >= 0).all()
    assert (np.abs(tr.jets[..., 2]) <= np.pi + 1e-6).all()
    # tile (j, i) is the decoder output at that latent point
    direct = model.decode(torch.as_tensor(tr.latent[4, 6][None])).detach().numpy()[0]
    assert np.allclose(direct, tr.jets[4, 6], atol=1e-6)
    with pytest.raises(ValueError):
        traverse(model, (1, 1))
    with pytest.raises(ValueError):
        traverse(model, (0, 9))


def test_top_kl_dimensions():
    assert top_kl_dimensions([0.1, 3.0, 0.0, 7.0]) == [3, 1]


def test_mosaic_disc_area_is_proportional_to_pt():
    jets = np.zeros((1, 2, 2, 3))
    jets[0, 0, 0] = (1.0, 0.0, 0.0)  # one particle carrying all pT
    jets[0, 1, 0] = (0.25, 0.0, 0.0)  # a quarter of the pT: a quarter of the area
    jets[0, 1, 1] = (0.75, 5.0, 5.0)  # outside the tile: not drawn
    img = jet_mosaic(jets, extent=(-1, 1, -1, 1), tile=101, disc_scale=0.3, gap=0)
    assert img.shape == (101, 202, 4) and img.dtype == np.uint8
    a_full = (img[:, :101, 3] > 100).sum()
    a_quarter = (img[:, 101:, 3] > 100).sum()
    r = 0.3 * 101
    assert a_full == pytest.approx(np.pi * r ** 2, rel=0.03)
    assert a_quarter / a_full == pytest.approx(0.25, rel=0.05)
    # discs sit at the tile centre for (η, φ) = (0, 0)
    ys, xs = np.nonzero(img[:, :101, 3] > 100)
    assert xs.mean() == pytest.approx(50, abs=1) and ys.mean() == pytest.approx(50, abs=1)


def test_mosaic_orientation():
    jets = np.zeros((2, 1, 1, 3))
    jets[0, 0, 0] = (1.0, 0.5, 0.5)  # row 0 (bottom), η right, φ up
    jets[1, 0, 0] = (1.0, -0.5, -0.5)  # row 1 (top), η left, φ down
    img = jet_mosaic(jets, extent=(-1, 1, -1, 1), tile=40, disc_scale=0.1, gap=0)
    bottom, top = img[40:, :, 3], img[:40, :, 3]
    yb, xb = np.nonzero(bottom > 100)
    yt, xt = np.nonzero(top > 100)
    assert xb.mean() > 20 and yb.mean() < 20  # right and up within the bottom tile
    assert xt.mean() < 20 and yt.mean() > 20


def test_traversal_timing_sanity_and_plots(model):
    tr = traverse(model, (0, 1))
    jet_mosaic(tr.jets)
    t0 = time.perf_counter()
    for _ in range(5):
        tr = traverse(model, (0, 1))
        img = jet_mosaic(tr.jets)
    per_grid = (time.perf_counter() - t0) / 5
    assert img.shape == (9 * 48, 9 * 48, 4)
    assert per_grid < 0.5  # benchmarks/traversal.py measures it properly (≈ 20 ms here)
    mu = np.random.default_rng(0).normal(size=(500, 8))
    h, ea, eb = latent_density(mu, (0, 1), centre=(0, 0), span=3, bins=30)
    assert h.shape == (30, 30) and h.sum() == ((np.abs(mu[:, :2]) < 3).all(1)).sum()
    import holoviews as hv

    p = traversal_plot(tr, mu=mu)
    assert isinstance(p, hv.Overlay) and len(p) == 2
    hv.render(p, backend="bokeh")
    hv.render(jet_points(tr.jets[0, 0], title="t"), backend="bokeh")
