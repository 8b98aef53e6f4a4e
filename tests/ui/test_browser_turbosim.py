"""A Turbo-Sim tt̄ run trained from the served Train page in headless Chromium (Debian's
/usr/bin/chromium): its GAN-health curves (critics' W₁ estimates, gradient penalties, generator
terms) with legends in words, then the Compare runs page with its KS table beside the shipped
tt̄ OTUS run's (floors and the published rows)."""
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"

if not Path(CHROMIUM).exists() and os.environ.get("CI", "").lower() not in ("", "0", "false"):

    @pytest.fixture(autouse=True, scope="module")
    def _chromium_required():
        pytest.fail(f"{CHROMIUM} is missing and CI is set: scripts/setup.sh installs it (apt-get install chromium)",
                    pytrace=False)
else:
    pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason="Debian chromium not installed (scripts/setup.sh installs it)")

LEGEND_JS = """() => {
  const out = [];
  for (const doc of window.Bokeh.documents)
    for (const m of doc.all_models)
      if (m.constructor.__name__ === "LegendItem" && m.label && m.label.value) out.push(m.label.value);
  return out;
}"""

AXIS_LABELS_JS = """() => {
  const out = [];
  for (const doc of window.Bokeh.documents)
    for (const m of doc.all_models) {
      const n = m.constructor.__name__;
      if ((n === "LinearAxis" || n === "LogAxis") && m.axis_label) out.push(m.axis_label);
    }
  return out;
}"""

CRITICS = ["z̃ critic (E(x) vs z)", "x̂ critic (D(E(x)) vs x)", "x̃ critic (D(z) vs x)", "ẑ critic (E(D(z)) vs z)"]

RUNS_DIR: list = []  # the served app's runs/ (OTVIZ_RUNS)
SERVER_LOG: list = []  # the served app's log file


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = _free_port()
    RUNS_DIR[:] = [tmp_path_factory.mktemp("runs")]
    # post-run products on (the default): a finished tt̄ run gets its ks_table.nc, as in production
    env = dict(os.environ, OTVIZ_RUNS=str(RUNS_DIR[0]), OTVIZ_POST_RUN_METRICS="1")
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
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:  # a run's post-run products still computing
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
    log = SERVER_LOG[0].read_text() if SERVER_LOG else ""
    assert "Traceback" not in log and "ERROR" not in log, log[-4000:]  # nor in the server's log


def _type_into(page, label: str, value):
    """Type ``value`` into the form's input labelled ``label`` and commit it (Enter), like a user."""
    group = page.locator(".bk-input-group", has=page.locator("label", has_text=re.compile(f"^{re.escape(label)}$")))
    box = group.locator("input").first
    box.fill(str(value))
    box.press("Enter")


def _pick(page, name: str):
    """Add the run labelled ``name`` in the Compare page's multi-choice."""
    page.locator(".choices").first.click()
    page.locator(".choices__list--dropdown .choices__item", has_text=name).get_by_text(name, exact=True).click()


