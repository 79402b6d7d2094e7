"""WSGI entry point: `gunicorn --chdir backend config.wsgi:application`."""

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()

# The loaded project (about 100k objects of Django, DRF and our modules) lives as long as
# the process: frozen, it is left out of every full collection, which then scans only what
# requests made. Under continuous load a full collection came every 5-10 s and paused the
# process 70-120 ms; frozen, 14-33 ms (docs/observability-cost.md).
gc.collect()
gc.freeze()
