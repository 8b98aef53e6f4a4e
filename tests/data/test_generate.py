"""`otviz generate` end to end on Dask clusters: reproducibility across seeds and worker counts."""
import json

import numpy as np
import pytest
import xarray as xr

from otviz.cli import main
from otviz.data import load
from otviz.data.generate import chunk_sizes, generate, run_chunk

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
    again, stats = generate("zee", N, seed=7, workers=1, chunk_size=CHUNK, progress=False)
    ref = load(two_workers)
    xr.testing.assert_identical(_data(again), _data(ref))
    # the phases add up to the end-to-end time; one worker runs the three chunks one after another
    p = stats["phases"]
    assert set(p) == {"startup", "work", "close", "merge"}
    assert p["startup"] + p["work"] + p["close"] == pytest.approx(stats["seconds"], abs=0.05)
    assert len(stats["chunk_seconds"]) == 3 and 0 < sum(stats["chunk_seconds"]) <= p["work"]
    assert 0 < sum(stats["chunk_cpu_seconds"]) <= sum(stats["chunk_seconds"]) * 1.2
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


def test_a_chunk_comes_back_as_the_stored_float32_of_generate_chunk():
    from otviz.data.pythia import generate_chunk

    ref = generate_chunk("zee", 50, seed=7, chunk=2)
    out = run_chunk(process="zee", n_events=50, seed=7, chunk=2)
    for k in ("z", "x"):
        assert out[k].dtype == np.float32
        np.testing.assert_array_equal(out[k], ref[k].astype(np.float32))
    assert out["n_generated"] == ref["n_generated"] and out["sigma_gen_mb"] == ref["sigma_gen_mb"]
    assert out["seconds"] > 0 and 0 < out["cpu_seconds"] <= out["seconds"] * 1.2


def test_a_worker_imports_neither_torch_nor_xarray():
    """What a generation worker imports to run a chunk (start-up cost paid by every worker)."""
    import subprocess
    import sys

    code = ("import sys, otviz.data.generate as g; g.run_chunk(process='zee', n_events=5, seed=1); "
            "print(sorted(m for m in ('torch', 'xarray', 'pandas', 'fastjet') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_chunk_sizes():
    assert chunk_sizes(1000, 300) == [300, 300, 300, 100]
    assert chunk_sizes(600, 300) == [300, 300]
    with pytest.raises(ValueError):
        chunk_sizes(10, 0)


def test_generation_needing_more_memory_or_disk_than_is_free_is_refused(tmp_path, capsys, monkeypatch):
    import otviz.data.generate as G
    from otviz.errors import InsufficientResources

    # bytes per accepted event from the dataset layout (float32 z, x and the wjets jet)
    assert G.bytes_per_event("zee") == 4 * (2 * 4 + 2 * 4)
    assert G.bytes_per_event("ttbar") == 4 * (6 * 4 + 6 * 4)
    assert G.bytes_per_event("wjets") == 4 * (2 * 4 + 50 * 3 + 4)
    est = G.resource_estimate("zee", 10 ** 6)
    assert est["memory"] == 64 * 10 ** 6 * G.MEMORY_FACTOR + G.BASE_MEMORY and est["disk"] > 64 * 10 ** 6
    for events in ("1e12", "1000000000000"):
        assert main(["generate", "zee", "--events", events, "--out", str(tmp_path / "big.nc")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "memory" in err and "--events 1000000000000" in err
    # too little memory / disk for a modest request: refused before any work
    monkeypatch.setattr(G, "available_memory", lambda: 100 * 2 ** 20)
    with pytest.raises(InsufficientResources, match="memory"):
        G.generate("zee", 10_000, progress=False)
    monkeypatch.undo()

    class Usage:
        free = 10_000

    monkeypatch.setattr("shutil.disk_usage", lambda p: Usage)
    assert main(["generate", "wjets", "--events", "1000", "--out", str(tmp_path / "sub" / "w.nc")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "disk" in err and "w.nc" in err
    assert not list(tmp_path.rglob("*.nc"))


def test_detector_overrides_are_validated(tmp_path):
    from otviz.data.detector import DetectorConfig, Resolution
    from otviz.errors import ConfigError

    assert DetectorConfig.from_json('{"jet_r": 0.4}').jet_r == 0.4
    assert DetectorConfig.from_json(DetectorConfig().to_json()) == DetectorConfig()
    for text, needle in [('{"bogus": 1}', "unknown DetectorConfig field"), ('{"jet_r": "x"}', "jet_r"),
                         ('{"jet_r": -0.4}', "jet_r"), ('{"n_constituents": 2.5}', "n_constituents"),
                         ('{"electron_efficiency": 1.2}', "electron_efficiency"),
                         ('{"hadron_energy": {"a": 0.5, "b": 0.03, "d": 1}}', "hadron_energy"),
                         ('{"hadron_energy": {"a": -0.5, "b": 0.03}}', "hadron_energy.a"), ("[1, 2]", "JSON object"),
                         ("{", "not valid JSON")]:
        with pytest.raises(ConfigError, match=needle):
            DetectorConfig.from_json(text)
    with pytest.raises(ConfigError, match=r"^o.json: unknown"):
        DetectorConfig.from_json('{"bogus": 1}', source="o.json")
    with pytest.raises(ConfigError, match="track_angle"):
        DetectorConfig(track_angle=-1.0)
    with pytest.raises(ConfigError, match="b = -0.1"):
        Resolution(0.1, -0.1)
