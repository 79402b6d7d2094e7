"""The daemon thread behind the log writer and the metric recorder.

Both buffer work on the request path and write it later: they need a thread started on
first use, woken early when a batch is due, stopped at exit after one last pass, and
forgotten in a forked child (threads do not survive fork()).
"""

import threading
from collections.abc import Callable


class BackgroundLoop:
    """Call `tick()` in a daemon thread after each `wake()`, or every `interval()` seconds."""

    def __init__(
        self,
        *,
        name: str,
        tick: Callable[[], None],
        interval: Callable[[], float],
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        self._name = name
        self._tick = tick
        self._interval = interval
        self._on_exit = on_exit
        self._stopping = threading.Event()
        self.reset()

    def ensure_running(self) -> None:
        """Start the thread unless it runs or the loop was stopped."""
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None and not self._stopping.is_set():
                thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                thread.start()
                self._thread = thread

    def wake(self) -> None:
        """Make the thread tick now instead of at the end of its interval."""
        self._wakeup.set()

    def stop(self, *, timeout: float) -> None:
        """End the thread after its current tick; wait for it at most `timeout` seconds."""
        self._stopping.set()
        self._wakeup.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=timeout)

    def reset(self) -> None:
        """Forget the thread and its locks: in a forked child, the parent's are not there."""
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._wakeup = threading.Event()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wakeup.wait(self._interval())
            self._wakeup.clear()
            self._tick()
        if self._on_exit is not None:
            self._on_exit()
