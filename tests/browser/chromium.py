"""Headless Chromium for the browser tests: Debian's chromium and chromedriver
(`deploy/local/ensure_chromium.sh` installs them; CHROMIUM_BINARY and CHROMEDRIVER point
elsewhere). Without them the tests fail: CI must prove the dashboard works."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

WAIT_SECONDS = 10
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def chromium_paths() -> tuple[str, str]:
    browser = os.environ.get("CHROMIUM_BINARY") or next(
        filter(None, map(shutil.which, ["chromium", "chromium-browser", "google-chrome"])), None
    )
    driver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    if browser is None or driver is None:
        missing = " and ".join(
            name for name, path in [("chromium", browser), ("chromedriver", driver)] if path is None
        )
        pytest.fail(
            f"The dashboard's browser test needs {missing}: not found on PATH. "
            "Install them with `bash deploy/local/ensure_chromium.sh` (Debian's chromium and "
            "chromium-driver), or set CHROMIUM_BINARY and CHROMEDRIVER.",
            pytrace=False,
        )
    return browser, driver


def browser_session() -> Iterator[webdriver.Chrome]:
    binary, driver_path = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in [
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--disable-extensions",
        "--no-first-run",
        "--lang=en-US",
        "--window-size=1440,1000",
    ]:
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: webdriver.Chrome, what: str, check: Callable[[], Any]) -> Any:
    def attempt(_: webdriver.Chrome) -> Any:
        return check()

    try:
        return WebDriverWait(driver, WAIT_SECONDS, poll_frequency=0.05).until(attempt)
    except Exception as error:
        raise AssertionError(f"timed out waiting for {what}") from error


def text(driver: webdriver.Chrome, selector: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, selector).text).strip()


def wait_text(driver: webdriver.Chrome, selector: str, expected: str) -> None:
    seen: list[str] = []

    def matches() -> bool:
        found = driver.find_elements(By.CSS_SELECTOR, selector)
        seen.append(found[0].text.strip() if found else "<missing>")
        return seen[-1] == expected

    try:
        wait_for(driver, f"{selector} to read {expected!r}", matches)
    except AssertionError as error:
        raise AssertionError(f"{error}; last saw {seen[-1:]!r}") from None


def live_state(driver: webdriver.Chrome) -> str:
    return str(driver.find_element(By.ID, "live").get_attribute("data-state"))


def full_page_screenshot(driver: webdriver.Chrome, path: Path) -> None:
    """The whole page: the viewport made as tall as the page (headless caps window sizes)."""
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    metrics = {"width": 1440, "height": min(height, 4000), "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(path)), f"could not save {path}"
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
