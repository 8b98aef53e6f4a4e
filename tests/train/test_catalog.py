import json

import pytest

from otviz.train import catalog


def _run(d, status="done", metrics=None, steps=None):
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"train_data": "data/zee_train.nc"}))
    (d / "status.json").write_text(json.dumps({"status": status}))
    (d / "model.pt").write_bytes(b"\0" * 2 ** 20)
    if metrics is not None:
        (d / "metrics.json").write_text(json.dumps(metrics))
    if steps is not None:
        (d / "steps.json").write_text(json.dumps(steps))
    return d


def test_list_shows_size_status_and_metrics_with_floors(tmp_path):
    m = {"comparisons": {"x_vs_x_tilde_prime": {"sw": 17.2, "sw_floor": 17.4,
                                                "quantities": {"m_ee": {"ks": {"value": 0.0194, "floor": 0.0061}}}}}}
    a = _run(tmp_path / "runs" / "a", metrics=m)
    _run(tmp_path / "runs" / "b", status="failed", steps=[{"beta": 0.003981071705534973, "rate": 22.41, "distortion": 0.00898}])
    rows = catalog.list_runs([(tmp_path / "runs", "runs", False)])
    byname = {r.name: r for r in rows}
    assert set(byname) == {"runs/a", "runs/b"}
    ra = byname["runs/a"]
    assert ra.size_mb == pytest.approx((2 ** 20 + sum(f.stat().st_size for f in a.iterdir() if f.name != "model.pt")) / 2 ** 20, abs=0.01)
    assert ra.metrics == "SW(x, x̃′) 17.2 (floor 17.4) GeV², KS(m_ee) 0.0194 (floor 0.0061)"
    assert ra.data == "data/zee_train.nc" and not ra.shipped
    assert byname["runs/b"].metrics == "1 β steps, last β 0.00398, R 22.4, D 0.00898"
    text = catalog.format_table(rows)
    assert text.splitlines()[0].split()[:3] == ["run", "kind", "status"] and "runs/a" in text


def test_delete_frees_the_run_and_refuses_shipped_and_non_runs(tmp_path, monkeypatch):
    d = _run(tmp_path / "runs" / "a")
    size = catalog.dir_size(d)
    assert size > 2 ** 20 and catalog.delete_run(d) == size
    assert not d.exists()
    with pytest.raises(ValueError, match="not a run directory"):
        catalog.delete_run(tmp_path)
    shipped = _run(tmp_path / "home" / "data" / "pretrained" / "x")
    monkeypatch.setenv("OTVIZ_HOME", str(tmp_path / "home"))
    with pytest.raises(ValueError, match="shipped run"):
        catalog.delete_run(shipped)
    assert shipped.exists()
    busy = _run(tmp_path / "runs" / "busy", status="running")
    import os
    import socket
    import time
    # recorded as running by a live process on this host (this one): not deleted
    (busy / "status.json").write_text(json.dumps({"status": "running", "pid": os.getppid(), "host": socket.gethostname(),
                                                  "heartbeat": time.time()}))
    with pytest.raises(ValueError, match="cancel it first"):
        catalog.delete_run(busy)


def test_date_is_the_recorded_time_and_caches_are_counted_apart(tmp_path):
    import datetime
    import os

    d = _run(tmp_path / "runs" / "a")
    t = datetime.datetime(2026, 11, 23, 12, 34).timestamp()
    (d / "status.json").write_text(json.dumps({"status": "done", "time": t, "heartbeat": t}))
    (d / "derived-outputs-seed0.npz").write_bytes(b"\0" * 3 * 2 ** 20)
    for f in d.iterdir():  # a clone / copy: every mtime is now
        os.utime(f, (t + 86400 * 30, t + 86400 * 30))
    r = catalog.run_info(d)
    assert r.date == "2026-11-23 12:34"
    assert r.size_mb == pytest.approx(1.0, abs=0.01) and r.cache_mb == pytest.approx(3.0, abs=0.01)
    row = catalog.format_table([r]).splitlines()[1]
    assert "1.0 (+3.0 cache)" in row and "2026-11-23 12:34" in row


def test_an_otus_run_without_metrics_says_how_to_get_them(tmp_path, monkeypatch):
    from otviz.train.config import otus_zee_config

    d = tmp_path / "r"
    d.mkdir()
    (d / "config.json").write_text(otus_zee_config(epochs=1).to_json())
    (d / "status.json").write_text(json.dumps({"status": "done", "time": 1.0e9}))
    monkeypatch.chdir(tmp_path)
    assert catalog.run_info(d).metrics == "run `otviz evaluate r`"
