"""Settings of the retail backend, read from the environment (SPEC §2).

Every knob an operator turns is an environment variable so that gunicorn, the
management commands, cron and the test suite configure the same process the same way.
"""

import ipaddress
import os
import re
import warnings
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.secret_key import secret_key_load_or_create
from retailctl.core.paths import DEFAULT_LOG_DIR, DEFAULT_SQLITE_PATH

BACKEND_DIR = Path(__file__).resolve().parent.parent
PROJECT_ROOT = BACKEND_DIR.parent


def _env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from exc


def _env_choice(name: str, choices: tuple[str, ...]) -> str:
    """The variable's value, one of `choices` (the first when unset)."""
    raw = os.environ.get(name, "").strip().lower() or choices[0]
    if raw not in choices:
        raise ImproperlyConfigured(f"{name} must be {' or '.join(choices)}, got {raw!r}")
    return raw


DEBUG = _env_bool("DJANGO_DEBUG", default=False)
# The production profile: behind a TLS-terminating proxy (README "Configuration").
SECURE = _env_bool("DJANGO_SECURE", default=False)
SECRET_KEY_FILE = DEFAULT_SQLITE_PATH.parent / "secret_key"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "").strip()
if not SECRET_KEY:
    if SECURE:
        # Hosts of one deployment must share the key; a per-host file would not be shared.
        raise ImproperlyConfigured("DJANGO_SECURE=on needs DJANGO_SECRET_KEY")
    SECRET_KEY = secret_key_load_or_create(SECRET_KEY_FILE)
ALLOWED_HOSTS = [
    host.strip()
    for host in os.environ.get(
        "DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver"
    ).split(",")
    if host.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "retail",
    "catalog",
    "orders",
    "payments",
]

MIDDLEWARE = [
    "retail.middleware.ObservabilityMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "retail.security.ContentSecurityPolicyMiddleware",
    "retail.security.RequestBodyGuardMiddleware",
    # Static files before sessions and auth: a stylesheet needs neither.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# One URL configures backend and CLI alike; the defaults come from retailctl, so both
# programs open the same absolute SQLite file and log directory whatever their cwd.
DATABASE_URL = os.environ.get("DATABASE_URL", "").strip() or f"sqlite:///{DEFAULT_SQLITE_PATH}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    _sqlite_name = DATABASES["default"]["NAME"]
    if _sqlite_name and _sqlite_name != ":memory:":
        Path(_sqlite_name).parent.mkdir(parents=True, exist_ok=True)
    # Several gunicorn workers write one file: WAL lets readers run beside the writer,
    # the busy timeout makes writers queue instead of failing, and IMMEDIATE takes the
    # write lock at BEGIN so a read-then-write transaction cannot deadlock on upgrade.
    # Connections persist (CONN_MAX_AGE) as on PostgreSQL: an idle WAL connection holds
    # no lock, and reopening per request would redo the PRAGMAs and the WAL index.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# WhiteNoise serves static files from the app itself, under gunicorn too (SPEC §3.8).
# `collectstatic` (run by `make migrate`) gathers them, with gzip copies, into STATIC_ROOT;
# a process started where it never ran serves the apps' own files instead of an
# unstyled admin.
STATIC_URL = "static/"
STATIC_ROOT = PROJECT_ROOT / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = not STATIC_ROOT.is_dir()
# Files browsers ask for at the site's root (/favicon.ico).
WHITENOISE_ROOT = BACKEND_DIR / "retail" / "public"
# Its "No directory at STATIC_ROOT" warning is that very case, handled just above.
warnings.filterwarnings("ignore", message="No directory at: ", category=UserWarning)

if SECURE:
    # TLS ends at the proxy, which must set X-Forwarded-Proto (and strip a client's own).
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    # Probes and load balancers call the workers over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = _env_int("DJANGO_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

LOGIN_URL = "/admin/login/"

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["retail.parsers.JSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "EXCEPTION_HANDLER": "retail.exceptions.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "retail-observability API",
    "DESCRIPTION": (
        "Catalog, guest checkout, order reads and staff refunds of a small shop. Checkout is "
        "anonymous; the access_token it returns (once) reads the order back through the "
        "X-Order-Token header; staff read and refund every order. Every error answer is JSON "
        '{"error": code, "detail": ..., "request_id": ...}; every answer carries X-Request-ID. '
        "A 202 from checkout or a refund means the payment gateway did not answer in time: "
        "the outcome is settled later and read back with GET /api/orders/{id}/."
    ),
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "retail.openapi.add_retry_after_headers",
        "orders.apis.add_order_links",
        "retail.openapi.add_operations_outside_drf",
    ],
}

# --- retail-observability (SPEC §2) -------------------------------------------------

RETAIL_LOG_DIR = Path(os.environ.get("RETAIL_LOG_DIR", "").strip() or DEFAULT_LOG_DIR)
RETAIL_LOG_MAX_BYTES = _env_int("RETAIL_LOG_MAX_BYTES", 50 * 1024 * 1024)
RETAIL_LOG_BACKUPS = _env_int("RETAIL_LOG_BACKUPS", 10)
RETAIL_OBSERVABILITY = os.environ.get("RETAIL_OBSERVABILITY", "on").strip().lower() != "off"
# Who inserts the buffered metric rows: a writer process per server process ("process",
# docs/observability-cost.md says why), or the buffer's own thread in the process itself.
RETAIL_METRICS_WRITER = _env_choice("RETAIL_METRICS_WRITER", ("process", "thread"))
# Who formats and writes the buffered lines of the JSON log handler: the same writer
# process once it answers ("process"), or the handler's own thread.
RETAIL_LOG_WRITER = _env_choice("RETAIL_LOG_WRITER", ("process", "thread"))

