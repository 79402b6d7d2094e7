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
