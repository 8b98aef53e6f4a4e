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
