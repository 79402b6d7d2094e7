"""The browser tier: headless Chromium (Debian's) driving a live gunicorn, as a person would.

`live_site` is one gunicorn per session on its own SQLite database, with static files
collected as `make serve` does, a staff user and a little traffic; `browser` opens a fresh
Chromium profile per test and records its console and network logs. The live dashboard
issue extends these fixtures. Without Chromium or chromedriver every test here skips,
saying why (`.ci/run` installs them with apt).
"""

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.servers import GunicornServer, backend_env, manage

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
STAFF_USER, STAFF_PASSWORD = "staff", f"pw-{uuid.uuid4().hex}"
PAGE_TIMEOUT_SECONDS = 30


def pytest_collection_modifyitems(config, items):
    """Mark every test of this directory `browser` (make unit leaves them out)."""
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Return Chromium's path, or skip saying what is missing."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.skip(
            f"{' and '.join(missing)} not installed (Debian packages chromium, chromium-driver)"
        )
    pytest.importorskip("selenium", reason="selenium (a dev dependency) is not installed")
    return CHROMIUM


@dataclass
class LiveSite:
    """A running backend: its base URL and staff credentials."""

    url: str
    username: str
    password: str
    server: GunicornServer = field(repr=False)


@pytest.fixture(scope="session")
def live_site(chromium, tmp_path_factory) -> Iterator[LiveSite]:
    """Serve the backend with gunicorn on a loopback port, with data to show."""
    root = tmp_path_factory.mktemp("browser-site")
    env = backend_env(
        database_url=f"sqlite:///{root / 'site.sqlite3'}",
        log_dir=root,
        RETAIL_LOG_STDOUT="off",
        DJANGO_SUPERUSER_PASSWORD=STAFF_PASSWORD,
    )
    manage(env, "migrate", "--noinput")
    # As `make serve` does: the workers serve the collected files (with their gzip copies).
    manage(env, "collectstatic", "--noinput", "-v0")
    manage(env, "seed_demo")
    manage(env, "simulate_traffic", "--requests", "40")
    manage(env, "createsuperuser", "--noinput", "--username", STAFF_USER, "--email", "s@x.test")
    with GunicornServer(env, workers=1, migrate=False) as server:
        yield LiveSite(url=server.url, username=STAFF_USER, password=STAFF_PASSWORD, server=server)


@pytest.fixture
def browser(chromium, tmp_path):
    """A headless Chromium with a fresh profile, logging its console and network events."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(PAGE_TIMEOUT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


def staff_login(driver, site: LiveSite) -> None:
    """Log in through the admin's login form, as a person would."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{site.url}/admin/login/?next=/admin/")
    driver.find_element(By.NAME, "username").send_keys(site.username)
    driver.find_element(By.NAME, "password").send_keys(site.password)
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(driver, PAGE_TIMEOUT_SECONDS).until(
        expected_conditions.url_to_be(f"{site.url}/admin/")
    )


def viewport(driver, width: int, height: int = 900) -> None:
    """Emulate a device `width` CSS pixels wide (a phone below 600: mobile viewport rules)."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
    )
