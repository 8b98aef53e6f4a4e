"""otviz.paths decides where data and runs live: $OTVIZ_HOME, else the checkout, else the user
data directory; relative shipped paths (``data/…``) resolve under that home."""
from pathlib import Path

import otviz.paths as paths

ROOT = Path(__file__).resolve().parents[1]


def test_checkout_is_the_home_without_otviz_home(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # resolve() looks under the home, not the working directory
    monkeypatch.delenv("OTVIZ_HOME", raising=False)
    monkeypatch.delenv("OTVIZ_RUNS", raising=False)
    assert paths.in_checkout()
    assert paths.home() == ROOT
    assert paths.DATA == ROOT / "data" and paths.PRETRAINED == ROOT / "data" / "pretrained"
    assert paths.RUNS == ROOT / "runs"
    assert paths.resolve("data/zee_test.nc") == ROOT / "data" / "zee_test.nc"


def test_otviz_home_moves_data_and_runs(monkeypatch, tmp_path):
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "zee_test.nc").write_bytes(b"x")
    monkeypatch.setenv("OTVIZ_HOME", str(tmp_path))
    monkeypatch.delenv("OTVIZ_RUNS", raising=False)
    assert paths.home() == tmp_path.resolve()
    assert paths.DATA == tmp_path.resolve() / "data"
    assert paths.RUNS == tmp_path.resolve() / "runs"
    assert paths.resolve("data/zee_test.nc") == tmp_path.resolve() / "data" / "zee_test.nc"
    # a path not under the home is returned as given; OTVIZ_RUNS moves runs/ alone
    assert paths.resolve("data/missing.nc") == Path("data/missing.nc")
    monkeypatch.setenv("OTVIZ_RUNS", str(tmp_path / "elsewhere"))
    assert paths.RUNS == tmp_path / "elsewhere" and paths.DATA == tmp_path.resolve() / "data"


def test_installed_copy_uses_the_user_data_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("OTVIZ_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(paths, "CHECKOUT", tmp_path / "site-packages")  # as in a wheel install
    assert not paths.in_checkout()
    assert paths.home() == tmp_path / "xdg" / "otviz"
    assert paths.PRETRAINED == tmp_path / "xdg" / "otviz" / "data" / "pretrained"
