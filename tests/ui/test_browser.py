"""Serve the latent explorer and drive it in headless Chromium (Debian's /usr/bin/chromium)."""
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
    # under CI a missing browser fails every test here instead of skipping unseen

    @pytest.fixture(autouse=True, scope="module")
    def _chromium_required():
        pytest.fail(f"{CHROMIUM} is missing and CI is set: scripts/setup.sh installs it (apt-get install chromium)",
                    pytrace=False)
else:
    pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason="Debian chromium not installed (scripts/setup.sh installs it)")

CDS_POINTS_JS = """() => {
  let n = 0;
  for (const doc of window.Bokeh.documents) {
    for (const m of doc.all_models) {
      const d = m.data;
      if (d === undefined || d === null) continue;
      const step = d instanceof Map ? d.get("epoch") : d.epoch;
      const value = d instanceof Map ? d.get("value") : d.value;
      if (step !== undefined && value !== undefined) n += step.length;
    }
  }
  return n;
}"""


PLOTS_JS = """() => {
  let n = 0;
  for (const doc of window.Bokeh.documents)
    for (const m of doc.all_models) if (m.constructor.__name__ === "Figure") n += 1;
  return n;
}"""


RUNS_DIR: list = []  # the served app's runs/ (OTVIZ_RUNS)
SERVER_LOG: list = []  # the served app's log file


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = _free_port()
    # two runs at once: the test trains in two sessions concurrently (the default is one, others queue)
    RUNS_DIR[:] = [tmp_path_factory.mktemp("runs")]
    env = dict(os.environ, OTVIZ_RUNS=str(RUNS_DIR[0]), OTVIZ_MAX_ACTIVE_RUNS="2", OTVIZ_POST_RUN_METRICS="0")
    SERVER_LOG[:] = [tmp_path_factory.mktemp("log") / "panel.log"]
    log = open(SERVER_LOG[0], "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "panel", "serve", "apps/latent_explorer.py", "--address", "127.0.0.1",
         "--port", str(port), "--allow-websocket-origin", f"127.0.0.1:{port}", "--num-procs", "1",
         "--warm"],  # as python -m otviz.ui.serve: the app runs once (shared cache filled) before it listens
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
    assert "Traceback" not in log and "ERROR" not in log, log[-4000:]  # nor in the server's log


def test_train_transport_residuals_in_the_browser(server, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    page.goto(server + "?epochs=10&finetune_epochs=0&max_events=20000&batch_size=2000&n_projections=1000")
    page.get_by_text("otviz latent explorer").wait_for()
    page.wait_for_selector("canvas")  # the Data page plot rendered
    page.screenshot(path=str(ARTIFACTS / "01_data.png"))
    _no_traceback(page)

    page.get_by_text("Train", exact=True).click()
    page.get_by_role("button", name="Start training").click()
    page.get_by_text(re.compile(r"Epoch [1-4]/10")).wait_for()
    page.wait_for_function(f"({CDS_POINTS_JS})() > 0")
    first = page.evaluate(CDS_POINTS_JS)
    # a second browser session trains its own run at the same time
    other = browser.new_page(viewport={"width": 1400, "height": 1000})
    other.set_default_timeout(60_000)
    other.goto(server + "?epochs=2&finetune_epochs=0&max_events=4000&batch_size=1000&n_projections=100")
    other.get_by_text("Train", exact=True).click()
    other.get_by_role("button", name="Start training").click()
    other.get_by_text("Done.").wait_for(timeout=120_000)
    other.screenshot(path=str(ARTIFACTS / "02b_second_session_done.png"))
    _no_traceback(other)
    other.close()
    # the first page stays responsive while its run trains: switch tabs and back
    page.get_by_text("Data", exact=True).click()
    page.get_by_text("test sample").first.wait_for()
    page.get_by_text("Train", exact=True).click()
    page.screenshot(path=str(ARTIFACTS / "02a_train_again.png"))
    page.get_by_text(re.compile(r"Epoch (7|8|9|10)/10|Done\.")).first.wait_for(timeout=180_000)
    page.wait_for_function(f"({CDS_POINTS_JS})() > {first}")  # the streaming loss curve grows
    page.screenshot(path=str(ARTIFACTS / "02_train_running.png"))
    page.get_by_text("Done.").wait_for(timeout=120_000)
    page.screenshot(path=str(ARTIFACTS / "03_train_done.png"))
    _no_traceback(page)

    page.get_by_text("Transport", exact=True).click()
    page.get_by_text("Stochasticity: one test z decoded").wait_for()
    page.wait_for_function(f"({PLOTS_JS})() >= 3")  # two transport panels and the stochasticity histogram
    page.screenshot(path=str(ARTIFACTS / "04_transport.png"))
    _no_traceback(page)

    page.get_by_text("Residuals", exact=True).click()
    page.get_by_text("KS / floor").wait_for()
    page.get_by_text("x̃′ = D(z)").first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "05_residuals.png"))
    _no_traceback(page)
    page.close()


