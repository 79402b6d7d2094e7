"""Real notification receivers on loopback: an HTTP server, an SMTP server, Alertmanager.

Each listens on a port the OS picks (Alertmanager, which cannot be told port 0, gets a
port just freed by the OS and is retried on a clash), is polled until it answers, and
is always stopped.
"""

import asyncio
import json
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from tests.support.servers import wait_for


@dataclass
class Received:
    """One request a receiver took."""

    path: str
    headers: dict[str, str]
    body: object


@dataclass
class HttpReceiver:
    """A loopback HTTP server that records every POST and answers the status it is told."""

    url: str
    requests: list[Received] = field(default_factory=list)
    # Statuses to answer next, in order; 200 once they run out.
    statuses: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self) -> list:
        with self.lock:
            return [request.body for request in self.requests]


@contextmanager
def http_receiver() -> Iterator[HttpReceiver]:
    """Serve an HttpReceiver on 127.0.0.1 and a port the OS picks."""
    receiver: HttpReceiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802  (http.server's naming)
            length = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(length)
            with receiver.lock:
                receiver.requests.append(
                    Received(self.path, dict(self.headers.items()), json.loads(raw or b"null"))
                )
                status = receiver.statuses.pop(0) if receiver.statuses else 200
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok" if status < 300 else b"error")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = HttpReceiver(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class SmtpReceiver:
    """A loopback SMTP server (aiosmtpd) that keeps every message it accepts."""

    host: str
    port: int
    messages: list = field(default_factory=list)
    logins: list = field(default_factory=list)


@contextmanager
def smtp_receiver(*, credentials: tuple[str, str] | None = None) -> Iterator[SmtpReceiver]:
    """Serve an SMTP server on 127.0.0.1 (a port the OS picks), with AUTH when given."""
    from aiosmtpd.smtp import SMTP, AuthResult, Envelope

    receiver = SmtpReceiver(host="127.0.0.1", port=0)

    class Handler:
        async def handle_DATA(self, server, session, envelope: Envelope):  # noqa: N802
            from email import message_from_bytes
            from email.policy import default

            message = message_from_bytes(envelope.content, policy=default)
            receiver.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
            return "250 OK"

    def authenticate(server, session, envelope, mechanism, auth_data):
        receiver.logins.append(auth_data.login.decode())
        ok = credentials and (auth_data.login.decode(), auth_data.password.decode()) == credentials
        return AuthResult(success=bool(ok), handled=False)

    loop = asyncio.new_event_loop()
    options = {}
    if credentials:
        options = {"authenticator": authenticate, "auth_require_tls": False}

    def factory():
        return SMTP(Handler(), loop=loop, **options)

    server = loop.run_until_complete(loop.create_server(factory, host="127.0.0.1", port=0))
    receiver.port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()


ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
_ALERTMANAGER_CONFIG = """
route:
  receiver: hold
  group_wait: 1h
receivers:
  - name: hold
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def alertmanager() -> Iterator[str]:
    """Run the real Alertmanager on loopback; yield its base URL."""
    assert ALERTMANAGER, "Alertmanager is not installed"
    with tempfile.TemporaryDirectory(prefix="retail-am-") as workdir:
        config = Path(workdir) / "alertmanager.yml"
        config.write_text(_ALERTMANAGER_CONFIG)
        for _ in range(5):
            port = _free_port()
            process = subprocess.Popen(
                [
                    ALERTMANAGER,
                    f"--config.file={config}",
                    f"--storage.path={workdir}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--cluster.listen-address=",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            url = f"http://127.0.0.1:{port}"
            try:
                wait_for(_exited_or_ready(process, url), timeout=20, what=url)
                if process.poll() is None:
                    yield url
                    return
            finally:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            # The port was taken between probe and bind: try another.
        raise RuntimeError("Alertmanager did not start on any of 5 ports")


def _exited_or_ready(process: subprocess.Popen, url: str):
    return lambda: process.poll() is not None or _ready(url)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
