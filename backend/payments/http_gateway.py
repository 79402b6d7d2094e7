"""The HTTP client of SPEC §3.4's payment gateway, behind the payment breaker.

5xx answers, timeouts and connection errors raise `GatewayUnavailable` (breaker
failures); a decline is a normal answer. Every charge carries the payment's
idempotency key, which is what makes the one automatic retry below safe.
"""

from contextlib import AbstractContextManager
from decimal import Decimal
from functools import lru_cache
from typing import Any

import httpx
from django.conf import settings

from payments.breaker import PaymentBreaker, payment_breaker
from payments.gateways import ChargeResult, GatewayRejected, GatewayUnavailable, RefundResult

# Failures where retrying cannot double-charge: the request never left (ConnectError), or
# a pooled keep-alive connection was closed under it; the idempotency key covers the rest.
_RETRYABLE = (httpx.ConnectError, httpx.RemoteProtocolError)


class HttpGateway:
    """Charges and refunds over HTTP, each call guarded by the payment breaker."""

    def __init__(self, *, client: httpx.Client, breaker: PaymentBreaker):
        self._client = client
        self._breaker = breaker

    def admission(self) -> AbstractContextManager[None]:
        return self._breaker.admission()

    def charge(
        self, *, amount: Decimal, currency: str, token: str, idempotency_key: str
    ) -> ChargeResult:
        payload = {
            "amount": str(amount),
            "currency": currency,
            "token": token,
            "idempotency_key": idempotency_key,
        }
        body = self._breaker.call(self._post, "/charges", payload)
        status = body.get("status")
        if status not in ("succeeded", "declined") or not body.get("id"):
            raise GatewayUnavailable(f"/charges: unexpected answer {body!r}"[:200])
        return ChargeResult(status=status, charge_id=str(body["id"]))

    def refund(self, *, charge_id: str, amount: Decimal) -> RefundResult:
        body = self._breaker.call(
            self._post, "/refunds", {"charge_id": charge_id, "amount": str(amount)}
        )
        if not body.get("id"):
            raise GatewayUnavailable(f"/refunds: unexpected answer {body!r}"[:200])
        return RefundResult(refund_id=str(body["id"]))

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            try:
                response = self._client.post(path, json=payload)
            except _RETRYABLE:
                response = self._client.post(path, json=payload)
        except httpx.TimeoutException as exc:
            raise GatewayUnavailable(f"{path}: timed out ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise GatewayUnavailable(f"{path}: {type(exc).__name__}: {exc}"[:200]) from exc
        if response.status_code >= 500:
            raise GatewayUnavailable(f"{path}: HTTP {response.status_code}")
        if response.status_code != 201:
            raise GatewayRejected(f"{path}: HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError as exc:
            raise GatewayUnavailable(f"{path}: answer is not JSON") from exc


@lru_cache(maxsize=8)
def _client_for(base_url: str, timeout: float) -> httpx.Client:
    # One pooled client per process: keep-alive connections spare a TCP handshake per
    # charge. httpx clients are safe to share between threads.
    return httpx.Client(base_url=base_url, timeout=httpx.Timeout(timeout))


def http_gateway() -> HttpGateway:
    """Return the gateway at `RETAIL_PAYMENT_GATEWAY_URL`, guarded by this process's breaker."""
    client = _client_for(
        settings.RETAIL_PAYMENT_GATEWAY_URL, settings.RETAIL_GATEWAY_TIMEOUT_SECONDS
    )
    return HttpGateway(client=client, breaker=payment_breaker())
