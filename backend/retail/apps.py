"""App config of the cross-cutting observability code."""

from django.apps import AppConfig


class RetailConfig(AppConfig):
    name = "retail"
    verbose_name = "Retail observability"

    def ready(self) -> None:
        # Registers the OpenAPI extension of StrictSerializer with drf-spectacular.
        from retail import openapi  # noqa: F401