def test_turbosim_trains_with_gan_health_and_compares_with_the_shipped_ttbar_run(server, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1440, "height": 1100})
    page.set_default_timeout(120_000)
    page.goto(server)
    page.get_by_text("otviz latent explorer").first.wait_for()
    page.wait_for_selector("canvas", state="visible")  # the landing page drew
    page.get_by_text("Train", exact=True).click()
    page.get_by_role("button", name="Turbo-Sim tt̄").click()
    page.get_by_text("New Turbo-Sim tt̄ run").wait_for()
    _type_into(page, "epochs", 3)
    _type_into(page, "batch size", 1000)
    _type_into(page, "training events (0: all)", 5000)
    page.get_by_text("Loss-term weights (0 switches a term off)").click()  # the collapsed card opens
    page.get_by_text("D_ẑ: critic on E(D(z)) vs z", exact=True).wait_for()
    page.wait_for_timeout(500)  # the typed values reach the server
    # the open card's labels fit the sidebar: no sideways scrolling
    assert page.evaluate("() => { const s = document.querySelector('#sidebar');"
                         " return s.scrollWidth <= s.clientWidth + 1; }")
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("Done.").wait_for(timeout=150_000)
    (rundir,) = (RUNS_DIR[0] / "ui").iterdir()  # the one dashboard run of this server
    page.get_by_text(f"{rundir}").first.wait_for()  # named in the status line
    # the GAN-health curves: one legend entry per critic in words, on labelled axes
    page.get_by_text("GAN health per epoch").wait_for()
    page.wait_for_function(f"({LEGEND_JS})().includes({CRITICS[-1]!r})")
    legend = page.evaluate(LEGEND_JS)
    assert all(legend.count(c) >= 2 for c in CRITICS), legend  # W₁ estimates and gradient penalties
    assert "L_z̃: MSE(z, E(x)) on pairs" in legend and "D_x̃: critic on D(z) vs x" in legend
    assert not any(re.fullmatch(r"[wd]_\w+|gp_\w+", item) for item in legend), legend  # no code names
    labels = page.evaluate(AXIS_LABELS_JS)
    assert {"W₁ estimate", "gradient penalty",
            "loss term (unweighted)", "epoch"} <= set(labels), labels
    page.get_by_text("GAN health per epoch").scroll_into_view_if_needed()  # the main area scrolls, not the page
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / "12_turbosim_train_done.png"))
    _docs_copy("12_turbosim_train_done.png", "turbosim_train.png")
    _no_traceback(page)
    # the dashboard computes the run's products when it ends: wait for its KS table
    deadline = time.time() + 150
    while not (rundir / "ks_table.nc").exists():
        assert time.time() < deadline, f"no ks_table.nc in {rundir}: {SERVER_LOG[0].read_text()[-2000:]}"
        time.sleep(1)

    page.get_by_text("Compare runs", exact=True).click()
    page.get_by_text("Compare runs page", exact=True).wait_for()
    page.get_by_role("button", name="Refresh lists").click()
    mine = f"runs/{rundir.relative_to(RUNS_DIR[0])}"
    _pick(page, mine)
    _pick(page, "pretrained/otus-ttbar")
    page.keyboard.press("Escape")
    page.get_by_text("KS table of the Turbo-Sim slide, side by side").wait_for(timeout=150_000)
    page.get_by_text("one floor column").wait_for()
    titles = page.locator(".tabulator-col-title").all_inner_texts()
    # a header group per run (KS ×10⁻², KS/floor, goal met under its name), the floor, the published rows
    for column in (rundir.name, "otus-ttbar", "floor ×10⁻²", "published", "OTUS ×10⁻²", "Turbo-Sim ×10⁻²"):
        assert column in titles, titles
    assert titles.count("KS ×10⁻²") == 2 and titles.count("KS/floor") == 2, titles
    # the m_W^had row: both runs' values, the floor and the published 11.70 (OTUS) and 14.70 (Turbo-Sim)
    from otviz.train.products import read_ks_table

    mine_tab = read_ks_table(rundir).sel(observable="m_W_had")
    shipped = read_ks_table(ROOT / "data" / "pretrained" / "otus-ttbar").sel(observable="m_W_had")
    row = page.locator(".tabulator-row", has_text="m_W^had [GeV]").last
    cells = row.locator(".tabulator-cell").all_inner_texts()
    for v in (100 * float(mine_tab.ks), 100 * float(shipped.ks), 100 * float(shipped.ks_floor), 11.7, 14.7):
        assert f"{v:.2f}" in cells, (v, cells)
    page.get_by_text("KS table of the Turbo-Sim slide, side by side").scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "13_turbosim_compare_ks.png"))
    _docs_copy("13_turbosim_compare_ks.png", "turbosim_compare.png")
    _no_traceback(page)
    page.close()


def _docs_copy(artifact: str, name: str) -> None:
    """The README's screenshots of the Turbo-Sim Train page and the Compare page's KS table."""
    import shutil

    docs = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    docs.mkdir(parents=True, exist_ok=True)
    shutil.copy(ARTIFACTS / artifact, docs / name)
