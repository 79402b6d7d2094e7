"""Money under chaos: no charge or refund made twice, none lost (SPEC §3.4's invariants).

Gunicorn (3 workers) in front of the fake gateway takes checkouts and staff refunds from a
thread pool while a seeded fault schedule cycles the gateway through up, down, slow past the
timeout, trickling answers and random 5xx, kills workers with SIGKILL and, on PostgreSQL,
terminates every database connection of the backend. Then the gateway comes back,
reconcile_payments runs (twice at once), and every invariant is checked against the
gateway's own counters and the database. RETAIL_CHAOS_SEED replays a schedule.
"""

import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support.load import money_broken, order_body, query
from tests.support.servers import (
    MANAGE,
    FakeGateway,
    GunicornServer,
    backend_env,
    manage,
    staff_token,
)

pytestmark = pytest.mark.load

SEED = int(os.environ.get("RETAIL_CHAOS_SEED", "20261201"))
# The traffic lasts as long as the fault schedule: ROUNDS rounds of every fault, in a seeded
# order, one every FAULT_EVERY_SECONDS; at most MAX_REQUESTS requests.
ROUNDS = 4
FAULT_EVERY_SECONDS = (0.3, 0.9)
MAX_REQUESTS = 5000
REFUND_EVERY = 8  # one refund attempt per this many requests
CLIENTS = 10
TIMEOUT_SECONDS = 1.0


def _terminate_backend_connections(server_url: str, database_url: str) -> int:
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(server_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        ).fetchall()
    return len(rows)


class _Chaos:
    """The seeded fault schedule, run in a thread for ROUNDS rounds (or until stopped)."""

    def __init__(self, *, rng, gateway, server, database_url, postgres_server):
        self.rng = rng
        self.gateway = gateway
        self.server = server
        self.database_url = database_url
        self.postgres_server = postgres_server
        self.injected: Counter[str] = Counter()
        self.stop = threading.Event()
        self.finished = threading.Event()

    def run(self) -> None:
        faults = ["up", "down", "slow", "trickle", "flaky", "kill"]
        if self.postgres_server:
            faults.append("drop_connections")
        # Rounds of every fault in a seeded order: each kind happens, in ever other company.
        try:
            for _ in range(ROUNDS):
                for fault in self.rng.sample(faults, len(faults)):
                    if self.stop.wait(self.rng.uniform(*FAULT_EVERY_SECONDS)):
                        return
                    self._inject(fault)
        finally:
            self.finished.set()

    def _inject(self, fault: str) -> None:
        self.injected[fault] += 1
        if fault == "up":
            self.gateway.control(mode="up", failure_rate=0.0)
        elif fault == "down":
            self.gateway.control(mode="down")
        elif fault == "slow":
            self.gateway.control(mode="slow", latency_ms=int(TIMEOUT_SECONDS * 1500))
        elif fault == "trickle":
            self.gateway.control(mode="trickle", latency_ms=int(TIMEOUT_SECONDS * 3000))
        elif fault == "flaky":
            self.gateway.control(mode="up", failure_rate=0.3)
        elif fault == "kill":
            pids = sorted(self.server.worker_pids())
            if pids:
                os.kill(self.rng.choice(pids), signal.SIGKILL)
        else:
            _terminate_backend_connections(self.postgres_server, self.database_url)


