"""Open live dashboards against a real server: staff sessions reading /metrics/stream/.

Used by the load tests and bench/flash_sale.py: each viewer logs in through the admin
login form (as a person would), then reads its stream in a thread, counting events,
until told to stop or the server ends the stream. A viewer whose stream is refused (the
worker's cap) polls /metrics/live/ every POLL_SECONDS instead, as live.js does.
"""

import threading
import time
from dataclasses import dataclass, field

import httpx

from tests.support.servers import manage

STAFF_USER, STAFF_PASSWORD = "viewer", "viewer-pass-9x"
POLL_SECONDS = 5.0


def staff_user(env: dict[str, str]) -> None:
    """Create the viewers' staff user (a superuser) with manage.py."""
    manage(
        {**env, "DJANGO_SUPERUSER_PASSWORD": STAFF_PASSWORD},
        *("createsuperuser", "--noinput", "--username", STAFF_USER, "--email", "v@x.test"),
    )


def staff_session(url: str) -> httpx.Client:
    """Return a client logged in as the viewers' staff user through the admin form."""
    client = httpx.Client(base_url=url, timeout=30)
    client.get("/admin/login/")
    answer = client.post(
        "/admin/login/?next=/admin/",
        data={
            "username": STAFF_USER,
            "password": STAFF_PASSWORD,
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
        },
        headers={"Referer": f"{url}/admin/login/"},
    )
    if answer.status_code != 302:
        raise RuntimeError(f"staff login answered {answer.status_code}")
    return client


@dataclass
class Viewer:
    """One open dashboard: its stream's status, events and when the stream ended."""

    status: int | None = None
    events: int = 0
    polls: int = 0
    ended_at: float | None = None
    error: str | None = None


@dataclass
class Dashboards:
    """`count` dashboards streaming `path` from `url` in threads, until stop()."""

    url: str
    count: int
    path: str = "/metrics/stream/?range=15m"
    viewers: list[Viewer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._opened = threading.Semaphore(0)

    def __enter__(self) -> "Dashboards":
        client = staff_session(self.url)
        cookies = dict(client.cookies)
        client.close()
        for _ in range(self.count):
            viewer = Viewer()
            self.viewers.append(viewer)
            thread = threading.Thread(target=self._read, args=(viewer, cookies), daemon=True)
            thread.start()
            self._threads.append(thread)
        for _ in range(self.count):
            if not self._opened.acquire(timeout=30):
                raise TimeoutError("a dashboard's stream did not answer in 30 s")
        return self

    def _read(self, viewer: Viewer, cookies: dict) -> None:
        try:
            with (
                httpx.Client(base_url=self.url, cookies=cookies, timeout=60) as client,
                client.stream("GET", self.path) as answer,
            ):
                viewer.status = answer.status_code
                self._opened.release()
                if answer.status_code != 200:
                    self._poll(viewer, client)
                    return
                for chunk in answer.iter_raw():
                    viewer.events += chunk.count(b"event: delta\n")
                    if self._stop.is_set():
                        return
        except httpx.HTTPError as exc:
            viewer.error = type(exc).__name__
            self._opened.release()
        finally:
            viewer.ended_at = time.monotonic()

    def _poll(self, viewer: Viewer, client: httpx.Client) -> None:
        query = self.path.split("?", 1)[1] if "?" in self.path else ""
        while not self._stop.wait(POLL_SECONDS):
            client.get(f"/metrics/live/?{query}").raise_for_status()
            viewer.polls += 1

    def streaming(self) -> int:
        """Return how many viewers hold an open stream now."""
        return sum(1 for v in self.viewers if v.status == 200 and v.ended_at is None)

    def wait_ended(self, timeout: float) -> bool:
        """Wait until every stream has ended; True when they all did in time."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    def stop(self) -> None:
        """Stop reading (each stream ends at its next event or heartbeat)."""
        self._stop.set()

    def __exit__(self, *exc_info) -> None:
        self.stop()
