"""The WSGI entry point leaves the loaded project out of the garbage collector's scans."""

import json

from tests.support.servers import BACKEND_DIR, backend_env, run_python

PROBE = """
import gc, json
import config.wsgi
gc.collect()
print(json.dumps({"frozen": gc.get_freeze_count(), "tracked": len(gc.get_objects())}))
"""


def test_loading_the_application_freezes_what_it_loaded(tmp_path):
    """Django, DRF and the project (~100k objects) are frozen; a full collection scans few."""
    env = backend_env(database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}", log_dir=tmp_path)
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    counts = json.loads(run_python("-c", PROBE, env=env, cwd=BACKEND_DIR, timeout=120))
    assert counts["frozen"] > 20_000
    # What a full collection still scans: the few objects made after the freeze.
    assert counts["tracked"] < counts["frozen"] // 10
