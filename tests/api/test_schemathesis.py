"""The served OpenAPI schema is the truth: schemathesis finds no failure of any check.

Gunicorn serves the API on a free port; schemathesis runs every phase (examples, coverage,
fuzzing, stateful) with every check, once anonymously and once with a staff token, with a
fixed seed and a bounded number of examples. The checkout throttle is raised for the run
(it is tested on its own in tests/load/test_throttle_load.py and the unit tests).
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.servers import GunicornServer, backend_env, manage, staff_token

pytestmark = pytest.mark.load

CONFIG = Path(__file__).with_name("schemathesis.toml")
SEED = "20261201"
MAX_EXAMPLES = "30"
METRICS_TOKEN = "scrape-token-for-the-fuzzer"


@pytest.fixture(scope="module")
def live_api(tmp_path_factory):
    """A seeded shop under gunicorn, and a staff user's DRF token."""
    root = tmp_path_factory.mktemp("schemathesis")
    (root / "logs").mkdir()
    env = backend_env(
        database_url=f"sqlite:///{root / 'api.sqlite3'}",
        log_dir=root / "logs",
        RETAIL_CHECKOUT_RATE="100000/m",
        RETAIL_LOG_STDOUT="off",
        RETAIL_METRICS_TOKEN=METRICS_TOKEN,
    )
    with GunicornServer(env, workers=2) as server:
        manage(env, "seed_demo")
        token = staff_token(env, "fuzz")
        yield server.url, token, root


def _schemathesis(url: str, report_dir: Path, *headers: str) -> subprocess.CompletedProcess:
    executable = shutil.which("st", path=str(Path(sys.executable).parent))
    if executable is None:
        pytest.skip("schemathesis is not installed (a dev dependency: run `make setup`)")
    command = [executable, "--config-file", str(CONFIG), "run", f"{url}/api/schema/"]
    command += ["--checks", "all", "--seed", SEED, "--max-examples", MAX_EXAMPLES]
    command += ["--no-color", "--generation-database", "none"]
    command += ["--report", "junit", "--report-dir", str(report_dir)]
    for header in headers:
        command += ["--header", header]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.parametrize("who", ["anonymous", "staff", "scraper"])
def test_schemathesis_finds_no_failure(live_api, who):
    """Every phase, every check: 0 failures, anonymously, as staff and as a metrics scraper."""
    url, token, root = live_api
    headers = {
        "anonymous": [],
        "staff": [f"Authorization: Token {token}"],
        "scraper": [f"Authorization: Bearer {METRICS_TOKEN}"],
    }[who]
    done = _schemathesis(url, root / f"report-{who}", *headers)
    summary = done.stdout[-6000:]
    assert done.returncode == 0, summary
    generated = re.search(r"(\d+) generated", done.stdout)
    assert generated and int(generated.group(1)) > 100, summary
    print(f"schemathesis ({who}): {generated.group(0)}")
