"""The dashboard in a real browser: `gbhub run --web` (the demo premises, a real process), Debian's
headless Chromium driven by Selenium through chromium-driver. The page loads, shows the demo's
devices, its ECS43 button opens the ESME's load switch and the page then shows the supply disabled.

Skipped (with the reason) when chromium, chromedriver or selenium is missing, except in CI
(CI=true), where `.ci/run` installs them and a missing browser fails the test.
`GBHUB_SCREENSHOT=docs/dashboard.png` also saves the README's screenshot.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_cli_run import Running

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# Without the background-networking flags Chromium hangs on a closed network.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,900")


def _browser():
    missing = [what for what, ok in (("chromium", os.path.exists(CHROMIUM)), ("chromedriver", os.path.exists(CHROMEDRIVER)))
               if not ok]
    try:
        from selenium import webdriver  # noqa: F401
    except ImportError:
        missing.append("selenium (pip)")
    if missing:
        why = f"{', '.join(missing)} missing (apt-get install chromium chromium-driver; pip install selenium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser test cannot run in CI: {why}; .ci/run installs them")
        pytest.skip(why)


@pytest.fixture
def demo(tmp_path):
    """The demo premises as `gbhub run --web 127.0.0.1:0`: its dashboard URL."""
    run = Running("--data", str(tmp_path / "data"), "--web", "127.0.0.1:0", cwd=tmp_path,
                  env={**os.environ, "PYTHONPATH": "", "PYTHONUNBUFFERED": "1"}, timeout=120)
    try:
        url = re.search(r"dashboard on (http://\S+)", run.text)
        assert url, "gbhub run --web gave no dashboard address:\n" + run.text
        yield url.group(1)
    finally:
        try:
            run.stop()
        except subprocess.TimeoutExpired:
            run.kill()
        run.proc.stdout.close()


@pytest.fixture
def browser(tmp_path):
    _browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_dashboard_in_chromium_opens_load_switch(demo, browser):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    # the page redraws the devices' fields every second: an element read as it is replaced is retried
    wait = WebDriverWait(browser, 60, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,))
    browser.get(demo)
    assert browser.title == "gbhub premises"
    for name in ("chf", "gpf", "esme", "gsme", "ihd", "ppmid"):
        wait.until(lambda d, n=name: d.find_elements(By.ID, f"dev-{n}"))
    supply = lambda d: d.find_element(By.CSS_SELECTOR, "#dev-esme .v-supply").text  # noqa: E731
    wait.until(lambda d: supply(d) == "enabled")
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#dev-esme .v-EUI").text == "02474248400000A0")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#device-log tbody tr")) == 4)  # ESME, GSME, PPMID, IHD
    wait.until(lambda d: d.find_element(By.ID, "feed-state").text == "live")
    wait.until(lambda d: " W" in d.find_element(By.CSS_SELECTOR, "#dev-ihd .screen .big").text)  # the IHD's screen
    wait.until(lambda d: "gas today" in d.find_element(By.CSS_SELECTOR, "#dev-ihd .screen .gas").text)  # and its gas

    browser.find_element(By.ID, "esme-ECS43").click()
    wait.until(lambda d: supply(d) == "disabled")
    # the exchange went by in the live feed, decoded and verified: down the WAN, over the HAN, back up
    wait.until(lambda d: any("ECS43" in li.text and "sig valid" in li.text and "⬆" in li.text
                             for li in d.find_elements(By.CSS_SELECTOR, "#feed li.wan")))
    wait.until(lambda d: any("ECS43" in li.text for li in d.find_elements(By.CSS_SELECTOR, "#feed li.han")))
    wait.until(lambda d: "ECS43 → esme: ok" in d.find_element(By.ID, "message").text)  # the verified response

    # a `gbhub ctl` button: the WAN link cut and restored, as the status shows it
    browser.find_element(By.ID, "wan-down").click()
    wait.until(lambda d: "link cut" in d.find_element(By.ID, "wan").text)
    browser.find_element(By.ID, "wan-up").click()
    wait.until(lambda d: "link up" in d.find_element(By.ID, "wan").text)

    shot = os.environ.get("GBHUB_SCREENSHOT")
    if shot:
        browser.find_element(By.ID, "esme-ECS44").click()  # leave it armed: a busier feed for the picture
        wait.until(lambda d: supply(d) == "armed")
        browser.save_screenshot(str(ROOT / shot))
