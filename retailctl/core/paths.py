"""Where the project lives: the defaults both programs share (SPEC §2)."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The same file Django opens when DATABASE_URL is unset (backend/config/settings.py).
DEFAULT_SQLITE_PATH = PROJECT_ROOT / "var" / "retail.sqlite3"
DEFAULT_LOG_DIR = PROJECT_ROOT / "logs"
