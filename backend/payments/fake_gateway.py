"""A fake payment gateway speaking SPEC §3.4, with fault injection for tests and demos.

`POST /_control {"mode": "up"|"down"|"slow"|"trickle", "latency_ms": int, "failure_rate": float}`
changes its behaviour at run time; `GET /_control` reports it with counters that let a
test prove no payment was charged or refunded twice. Like a real gateway, it keeps its
promise: a 5xx answer (mode `down`, or the failure rate) means nothing was done; `slow`
and `trickle` carry the request out and then answer late.
"""

import json
import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from retail.logging import log_event
from retail.middleware import request_id_from
from retail.tracing import new_trace_id, traceparent_parse

logger = logging.getLogger(__name__)

MODES = ("up", "down", "slow", "trickle")
DECLINE_TOKEN = "tok_decline"


@dataclass
class FakeGatewayState:
    """Behaviour and bookkeeping of one fake gateway, guarded by its lock."""

    mode: str = "up"
    latency_ms: int = 0
    failure_rate: float = 0.0
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    charge_requests: int = 0
    # Refunds by idempotency key, and how many refunds each charge received.
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds_per_charge: dict[str, int] = field(default_factory=dict)
    refund_requests: int = 0
    in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    rng: random.Random = field(default_factory=random.Random)

    def configure(self, changes: dict[str, Any]) -> None:
        mode = changes.get("mode", self.mode)
        latency_ms = changes.get("latency_ms", self.latency_ms)
        failure_rate = changes.get("failure_rate", self.failure_rate)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        if not isinstance(latency_ms, int) or isinstance(latency_ms, bool) or latency_ms < 0:
            raise ValueError("latency_ms must be an integer >= 0")
        if not isinstance(failure_rate, int | float) or not 0 <= failure_rate <= 1:
            raise ValueError("failure_rate must be a number between 0 and 1")
        with self.lock:
            self.mode, self.latency_ms, self.failure_rate = mode, latency_ms, float(failure_rate)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            succeeded = sum(1 for c in self.charges.values() if c["status"] == "succeeded")
            return {
                "mode": self.mode,
                "latency_ms": self.latency_ms,
                "failure_rate": self.failure_rate,
                "charges": len(self.charges),
                "charges_succeeded": succeeded,
                "charge_requests": self.charge_requests,
                "refunds": len(self.refunds),
                "refund_requests": self.refund_requests,
                "charges_refunded_twice": sum(1 for n in self.refunds_per_charge.values() if n > 1),
                "in_flight": self.in_flight,
            }

    def fault(self) -> tuple[bool, float]:
        """Apply `slow`'s latency; return (fail with a 5xx, seconds to trickle the answer over)."""
        with self.lock:
            mode, latency_ms, failure_rate = self.mode, self.latency_ms, self.failure_rate
            unlucky = failure_rate > 0 and self.rng.random() < failure_rate
        if mode == "slow":
            time.sleep(latency_ms / 1000)
        return mode == "down" or unlucky, latency_ms / 1000 if mode == "trickle" else 0.0

    def charge(self, payload: dict[str, Any]) -> dict[str, Any]:
        key = payload["idempotency_key"]
        with self.lock:
            self.charge_requests += 1
            # The same key answers the first charge again: a retry never charges twice.
            if key not in self.charges:
                status = "declined" if payload["token"] == DECLINE_TOKEN else "succeeded"
                self.charges[key] = {"id": f"fake_ch_{uuid.uuid4().hex}", "status": status}
            return dict(self.charges[key])

    def refund(self, payload: dict[str, Any]) -> dict[str, Any]:
        key, charge_id = payload["idempotency_key"], payload["charge_id"]
        with self.lock:
            self.refund_requests += 1
            # The same key answers the first refund again: a retry never refunds twice.
            if key not in self.refunds:
                self.refunds[key] = {"id": f"fake_re_{uuid.uuid4().hex}", "status": "succeeded"}
                self.refunds_per_charge[charge_id] = self.refunds_per_charge.get(charge_id, 0) + 1
            return dict(self.refunds[key])

    def charged(self, charge_id: str) -> bool:
        with self.lock:
            return any(
                c["id"] == charge_id and c["status"] == "succeeded" for c in self.charges.values()
            )


_CHARGE_FIELDS = {"amount": str, "currency": str, "token": str, "idempotency_key": str}
_REFUND_FIELDS = {"charge_id": str, "amount": str, "idempotency_key": str}