MOSAIC_HASH_JS = """() => {
  for (const doc of window.Bokeh.documents)
    for (const m of doc.all_models) {
      const d = m.data;
      if (d === undefined || d === null) continue;
      const img = d instanceof Map ? d.get("image") : d.image;
      if (!img || !img.length || !(img[0] instanceof Uint32Array)) continue;
      const a = img[0];
      let h = a.length;
      for (let i = 0; i < a.length; i += 3) h = (Math.imul(h, 31) + a[i]) >>> 0;
      return h;
    }
  return null;
}"""

TITLES_JS = """() => {
  const out = [];
  for (const doc of window.Bokeh.documents)
    for (const m of doc.all_models) if (m.constructor.__name__ === "Title" && m.text) out.push(m.text);
  return out;
}"""

BETA_POINTS_JS = """() => {
  let n = 0;
  for (const doc of window.Bokeh.documents)
    for (const m of doc.all_models) {
      const d = m.data;
      if (d === undefined || d === null) continue;
      const b = d instanceof Map ? d.get("β") : d["β"];
      if (b !== undefined) n += b.length;
    }
  return n;
}"""


def test_latent_traversal_and_dimensionality_pages_in_the_browser(server, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    page.set_default_timeout(60_000)
    page.goto(server)
    page.get_by_text("otviz latent explorer").wait_for()
    page.get_by_text("Latent traversal", exact=True).click()
    page.get_by_text(re.compile(r"mosaic of 9×9 jets decoded and drawn in \d+ ms")).wait_for()
    page.wait_for_function(f"({MOSAIC_HASH_JS})() !== null")
    before = page.evaluate(MOSAIC_HASH_JS)
    timing = page.get_by_text(re.compile(r"decoded and drawn in")).inner_text()
    assert int(re.search(r"in (\d+) ms", timing).group(1)) < 1000  # server-side redraw time shown on the page
    page.screenshot(path=str(ARTIFACTS / "06_traversal.png"))
    _no_traceback(page)
    # move the "centre x" slider with the keyboard: the mosaic is re-decoded and redrawn
    handle = page.locator(".noUi-handle").first
    handle.focus()
    for _ in range(5):
        handle.press("ArrowRight")
    page.wait_for_function(f"({MOSAIC_HASH_JS})() !== {before}")
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "07_traversal_moved.png"))
    # click a tile: that jet is shown enlarged with its particles
    boxes = [c.bounding_box() for c in page.locator("canvas").all()]
    box = max((b for b in boxes if b), key=lambda b: b["width"] * b["height"])  # the mosaic plot
    page.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3)
    page.get_by_text(re.compile(r"Tile \((1|2|3), (5|6|7)\)")).wait_for()
    page.screenshot(path=str(ARTIFACTS / "08_traversal_tile.png"))
    _no_traceback(page)

    page.get_by_text("Dimensionality", exact=True).click()
    page.get_by_text(re.compile(r"Mean H_T \d+ GeV")).wait_for()
    page.wait_for_function(f"({TITLES_JS})().includes('dimensionality vs resolution β')")
    titles = page.evaluate(TITLES_JS)
    assert "KL per latent direction vs β (production pass)" in titles
    page.wait_for_function(f"({BETA_POINTS_JS})() >= 10")  # D1, D2, D_corr and KL curves carry data
    page.screenshot(path=str(ARTIFACTS / "09_dimensionality.png"))
    _no_traceback(page)
    page.close()


