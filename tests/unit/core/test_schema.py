"""The SQLAlchemy tables of retailctl match the Django models: no migration breaks the CLI."""

import pytest
from django.apps import apps
from django.db import models
from sqlalchemy import JSON, BigInteger, Date, Float, Integer, Numeric, String

from retailctl.core import tables as t
from retailctl.core.tables import UtcDateTime

_APPS = ("catalog", "orders", "payments", "retail")
_TYPES = {
    "BigAutoField": BigInteger,
    "AutoField": Integer,
    "BigIntegerField": BigInteger,
    "IntegerField": Integer,
    "PositiveIntegerField": Integer,
    "CharField": String,
    "DecimalField": Numeric,
    "DateTimeField": UtcDateTime,
    "DateField": Date,
    "FloatField": Float,
    "JSONField": JSON,
}


def _models():
    for label in _APPS:
        yield from apps.get_app_config(label).get_models()


def _expected_type(field: models.Field):
    if field.is_relation:
        return _expected_type(field.target_field)
    return _TYPES[field.get_internal_type()]


def test_every_backend_table_is_mirrored():
    """Every table of the backend's apps has a SQLAlchemy table of the same name."""
    tables = {model._meta.db_table for model in _models()}
    assert tables - set(t.metadata.tables) == set()


@pytest.mark.parametrize("model", list(_models()), ids=lambda m: m._meta.db_table)
def test_columns_types_and_nullability_match(model):
    """Each mirrored table has exactly the model's columns, with matching type and NULL-ability."""
    table = t.metadata.tables[model._meta.db_table]
    fields = {field.column: field for field in model._meta.concrete_fields}
    assert set(table.columns.keys()) == set(fields)
    for column_name, field in fields.items():
        column = table.columns[column_name]
        expected = _expected_type(field)
        assert isinstance(column.type, expected), (column_name, column.type, expected)
        assert column.nullable == field.null, column_name
        if isinstance(column.type, String) and getattr(field, "max_length", None):
            assert column.type.length == field.max_length, column_name
        if isinstance(column.type, Numeric) and not isinstance(column.type, Float):
            assert (column.type.precision, column.type.scale) == (
                field.max_digits,
                field.decimal_places,
            ), column_name
