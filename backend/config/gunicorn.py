"""Gunicorn settings: write a worker's buffered log lines and metric rows before it exits.

Use with `gunicorn -c backend/config/gunicorn.py --chdir backend config.wsgi:application`.
atexit covers a normal interpreter exit as well; this hook also runs on the exit paths
gunicorn takes itself (graceful stop, max-requests recycling, SIGQUIT).
"""


def worker_exit(server, worker):
    """Flush the metric buffer, then the log buffer (the flush may log dropped rows), then
    the spans waiting for export (only when OpenTelemetry export is on)."""
    from retail.logging import flush_logs
    from retail.metrics import flush_metrics
    from retail.tracing import flush_spans

    flush_metrics()
    flush_logs()
    flush_spans()
