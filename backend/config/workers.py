"""The gunicorn worker of `make serve`: gthread, ending the live dashboard's streams on stop.

A server-sent-events stream holds a connection (and a thread) while its page is open,
and gthread's graceful stop waits for every connection up to graceful_timeout. This
worker tells retail.live to end its streams the moment SIGTERM arrives, so a deploy or
restart is as quick as without open dashboards; the pages reconnect by themselves.
"""

import sys

from gunicorn.workers.gthread import ThreadWorker


class StreamingThreadWorker(ThreadWorker):
    """gthread, which also ends the live streams when told to stop."""

    def init_process(self):
        # Before the app loads: retail.live sizes its cap from the worker's threads.
        from retail import live

        live.threads_set(self.cfg.threads)
        super().init_process()

    def handle_exit(self, sig, frame):
        super().handle_exit(sig, frame)
        live = sys.modules.get("retail.live")
        if live is not None:
            live.streams_end()
