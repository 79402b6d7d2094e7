"""The live dashboard in a real browser: charts, an error arriving live, drill-down, restart."""

import dataclasses
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.browser.conftest import PAGE_TIMEOUT_SECONDS, staff_login, viewport
from tests.browser.test_staff_pages import (
    _assert_self_contained,
    _console_errors,
    _screenshot,
)
from tests.support.servers import GunicornServer

# A new error is on the page within this long: the worker's metric flush (1 s), the
# poller's period (2 s) and the browser's work, with room for a busy machine.
ARRIVAL_SECONDS = 15
# A page that cannot stream polls every 5 s.
POLLED_SECONDS = 20
# After a restart: gunicorn's stop and start, then EventSource's retry (3 s).
RECONNECT_SECONDS = 45


def _wait(driver, script: str, *, timeout: float, what: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(
        lambda d: d.execute_script(script), message=f"waited {timeout} s for {what}"
    )


def _error_over_http(site_url: str) -> str:
    """Make one 409 (an unknown product) with a chosen request ID; return the ID."""
    request_id = f"live-{uuid.uuid4().hex[:12]}"
    answer = httpx.post(
        f"{site_url}/api/orders/",
        json={"items": [{"product_id": 987654, "quantity": 1}], "payment_token": "tok_ok"},
        headers={"X-Request-ID": request_id},
        timeout=10,
    )
    assert answer.status_code >= 400 and answer.headers["X-Request-ID"] == request_id
    return request_id


# A rule that fires on any error of the last 15 minutes, notifying no one.
_ANY_ERROR_RULE = """
[[rule]]
name = "any_error"
kind = "threshold"
metric = "errors_total"
window = "15m"
op = ">"
value = 0
severity = "warning"
"""


def _alert_run(site, tmp_path: Path) -> None:
    """Run `retailctl alert` (as cron would) with the any-error rule; it must fire."""
    rules = tmp_path / "rules.toml"
    rules.write_text(_ANY_ERROR_RULE)
    retailctl = Path(sys.executable).with_name("retailctl")
    done = subprocess.run(
        [str(retailctl), "alert", "--rules", str(rules)],
        env={**site.server.env, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr


def _error_arrives(driver, site_url: str, *, timeout: float, status: str = "") -> str:
    """Make an error over HTTP and wait until the open page links to its request (with the
    status line in `status`, when given); return the request ID."""
    request_id = _error_over_http(site_url)
    link = f"#live-errors a[href='/metrics/requests/{request_id}/']"
    script = f'return document.querySelector("{link}") !== null'
    if status:
        script += f" && document.getElementById('live-status').classList.contains('{status}')"
    _wait(driver, script, timeout=timeout, what=f"error {request_id} on the open page")
    return request_id


def _open_live(driver, site) -> None:
    driver.get(f"{site.url}/metrics/dashboard/?range=15m")
    _wait(
        driver,
        "return document.getElementById('live-status').classList.contains('live')",
        timeout=PAGE_TIMEOUT_SECONDS,
        what="the stream to connect",
    )


def test_charts_render_and_a_new_error_arrives_without_reload(browser, live_site, tmp_path):
    """Every chart is drawn; an error made over HTTP shows up live and opens its request."""
    from selenium.webdriver.common.by import By

    staff_login(browser, live_site)
    viewport(browser, 1400)
    _open_live(browser, live_site)
    drawn = browser.execute_script(
        "return Array.from(document.querySelectorAll('svg[data-chart]'),"
        " s => [s.dataset.chart, s.childElementCount])"
    )
    assert {name for name, _ in drawn} == {"requests", "errors", "latency", "orders", "breaker"}
    assert all(count >= 4 for _, count in drawn), drawn  # axis labels, grid, bars/lines
    browser.execute_script("window.__sameDocument = true")
    request_id = _error_arrives(browser, live_site.url, timeout=ARRIVAL_SECONDS)
    _alert_run(live_site, tmp_path)
    _wait(
        browser,
        "return document.querySelector(\"#live-alerts a[href='#chart-errors']\") !== null"
        " && document.querySelector(\"svg[data-chart='errors'] line.mark\") !== null",
        timeout=ARRIVAL_SECONDS,
        what="the firing alert in the table and marked on the error chart",
    )
    assert browser.execute_script("return window.__sameDocument === true")  # no reload
    assert _console_errors(browser) == []
    _assert_self_contained(browser, live_site.url)
    link = f"#live-errors a[href='/metrics/requests/{request_id}/']"
    browser.find_element(By.CSS_SELECTOR, link).click()
    _wait(
        browser,
        "return document.querySelector('table.trace') !== null",
        timeout=ARRIVAL_SECONDS,
        what="the request page's log lines",
    )
    assert request_id in browser.title
    text = browser.find_element(By.CSS_SELECTOR, "table.trace").text
    assert "http.request" in text and "http.response" in text and "status_code=4" in text
    _screenshot(browser, tmp_path, "request-1400")
    viewport(browser, 390)
    widths = browser.execute_script("return [document.documentElement.scrollWidth, innerWidth]")
    assert widths[0] <= widths[1] == 390, widths
    _screenshot(browser, tmp_path, "request-390")


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [390, 1400])
def test_live_dashboard_fits_in_light_and_dark(browser, live_site, tmp_path, width, scheme):
    """No sideways scroll at 390 or 1400 px in either colour scheme; screenshots kept."""
    staff_login(browser, live_site)
    viewport(browser, width, 1000)
    browser.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
    )
    _open_live(browser, live_site)
    geometry = browser.execute_script(
        "const d = document.documentElement;"
        "return {scroll: d.scrollWidth, inner: innerWidth,"
        " background: getComputedStyle(document.body).backgroundColor}"
    )
    assert geometry["scroll"] <= geometry["inner"] == width, geometry
    dark = geometry["background"] != "rgb(245, 247, 250)"
    assert dark == (scheme == "dark"), geometry
    whole = _screenshot(browser, tmp_path, f"live-{width}-{scheme}")
    # ...and what the screen shows first, at its real size (the whole page is a long one).
    browser.save_screenshot(str(whole.with_name(f"live-{width}-{scheme}-top.png")))
    assert _console_errors(browser) == []


def test_a_page_refused_a_stream_polls_instead(browser, live_site):
    """A worker that may serve no stream answers 503: the page polls, and still shows a
    new error without a reload."""
    env = {**live_site.server.env, "RETAIL_LIVE_STREAMS": "0"}
    with GunicornServer(env, workers=1, migrate=False) as server:
        site = dataclasses.replace(live_site, url=server.url, server=server)
        staff_login(browser, site)
        browser.get(f"{site.url}/metrics/dashboard/?range=15m")
        _wait(
            browser,
            "return document.getElementById('live-status').classList.contains('polling')",
            timeout=PAGE_TIMEOUT_SECONDS,
            what="the page to fall back to polling",
        )
        _error_arrives(browser, site.url, timeout=POLLED_SECONDS, status="polling")


def test_the_page_reconnects_after_a_server_restart(browser, live_site):
    """The stream ends with the old server; the page reconnects and streams again."""
    staff_login(browser, live_site)
    _open_live(browser, live_site)
    live_site.server.restart()
    _error_arrives(browser, live_site.url, timeout=RECONNECT_SECONDS, status="live")
