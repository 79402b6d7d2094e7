"""The OpenAPI schema's shared parts: the error body, documented error answers, strict inputs.

Every status an operation can answer is documented, each with SPEC's JSON error body, so
that the served schema (`/api/schema/`) is a contract a client generator or a fuzzer
(schemathesis) can hold the API to.
"""

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema_field
from rest_framework import serializers


@extend_schema_field(OpenApiTypes.ANY)
class _AnyField(serializers.Field):
    """A JSON value of any type (an error's detail: a message, a list or an object)."""


class ErrorOutputSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="A stable, machine-readable code.")
    detail = _AnyField(help_text="What went wrong, for a person: a message or field errors.")
    request_id = serializers.CharField(
        allow_null=True, help_text="The X-Request-ID of this request, to find it in the logs."
    )


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 0},
    }
}

ERROR_DESCRIPTIONS = {
    400: "The request is malformed: not JSON, wrong types, unknown or missing fields.",
    401: "No credentials, or credentials that are not valid.",
    402: "The payment was declined.",
    403: "Signed in, but not allowed (staff only).",
    404: "No such resource (or not yours to see).",
    409: "Conflicts with the current state (out of stock, not refundable).",
    413: "The request body is over the size limit.",
    415: "The request body is not JSON, or is compressed.",
    429: "Too many checkouts from this client; see Retry-After.",
    503: "The payment service is unavailable; see Retry-After.",
}
_WITH_RETRY_AFTER = {429, 503}


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """Return documented error answers (SPEC's JSON body) for `statuses`."""
    return {
        status: OpenApiResponse(
            response=ErrorOutputSerializer,
            description=ERROR_DESCRIPTIONS[status],
        )
        for status in statuses
    }


class StrictSerializerExtension(OpenApiSerializerExtension):
    """Document a StrictSerializer's refusal of undeclared keys: additionalProperties false."""

    target_class = "retail.serializers.StrictSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["additionalProperties"] = False
        # drf-spectacular leaves out the bounds of a nested list (`many=True`).
        for name, field in self.target.fields.items():
            if isinstance(field, serializers.ListSerializer) and name in schema["properties"]:
                prop = schema["properties"][name]
                if not field.allow_empty or field.min_length:
                    prop["minItems"] = max(1 if not field.allow_empty else 0, field.min_length or 0)
                if field.max_length is not None:
                    prop["maxItems"] = field.max_length
        return schema


def add_retry_after_headers(result, generator, request, public):
    """Postprocessing hook: every 202, 429 and 503 answer documents its Retry-After header."""
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            for status, response in operation.get("responses", {}).items():
                if int(status) in (202, *_WITH_RETRY_AFTER):
                    response.setdefault("headers", {}).update(_RETRY_AFTER)
    return result


_ERROR_REF = {"$ref": "#/components/schemas/ErrorOutput"}
_STATUS_OK = {
    "type": "object",
    "properties": {"status": {"type": "string", "enum": ["ok"]}},
    "required": ["status"],
}
_KPI_KEYS = (
    "orders_total", "orders_per_day", "refunds_total", "refunds_per_day", "requests_total",
    "errors_total", "error_rate", "payment_success_rate", "payment_decline_rate",
    "avg_response_time_ms", "p95_response_time_ms", "p99_response_time_ms",
    "stock_conflicts", "throttled_requests",
)  # fmt: skip
_METRICS_DOCUMENT = {
    "type": "object",
    "description": "As `retailctl metrics --json` prints it, plus the dashboard's added keys.",
    "properties": {
        "window": {
            "type": "object",
            "properties": {
                "days": {"type": "integer"},
                "start": {"type": "string", "format": "date-time"},
                "end": {"type": "string", "format": "date-time"},
            },
            "required": ["days", "start", "end"],
        },
        "kpis": {
            "type": "object",
            "properties": {
                **{key: {"type": "number", "nullable": True} for key in _KPI_KEYS},
                "circuit_breaker_state": {"type": "string", "nullable": True},
            },
            "required": [*_KPI_KEYS, "circuit_breaker_state"],
        },
        "daily": {"type": "array", "items": {"type": "object"}},
        "error_groups": {"type": "array", "items": {"type": "object"}},
        "alerts_firing": {"type": "array", "items": {"type": "object"}},
        "anomalies": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["window", "kpis", "daily"],
}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict:
    return {str(status): _json(_ERROR_REF, ERROR_DESCRIPTIONS[status]) for status in statuses}


_DAYS = {
    "name": "days",
    "in": "query",
    "required": False,
    "description": "The last N UTC days, today included (default 7).",
    "schema": {"type": "integer", "minimum": 1, "maximum": 3650, "default": 7},
}
_MACHINE_SECURITY = [{"metricsBearer": []}, {"cookieAuth": []}]
_OUTSIDE_DRF = {
    "/healthz": {
        "get": {
            "operationId": "healthz",
            "summary": "Liveness: the process answers (no database)",
            "tags": ["probes"],
            "security": [{}],
            "responses": {"200": _json(_STATUS_OK, "Alive.")},
        }
    },
    "/readyz": {
        "get": {
            "operationId": "readyz",
            "summary": "Readiness: the database answers",
            "tags": ["probes"],
            "security": [{}],
            "responses": {
                "200": _json(_STATUS_OK, "Ready."),
                "503": _json(_ERROR_REF, "The database does not answer."),
            },
        }
    },
    "/metrics/api/": {
        "get": {
            "operationId": "metrics_document",
            "summary": "KPIs, daily series, error groups, firing alerts and anomalies (staff)",
            "tags": ["metrics"],
            "parameters": [_DAYS],
            "security": _MACHINE_SECURITY,
            "responses": {
                "200": _json(_METRICS_DOCUMENT, "The metrics document."),
                **_errors(400, 401, 403),
                "503": _json(_ERROR_REF, "The database does not answer."),
            },
        }
    },
    "/metrics/prometheus": {
        "get": {
            "operationId": "metrics_prometheus",
            "summary": "The Prometheus text exposition of the same read model (staff)",
            "tags": ["metrics"],
            "security": _MACHINE_SECURITY,
            "responses": {
                "200": {
                    "description": "Prometheus text format 0.0.4.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                **_errors(401, 403),
                "503": _json(_ERROR_REF, "The database does not answer."),
            },
        }
    },
}


def add_operations_outside_drf(result, generator, request, public):
    """Postprocessing hook: document the probes and the machine-readable metrics endpoints.

    They are plain Django views, so drf-spectacular does not see them; the schemathesis tier
    holds these entries to what the live server answers. The staff HTML pages (dashboard,
    quality scenarios) are pages for a browser, not API operations, and stay out.
    """
    result["paths"].update(_OUTSIDE_DRF)
    schemes = result.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes["metricsBearer"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "RETAIL_METRICS_TOKEN, for scrapers and scripts.",
    }
    return result
