"""The pure parts of the Calibration page's plots: highest-density contour levels enclose the stated
masses (a 2-D Gaussian, whose HDR regions are known discs), whitening and the displacement
interpolation, and the corner plot's structure."""
import numpy as np
import pytest

from otviz.viz.corner import (MASSES, corner_plot, density_grid, displace, enclosed_mass, hdr_levels, plot_ranges,
                              score_histograms, whiten)


def test_hdr_levels_enclose_the_stated_masses_on_the_grid():
    rng = np.random.default_rng(0)
    dens = rng.random((50, 50)) ** 3
    levels = hdr_levels(dens, MASSES)
    assert np.all(np.diff(levels) < 0)  # larger masses, lower levels
    cell = dens.max() / dens.sum()
    for m, lev in zip(MASSES, levels):
        got = enclosed_mass(dens, lev)
        assert m <= got <= m + cell + 1e-12, (m, got)


def test_contour_levels_of_a_gaussian_sample_enclose_the_stated_fractions_of_its_points():
    rng = np.random.default_rng(1)
    pts = rng.standard_normal((40_000, 2))
    rng_x, rng_y = (-5, 5), (-5, 5)
    grid = density_grid(pts[:, 0], pts[:, 1], rng_x, rng_y, bins=100)
    assert abs(float(grid.sum()) - 1) < 1e-9 and grid.dims == ("y", "x")
    levels = hdr_levels(grid.values, MASSES)
    # points inside the region {density ≥ level} (looked up in their cell) ≈ the mass
    ix = np.clip(((pts[:, 0] + 5) / 10 * 100).astype(int), 0, 99)
    iy = np.clip(((pts[:, 1] + 5) / 10 * 100).astype(int), 0, 99)
    at_point = grid.values[iy, ix]
    for m, lev in zip(MASSES, levels):
        assert abs(np.mean(at_point >= lev) - m) < 0.025, (m, np.mean(at_point >= lev))
    # and the 50 % / 90 % regions are nearly the discs of a standard normal: r² = −2 ln(1 − m)
    area = (10 / 100) ** 2
    for m in (0.5, 0.9):
        lev = levels[MASSES.index(m)]
        region = (grid.values >= lev).sum() * area
        assert region == pytest.approx(-2 * np.pi * np.log(1 - m), rel=0.1)


def test_whiten_and_displacement_interpolation():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((200, 8))
    mapped = 1.3 * z + 0.5
    mean, proj = z.mean(0), rng.standard_normal((8, 3))
    np.testing.assert_allclose(whiten(z, mean, proj), (z - mean) @ proj)
    np.testing.assert_array_equal(displace(z, mapped, 0.0), z)
    np.testing.assert_array_equal(displace(z, mapped, 1.0), mapped)
    np.testing.assert_allclose(whiten(displace(z, mapped, 0.3), mean, proj),
                               displace(whiten(z, mean, proj), whiten(mapped, mean, proj), 0.3), atol=1e-12)
    with pytest.raises(ValueError, match="t = 1.5"):
        displace(z, mapped, 1.5)


def test_corner_plot_and_score_histograms_render():
    import holoviews as hv

    rng = np.random.default_rng(3)
    sets = {"data": dict(points=rng.standard_normal((500, 3)), color="black"),
            "simulation": dict(points=rng.standard_normal((500, 3)) + 0.5, color="#1f77b4")}
    lay = corner_plot(sets, ["PC1", "PC2", "PC3"], ranges=plot_ranges([s["points"] for s in sets.values()]),
                      title="W: t = 0.00")
    assert len(lay) == 9  # 3 × 3 cells: 3 diagonal, 3 contour panels, the legend, 2 empty
    kinds = [type(el).__name__ for el in lay]
    assert kinds.count("Empty") == 2 and kinds.count("Overlay") == 7
    contour_cell = lay[3]  # row 2, column 1: PC1 × PC2
    assert [type(e).__name__ for e in contour_cell] == ["Contours", "Contours"]
    assert contour_cell.get(0).kdims[0].label == "PC1 (whitened)" and contour_cell.get(0).kdims[1].label == "PC2 (whitened)"
    hv.render(lay)
    with pytest.raises(ValueError, match="two components"):
        corner_plot(sets, ["PC1"])
    hv.render(score_histograms({"data": rng.random(300), "simulation": rng.random(300)},
                               {"data": "black", "simulation": "blue"}))
