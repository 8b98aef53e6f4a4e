"""One definition of every statistic and its floor: the Residuals page shows metrics.nc's numbers."""
from pathlib import Path

import numpy as np
import panel as pn
import pytest

import otviz
import otviz.ui.state as ui_state
from otviz.metrics.fidelity import STATISTICS
from otviz.ui.residuals_view import ResidualsView

PRETRAINED = Path(__file__).resolve().parents[2] / "data" / "pretrained" / "otus-zee"
SHOWN = {"x": {"x̃′ = D(z)": "x_vs_x_tilde_prime", "x̃ = D(E(x))": "x_vs_x_tilde"}, "z": {"z̃ = E(x)": "z_vs_z_tilde"}}


def test_statistic_with_floor_averages_the_evaluation_splits():
    from otviz.metrics.fidelity import one_d_stats, split_halves, statistic_with_floor

    rng = np.random.default_rng(3)
    t, o = rng.normal(size=1001), rng.normal(0.3, 1, size=1001)
    v, f = statistic_with_floor(t, o, n_splits=3, seed=7)
    splits = list(split_halves(1001, 3, 7))
    assert all(len(a) == len(b) == 500 and not set(a) & set(b) for a, b in splits)
    for s in STATISTICS:
        assert v[s] == pytest.approx(np.mean([one_d_stats(t[a], o[b])[s] for a, b in splits]), rel=1e-12)
        assert f[s] == pytest.approx(np.mean([one_d_stats(t[a], t[b])[s] for a, b in splits]), rel=1e-12)
    assert v["ks"] > 2 * f["ks"]


def test_residuals_page_shows_the_numbers_of_otviz_evaluate(monkeypatch, tmp_path):
    """The page's table for the shipped run equals the run's stored metrics.nc (otviz evaluate)."""
    monkeypatch.setattr(ui_state, "RUNS", tmp_path / "runs")
    pn.extension("tabulator")
    state = ui_state.ExplorerState()
    state.run_path = str(PRETRAINED)
    stored = otviz.load_run(PRETRAINED).metrics
    assert stored is not None and state.test_sample().sizes["event"] == stored.attrs["n_test"]
    page = ResidualsView(state)
    for space in ("x", "z"):
        page.space = space
        for quantity in ("m_ee", "e+.px"):
            page.quantity = quantity
            table = [o for o in page._plot() if isinstance(o, pn.widgets.Tabulator)][0].value
            assert list(table["sample"]) == list(SHOWN[space])
            for _, row in table.iterrows():
                ref = stored.sel(comparison=SHOWN[space][row["sample"]], quantity=quantity)
                for s in STATISTICS:
                    assert row[s] == pytest.approx(float(ref.value.sel(statistic=s)), rel=1e-6, abs=1e-12)
                    assert row[f"{s} floor"] == pytest.approx(float(ref.floor.sel(statistic=s)), rel=1e-6, abs=1e-12)
