"""The HTTP client of the payment gateway (SPEC §3.4): a thin adapter over httpcore.

`RETAIL_GATEWAY_TIMEOUT_SECONDS` bounds the whole call — connect, send, and every byte of the
answer — not each socket operation: httpx and urllib3 time each read on its own, so a gateway
that trickles its answer a byte at a time would hold a checkout for as long as it likes. Here
the network backend caps every socket operation at the time left before the call's deadline.

What an error means for the money is decided here, once: a refused connection or a 5xx
answer did nothing (`GatewayUnavailable`); a timeout, or a connection lost once the request
was sent, may have done it (`OutcomeUnknown`). Credentials in the gateway URL are sent as
HTTP basic auth and never appear in an error message or a log line.
"""

import base64
import time
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar
from decimal import Decimal
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlsplit

import httpcore
import orjson

from payments.exceptions import GatewayRejected, GatewayUnavailable, OutcomeUnknown
from payments.gateways import ChargeResult, RefundResult
from retail.tracing import outgoing_call

# The monotonic time by which the current gateway call must be over (None outside a call).
_deadline: ContextVar[float | None] = ContextVar("retail_gateway_deadline", default=None)

# Nothing reached the gateway: these are safe to try once more, and a failure means no charge.
_NOT_SENT = (httpcore.ConnectError, httpcore.ConnectTimeout, httpcore.PoolTimeout)


def _time_left(timeout: float | None, expired: type[Exception]) -> float | None:
    deadline = _deadline.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("the gateway call's deadline has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every operation ends by the current call's deadline."""

    def __init__(self, stream: httpcore.NetworkStream):
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _time_left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _time_left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> "_DeadlineStream":
        stream = self._stream.start_tls(
            ssl_context, server_hostname, _time_left(timeout, httpcore.ConnectTimeout)
        )
        return _DeadlineStream(stream)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.SyncBackend):
    """httpcore's socket backend, with every stream bounded by the call's deadline."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = super().connect_tcp(
            host,
            port,
            _time_left(timeout, httpcore.ConnectTimeout),
            local_address=local_address,
            socket_options=socket_options,
        )
        return _DeadlineStream(stream)


class HttpGateway:
    """Charges and refunds over HTTP; with a breaker, each call is guarded by it.

    Reconciliation calls without the breaker: a background replay must not wait for the
    breaker to close, and its answers say nothing about checkout's health.
    """

    def __init__(
        self,
        *,
        base_url: str,
        timeout: float,
        breaker: Any = None,
        pool: httpcore.ConnectionPool | None = None,
    ):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("RETAIL_PAYMENT_GATEWAY_URL must be an http(s) URL")
        netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        if parts.port:
            netloc += f":{parts.port}"
        self._base = f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"
        self._headers = [(b"Content-Type", b"application/json"), (b"Accept", b"application/json")]
        if parts.username is not None:
            secret = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            credentials = base64.b64encode(secret.encode()).decode()
            self._headers.append((b"Authorization", f"Basic {credentials}".encode()))
        self._timeout = timeout
        self._breaker = breaker
        self._pool = pool or _pool_for(self._base)

    def admission(self) -> AbstractContextManager[None]:
        """Return the breaker's admission (see `PaymentBreaker.admission`), if guarded."""
        return self._breaker.admission() if self._breaker is not None else nullcontext()

    def charge(
        self, *, amount: Decimal, currency: str, token: str, idempotency_key: str
    ) -> ChargeResult:
        payload = {
            "amount": str(amount),
            "currency": currency,
            "token": token,
            "idempotency_key": idempotency_key,
        }
        body = self._call("/charges", payload)
        status = body.get("status")
        if status not in ("succeeded", "declined") or not body.get("id"):
            raise OutcomeUnknown("/charges: the answer is not a charge")
        return ChargeResult(status=status, charge_id=str(body["id"]))

    def refund(self, *, charge_id: str, amount: Decimal, idempotency_key: str) -> RefundResult:
        payload = {
            "charge_id": charge_id,
            "amount": str(amount),
            "idempotency_key": idempotency_key,
        }
        body = self._call("/refunds", payload)
        if body.get("status") != "succeeded" or not body.get("id"):
            raise OutcomeUnknown("/refunds: the answer is not a refund")
        return RefundResult(refund_id=str(body["id"]))

    def _call(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        if self._breaker is None:
            return self._post(path, payload)
        return self._breaker.call(self._post, path, payload)

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST as a child span of the current request, carrying its trace and request IDs."""
        with outgoing_call(f"POST {path}", {"http.request.method": "POST"}) as trace_headers:
            headers = self._headers + [
                (name.encode(), value.encode()) for name, value in trace_headers.items()
            ]
            return self._post_traced(path, payload, headers)

    def _post_traced(
        self, path: str, payload: dict[str, Any], headers: list[tuple[bytes, bytes]]
    ) -> dict[str, Any]:
        """POST once, or twice when the first attempt never reached the gateway."""
        content = orjson.dumps(payload)
        # Set once an attempt may have reached the gateway: a later failure is then no
        # proof that nothing was done.
        maybe_sent = False
        for attempt in (1, 2):
            token = _deadline.set(time.monotonic() + self._timeout)
            try:
                response = self._pool.request(
                    "POST",
                    self._base + path,
                    headers=headers,
                    content=content,
                    extensions={"timeout": dict.fromkeys(_TIMEOUT_KINDS, self._timeout)},
                )
            except _NOT_SENT as exc:
                if attempt == 1:
                    continue
                failure = f"{path}: {_describe(exc)}"
                raise (OutcomeUnknown if maybe_sent else GatewayUnavailable)(failure) from None
            except httpcore.RemoteProtocolError as exc:
                # Most often a kept-alive connection the gateway had closed: the replay
                # with the same key is safe, and usually answers.
                maybe_sent = True
                if attempt == 1:
                    continue
                raise OutcomeUnknown(f"{path}: {_describe(exc)}") from None
            except (httpcore.TimeoutException, httpcore.NetworkError) as exc:
                raise OutcomeUnknown(f"{path}: {_describe(exc)}") from None
            finally:
                _deadline.reset(token)
            return self._answer(path, response, maybe_sent=maybe_sent)
        raise AssertionError("unreachable: the second attempt returns or raises")

    @staticmethod
    def _answer(path: str, response: httpcore.Response, *, maybe_sent: bool) -> dict[str, Any]:
        status = response.status
        if status >= 500:
            unavailable = OutcomeUnknown if maybe_sent else GatewayUnavailable
            raise unavailable(f"{path}: HTTP {status}")
        if status >= 400:
            raise GatewayRejected(f"{path}: HTTP {status}")
        if status not in (200, 201):
            raise OutcomeUnknown(f"{path}: HTTP {status}")
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise OutcomeUnknown(f"{path}: HTTP {status} with an answer that is not JSON") from None
        if not isinstance(body, dict):
            raise OutcomeUnknown(f"{path}: HTTP {status} with an answer that is not an object")
        return body


_TIMEOUT_KINDS = ("connect", "read", "write", "pool")


def _describe(exc: Exception) -> str:
    # The exception's class says what happened; its text may quote the address.
    return type(exc).__name__


@lru_cache(maxsize=8)
def _pool_for(base_url: str) -> httpcore.ConnectionPool:
    # One pool per process and gateway: kept-alive connections spare a TCP handshake per
    # charge. httpcore's sync pool is safe to share between threads.
    return httpcore.ConnectionPool(max_connections=32, network_backend=_DeadlineBackend())