# --- observability: request logging and JSON logs (README "Logs and request IDs") ---
# Paths the middleware neither logs nor measures (an entry ending in "/" is a prefix);
# they still get an X-Request-ID.
RETAIL_OBSERVABILITY_EXCLUDED_PATHS = ["/healthz", "/readyz", "/favicon.ico", f"/{STATIC_URL}"]
# Path prefixes logged but not measured: scrapes, the schema and the staff pages are not
# customers, so they stay out of the traffic KPIs and "Slowest routes" (SPEC §4).
RETAIL_METRICS_UNCOUNTED_PATHS = ["/metrics/", "/api/schema/", "/healthz", "/readyz"]
# The client address in http.request/http.response records (personal data in the EU).
RETAIL_LOG_CLIENT_IP = _env_bool("RETAIL_LOG_CLIENT_IP", default=True)
# JSON lines on stdout besides application.log; off for batch commands whose own output
# would drown in them (`make demo`'s traffic simulation).
RETAIL_LOG_STDOUT = _env_bool("RETAIL_LOG_STDOUT", default=True)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "retail.logging.RequestIDFilter"},
        "skip_observed_requests": {"()": "retail.logging.SkipObservedRequestsFilter"},
    },
    "formatters": {
        "json": {"()": "retail.logging.JsonFormatter", "static_fields": {"service": "backend"}},
        "gateway_json": {
            "()": "retail.logging.JsonFormatter",
            "static_fields": {"service": "gateway"},
        },
    },
    "handlers": {
        # One handler, two outputs: each record is formatted once, then written to
        # stdout and (rotating, multi-process safe, gzip) to application.log.
        "json": {
            "()": "retail.logging.JsonLinesHandler",
            "filename": str(RETAIL_LOG_DIR / "application.log"),
            "max_bytes": RETAIL_LOG_MAX_BYTES,
            "backups": RETAIL_LOG_BACKUPS,
            "stdout": RETAIL_LOG_STDOUT,
            "writer_process": RETAIL_LOG_WRITER == "process",
            "formatter": "json",
            "filters": ["request_id"],
        },
        # The fake payment gateway is a service of its own, with a log of its own.
        "gateway": {
            "()": "retail.logging.JsonLinesHandler",
            "filename": str(RETAIL_LOG_DIR / "gateway.log"),
            "max_bytes": RETAIL_LOG_MAX_BYTES,
            "backups": RETAIL_LOG_BACKUPS,
            "stdout": False,
            "formatter": "gateway_json",
            "filters": ["request_id"],
        },
    },
    "root": {"handlers": ["json"], "level": "INFO"},
    "loggers": {
        # Django's own console and mail_admins handlers are replaced by the root's.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.request": {"filters": ["skip_observed_requests"], "propagate": True},
        # httpx logs each request's URL at INFO, userinfo and all: a gateway URL holds
        # credentials (SPEC §3.4). The gateway client logs its own events.
        "payments.fake_gateway": {"handlers": ["gateway"], "level": "INFO", "propagate": False},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}

RETAIL_PAYMENT_GATEWAY_URL = os.environ.get("RETAIL_PAYMENT_GATEWAY_URL", "").strip() or None
RETAIL_GATEWAY_TIMEOUT_SECONDS = _env_float("RETAIL_GATEWAY_TIMEOUT_SECONDS", 2.0)
RETAIL_BREAKER_FAIL_MAX = _env_int("RETAIL_BREAKER_FAIL_MAX", 5)
RETAIL_BREAKER_RESET_SECONDS = _env_float("RETAIL_BREAKER_RESET_SECONDS", 30.0)
RETAIL_CHECKOUT_RATE = os.environ.get("RETAIL_CHECKOUT_RATE", "30/m").strip()
RETAIL_METRICS_TOKEN = os.environ.get("RETAIL_METRICS_TOKEN", "").strip() or None
REDIS_URL = os.environ.get("REDIS_URL", "").strip() or None

# --- resilience: shared state, throttling, breaker, trusted proxies (issue 4) -------

if not re.fullmatch(r"[1-9][0-9]*/[smh]", RETAIL_CHECKOUT_RATE):
    raise ImproperlyConfigured(
        f"RETAIL_CHECKOUT_RATE must look like 30/m (N/s, N/m, N/h), got {RETAIL_CHECKOUT_RATE!r}"
    )
# Namespace of every shared key (throttle counters, breaker state): two deployments, or
# two test runs, on one Redis never see each other's state.
RETAIL_SHARED_STATE_PREFIX = os.environ.get("RETAIL_SHARED_STATE_PREFIX", "").strip() or "retail"
# Addresses (or CIDR networks) of reverse proxies whose X-Forwarded-For is believed;
# from anyone else the header is ignored, so a client cannot pick its own throttle key.
try:
    RETAIL_TRUSTED_PROXIES = [
        ipaddress.ip_network(entry.strip(), strict=False)
        for entry in os.environ.get("RETAIL_TRUSTED_PROXIES", "").split(",")
        if entry.strip()
    ]
except ValueError as exc:
    raise ImproperlyConfigured(f"RETAIL_TRUSTED_PROXIES: {exc}") from exc

if REDIS_URL:
    # Throttle counters use the cache's atomic add/incr, shared by every worker.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": RETAIL_SHARED_STATE_PREFIX,
            "OPTIONS": {"socket_timeout": 0.25, "socket_connect_timeout": 0.25},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "retail",
        }
    }

RETAIL_CURRENCY = "USD"
# An order line above this is a typo or an attack, never a purchase.
RETAIL_MAX_QUANTITY_PER_LINE = 1000
RETAIL_MAX_LINES_PER_ORDER = 50
CSRF_FAILURE_VIEW = "retail.exceptions.csrf_failure"
