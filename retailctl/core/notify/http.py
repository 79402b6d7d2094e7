"""The one HTTP POST every HTTP notifier makes: JSON, a timeout, errors without secrets."""

import logging
from typing import Any
from urllib.parse import urlsplit

import httpx

from retailctl.core.notify import NotifierError

# httpx logs every request's full URL at INFO, and a Slack webhook's path is its secret:
# a process that sends notifications keeps that logger to warnings.
logging.getLogger("httpx").setLevel(logging.WARNING)


def post_json(url: str, body: Any, *, timeout: float, headers: dict[str, str] | None = None):
    """POST `body` as JSON; return the response when it is 2xx, raise NotifierError otherwise."""
    # A Slack webhook's path is its secret: messages name the host only.
    host = urlsplit(url).netloc.rpartition("@")[2]
    try:
        response = httpx.post(url, json=body, timeout=timeout, headers=headers)
    except httpx.TimeoutException:
        raise NotifierError(f"no answer from {host} within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise NotifierError(f"cannot reach {host}: {type(exc).__name__}") from None
    if not response.is_success:
        raise NotifierError(f"HTTP {response.status_code} from {host}")
    return response
