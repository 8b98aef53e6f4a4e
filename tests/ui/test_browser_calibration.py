"""The Calibration page served and driven in headless Chromium (Debian's /usr/bin/chromium): on an
OT calibration run (the shipped data/pretrained/otcal-wjets when present, else a toy run made here
like tests/train/test_calibration.py's), the corner plot of density contours is drawn, moving the
interpolation slider redraws it (its pixels change and the page states the new t), the AUC table
and the score histograms are there, and no traceback reaches the page or the server log."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
SHIPPED = ROOT / "data" / "pretrained" / "otcal-wjets"

if not Path(CHROMIUM).exists() and os.environ.get("CI", "").lower() not in ("", "0", "false"):

    @pytest.fixture(autouse=True, scope="module")
    def _chromium_required():
        pytest.fail(f"{CHROMIUM} is missing and CI is set: scripts/setup.sh installs it (apt-get install chromium)",
                    pytrace=False)
else:
    pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason="Debian chromium not installed (scripts/setup.sh installs it)")

SERVER_LOG: list = []


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_toy_run(d: Path) -> Path:
    """A small finished otcal run in ``d``/cal: toy jets → a tiny tagger → latents, the data domain
    an affine map of the simulated one → one quick ICNN map per class."""
    from otviz.data.toy import multiplicity_jets
    from otviz.models.tagger import TaggerModelConfig
    from otviz.train.calibration import CalibrationRun, otcal_wjets_config
    from otviz.train.tagger import TaggerConfig, TaggerRun, write_latents

    files = {}
    for name, lam, seed in (("sig_sim", 12.0, 1), ("bkg_sim", 8.0, 2), ("sig_data", 12.0, 3), ("bkg_data", 8.0, 4)):
        files[name] = d / f"{name}.nc"
        multiplicity_jets(1000, lam, seed=seed).to_netcdf(files[name], engine="h5netcdf")
    small = TaggerModelConfig(phi_hidden=(32,), phi_out=32, f_hidden=(32,))
    TaggerRun(d / "tagger", TaggerConfig(model="toy", signal=str(files["sig_sim"]), background=str(files["bkg_sim"]),
                                         epochs=2, batch_size=128, device="cpu", model_config=small)).run_blocking()
    ds = write_latents(d / "tagger", [files[k] for k in ("sig_sim", "bkg_sim", "sig_data", "bkg_data")],
                       d / "raw.nc", labels=[1, 0, 1, 0], domains=["sim", "sim", "data", "data"])
    z = ds["z128"].values.copy()
    is_data = ds["domain"].values == "data"
    z[is_data] = 1.3 * z[is_data] + 0.5
    ds["z128"].values = z
    ds.to_netcdf(d / "latents.nc", engine="h5netcdf")
    fast = dict(steps=60, g_steps=4, f_steps=2, batch=256, pretrain_steps=20, log_every=20, checkpoint_every=60)
    cfg = otcal_wjets_config(latents=str(d / "latents.nc"), device="cpu", disc_hidden=(16,), disc_max_iter=20,
                             map_config=fast)
    run = CalibrationRun(d / "cal", cfg)
    assert run.run_blocking() == "done", run.message
    return d / "cal"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    port = _free_port()
    env = dict(os.environ, OTVIZ_RUNS=str(runs), OTVIZ_POST_RUN_METRICS="0", OMP_NUM_THREADS="1")
    SERVER_LOG[:] = [tmp_path_factory.mktemp("log") / "panel.log"]
    log = open(SERVER_LOG[0], "w")
    proc = subprocess.Popen(  # starts while the toy run trains
        [sys.executable, "-m", "panel", "serve", "apps/latent_explorer.py", "--address", "127.0.0.1",
         "--port", str(port), "--allow-websocket-origin", f"127.0.0.1:{port}", "--num-procs", "1"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        rundir = SHIPPED if (SHIPPED / "points.nc").exists() else make_toy_run(runs)
        deadline = time.time() + 240
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/latent_explorer", rundir
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


def _no_traceback(page):
    text = page.inner_text("body")
    assert "Traceback" not in text and "Error:" not in text, text[:2000]
    assert "Cannot show this calibration run" not in text and "Corner plot:" not in text, text[:2000]
    log = SERVER_LOG[0].read_text() if SERVER_LOG else ""
    assert "Traceback" not in log and "ERROR" not in log, log[-4000:]


def test_calibration_page_moves_the_simulated_points_with_the_slider(server, browser):
    url, rundir = server
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1440, "height": 1700})
    page.set_default_timeout(60_000)
    page.goto(url)
    page.get_by_text("otviz latent explorer").first.wait_for()
    page.get_by_text("Calibration", exact=True).click()
    page.get_by_text(f"OT calibration {rundir.name}").first.wait_for()
    page.get_by_text("simulated points at t = 0.00").wait_for()
    corner = page.locator(".otviz-corner").first
    corner.locator("canvas").first.wait_for(state="visible")
    page.get_by_text("Discriminator AUC").wait_for()
    page.get_by_text("floor: data vs data").wait_for()
    page.get_by_text("Working point").first.wait_for()
    page.wait_for_timeout(1500)  # every panel drawn
    before = corner.screenshot()
    _no_traceback(page)
    # the interpolation slider (sidebar): its handle to the far end, as a user drags it
    handle = page.locator(".noUi-handle").last
    handle.focus()
    handle.press("End")
    page.get_by_text("simulated points at t = 1.00").wait_for(timeout=30_000)
    page.wait_for_timeout(2000)  # the new corner plot drawn
    after = corner.screenshot()
    assert after != before, "the corner plot did not change when t moved from 0 to 1"
    page.screenshot(path=str(ARTIFACTS / "14_calibration.png"), full_page=True)
    _docs_copy("14_calibration.png", "calibration.png")
    _no_traceback(page)
    page.close()


def _docs_copy(artifact: str, name: str) -> None:
    import shutil

    docs = ROOT / "docs" / "screenshots"
    docs.mkdir(parents=True, exist_ok=True)
    shutil.copy(ARTIFACTS / artifact, docs / name)
