"""SPEC §2: without DATABASE_URL both programs open one absolute SQLite file, whatever the cwd."""

import os
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[3]
_PROBE = """
import django
django.setup()
from django.conf import settings
from retailctl.core.db import database_url_resolve
print(settings.DATABASES["default"]["NAME"])
print(database_url_resolve().removeprefix("sqlite:///"))
print(settings.RETAIL_LOG_DIR)
"""


def test_backend_and_cli_default_to_the_same_files_from_any_directory(tmp_path):
    """Run from an unrelated directory, Django and retailctl name one database and one log dir."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "RETAIL_LOG_DIR")}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONPATH=os.pathsep.join([str(PROJECT_ROOT / "backend"), str(PROJECT_ROOT)]),
    )
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    django_db, cli_db, log_dir = result.stdout.split()
    assert django_db == cli_db == str(PROJECT_ROOT / "var" / "retail.sqlite3")
    assert log_dir == str(PROJECT_ROOT / "logs")