def _missing(payload: Any, fields: dict[str, type]) -> list[str]:
    if not isinstance(payload, dict):
        return list(fields)
    return [name for name, kind in fields.items() if not isinstance(payload.get(name), kind)]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm and
    # the client's delayed ACK add ~40 ms to every keep-alive answer.
    disable_nagle_algorithm = True
    state: FakeGatewayState

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._answer(200, {"status": "ok"})
        elif self.path == "/_control":
            self._answer(200, self.state.snapshot())
        else:
            self._answer(404, {"error": "not_found"})

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
            payload = json.loads(self.rfile.read(length) or b"null")
        except ValueError:
            self._answer(400, {"error": "malformed_json"})
            return
        if self.path == "/_control":
            try:
                self.state.configure(payload if isinstance(payload, dict) else {})
            except ValueError as exc:
                self._answer(400, {"error": "invalid_request", "detail": str(exc)})
                return
            snapshot = self.state.snapshot()
            self._answer(200, snapshot)
            log_event(
                "gateway.control",
                logger=logger,
                mode=snapshot["mode"],
                latency_ms=snapshot["latency_ms"],
                failure_rate=snapshot["failure_rate"],
            )
        elif self.path in ("/charges", "/refunds"):
            started = time.perf_counter()
            kind = self.path[1:-1]
            status, body = self._payment_call(kind, payload)
            self._log_call(kind, payload, status, body, started)
        else:
            self._answer(404, {"error": "not_found"})

    def _payment_call(self, kind: str, payload: Any) -> tuple[int, dict[str, Any]]:
        """Answer a charge or a refund; return the status and body sent."""
        if missing := _missing(payload, _CHARGE_FIELDS if kind == "charge" else _REFUND_FIELDS):
            status, body = 400, {"error": "invalid_request", "detail": missing}
        elif kind == "refund" and not self.state.charged(payload["charge_id"]):
            status, body = 404, {"error": "no_such_charge"}
        else:
            with self.state.lock:
                self.state.in_flight += 1
            try:
                fail, trickle_seconds = self.state.fault()
                if fail:
                    status, body = 503, {"error": "unavailable"}
                else:
                    act = self.state.charge if kind == "charge" else self.state.refund
                    status, body = 201, act(payload)
                    self._answer(status, body, trickle_seconds)
                    return status, body
            finally:
                with self.state.lock:
                    self.state.in_flight -= 1
        self._answer(status, body)
        return status, body

    def _log_call(
        self, kind: str, payload: Any, status: int, body: dict[str, Any], started: float
    ) -> None:
        """Log the call with the caller's request and trace ids (SPEC §3.5); never the token."""
        trace = traceparent_parse(self.headers.get("traceparent"))
        fields: dict[str, Any] = {
            "request_id": request_id_from(self.headers.get("X-Request-ID")),
            "trace_id": trace[0] if trace else new_trace_id(),
            "parent_span_id": trace[1] if trace else None,
            "status_code": status,
            "outcome": body.get("status") or body.get("error"),
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "mode": self.state.mode,
        }
        if isinstance(payload, dict):
            for name in ("amount", "currency", "charge_id", "idempotency_key"):
                if isinstance(payload.get(name), str):
                    fields[name] = payload[name][:64]
        if "id" in body:
            fields[f"{kind}_id"] = body["id"]
        level = logging.WARNING if status >= 400 else logging.INFO
        log_event(f"gateway.{kind}", level=level, logger=logger, **fields)

    def _answer(self, status: int, body: dict[str, Any], trickle_seconds: float = 0.0) -> None:
        content = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        try:
            if trickle_seconds <= 0:
                self.wfile.write(content)
                return
            # `trickle`: status and headers at once, then the body a byte at a time.
            self.wfile.flush()
            pause = trickle_seconds / len(content)
            for offset in range(len(content)):
                time.sleep(pause)
                self.wfile.write(content[offset : offset + 1])
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (its timeout is shorter than the injected latency).
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: a load test sends thousands of requests."""


def fake_gateway_server(*, host: str, port: int) -> ThreadingHTTPServer:
    """Bind a fake gateway (port 0: any free port); call `serve_forever()` to run it."""
    handler = type("FakeGatewayHandler", (_Handler,), {"state": FakeGatewayState()})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server