AXIS_LABELS_JS = """() => {
  const out = [];
  for (const doc of window.Bokeh.documents)
    for (const m of doc.all_models) {
      const n = m.constructor.__name__;
      if ((n === "LinearAxis" || n === "LogAxis") && m.axis_label) out.push(m.axis_label);
    }
  return out;
}"""

PAGES = ["Data", "Train", "Transport", "Residuals", "Latent traversal", "Dimensionality", "Runs"]
SCREENSHOTS = ROOT / "docs" / "screenshots"


def test_every_page_at_two_sizes_with_labelled_axes_and_the_runs_page(server, browser, tmp_path):
    import json
    import shutil

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    ARTIFACTS.mkdir(exist_ok=True)
    for width, height in ((1440, 900), (800, 600)):
        page = browser.new_page(viewport={"width": width, "height": height})
        page.set_default_timeout(120_000)
        t0 = time.time()
        page.goto(server)
        page.wait_for_selector("canvas", state="visible")
        first = time.time() - t0
        print(f"first render at {width}×{height}: {first:.2f} s (navigation → first plot, warmed server)")
        assert first < 15, first  # ≈ 2.5–3 s on a busy 2-core machine; 8–12 s when every page was computed
        page.wait_for_function(f"({AXIS_LABELS_JS})().includes('x: m_ee [GeV]')")
        for name in PAGES:
            page.get_by_text(name, exact=True).click()
            page.get_by_text(f"{name} page", exact=True).wait_for()
            if name == "Transport":
                page.wait_for_function(f"({AXIS_LABELS_JS})().includes('x: E(e⁺) [GeV]')")
                assert "z: E(e⁺) [GeV]" in page.evaluate(AXIS_LABELS_JS)
            elif name == "Residuals":
                page.get_by_text("KS / floor").wait_for()
                assert "density [1/GeV]" in page.evaluate(AXIS_LABELS_JS)
            elif name == "Dimensionality":
                page.wait_for_function(f"({AXIS_LABELS_JS})().includes('β·⟨H_T⟩ [GeV]')")
                labels = page.evaluate(AXIS_LABELS_JS)
                assert "dimension D" in labels and "β [units of H_T]" in labels and "KL [nats]" in labels
            elif name == "Latent traversal":
                page.get_by_text(re.compile(r"decoded and drawn in \d+ ms")).wait_for()
            elif name == "Runs":
                page.locator(".tabulator-cell", has_text="pretrained/otus-zee").first.wait_for()
            page.wait_for_timeout(800)
            if width == 1440:
                slug = name.lower().replace(" ", "_")
                page.screenshot(path=str(SCREENSHOTS / f"{slug}.png"))
            _no_traceback(page)
            assert "x" not in page.evaluate(AXIS_LABELS_JS)  # no axis is labelled plain "x"
        page.close()

    # the Runs page lists a run from runs/, resumes it (it trains to the end) and deletes it after
    # confirmation; a shipped run is refused
    victim = RUNS_DIR[0] / "ui" / "20260101-000000-abcdef"
    victim.mkdir(parents=True)
    cfg = json.loads((ROOT / "data" / "pretrained" / "otus-zee" / "config.json").read_text())
    cfg.update(stages=[dict(st, epochs=1) for st in cfg["stages"][:2]], max_events=2000, batch_size=1000,
               n_projections=50)
    (victim / "config.json").write_text(json.dumps(cfg))
    (victim / "status.json").write_text(json.dumps({"status": "cancelled", "message": "cancelled by the user"}))
    name = "runs/ui/20260101-000000-abcdef"
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.set_default_timeout(120_000)
    page.goto(server)
    page.get_by_text("Runs", exact=True).click()
    page.locator(".tabulator-cell", has_text="pretrained/otus-zee").first.click()
    from playwright.sync_api import expect

    # a shipped run cannot be deleted nor resumed: both buttons are disabled for its row
    expect(page.get_by_role("button", name="Delete…")).to_be_disabled()
    expect(page.get_by_role("button", name="Resume")).to_be_disabled()
    assert (ROOT / "data" / "pretrained" / "otus-zee" / "model.pt").exists()
    page.get_by_role("button", name="Refresh").click()
    row = page.locator(".tabulator-row", has_text=name)
    row.locator(".tabulator-cell", has_text="cancelled").wait_for()
    row.locator(".tabulator-cell", has_text=name).click()
    page.get_by_role("button", name="Resume").click()
    page.get_by_text(re.compile(f"Resumed {name}")).wait_for()
    deadline = time.time() + 180
    while json.loads((victim / "status.json").read_text())["status"] != "done":
        assert time.time() < deadline, (victim / "status.json").read_text()
        time.sleep(1)
    assert (victim / "model.pt").exists() and len(json.loads((victim / "history.json").read_text())) == 2
    page.get_by_role("button", name="Refresh").click()
    row.locator(".tabulator-cell", has_text="done").wait_for()
    row.locator(".tabulator-cell", has_text=name).click()
    page.get_by_role("button", name="Delete…").click()
    page.get_by_text(re.compile(rf"Delete {name} \(\d+\.\d MB on disk\)\?")).wait_for()
    assert victim.exists()  # not before the confirmation
    page.get_by_role("button", name="Yes, delete").click()
    page.get_by_text(re.compile(f"Deleted {name}")).wait_for()
    assert not victim.exists()
    page.screenshot(path=str(ARTIFACTS / "10_runs_deleted.png"))
    _no_traceback(page)
    page.close()


