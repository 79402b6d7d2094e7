"""A1 under real load: gunicorn, 4 workers, 400 concurrent buyers of 50 units.

Exactly the stock is sold, never more; the rest answer 409; nothing answers 5xx; the
ledger matches the stock; and `retailctl scenarios` judges A1 PASS.
"""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.load import (
    nothing_lost,
    order_body,
    post_orders,
    product_id,
    statuses,
    stock,
)
from tests.support.servers import GunicornServer, backend_env, manage

pytestmark = pytest.mark.load

FLASH_STOCK = 50
BUYERS = 400


def _retailctl_a1(database_url: str, log_dir: Path) -> dict:
    retailctl = Path(sys.executable).with_name("retailctl")
    done = subprocess.run(
        [str(retailctl), "scenarios", "--json", "--database-url", database_url],
        env={**os.environ, "RETAIL_LOG_DIR": str(log_dir)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return json.loads(done.stdout)["A1"]


def _backend_env(database_url: str, log_dir: Path) -> dict[str, str]:
    # The throttle is raised: 400 buyers share one loopback address.
    return backend_env(
        database_url=database_url,
        log_dir=log_dir,
        redis_url=os.environ.get("REDIS_URL"),
        RETAIL_CHECKOUT_RATE="100000/m",
    )


def test_flash_sale_sells_exactly_the_stock(database_url, log_dir):
    """400 concurrent single-unit orders for 50 units: 50 × 201, 350 × 409, no 5xx, stock 0."""
    env = _backend_env(database_url, log_dir)
    with GunicornServer(env, workers=4) as server:
        manage(env, "seed_demo", "--flash-stock", str(FLASH_STOCK))
        flash = product_id(database_url, "FLASH-001")
        answers = post_orders(
            server.url, [order_body(flash) for _ in range(BUYERS)], concurrency=32
        )

    assert statuses(answers) == {201: FLASH_STOCK, 409: BUYERS - FLASH_STOCK}
    assert all(a.body["error"] == "out_of_stock" for a in answers if a.status == 409)
    assert stock(database_url, "FLASH-001") == 0
    assert nothing_lost(database_url) == {}
    a1 = _retailctl_a1(database_url, log_dir)
    assert a1["status"] == "PASS", a1


def test_mixed_quantities_sell_the_stock_exactly(database_url, log_dir):
    """Orders of 1–3 units: what is sold plus what is left is the stock, never more."""
    env = _backend_env(database_url, log_dir)
    rng = random.Random(4)
    with GunicornServer(env, workers=4) as server:
        manage(env, "seed_demo", "--flash-stock", str(FLASH_STOCK))
        flash = product_id(database_url, "FLASH-001")
        quantities = [rng.randint(1, 3) for _ in range(BUYERS)]
        answers = post_orders(
            server.url, [order_body(flash, quantity) for quantity in quantities], concurrency=32
        )
        sold = sum(q for q, a in zip(quantities, answers, strict=True) if a.status == 201)
        left = stock(database_url, "FLASH-001")
        # A unit or two may be left that no remaining 2- or 3-unit order fitted: the next
        # single-unit buyers take them, and then the sale is exactly the stock.
        sweep = post_orders(server.url, [order_body(flash, 1) for _ in range(left + 1)])

    assert set(statuses(answers)) <= {201, 409}
    assert sold + left == FLASH_STOCK
    assert statuses(sweep) == ({201: left, 409: 1} if left else {409: 1})
    assert stock(database_url, "FLASH-001") == 0
    assert nothing_lost(database_url) == {}
