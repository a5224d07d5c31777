"""The pipeline report in a real headless Chromium: it loads with no console error and no
request for anything, its plots are images that rendered, the row browser filters as one
types, and the script hidden in a teacher's answer never runs.

Needs Debian's ``chromium`` and ``chromium-driver`` (``bash .ci/browser.sh`` installs them)
and the ``selenium`` package; skipped, saying how to get them, when either is missing."""

import shutil
import time
from pathlib import Path

import pytest

from synth.pipeline.report import write_pipeline_report
from tests.test_pipeline_report import XSS, make_run

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
    pytest.skip("Chromium is not installed: run `bash .ci/browser.sh` (or `apt-get install -y "
                "chromium chromium-driver`)", allow_module_level=True)
webdriver = pytest.importorskip(
    "selenium.webdriver", reason="selenium is not installed: `pip install -e '.[dev]'` "
    "(or `pip install selenium`)")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1280,1600", "--disable-extensions", "--no-first-run"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # the Debian driver by path: Selenium Manager never looks for (or downloads) one
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def severe(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_report_in_headless_chromium(browser, tmp_path):
    t0 = time.perf_counter()
    run = make_run(tmp_path)
    page = write_pipeline_report(run, encoder=None)
    browser.get(page.resolve().as_uri())
    WebDriverWait(browser, 30).until(
        lambda d: d.execute_script("return document.readyState") == "complete")
    assert browser.title == "synth pipeline: demo<b>"
    assert severe(browser) == []

    # nothing was fetched: every image is inline, no script or style came from elsewhere
    assert browser.execute_script(
        "return performance.getEntriesByType('resource').length") == 0
    # the plots are images that decoded and have a size
    sizes = browser.execute_script(
        "return Array.from(document.querySelectorAll('img.plot')).map("
        "i => [i.complete, i.naturalWidth, i.naturalHeight, i.alt])")
    assert len(sizes) >= 5, sizes
    assert all(ok and w > 100 and h > 50 for ok, w, h, _ in sizes), sizes
    alts = {a for *_, a in sizes}
    assert {"Rows left after each step", "Acceptance per teacher",
            "Training loss (and KL) per step"} <= alts

    # the row browser: 8 kept + 9 rejected sample rows, filtered as one types
    count = browser.find_element(By.ID, "sample-count")
    body = browser.find_element(By.ID, "sample-body")
    assert count.text == "17 of 17 sample rows shown"
    assert len(body.find_elements(By.TAG_NAME, "tr")) == 17
    box = browser.find_element(By.ID, "sample-q")
    box.send_keys("photosynth")
    WebDriverWait(browser, 5).until(lambda d: count.text == "1 of 17 sample rows shown")
    (tr,) = body.find_elements(By.TAG_NAME, "tr")
    assert "photosynthesis aside" in tr.text and "cot/c0" in tr.text

    # the payload is shown as text, in the kept row and in the reject's reason
    box.clear()
    box.send_keys("__pwned")
    WebDriverWait(browser, 5).until(lambda d: count.text == "2 of 17 sample rows shown")
    cells = [c.get_attribute("textContent") for c in body.find_elements(By.CSS_SELECTOR, "td div")]
    assert XSS in cells and "no answer: " + XSS in cells
    assert browser.find_elements(By.CSS_SELECTOR, "#sample-body img") == []

    box.clear()
    box.send_keys(" ")  # an empty search: every row again
    Select(browser.find_element(By.ID, "sample-which")).select_by_value("by:length")
    WebDriverWait(browser, 5).until(lambda d: count.text == "2 of 17 sample rows shown")
    Select(browser.find_element(By.ID, "sample-which")).select_by_value("kept")
    Select(browser.find_element(By.ID, "sample-stage")).select_by_value("textbook")
    WebDriverWait(browser, 5).until(lambda d: count.text == "4 of 17 sample rows shown")

    # the injected script never ran (an alert would also have failed the calls above)
    assert browser.execute_script("return typeof window.__pwned") == "undefined"
    assert severe(browser) == []

    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    print(f"browser check took {time.perf_counter() - t0:.1f} s; screenshot {shot}")
