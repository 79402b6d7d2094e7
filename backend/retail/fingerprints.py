"""Error groups (SPEC §3.6): one fingerprint for every error of the same kind.

An unhandled exception is known by its type and the innermost frame of project code that
raised it (line numbers left out, so an edit elsewhere in the file does not split a group);
any other error answer by the route template, the status and the error code of its body.
Never the raw path: client-chosen text never makes a group.
"""

import hashlib
from pathlib import Path
from types import TracebackType
from typing import Any

# Frames under this directory, outside any installed package, are the project's code.
_PROJECT_DIR = str(Path(__file__).resolve().parents[1]) + "/"
_NOT_PROJECT = ("/site-packages/", "/dist-packages/")


def exception_label(exc_info: tuple[Any, BaseException, TracebackType | None]) -> str:
    """Name an exception by its type and the innermost frame of project code that raised it."""
    kind, error, traceback = exc_info
    frame_name = None
    while traceback is not None:
        code = traceback.tb_frame.f_code
        filename = code.co_filename
        if filename.startswith(_PROJECT_DIR) and not any(part in filename for part in _NOT_PROJECT):
            frame_name = f"{filename[len(_PROJECT_DIR) :]}:{code.co_qualname}"
        traceback = traceback.tb_next
    name = getattr(kind, "__qualname__", str(kind))
    return f"{name} at {frame_name}" if frame_name else name


def error_code_of(response: Any) -> str | None:
    """Return the `error` code of an error answer's JSON body, read without parsing it."""
    data = getattr(response, "data", None)
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return data["error"]
    return getattr(response, "error_code", None)


def error_fingerprint(
    *, route: str | None, status: int, error: str | None, exception: str | None
) -> str:
    """Return the 16-hex-digit fingerprint of an error: its exception, else route+status+code."""
    key = f"exception\x1f{exception}" if exception else f"{route}\x1f{status}\x1f{error}"
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()
