"""The signing key when DJANGO_SECRET_KEY is unset: random, made once, kept in var/.

A key written in the source would let anyone forge a staff session, so the embedded
default is a key generated on first start and kept in a file only its owner can read.
Several gunicorn workers may start at once: each writes its candidate to a private temp
file and hard-links it into place, which succeeds for exactly one; the others read the
winner's key, so every worker signs with the same one.
"""

import os
import tempfile
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.core.management.utils import get_random_secret_key


def secret_key_load_or_create(path: Path) -> str:
    """Return the key stored at `path`, creating it (mode 600) if there is none."""
    key = _read(path)
    if key is not None:
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, candidate = tempfile.mkstemp(dir=path.parent, prefix=".secret_key.")
    try:
        # mkstemp creates the file with mode 600; the key is complete before it is linked.
        with os.fdopen(descriptor, "w") as handle:
            handle.write(get_random_secret_key() + "\n")
        try:
            os.link(candidate, path)
        except FileExistsError:
            pass  # another process won the race: its key is the key
    finally:
        os.unlink(candidate)
    key = _read(path)
    if key is None:
        raise ImproperlyConfigured(f"the secret key file {path} is empty")
    return key


def _read(path: Path) -> str | None:
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        return None
    return key or None
