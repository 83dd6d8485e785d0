"""A real browser for the page tests: Debian's headless Chromium driven by Selenium.

``chromium_driver`` is also used by ``scripts/screenshot_web.py``. The driver is Debian's
``chromium-driver`` at a fixed path, so Selenium Manager never downloads anything; the browser
runs headless with a fresh profile in a temp dir and without any of its background networking.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1100,1400")


def chromium_driver(profile_dir: Path):
    """A Selenium WebDriver on headless Chromium with its profile in ``profile_dir``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    missing = [str(p) for p in (CHROMEDRIVER, CHROMIUM) if not p.exists()]
    if missing:
        raise RuntimeError(f"{', '.join(missing)} not found: install Debian's chromium and chromium-driver "
                           "(scripts/bootstrap.sh --test does)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


class Browser:
    """One Chromium for a test module, with its profile removed afterwards."""

    def __init__(self) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="jeeves-chromium-"))
        self.driver = chromium_driver(self.profile)
        self.driver.set_page_load_timeout(60)

    def quit(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)
