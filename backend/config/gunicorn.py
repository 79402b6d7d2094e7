"""Gunicorn settings: threaded workers, and a worker's buffered rows written before it exits.

Use with `gunicorn -c backend/config/gunicorn.py --chdir backend config.wsgi:application`.
Each worker serves requests on `threads` threads (config.workers: gthread that ends the
live dashboard's streams when it stops), so an open dashboard holds a thread, never a
whole worker; docs/live-dashboard.md says why and what it costs. Command-line options
(`--threads`, `--worker-class sync`) override these.

atexit covers a normal interpreter exit as well; the exit hook also runs on the exit
paths gunicorn takes itself (graceful stop, max-requests recycling, SIGQUIT).
"""

worker_class = "config.workers.StreamingThreadWorker"
threads = 16
# Every answer closes its connection, as sync workers do: a threaded worker keeps a
# keep-alive connection for itself, so a client's few connections (a proxy's pool, a
# load generator's) can all sit on one worker, halving the server's requests/s (seen in
# bench/middleware.py). A live stream is one long answer and is not affected.
keepalive = 0


def worker_exit(server, worker):
    """Flush the metric buffer, then the log buffer (the flush may log dropped rows), then
    the spans waiting for export (only when OpenTelemetry export is on)."""
    from retail.logging import flush_logs
    from retail.metrics import flush_metrics
    from retail.tracing import flush_spans

    flush_metrics()
    flush_logs()
    flush_spans()
