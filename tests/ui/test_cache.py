"""The shared cache's model outputs: computed once per run, stored in the run directory and
identical to ``fidelity.model_outputs``; recomputed when model.pt changes."""
import os
import shutil
from pathlib import Path

import numpy as np

from otviz.metrics.fidelity import model_outputs
from otviz.ui import cache

SHIPPED = Path(__file__).resolve().parents[2] / "data" / "pretrained" / "otus-zee"


def test_model_outputs_are_stored_in_the_run_and_read_back(tmp_path, monkeypatch):
    run = tmp_path / "otus"
    run.mkdir()
    for f in ("config.json", "model.pt"):
        shutil.copy(SHIPPED / f, run)
    cache.CACHE.clear()
    told = []
    first = cache.otus_outputs(run, 50_000, 3, progress=lambda *a: told.append(a))
    # one report per batch of 50,000 events and output (z̃, x̃, x̃′): 3 of 3, named in words
    assert [(d, t) for d, t, _ in told] == [(1, 3), (2, 3), (3, 3)]
    assert [m for _, _, m in told] == ["z̃ = E(x)", "x̃ = D(z̃)", "x̃′ = D(z)"]
    stored = run / "derived-outputs-seed3.npz"
    assert stored.exists()
    r = cache.run(run)
    ds = cache.sample(r.config.test_data)
    ref = model_outputs(r.model, ds["z"].values, ds["x"].values, seed=3)
    for k in ref:
        np.testing.assert_array_equal(first[k], ref[k])
        assert not first[k].flags.writeable
    # a fresh process (empty cache) reads the file instead of running the model
    cache.CACHE.clear()
    monkeypatch.setattr("otviz.metrics.fidelity.model_outputs", lambda *a, **k: 1 / 0)
    again = cache.otus_outputs(run, 50_000, 3, progress=lambda *a: told.append(a))
    assert len(told) == 3  # read back: nothing computed, nothing reported
    for k in ref:
        np.testing.assert_array_equal(again[k], ref[k])
    # new weights (model.pt's mtime changes): the stored outputs are stale and recomputed
    st = os.stat(run / "model.pt")
    os.utime(run / "model.pt", ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    cache.CACHE.clear()
    monkeypatch.undo()
    calls = []

    def counting(*a, **k):
        calls.append(1)
        return model_outputs(*a, **k)

    monkeypatch.setattr("otviz.metrics.fidelity.model_outputs", counting)
    cache.otus_outputs(run, 50_000, 3)
    assert calls == [1]
    cache.CACHE.clear()
    cache.otus_outputs(run, 50_000, 3)
    assert calls == [1]  # the rewritten file carries the new stamp
    cache.otus_outputs(run, 1000, 3)  # a subset is computed, not stored
    assert calls == [1, 1] and sorted(p.name for p in run.glob("derived-*")) == ["derived-outputs-seed3.npz"]
