"""The Hadronisation page's plots: cluster selections by mass bin and origin, the rest-frame drawing
of a two-body decay (exact |p*| and θ*, back to back), ratio panels against the closed form, the
stats in the titles, and the HadML training curves."""
import holoviews as hv
import numpy as np
import pytest

from otviz.metrics.hadronisation import MASS_EDGES, mass_bin_labels
from otviz.physics import twobody
from otviz.viz.hadronisation import (cluster_mass_plot, comparison_plot, hadml_curves, is_hadml_history, pair_name,
                                     rest_frame_plot, rest_frame_projection, select_clusters, selection_name,
                                     stats_text, title_lines)

M_PI, M_PI0 = 0.13957039, 0.1349768


def _opts(el):
    return el.opts.get().kwargs


def test_select_clusters_by_mass_bin_and_origin():
    mass = np.array([0.5, 1.5, 2.9, 3.0, 7.0, 1.0])
    quark = np.array([True, False, True, False, True, False])
    labels = mass_bin_labels(MASS_EDGES)
    assert labels == ["all", "0–1.5 GeV", "1.5–3 GeV", "> 3 GeV"]
    assert select_clusters(mass, quark).all()
    np.testing.assert_array_equal(select_clusters(mass, quark, "0–1.5 GeV"), [1, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(select_clusters(mass, quark, "1.5–3 GeV"), [0, 1, 1, 0, 0, 0])  # lower edge in
    np.testing.assert_array_equal(select_clusters(mass, quark, "> 3 GeV", "perturbative"), [0, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(select_clusters(mass, quark, "all", "non-perturbative"), ~quark)
    # every cluster in exactly one mass bin
    assert sum(select_clusters(mass, quark, b).astype(int) for b in labels[1:]).tolist() == [1] * 6
    with pytest.raises(ValueError, match="mass bin '9 GeV'"):
        select_clusters(mass, quark, "9 GeV")
    with pytest.raises(ValueError, match="origin 'gluon'"):
        select_clusters(mass, quark, "all", "gluon")


@pytest.mark.parametrize("m1, m2", [(M_PI, M_PI), (M_PI0, M_PI), (0.5, 1.2)])
def test_rest_frame_projection_draws_p_star_and_theta_exactly(m1, m2):
    rng = np.random.default_rng(4)
    M = 2.7
    p = rng.normal(0, 5, 3)
    cluster = np.r_[p, np.sqrt(M ** 2 + p @ p)]
    axis = rng.normal(size=3)
    cos_t, phi = 0.3, 1.1
    had = twobody.two_body_decay(cluster, m1, m2, cos_t, phi, axis)
    xy = rest_frame_projection(had, cluster, axis)
    pstar = float(twobody.rest_momentum(M, m1, m2))
    np.testing.assert_allclose(xy[0], [pstar * cos_t, pstar * np.sqrt(1 - cos_t ** 2)], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(xy[1], -xy[0], rtol=1e-9, atol=1e-12)  # back to back, whatever the masses
    assert xy[0, 1] >= 0  # hadron 0 above the axis


def test_stats_text_is_readable_and_skips_missing_values():
    assert stats_text({"w1": (0.012345, 0.0101), "ks": (0.0312, 0.0298)}) == \
        "W₁ 0.012 (floor 0.010) · KS 0.031 (floor 0.030)"
    assert stats_text({"w1": (np.nan, np.nan), "ks": (0.5, 0.25)}) == "KS 0.50 (floor 0.25)"
    assert stats_text(None) == "" and stats_text({}) == ""
    assert pair_name((211, -211)) == "π⁺π⁻" and pair_name((111, 111)) == "π⁰π⁰"


def test_comparison_plot_densities_ratio_and_title():
    rng = np.random.default_rng(0)
    ref = rng.uniform(-1, 1, 4000)
    gen = rng.uniform(-1, 1, 2000)
    plot = comparison_plot(ref, gen, "cos_theta", {"w1": (0.02, 0.01), "ks": (0.03, 0.02)}, bins=10, width=400)
    top, bottom = list(plot)
    assert "cos θ*" in _opts(top)["title"] and "W₁ 0.020 (floor 0.010)" in _opts(top)["title"]
    curves = [el for el in top if isinstance(el, hv.Curve)]
    assert [c.label for c in curves] == ["reference (4000)", "HadML (2000)"]
    edges = np.linspace(-1, 1, 11)
    for c, sample in zip(curves, (ref, gen)):
        x, y = c.dimension_values(0), c.dimension_values(1)
        np.testing.assert_allclose(x, edges)
        assert float((y[:-1] * np.diff(edges)).sum()) == pytest.approx(1.0)  # normalised density
        np.testing.assert_allclose(y[:-1], np.histogram(sample, edges)[0] / len(sample) / 0.2)
    # ratio = (h_gen/N_gen)/(h_ref/N_ref) with σ = r √(1/h_gen + 1/h_ref)
    hr, hg = np.histogram(ref, edges)[0], np.histogram(gen, edges)[0]
    r = (hg / 2000) / (hr / 4000)
    bars = [el for el in bottom if isinstance(el, hv.ErrorBars)][0]
    np.testing.assert_allclose(bars.dimension_values(1), r)
    np.testing.assert_allclose(bars.dimension_values(2), r * np.sqrt(1 / hg + 1 / hr))
    assert _opts(bottom)["xlabel"] == "cos θ*"
    # E: a log density axis, the reference's quantile range, GeV in the label
    e = comparison_plot(rng.exponential(3, 3000), rng.exponential(3, 3000), "E")
    top_e = list(e)[0]
    assert _opts(top_e)["logy"] and "[GeV]" in _opts(list(e)[1])["xlabel"]
    # density units: 1/GeV for E (and pT), 1/rad for φ*, none for cos θ*
    assert _opts(top_e)["ylabel"].startswith("density [1/GeV]")
    assert _opts(top)["ylabel"] == "density"
    assert _opts(list(comparison_plot(ref * 3, gen * 3, "phi"))[0])["ylabel"] == "density [1/rad]"


def test_legend_sits_above_the_lower_side_and_titles_fit():
    rng = np.random.default_rng(3)
    # a forward peak (cos θ* rising to +1): the legend goes top left, away from the peak
    fwd = 2 * np.sqrt(rng.uniform(0, 1, 5000)) - 1  # density (1 + x)/2
    plot = comparison_plot(fwd, fwd, "cos_theta", width=520)
    assert _opts(list(plot)[0])["legend_position"] == "top_left"
    falling = rng.exponential(3, 3000)
    assert _opts(list(comparison_plot(falling, falling, "E", width=325))[0])["legend_position"] == "top_right"
    # the selection in words, and titles broken to fit a narrow plot
    assert selection_name() == "all clusters"
    assert selection_name("1.5–3 GeV", "perturbative") == "1.5–3 GeV, perturbative"
    assert selection_name("all", "non-perturbative") == "all masses, non-perturbative"
    assert selection_name("> 3 GeV", "all") == "> 3 GeV, all origins"
    stats = {"w1": (0.11, 0.12), "ks": (0.012, 0.013)}
    narrow = _opts(list(comparison_plot(falling, falling, "pT", stats, width=325,
                                        title_prefix="1.5–3 GeV, non-perturbative"))[0])["title"]
    assert narrow.split("\n") == ["1.5–3 GeV, non-perturbative", "hadron pT [GeV]", "W₁ 0.11 (floor 0.12)",
                                   "KS 0.012 (floor 0.013)"]
    wide = _opts(list(comparison_plot(fwd, fwd, "cos_theta", stats, width=520, title_prefix="0–1.5 GeV, perturbative"))[0])
    assert wide["title"] == "0–1.5 GeV, perturbative: cos θ*\nW₁ 0.11 (floor 0.12) · KS 0.012 (floor 0.013)"
    assert title_lines([(": ", ["a", "b"]), (" · ", [])], 10) == "a: b"


def test_mass_and_rest_frame_plots_render():
    rng = np.random.default_rng(1)
    mass = rng.gamma(2.0, 0.9, 2000) + 0.3
    m = cluster_mass_plot(mass, MASS_EDGES, selected="1.5–3 GeV", width=400)
    assert "peak at" in _opts(m)["title"]
    # the mass axis reaches beyond the largest mass: the whole > 3 GeV tail is drawn
    curve = [el for el in m if isinstance(el, hv.Curve)][0]
    assert curve.dimension_values(0).max() >= mass.max()
    assert _opts(m)["ylabel"] == "density [1/GeV]"
    assert sum(isinstance(el, hv.VLine) for el in m) == 2 and sum(isinstance(el, hv.VSpan) for el in m) == 1
    cluster = np.array([1.0, -2.0, 5.0, np.sqrt(2.2 ** 2 + 30.0)])
    axis = np.array([0.0, 0.6, 0.8])
    ref = twobody.two_body_decay(cluster, M_PI, M_PI, 0.9, 0.2, axis)
    gen = twobody.two_body_decay(cluster, M_PI0, M_PI0, -0.4, 2.0, axis)
    plot = rest_frame_plot(cluster, axis, {"reference": (ref, (211, -211)), "generated": (gen, (111, 111))},
                           from_quark=True, index=7)
    assert _opts(plot)["title"] == "cluster 7: M = 2.20 GeV, perturbative (rest frame)"
    labels = [el.label for el in plot if isinstance(el, hv.Segments)]
    assert labels[0] == "ẑ: perturbative quark direction"
    assert labels[1].startswith("reference π⁺π⁻: cos θ* = 0.90, φ* = 0.20 rad")
    assert labels[2].startswith("HadML π⁰π⁰: cos θ* = -0.40, φ* = 2.00 rad")
    # species labels beyond each tip, away from the origin (never on the marker): aligned outwards
    for t in (el for el in plot if isinstance(el, hv.Text)):
        assert (t.halign == "left") == (t.x >= 0) and (t.valign == "bottom") == (t.y >= 0)
    assert {t.text.split(" ")[0] for t in plot if isinstance(t, hv.Text)} == {"π⁺", "π⁻", "π⁰"}
    hv.renderer("bokeh").get_plot(plot)  # draws without error


def test_hadml_curves_per_epoch():
    hist = [{"epoch": e, "d_loss": 1.4 - 0.1 * e, "g_loss": 0.7 + 0.05 * e, "val_w1_cos_theta": 0.2 / (e + 1),
             "val_w1_phi": 1.0 / (e + 1)} for e in range(3)]
    assert is_hadml_history(hist) and not is_hadml_history([{"epoch": 0, "loss": 1.0}])
    loss, w1 = hadml_curves(hist)
    curves = [el for el in loss if isinstance(el, hv.Curve)]
    assert [c.label for c in curves] == ["discriminator loss", "generator loss"]
    np.testing.assert_allclose(curves[0].dimension_values(0), [1, 2, 3])  # epochs counted from 1
    np.testing.assert_allclose(curves[0].dimension_values(1), [1.4, 1.3, 1.2])
    assert [c.label for c in w1 if isinstance(c, hv.Curve)] == ["W₁ of cos θ*", "W₁ of φ* [rad]"]
