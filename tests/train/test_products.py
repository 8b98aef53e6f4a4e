"""The run layer stores what the pure metric functions compute; progress reaches the caller."""
import json
from types import SimpleNamespace

import numpy as np
import pytest

from otviz.data.io import save
from otviz.metrics.fidelity import evaluate_otus, metrics_to_json
from otviz.progress import Steps, as_progress
from otviz.train import products
from tests.metrics.test_fidelity import FakeModel, identity_sample


def test_progress_argument_forms():
    assert as_progress(None)(1, 2, "x") is None and as_progress(False)(1, 2, "x") is None
    seen = []
    cb = seen.append
    assert as_progress(cb) is cb  # a callable is used as it is
    steps = Steps(lambda d, t, m: seen.append((d, t, m)), total=3)
    steps("a")
    steps("b", n=5)  # never past the total
    assert seen == [(1, 3, "a"), (3, 3, "b")]
    with pytest.raises(TypeError, match="progress"):
        as_progress(3)


def test_evaluate_stores_the_pure_metrics_and_reports_every_step(tmp_path):
    test = identity_sample(n=4000)
    save(test, tmp_path / "test.nc")
    run = SimpleNamespace(path=tmp_path, model=FakeModel(shift=5.0), config=SimpleNamespace(test_data=None))
    with pytest.raises(ValueError, match="no test sample"):
        products.evaluate(run)
    run.config.test_data = str(tmp_path / "test.nc")
    calls = []
    ds, summary = products.evaluate(run, n_projections=100, progress=lambda d, t, m: calls.append((d, t, m)))
    # 3 forward passes (one batch each) + 3 comparisons × 9 quantities + 5 SW splits + closure
    assert [c[0] for c in calls] == list(range(1, 37)) and {c[1] for c in calls} == {36}
    assert calls[-1][2] == "closure" and calls[3][2] == "z_vs_z_tilde: e-.px"
    ref = evaluate_otus(FakeModel(shift=5.0), test, n_projections=100)
    np.testing.assert_array_equal(ds["ratio"].values, ref["ratio"].values)
    np.testing.assert_array_equal(ds["sw"].values, ref["sw"].values)
    assert ds.attrs["test_data"] == str(tmp_path / "test.nc")
    assert json.loads((tmp_path / "metrics.json").read_text()) == summary == metrics_to_json(ds)
    back = products.read_metrics(tmp_path)
    np.testing.assert_array_equal(back["value"].values, ref["value"].values)
    assert products.read_dimension(tmp_path) is None


def test_progress_true_draws_one_tqdm_bar_on_stderr(capsys):
    fn = as_progress(True, desc="otviz evaluate")
    for i in range(1, 5):
        fn(i, 4, f"step {i}")
    err = capsys.readouterr().err
    assert "otviz evaluate" in err and "4/4" in err and "step 4" in err


def test_evaluate_stores_the_ks_table_of_a_ttbar_sample_and_drops_it_for_another(tmp_path):
    """On the tt̄ layout ``evaluate`` writes ks_table.nc: the pure ks_table on the same model outputs
    (same seeds) as metrics.nc; evaluated again on a Z→ee sample the stale table is removed."""
    from pathlib import Path

    import xarray as xr

    from otviz.data.io import load
    from otviz.metrics.fidelity import model_outputs
    from otviz.metrics.ks_table import OBSERVABLES, ks_table

    root = Path(__file__).resolve().parents[2]
    with xr.open_dataset(root / "data" / "ttbar_test.nc", engine="h5netcdf") as ds:
        save(ds.isel(event=slice(0, 2000)).load(), tmp_path / "tt.nc")
    test = load(tmp_path / "tt.nc")
    assert products.has_ttbar_layout(test) and products.sample_has_ttbar_layout(tmp_path / "tt.nc")
    assert not products.has_ttbar_layout(identity_sample(n=10))
    run = SimpleNamespace(path=tmp_path, model=FakeModel(shift=30.0), config=SimpleNamespace(test_data=str(tmp_path / "tt.nc")))
    ds, _ = products.evaluate(run, n_projections=20)
    stored = products.read_ks_table(tmp_path)
    ref = ks_table(model_outputs(FakeModel(shift=30.0), test["z"].values, test["x"].values, seed=0))
    assert list(stored.observable.values) == list(OBSERVABLES) and stored.attrs["n_test"] == 2000
    for v in ("ks", "ks_floor", "ks_ratio", "goal", "published"):
        np.testing.assert_array_equal(stored[v].values, ref[v].values)
    # the table's entries are metrics.nc's KS of the same observable and comparison
    for obs in OBSERVABLES:
        r = stored.sel(observable=obs)
        m = ds.sel(comparison=str(r.comparison.values), quantity=obs, statistic="ks")
        assert float(r.ks) == pytest.approx(float(m["value"]), rel=1e-12)
        assert float(r.ks_floor) == pytest.approx(float(m["floor"]), rel=1e-12)
    assert float(stored.ks.sel(observable="jet1.E")) > 0.1  # a massless, shifted decoder is visibly off
    save(identity_sample(n=2000), tmp_path / "zee.nc")
    run.config.test_data = str(tmp_path / "zee.nc")
    products.evaluate(run, n_projections=20)
    assert products.read_ks_table(tmp_path) is None and not (tmp_path / products.KS_TABLE_FILE).exists()