def _choose(page, needle: str) -> str:
    """Pick, like a user, the option whose text contains ``needle`` in the <select> offering it
    (Playwright's locators reach into Bokeh's shadow DOM); returns the option's text."""
    option = page.locator("option", has_text=needle).first
    text = option.text_content()
    page.locator("select", has=page.locator("option", has_text=needle)).first.select_option(label=text)
    return text


def test_ttbar_residuals_page_shows_a_mass_with_its_floor(server, browser):
    """The shipped tt̄ run chosen in the run picker: the Residuals page plots a reconstructed mass,
    its statistics beside their truth-vs-truth floors (the numbers of the run's ks_table.nc) and the
    KS table of the Turbo-Sim slide with the published rows."""
    from otviz.physics.observables import readable
    from otviz.train.products import read_ks_table

    stored = read_ks_table(ROOT / "data" / "pretrained" / "otus-ttbar").sel(observable="m_W_had")
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.set_default_timeout(180_000)
    page.goto(server)
    page.wait_for_selector("canvas", state="visible")
    chosen = _choose(page, "pretrained/otus-ttbar")
    assert "otus-ttbar" in chosen, chosen
    page.get_by_text("Residuals", exact=True).click()
    page.get_by_text("Residuals page", exact=True).wait_for()
    page.wait_for_function(f"({AXIS_LABELS_JS})().includes('x: m_tt [GeV]')")  # a tt̄ run opens on m_tt
    assert _choose(page, "m_W^had") == "m_W^had [GeV]"  # the menu reads labels with units
    page.wait_for_function(f"({AXIS_LABELS_JS})().includes('x: m_W^had [GeV]')")
    assert "density [1/GeV]" in page.evaluate(AXIS_LABELS_JS)
    # the statistics table: x vs x̃′ = D(z) with its KS beside the floor, as stored by otviz evaluate
    row = page.locator(".tabulator-row", has_text="x̃′ = D(z)").first
    row.wait_for()
    cells = row.locator(".tabulator-cell").all_inner_texts()
    assert readable(float(stored.ks)) in cells and readable(float(stored.ks_floor)) in cells, cells
    # the Turbo-Sim slide's KS table: the m_W^had row with floor and the published OTUS value
    page.get_by_text("KS table of the Turbo-Sim slide").wait_for()
    mrow = page.locator(".tabulator-row", has_text="m_W^had [GeV]").first
    mcells = mrow.locator(".tabulator-cell").all_inner_texts()
    assert f"{100 * float(stored.ks_floor):.2f}" in mcells and "11.70" in mcells, mcells
    page.screenshot(path=str(ARTIFACTS / "11_ttbar_residuals.png"), full_page=True)
    _no_traceback(page)
    page.close()
