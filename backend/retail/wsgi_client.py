"""Call the WSGI application in-process, exactly as a WSGI server would.

Used by `simulate_traffic` and by tests that want the whole middleware stack without
opening a socket.
"""

import io
import json
import sys
from typing import Any

from config.wsgi import application


def wsgi_call(
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    client_ip: str = "127.0.0.1",
) -> tuple[int, dict[str, str], Any]:
    """Send one request through the WSGI app, as a server would, and return its answer."""
    payload = b"" if body is None else json.dumps(body).encode()
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": client_ip,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(payload)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(payload),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    status_holder: list[str] = []
    header_holder: list[tuple[str, str]] = []

    def start_response(status, response_headers, exc_info=None):
        status_holder.append(status)
        header_holder.extend(response_headers)

    result = application(environ, start_response)
    try:
        content = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    data = json.loads(content) if content else None
    return int(status_holder[0].split()[0]), dict(header_holder), data
