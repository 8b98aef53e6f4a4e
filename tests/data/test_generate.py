"""`otviz generate` end to end on Dask clusters: reproducibility across seeds and worker counts."""
import json

import numpy as np
import pytest
import xarray as xr

from otviz.cli import main
from otviz.data import load
from otviz.data.generate import chunk_sizes, generate

N, CHUNK = 900, 300


def _data(ds):
    return ds.drop_attrs(deep=False)


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "zee.nc"
    rc = main(["generate", "zee", "--events", str(N), "--chunk-size", str(CHUNK), "--workers", "2",
               "--seed", "7", "--out", str(out), "--quiet"])
    assert rc == 0
    return out


def test_cli_writes_a_valid_sample_with_provenance(two_workers, capsys):
    ds = load(two_workers)
    assert ds.sizes["event"] == N
    a = ds.attrs
    assert a["process"] == "zee" and a["seed"] == 7 and a["n_chunks"] == 3 and a["chunk_size"] == CHUNK
    assert "WeakSingleBoson:ffbar2gmZ = on" in json.loads(a["pythia_settings"])
    versions = json.loads(a["versions"])
    assert versions["pythia8mc"] == "8.317.2" and "fastjet" in versions and "otviz" in versions
    assert json.loads(a["detector_config"])["electron_energy"] == {"a": 0.1, "b": 0.007, "c": 0.0}
    assert a["command"].startswith("otviz generate zee")
    assert 0.2 < a["selection_efficiency"] < 0.7
    assert len(json.loads(a["pythia_chunk_seeds"])) == 3


def test_same_seed_same_file_and_worker_count_does_not_matter(two_workers, tmp_path):
    again, _ = generate("zee", N, seed=7, workers=1, chunk_size=CHUNK, progress=False)
    ref = load(two_workers)
    xr.testing.assert_identical(_data(again), _data(ref))
    for k in ("pythia_settings", "pythia_chunk_seeds", "detector_config", "n_generated"):
        assert again.attrs[k] == ref.attrs[k]
    other, _ = generate("zee", CHUNK, seed=8, workers=1, chunk_size=CHUNK, progress=False)
    assert not np.allclose(other["z"].values[:20], ref["z"].values[:20])


def test_external_scheduler_gives_the_same_events(two_workers):
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        ds, stats = generate("zee", N, seed=7, scheduler=cluster.scheduler_address, chunk_size=CHUNK, progress=False)
    xr.testing.assert_identical(_data(ds), _data(load(two_workers)))
    assert stats["events_per_s"] > 0


def test_cli_errors(tmp_path, two_workers, capsys):
    assert main(["generate", "zee", "--events", "10", "--out", str(two_workers)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["generate", "zee", "--events", "0", "--out", str(tmp_path / "a.nc")]) == 2
    assert main(["generate", "zee", "--events", "10", "--centre", "--out", str(tmp_path / "b.nc")]) == 2
    assert "wjets" in capsys.readouterr().err
    assert not (tmp_path / "a.nc").exists()


def test_chunk_sizes():
    assert chunk_sizes(1000, 300) == [300, 300, 300, 100]
    assert chunk_sizes(600, 300) == [300, 300]
    with pytest.raises(ValueError):
        chunk_sizes(10, 0)
