"""The admin and the staff dashboard in a real browser: styled, narrow-safe, self-contained."""

import base64
import json
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.browser.conftest import staff_login, viewport

WIDTHS = (390, 1400)
# Set to keep the screenshots (e.g. /tmp/screens); they go to the test's tmp dir otherwise.
SCREENSHOT_DIR_VAR = "RETAIL_SCREENSHOT_DIR"


def _screenshot(driver, tmp_path: Path, name: str) -> Path:
    directory = Path(os.environ.get(SCREENSHOT_DIR_VAR) or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    # The full page, so what lies below the fold or past the right edge shows too.
    size = driver.execute_script(
        "const d = document.documentElement; return [innerWidth, d.scrollWidth, d.scrollHeight]"
    )
    screenshot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": max(size[:2]), "height": size[2], "scale": 1},
        },
    )
    path = directory / f"{name}.png"
    path.write_bytes(base64.b64decode(screenshot["data"]))
    return path


def _network(driver) -> list[dict]:
    """Return the page's Network.* DevTools events since the last call."""
    return [
        json.loads(entry["message"])["message"]
        for entry in driver.get_log("performance")
        if '"Network.' in entry["message"]
    ]


def _console_errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def _assert_self_contained(driver, site_url: str) -> None:
    """Every request went to the site itself, and every HTML document carried the CSP."""
    events = _network(driver)
    origin = urlsplit(site_url)
    requested = [
        e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"
    ]
    assert requested
    foreign = [
        url
        for url in requested
        if urlsplit(url).scheme in ("http", "https", "ws", "wss")
        and urlsplit(url).netloc != origin.netloc
    ]
    assert foreign == []
    documents = [
        e["params"]["response"]
        for e in events
        if e["method"] == "Network.responseReceived" and e["params"]["type"] == "Document"
    ]
    assert documents
    for response in documents:
        headers = {k.lower(): v for k, v in response["headers"].items()}
        policy = headers.get("content-security-policy", "")
        assert "default-src 'self'" in policy, response["url"]


def test_admin_is_styled_under_gunicorn(browser, live_site, tmp_path):
    """After logging in through the form, /admin/ loads its stylesheets and is styled."""
    staff_login(browser, live_site)
    loaded = browser.execute_script(
        "return Array.from(document.styleSheets, s => s.href).filter(Boolean)"
    )
    assert any(href.endswith("/static/admin/css/base.css") for href in loaded), loaded
    rules = browser.execute_script("return document.styleSheets[0].cssRules.length")
    assert rules > 10
    header = browser.execute_script(
        "const s = getComputedStyle(document.getElementById('header'));"
        "return [s.backgroundColor, s.display]"
    )
    # Unstyled, #header is a transparent block; the admin's CSS paints it and lays it out flex.
    assert header[0] != "rgba(0, 0, 0, 0)" and header[1] == "flex", header
    for width in WIDTHS:
        viewport(browser, width)
        browser.get(f"{live_site.url}/admin/")
        _screenshot(browser, tmp_path, f"admin-{width}")
    assert _console_errors(browser) == []
    _assert_self_contained(browser, live_site.url)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("days", [7, 30])
def test_dashboard_fits_the_screen(browser, live_site, tmp_path, width, days):
    """The dashboard never scrolls sideways; the header's links and days field stay visible."""
    staff_login(browser, live_site)
    viewport(browser, width)
    browser.get(f"{live_site.url}/metrics/dashboard/?days={days}")
    geometry = browser.execute_script(
        """
        const doc = document.documentElement;
        const inView = el => { const r = el.getBoundingClientRect();
            return r.left >= 0 && r.right <= innerWidth && r.width > 0; };
        const label = document.querySelector('header label');
        const header = document.querySelector('header');
        return {
            scrollWidth: doc.scrollWidth, innerWidth: innerWidth,
            links: Array.from(document.querySelectorAll('header a'), inView),
            days: inView(document.querySelector('header input[name=days]')),
            labelInHeader:
                header.getBoundingClientRect().bottom >= label.getBoundingClientRect().bottom,
            labelColor: getComputedStyle(label).color,
            headerColor: getComputedStyle(header).backgroundColor,
            stylesheet: Array.from(document.styleSheets, s => s.href).filter(Boolean),
        };
        """
    )
    assert geometry["innerWidth"] == width
    assert geometry["scrollWidth"] <= geometry["innerWidth"], geometry
    assert all(geometry["links"]) and geometry["days"], geometry
    assert geometry["labelInHeader"], geometry
    assert geometry["labelColor"] != geometry["headerColor"], geometry
    assert any(href.endswith("/static/retail/staff.css") for href in geometry["stylesheet"])
    _screenshot(browser, tmp_path, f"dashboard-{width}-days{days}")
    assert _console_errors(browser) == []
    _assert_self_contained(browser, live_site.url)
