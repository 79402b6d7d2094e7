"""Fixtures of the in-process tests: a fake payment gateway served from a test thread."""

import threading
from collections.abc import Iterator

import httpx
import pytest

from payments.fake_gateway import fake_gateway_server


class GatewayHandle:
    """The URL of a running fake gateway and its /_control endpoint."""

    def __init__(self, url: str):
        self.url = url

    def control(self, **changes) -> dict:
        return httpx.post(f"{self.url}/_control", json=changes, timeout=5).raise_for_status().json()

    def state(self) -> dict:
        return httpx.get(f"{self.url}/_control", timeout=5).raise_for_status().json()


@pytest.fixture
def fake_gateway() -> Iterator[GatewayHandle]:
    """Serve a fake gateway on a free loopback port for one test."""
    server = fake_gateway_server(host="127.0.0.1", port=0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield GatewayHandle(f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
