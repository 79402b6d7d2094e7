"""App config of the cross-cutting observability code."""

from django.apps import AppConfig


class RetailConfig(AppConfig):
    name = "retail"
    verbose_name = "Retail observability"
