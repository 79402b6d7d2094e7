"""Email over SMTP: the server, login, sender and recipients come from RETAIL_SMTP_URL.

`smtp://user:pass@host:587?from=alerts@shop.example&to=oncall@shop.example,ops@shop.example`
(STARTTLS when the server offers it; `smtps://` for TLS from the first byte, port 465 by
default; `?starttls=required` refuses a server without it). The password is used to log
in and appears in no message, log line or error.
"""

import ipaddress
import os
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import parse_qs, unquote, urlsplit

from retailctl.core.notify import Notification, NotifierError
from retailctl.core.rules import SMTP_URL_ENV, NotifierConfig


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send, parsed from the SMTP URL."""

    host: str
    port: int
    implicit_tls: bool
    starttls_required: bool
    username: str | None
    password: str | None
    sender: str
    recipients: tuple[str, ...]


def smtp_settings(url: str, to: list[str] | None = None) -> SmtpSettings:
    """Parse an SMTP URL (recipients `to` override its `to=`); raise ValueError without secrets."""
    if not url:
        raise ValueError(f"{SMTP_URL_ENV} is not set (smtp://user:pass@host:port?from=…&to=…)")
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError(f"{SMTP_URL_ENV} must be smtp://… or smtps://… with a host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{SMTP_URL_ENV} has a bad port") from None
    query = parse_qs(parts.query)
    recipients = to or [a.strip() for v in query.get("to", []) for a in v.split(",") if a.strip()]
    sender = (query.get("from") or [""])[0]
    if not recipients:
        raise ValueError("no recipient: add `to = [...]` or ?to=… to the SMTP URL")
    if not sender:
        raise ValueError(f"no sender: add ?from=… to {SMTP_URL_ENV}")
    implicit = parts.scheme == "smtps"
    return SmtpSettings(
        host=parts.hostname,
        port=port or (465 if implicit else 25),
        implicit_tls=implicit,
        starttls_required=(query.get("starttls") or [""])[0] == "required",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        sender=sender,
        recipients=tuple(recipients),
    )


def payload(notification: Notification, settings: SmtpSettings) -> EmailMessage:
    """Return the message: the title as subject, the details as plain text."""
    message = EmailMessage()
    message["Subject"] = notification.title
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.recipients)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2] or None)
    value = "n/a" if notification.value is None else f"{notification.value:g}"
    message.set_content(
        f"{notification.summary}\n\n"
        f"rule:     {notification.rule}\n"
        f"state:    {notification.state}\n"
        f"severity: {notification.severity}\n"
        f"value:    {value}\n"
        f"since:    {notification.since.isoformat()}\n"
    )
    return message


def send(notification: Notification, config: NotifierConfig) -> None:
    """Send the message through the SMTP server of RETAIL_SMTP_URL."""
    try:
        settings = smtp_settings(os.environ.get(SMTP_URL_ENV, ""), config.options.get("to"))
    except ValueError as exc:
        raise NotifierError(str(exc)) from None
    where = f"{settings.host}:{settings.port}"
    try:
        if settings.implicit_tls:
            client = smtplib.SMTP_SSL(
                settings.host,
                settings.port,
                timeout=config.timeout,
                context=ssl.create_default_context(),
            )
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=config.timeout)
        with client:
            _deliver(client, settings, payload(notification, settings), where)
    except smtplib.SMTPAuthenticationError as exc:
        raise NotifierError(f"SMTP login refused by {where} ({exc.smtp_code})") from None
    except smtplib.SMTPResponseException as exc:
        raise NotifierError(f"SMTP {exc.smtp_code} from {where}") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise NotifierError(f"cannot send through {where}: {type(exc).__name__}") from None


def _deliver(client: smtplib.SMTP, settings: SmtpSettings, message: EmailMessage, where: str):
    tls = settings.implicit_tls
    client.ehlo()
    if not tls and client.has_extn("starttls"):
        client.starttls(context=ssl.create_default_context())
        client.ehlo()
        tls = True
    if not tls and settings.starttls_required:
        raise NotifierError(f"{where} offers no STARTTLS (starttls=required)")
    if settings.username:
        # A password crosses the network only encrypted; a local relay may take it plain.
        if not (tls or _loopback(settings.host)):
            raise NotifierError(f"{where} offers no TLS: the password is not sent in clear")
        client.login(settings.username, settings.password or "")
    client.send_message(message)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
