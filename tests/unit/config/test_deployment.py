"""Django's deployment checklist: never a known signing key; a production profile that passes."""

import json
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from config.secret_key import secret_key_load_or_create

PROJECT_ROOT = Path(__file__).resolve().parents[3]
MANAGE = [sys.executable, str(PROJECT_ROOT / "backend" / "manage.py")]


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "RETAIL_"))}
    env.update(PYTHONPATH=os.pathsep.join([str(PROJECT_ROOT / "backend"), str(PROJECT_ROOT)]))
    env.update(settings)
    return env


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def test_check_deploy_passes_under_the_production_profile():
    """DJANGO_SECURE=on with a key: `check --deploy --fail-level WARNING` reports nothing."""
    env = _env(DJANGO_SECURE="on", DJANGO_SECRET_KEY=secrets.token_urlsafe(50))
    done = _run([*MANAGE, "check", "--deploy", "--fail-level", "WARNING"], env)
    assert done.returncode == 0, done.stderr
    assert "no issues" in done.stdout


def test_without_the_profile_check_deploy_names_the_tls_settings():
    """The default (plain HTTP, local use) is what the checklist warns about, and only that."""
    done = _run([*MANAGE, "check", "--deploy", "--fail-level", "WARNING"], _env())
    assert done.returncode != 0
    warnings = {code for code in ("W004", "W008", "W009", "W012", "W016") if code in done.stderr}
    assert warnings == {"W004", "W008", "W012", "W016"}, done.stderr


def test_the_production_profile_refuses_to_start_without_a_key():
    """DJANGO_SECURE=on and no DJANGO_SECRET_KEY: refuse, naming the variable."""
    done = _run([*MANAGE, "check"], _env(DJANGO_SECURE="on"))
    assert done.returncode != 0
    assert "DJANGO_SECURE=on needs DJANGO_SECRET_KEY" in done.stderr


_PROFILE_PROBE = """
import json
import django
django.setup()
from django.test import Client
client = Client()
plain = client.get("/api/products/")
probe = client.get("/healthz")
tls = client.get("/api/products/", headers={"X-Forwarded-Proto": "https"})
print(json.dumps({
    "plain": [plain.status_code, plain.get("Location")],
    "probe": probe.status_code,
    "tls": [tls.status_code, tls.get("Strict-Transport-Security")],
}))
"""


def test_the_production_profile_redirects_to_https_behind_the_proxy(tmp_path):
    """Plain HTTP is redirected (probes excepted); HTTPS via the proxy gets HSTS."""
    env = _env(
        DJANGO_SECURE="on",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        RETAIL_LOG_DIR=str(tmp_path),
        RETAIL_LOG_STDOUT="off",
    )
    assert _run([*MANAGE, "migrate", "-v0"], env).returncode == 0
    done = _run([sys.executable, "-c", _PROFILE_PROBE], env)
    assert done.returncode == 0, done.stderr
    answers = json.loads(done.stdout)
    assert answers["plain"] == [301, "https://testserver/api/products/"]
    assert answers["probe"] == 200
    assert answers["tls"] == [200, "max-age=31536000; includeSubDomains; preload"]


def test_a_generated_key_is_random_private_and_kept(tmp_path):
    """Without DJANGO_SECRET_KEY a key is made once, mode 600, and read back unchanged."""
    path = tmp_path / "var" / "secret_key"
    key = secret_key_load_or_create(path)
    assert len(key) >= 50 and len(set(key)) >= 5
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert secret_key_load_or_create(path) == key
    assert secret_key_load_or_create(tmp_path / "other" / "secret_key") != key
    assert [p.name for p in path.parent.iterdir()] == ["secret_key"]


_RACER = """
import sys
from pathlib import Path
from config.secret_key import secret_key_load_or_create
sys.stdin.read()  # start together
print(secret_key_load_or_create(Path(sys.argv[1])))
"""


def test_workers_starting_at_once_agree_on_one_key(tmp_path):
    """Eight processes creating the key at the same moment all end up with the same key."""
    path = tmp_path / "secret_key"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(path)],
            env=_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    for racer in racers:  # every interpreter is up and waiting: release them together
        racer.stdin.close()
    keys = {racer.stdout.read().strip() for racer in racers}
    assert [racer.wait(timeout=60) for racer in racers] == [0] * 8
    assert len(keys) == 1 and path.read_text().strip() in keys


def test_an_empty_key_file_is_refused(tmp_path):
    """An empty key file is an operator's mistake to report, not a key."""
    from django.core.exceptions import ImproperlyConfigured

    path = tmp_path / "secret_key"
    path.write_text("")
    with pytest.raises(ImproperlyConfigured):
        secret_key_load_or_create(path)


def test_the_settings_hold_no_key_in_the_source():
    """The signing key never comes from the source code."""
    from django.conf import settings

    source = (PROJECT_ROOT / "backend" / "config" / "settings.py").read_text()
    assert settings.SECRET_KEY not in source
    assert "insecure" not in source
