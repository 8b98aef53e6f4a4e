"""A non-editable install works: build the wheel, install it into a fresh venv (the dependencies
come from this venv's site-packages through a .pth file, so nothing is downloaded), fill an
OTVIZ_HOME with ``otviz data fetch`` and, from a directory outside the checkout, read a shipped
sample with ``otviz info`` and a shipped run with ``otviz.load_run``."""
import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd, **kw):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kw)
    assert proc.returncode == 0, (cmd, proc.stdout, proc.stderr)
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"  # a clean copy: the build never writes into the checkout
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("otviz", "apps"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
          "--disable-pip-version-check", "-w", tmp / "dist", src])
    wheel = next((tmp / "dist").glob("otviz-*.whl"))
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    py = venv / "bin" / "python"
    site = _run([py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip()
    Path(site, "_otviz_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run([sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps",
          "--disable-pip-version-check", wheel])
    return tmp, venv, wheel


def test_wheel_holds_the_package_and_the_app_not_the_data(installed):
    _, _, wheel = installed
    names = zipfile.ZipFile(wheel).namelist()
    assert "otviz/cli.py" in names and "otviz/data/shipped.py" in names
    assert any(n.endswith("data/share/otviz/apps/latent_explorer.py") for n in names)
    assert not any(n.endswith((".nc", ".pt")) for n in names)  # samples and runs come by `otviz data fetch`


def test_installed_otviz_reads_a_fetched_home_outside_the_checkout(installed):
    tmp, venv, _ = installed
    home, cwd = tmp / "home", tmp / "elsewhere"
    cwd.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp), "OTVIZ_HOME": str(home)}
    otviz = venv / "bin" / "otviz"
    assert _run([otviz, "--version"], cwd=cwd, env=env).stdout.strip() == f"otviz {version('otviz')}"
    out = _run([otviz, "data", "fetch", "--from", ROOT], cwd=cwd, env=env).stdout
    assert out.startswith(f"{home / 'data'}: copied ")
    assert (home / "data" / "clusters" / "zqq_clusters.nc").exists()  # the HadML cluster samples come too
    info = _run([otviz, "info", "data/zee_test.nc"], cwd=cwd, env=env).stdout.splitlines()
    assert info[0] == "data/zee_test.nc: process=zee events=50000 (valid)"
    peak = next(ln for ln in info if ln.strip().startswith("m_ee(z): peak"))
    assert 90.5 < float(peak.split("peak")[1].split("±")[0]) < 91.7  # the Z mass, 91.19 GeV
    probe = ("import json, otviz, otviz.paths as p; r = otviz.load_run('data/pretrained/otus-zee'); "
             "print(json.dumps({'file': otviz.__file__, 'checkout': p.in_checkout(), 'run': str(r.path), "
             "'epochs': len(r.history), 'app': str(p.app_file()), 'app_exists': p.app_file().exists()}))")
    got = json.loads(_run([venv / "bin" / "python", "-c", probe], cwd=cwd, env=env).stdout)
    assert got["file"].startswith(str(venv)) and not got["checkout"]  # the installed copy, not the checkout
    assert got["run"] == str(home / "data" / "pretrained" / "otus-zee")
    assert got["epochs"] == len(json.loads((ROOT / "data" / "pretrained" / "otus-zee" / "history.json").read_text()))
    assert got["app"].startswith(str(venv)) and got["app_exists"]
