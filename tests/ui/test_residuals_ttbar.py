"""The Data and Residuals pages on a tt̄ run: the four reconstructed masses in the quantity menus
with their labels and units, a mass with its floor, and the stored KS table of the Turbo-Sim slide."""
import panel as pn
import pytest

import otviz.ui.state as ui_state
from otviz.cli import main
from otviz.metrics.fidelity import N_SPLITS, statistic_with_floor
from otviz.metrics.ks_table import OBSERVABLES
from otviz.physics.observables import label
from otviz.train.products import read_ks_table
from otviz.ui.data_view import DataView
from otviz.ui.residuals_view import ResidualsView
from tests.metrics.test_evaluate_cli import tiny_ttbar_run

MASSES = ("m_tt", "m_W_had", "m_t_lep", "m_t_had")


@pytest.fixture(scope="module")
def state(tmp_path_factory, request):
    root = tmp_path_factory.mktemp("tt")
    (root / "runs").mkdir()
    run = tiny_ttbar_run(root / "runs")
    assert main(["evaluate", str(run), "--n-projections", "50", "--quiet"]) == 0
    mp = pytest.MonkeyPatch()
    request.addfinalizer(mp.undo)
    mp.setattr(ui_state, "RUNS", root / "runs")
    pn.extension("tabulator")
    s = ui_state.ExplorerState(max_events=2000)
    s.refresh_runs(select=str(run))
    assert s.run_path == str(run) and s.run.kind == "otus-ttbar"
    return s


def test_quantity_menus_offer_the_four_masses_with_labels_and_units(state):
    for page in (DataView(state), ResidualsView(state)):
        for space in ("x", "z"):
            page.space = space
            names = page.param.quantity.objects
            assert set(MASSES) <= set(names) and page.quantity == "m_tt", (type(page).__name__, space)
            assert "jet1.E" in names if space == "x" else "b.E" in names
    assert [label(m) for m in MASSES] == ["m_tt [GeV]", "m_W^had [GeV]", "m_t^lep [GeV]", "m_t^had [GeV]"]
    data = DataView(state)
    data.quantity = "m_W_had"
    text = data._plot()[0].object
    assert "Test m_W^had: median" in text and "GeV" in text, text


def test_residuals_shows_a_mass_with_its_floor(state):
    page = ResidualsView(state)
    page.space, page.quantity = "x", "m_W_had"
    col = page._plot()
    df = [o for o in col if isinstance(o, pn.widgets.Tabulator)][0].value
    assert list(df["sample"]) == ["x̃′ = D(z)", "x̃ = D(E(x))"]
    truth = page.values("x")
    v, f = statistic_with_floor(truth, page.values("x_tilde_prime"), N_SPLITS, 0)
    row = df.iloc[0]
    assert row["ks"] == pytest.approx(v["ks"]) and row["ks floor"] == pytest.approx(f["ks"])
    assert 0.02 < row["ks floor"] < 0.07  # two halves of 1000 events
    # the stored KS table has the same number for m_W^had (same outputs, seeds and splits)
    assert row["ks"] == pytest.approx(float(read_ks_table(state.run_path).ks.sel(observable="m_W_had")), rel=1e-9)


def test_residuals_shows_the_stored_ks_table(state):
    page = ResidualsView(state)
    tab = read_ks_table(state.run_path)
    df = page.ks_table_frame()
    assert len(df) == len(OBSERVABLES) == 10
    assert list(df["observable"])[6:] == ["m_tt [GeV]", "m_W^had [GeV]", "m_t^lep [GeV]", "m_t^had [GeV]"]
    assert list(df["space"].unique()) == ["Z space", "X space", "Reconstructed physics"]
    assert list(df["KS ×10⁻²"]) == pytest.approx(list(100 * tab.ks.values))
    assert list(df["floor ×10⁻²"]) == pytest.approx(list(100 * tab.ks_floor.values))
    assert list(df["OTUS ×10⁻² (published)"])[6:] == pytest.approx([15.8, 11.7, 14.1, 24.9])
    assert list(df["Turbo-Sim ×10⁻² (published)"])[:3] == pytest.approx([2.06, 1.06, 1.77])
    assert list(df["goal met"] == "✓") == list(tab.ks.values <= tab.goal.values)
    shown = page._ks_table()
    md, table = shown
    assert "KS table of the Turbo-Sim slide" in md.object and "2,000 test events" in md.object
    assert isinstance(table, pn.widgets.Tabulator) and table.value.equals(df)


def test_a_run_without_a_table_shows_none(state, tmp_path):
    page = ResidualsView(state)
    state.run_path, saved = None, state.run_path
    try:
        assert page.ks_table_frame() is None
    finally:
        state.run_path = saved