def _traffic(url, products, token, rng, until) -> tuple[Counter, list[str]]:
    """Run checkouts and refunds from CLIENTS clients until `until` is set; return the
    answers by status and any answer that is not JSON."""
    answers: Counter = Counter()
    not_json: list[str] = []
    paid: list[int] = []
    lock = threading.Lock()
    plan = [
        (rng.choice(products), rng.choice([1, 1, 2]), rng.choice(["tok_ok"] * 9 + ["tok_decline"]))
        for _ in range(MAX_REQUESTS)
    ]
    issued = iter(range(MAX_REQUESTS))

    def client_loop(client: httpx.Client) -> None:
        while not until.is_set():
            with lock:
                index = next(issued, None)
            if index is None:
                return
            one(index, client)

    def one(index: int, client: httpx.Client) -> None:
        product, quantity, token = plan[index]
        try:
            if index % REFUND_EVERY == REFUND_EVERY - 1 and paid:
                with lock:
                    order_id = paid.pop(0)
                response = client.post(
                    f"/api/orders/{order_id}/refund/",
                    json={},
                    headers={"Authorization": f"Token {token}"},
                )
                kind = "refund"
            else:
                response = client.post("/api/orders/", json=order_body(product, quantity, token))
                kind = "checkout"
        except httpx.TransportError as exc:
            # A worker killed under this request: no answer at all.
            with lock:
                answers[f"connection lost ({type(exc).__name__})"] += 1
            return
        with lock:
            answers[f"{kind} {response.status_code}"] += 1
            if not response.headers.get("content-type", "").startswith("application/json"):
                not_json.append(f"{kind} {response.status_code}: {response.text[:200]}")
            elif kind == "checkout" and response.status_code == 201:
                paid.append(response.json()["id"])

    clients = [httpx.Client(base_url=url, timeout=30) for _ in range(CLIENTS)]
    try:
        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            list(pool.map(client_loop, clients))
    finally:
        for client in clients:
            client.close()
    return answers, not_json


def _reconcile_twice_at_once(env: dict[str, str]) -> list[tuple[int, str]]:
    command = [*MANAGE, "reconcile_payments", "--older-than-seconds", "0"]
    env = {**env, "RETAIL_LOG_STDOUT": "off"}
    runs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    return [(run.wait(timeout=300), run.stdout.read().decode()) for run in runs]


def test_money_invariants_hold_after_faults_crashes_and_dropped_connections(
    database_url, log_dir, request
):
    """Every SPEC §3.4 invariant holds once the gateway is back and reconciliation ran."""
    # The traffic's own random choices draw from a generator of their own, so the fault
    # schedule is the same whatever the traffic does.
    rng, traffic_rng = random.Random(SEED), random.Random(SEED + 1)
    postgres_server = (
        request.getfixturevalue("postgres_server_url") if database_url.startswith("post") else None
    )
    redis_url = os.environ.get("REDIS_URL")
    started = time.monotonic()
    with FakeGateway(backend_env(database_url=database_url, log_dir=log_dir)) as gateway:
        env = backend_env(
            database_url=database_url,
            log_dir=log_dir,
            redis_url=redis_url,
            RETAIL_PAYMENT_GATEWAY_URL=gateway.url,
            RETAIL_GATEWAY_TIMEOUT_SECONDS=str(TIMEOUT_SECONDS),
            RETAIL_BREAKER_FAIL_MAX="10",
            RETAIL_BREAKER_RESET_SECONDS="0.5",
            RETAIL_CHECKOUT_RATE="100000/m",
        )
        with GunicornServer(env, workers=3) as server:
            manage(env, "seed_demo")
            token = staff_token(env, "chaos")
            opening = dict(query(database_url, "SELECT id, stock FROM catalog_product"))
            chaos = _Chaos(
                rng=rng,
                gateway=gateway,
                server=server,
                database_url=database_url,
                postgres_server=postgres_server,
            )
            faults = threading.Thread(target=chaos.run, daemon=True)
            faults.start()
            try:
                answers, not_json = _traffic(
                    server.url, sorted(opening), token, traffic_rng, chaos.finished
                )
            finally:
                chaos.stop.set()
                faults.join(timeout=30)
            gateway.control(mode="up", failure_rate=0.0)
        # Stopped gracefully: no request is in flight any more.
        reconciled = _reconcile_twice_at_once(env)
        state = gateway.state()
    wall = time.monotonic() - started

    report = (
        f"seed {SEED} (RETAIL_CHAOS_SEED), {wall:.0f} s; answers {dict(answers)}; "
        f"faults {dict(chaos.injected)}; gateway {state}; reconcile {reconciled}"
    )
    print(report)
    assert not not_json, report
    assert [code for code, _ in reconciled] == [0, 0], report
    assert money_broken(database_url, gateway_state=state, opening_stock=opening) == {}, report
    # The schedule did what it says: every kind of fault happened, under real traffic.
    assert set(chaos.injected) >= {"down", "slow", "trickle", "kill"}, report
    assert sum(chaos.injected.values()) >= ROUNDS * 6, report
    assert answers["checkout 201"] > 0 and state["refunds"] > 0, report
