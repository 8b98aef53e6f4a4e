"""The Compare runs page served and driven in headless Chromium (Debian's /usr/bin/chromium), on a
tiny sweep (otus-zee, λ = 1 and 20) trained in the test under the served app's runs root."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = ROOT / "docs" / "screenshots"

if not Path(CHROMIUM).exists() and os.environ.get("CI", "").lower() not in ("", "0", "false"):

    @pytest.fixture(autouse=True, scope="module")
    def _chromium_required():
        pytest.fail(f"{CHROMIUM} is missing and CI is set: scripts/setup.sh installs it (apt-get install chromium)",
                    pytrace=False)
else:
    pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason="Debian chromium not installed (scripts/setup.sh installs it)")

AXIS_LABELS_JS = """() => {
  const out = [];
  for (const doc of window.Bokeh.documents)
    for (const m of doc.all_models) {
      const n = m.constructor.__name__;
      if ((n === "LinearAxis" || n === "LogAxis" || n === "CategoricalAxis") && m.axis_label) out.push(m.axis_label);
    }
  return out;
}"""

SERVER_LOG: list = []


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory):
    from tests.ui.test_compare_view import make_tiny_sweep

    return make_tiny_sweep(tmp_path_factory.mktemp("compare")).parent


@pytest.fixture(scope="module")
def server(tmp_path_factory, runs_root):
    port = _free_port()
    env = dict(os.environ, OTVIZ_RUNS=str(runs_root), OTVIZ_POST_RUN_METRICS="0")
    SERVER_LOG[:] = [tmp_path_factory.mktemp("log") / "panel.log"]
    log = open(SERVER_LOG[0], "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "panel", "serve", "apps/latent_explorer.py", "--address", "127.0.0.1",
         "--port", str(port), "--allow-websocket-origin", f"127.0.0.1:{port}", "--num-procs", "1", "--warm"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.5)
    yield f"http://127.0.0.1:{port}/latent_explorer"
    proc.terminate()
    proc.wait(20)
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
    log = SERVER_LOG[0].read_text() if SERVER_LOG else ""
    assert "Traceback" not in log and "ERROR" not in log, log[-4000:]


def test_compare_runs_page_shows_the_sweep_two_runs_and_their_config_diff(server, browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1440, "height": 2000})
    page.set_default_timeout(120_000)
    page.goto(server)
    page.get_by_text("otviz latent explorer").first.wait_for()
    page.wait_for_selector("canvas", state="visible")  # the landing page drew
    page.get_by_text("Compare runs", exact=True).click()
    page.get_by_text("Compare runs page", exact=True).wait_for()
    # the sweep: KS/floor of m_ee in x̃′ against λ, axes labelled
    page.wait_for_function(f"({AXIS_LABELS_JS})().includes('λ (weight of SW(z, z̃))')")
    labels = page.evaluate(AXIS_LABELS_JS)
    assert "KS/floor of m_ee in x̃′" in labels, labels
    page.get_by_text("2 runs of otus-zee").wait_for()
    # two runs of the sweep, picked in the sidebar's multi-choice
    for name in ("runs/sweep-lam/lam=1", "runs/sweep-lam/lam=20"):
        page.locator(".choices").first.click()
        page.locator(".choices__list--dropdown .choices__item", has_text=name).get_by_text(name, exact=True).click()
    page.keyboard.press("Escape")
    page.wait_for_function(f"({AXIS_LABELS_JS})().includes('x: m_ee [GeV]')")
    assert "density [1/GeV]" in page.evaluate(AXIS_LABELS_JS)
    page.get_by_text("stages[0].lam: 1 → 20").wait_for()  # the config diff
    page.get_by_text("lam=20: KS/floor").first.wait_for()  # the KS tables side by side
    page.wait_for_timeout(500)
    page.screenshot(path=str(SCREENSHOTS / "compare.png"), full_page=True)
    _no_traceback(page)
    page.close()
