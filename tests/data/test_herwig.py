"""Herwig cluster text files: parsing (E first, placeholders, trailing '|', blank lines), exact
conservation of printed two-body decays, line-numbered errors, violation modes, write→read."""
import warnings

import numpy as np
import pytest

from otviz.data.clusterset import ClusterDataError, conservation_residual, load_clusters
from otviz.data.herwig import read_herwig_clusters, write_herwig_clusters
from otviz.physics import twobody
from otviz.physics.masses import mass_of_pid

HAND = (
    "1,5.0,0.1,0.2,0.3;-1,6.0,0.4,0.5,0.6;81,11.0,0.5,0.7,0.9;211,4.0,0.2,0.3,0.4;-211,7.0,0.3,0.4,0.5;|"
    "88,0,0,0,0;88,0,0,0,0;81,3.0,1.0,-1.0,0.5;111,1.0,0.5,-0.5,0.25;111,2.0,0.5,-0.5,0.25|\n"
    "\n"
    "  -2,2.0,0.0,0.0,1.0;2,3.0,0.0,0.0,-1.0;81,5.0,0.0,0.0,0.0;-211,2.5,0.0,0.1,0.0;211,2.5,0.0,-0.1,0.0  \n"
)


def _write(tmp_path, text, name="c.dat"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_hand_written_file(tmp_path):
    ds = read_herwig_clusters(_write(tmp_path, HAND))
    assert ds.sizes["cluster"] == 3 and ds.attrs["n_events"] == 2 and ds.attrs["source"] == "herwig"
    np.testing.assert_array_equal(ds["event"].values, [0, 0, 1])
    # E first in the file → (px, py, pz, E)
    np.testing.assert_allclose(ds["cluster"].values[0], [0.5, 0.7, 0.9, 11.0])
    np.testing.assert_allclose(ds["hadron"].values[0], [[0.2, 0.3, 0.4, 4.0], [0.3, 0.4, 0.5, 7.0]])
    np.testing.assert_array_equal(ds["hadron_pid"].values, [[211, -211], [111, 111], [211, -211]])
    np.testing.assert_array_equal(ds["parton_mask"].values, [[True, True], [False, False], [True, True]])
    np.testing.assert_array_equal(ds["parton_pid"].values, [[1, -1], [0, 0], [2, -2]])
    assert not ds["parton"].values[1].any()
    # line 3 lists the antiquark first: partons and hadrons swapped together
    np.testing.assert_allclose(ds["parton"].values[2], [[0, 0, -1, 3], [0, 0, 1, 2]])
    np.testing.assert_allclose(ds["hadron"].values[2, 0], [0, -0.1, 0, 2.5])
    np.testing.assert_array_equal(ds["perturbative"].values, ds["parton_mask"].values)
    assert ds.attrs["n_nonconserving"] == 0
    assert not read_herwig_clusters(_write(tmp_path, HAND), perturbative="none")["perturbative"].values.any()
    # load_clusters dispatches .dat/.txt here
    assert load_clusters(_write(tmp_path, HAND, "c.txt")).sizes["cluster"] == 3


def test_spaces_around_separators_and_missing_final_semicolon(tmp_path):
    text = " 88 , 0,0,0,0 ; 88,0,0,0,0;81, 3.0 ,1.0,-1.0,0.5 ;111,1.0,0.5,-0.5,0.25;111,2.0,0.5,-0.5,0.25 | \n"
    ds = read_herwig_clusters(_write(tmp_path, text), on_violation="error")
    np.testing.assert_allclose(ds["cluster"].values, [[1.0, -1.0, 0.5, 3.0]])
    assert ds.attrs["n_placeholder_partons"] == 2


def test_pert_flag_field(tmp_path):
    text = "1,5,0,0,1,1;-1,6,0,0,-1,0;81,11,0,0,0;111,5.5,0,0,0.1;111,5.5,0,0,-0.1;\n"
    ds = read_herwig_clusters(_write(tmp_path, text))
    np.testing.assert_array_equal(ds["perturbative"].values, [[True, False]])


def _decays(n=60, seed=1):
    rng = np.random.default_rng(seed)
    M = rng.uniform(1, 8, n)
    P = rng.normal(0, 10, (n, 3))
    cl = np.concatenate([P, np.sqrt(M**2 + (P**2).sum(-1))[:, None]], -1)
    pids = np.array([[211, -211], [111, 111], [211, 111]])[rng.integers(0, 3, n)]
    m1, m2 = mass_of_pid(pids[:, 0]), mass_of_pid(pids[:, 1])
    had = twobody.two_body_decay(cl, m1, m2, rng.uniform(-1, 1, n), rng.uniform(-np.pi, np.pi, n))
    return cl, had, pids


def _herwig_text(cl, had, pids, per_event=4, fmt=".6f"):
    def obj(pid, p):
        return f"{pid}," + ",".join(f"{x:{fmt}}" for x in (p[3], p[0], p[1], p[2]))

    lines = []
    for s in range(0, len(cl), per_event):
        recs = [";".join(["88,0,0,0,0", "88,0,0,0,0", obj(81, cl[i]), obj(pids[i, 0], had[i, 0]),
                          obj(pids[i, 1], had[i, 1])]) + ";" for i in range(s, min(s + per_event, len(cl)))]
        lines.append("|".join(recs) + "|")
    return "\n".join(lines) + "\n"


def test_printed_exact_decays_conserve(tmp_path):
    cl, had, pids = _decays()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = read_herwig_clusters(_write(tmp_path, _herwig_text(cl, had, pids)), on_violation="error")
    assert ds.attrs["n_nonconserving"] == 0
    assert conservation_residual(ds).max() <= 1.5e-6 + 1e-12
    np.testing.assert_allclose(ds["hadron"].values, had, atol=5e-7 + 1e-12)
    np.testing.assert_array_equal(ds["event"].values, np.arange(60) // 4)
    assert not ds["parton_mask"].values.any() and not ds["perturbative"].values.any()
    # the hadron masses survive the printing (E first was read as E)
    from otviz.physics.fourvec import mass

    np.testing.assert_allclose(mass(ds["hadron"].values), mass_of_pid(pids), atol=2e-3)  # m from 6-decimal E, p


def test_significant_digit_printing_conserves(tmp_path):
    """Herwig prints 6 significant digits (%g): the tolerance follows each field's last decimal."""
    cl, had, pids = _decays(400, seed=2)
    text = _herwig_text(cl, had, pids, fmt=".6g")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = read_herwig_clusters(_write(tmp_path, text), on_violation="error")
    assert ds.attrs["n_nonconserving"] == 0
    bad = text.replace(f"{cl[0, 3]:.6g}", f"{cl[0, 3] + 0.0123:.6g}", 1)  # E + 12 MeV
    with pytest.raises(ClusterDataError, match=r"c\.dat:1: record 1: cluster four-momentum"):
        read_herwig_clusters(_write(tmp_path, bad), on_violation="error")


def test_nonconservation_modes(tmp_path):
    cl, had, pids = _decays(8)
    had = had.copy()
    had[5, 0, 0] += 0.01  # cluster 5 sits on line 2 (4 per line)
    p = _write(tmp_path, _herwig_text(cl, had, pids))
    with pytest.warns(UserWarning, match=r"1 of 8 clusters.*first lines: 2"):
        ds = read_herwig_clusters(p)
    assert ds.attrs["n_nonconserving"] == 1
    with pytest.raises(ClusterDataError, match=r"c\.dat:2: record 2: cluster four-momentum not conserved"):
        read_herwig_clusters(p, on_violation="error")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_herwig_clusters(p, on_violation="ignore").attrs["n_nonconserving"] == 0


GOOD = "88,0,0,0,0;88,0,0,0,0;81,3,1,-1,0.5;111,1,0.5,-0.5,0.25;111,2,0.5,-0.5,0.25;|"


@pytest.mark.parametrize("bad, message", [
    ("88,0,0,0,0;81,3,1,-1,0.5;111,1,0.5,-0.5,0.25;111,2,0.5,-0.5,0.25;|", "record 2: expected 5 objects.*found 4"),
    ("88,0,0,0,0;88,0,0,0,0;81,3,1,-1,0.5;111,1,0.5,-0.5;111,2,0.5,-0.5,0.25;|", "record 2: hadron 0 has 4 fields"),
    ("88,0,0,0,0;88,0,0,0,0;81,3,1,-1,0.5,1;111,1,0.5,-0.5,0.25;111,2,0.5,-0.5,0.25|", "record 2: cluster has 6"),
    ("88,0,0,0,0;88,0,0,0,0;81,3,1,x,0.5;111,1,0.5,-0.5,0.25;111,2,0.5,-0.5,0.25;|",
     "record 2: cluster field py is not a number: 'x'"),
    ("88,0,0,0,0;88,0,0,0,0;82,3,1,-1,0.5;111,1,0.5,-0.5,0.25;111,2,0.5,-0.5,0.25;|", "record 2: .*pid 81.*82"),
    ("88,0,0,0,0;88,0,0,0,0;81,3,1,-1,0.5;111.5,1,0.5,-0.5,0.25;111,2,0.5,-0.5,0.25;|",
     "record 2: hadron 0 pid is not an integer"),
    ("88,0,0,0,0;88,0,0,0,0;81,3,1,-1,nan;111,1,0.5,-0.5,0.25;111,2,0.5,-0.5,0.25;|", "record 2: .*not finite"),
])
def test_malformed_lines_name_line_and_record(tmp_path, bad, message):
    text = GOOD + "\n\n" + GOOD + bad + "\n" + GOOD + "\n"
    with pytest.raises(ClusterDataError, match=r"bad\.dat:3: " + message):
        read_herwig_clusters(_write(tmp_path, text, "bad.dat"))


def test_empty_and_bad_options(tmp_path):
    with pytest.raises(ClusterDataError, match="empty"):
        read_herwig_clusters(_write(tmp_path, "\n  \n"))
    with pytest.raises(ClusterDataError, match=r"c\.dat:1: no cluster records"):
        read_herwig_clusters(_write(tmp_path, "|\n"))
    with pytest.raises(ValueError, match="on_violation"):
        read_herwig_clusters(_write(tmp_path, GOOD), on_violation="loud")
    with pytest.raises(FileNotFoundError):
        read_herwig_clusters(tmp_path / "none.dat")


def test_write_read_round_trip(tmp_path):
    ds = read_herwig_clusters(_write(tmp_path, HAND))
    out = write_herwig_clusters(ds, tmp_path / "out.dat")
    text = out.read_text()
    assert text.splitlines()[0].endswith("|") and "88,0,0,0,0;88,0,0,0,0;81,3.000000," in text
    back = read_herwig_clusters(out)
    for name in ("cluster", "hadron", "parton"):
        np.testing.assert_allclose(back[name].values, ds[name].values, atol=5e-7)
    for name in ("hadron_pid", "parton_pid", "parton_mask", "perturbative", "event"):
        np.testing.assert_array_equal(back[name].values, ds[name].values)
    with pytest.raises(FileExistsError):
        write_herwig_clusters(ds, out)
    write_herwig_clusters(ds, out, decimals=3, overwrite=True)
    assert "81,3.000," in out.read_text()


def test_package_exports():
    import otviz.data

    assert otviz.data.read_herwig_clusters is read_herwig_clusters
    assert otviz.data.write_herwig_clusters is write_herwig_clusters
