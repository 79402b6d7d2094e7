"""Create the daily rollup of retail_metric and the triggers that keep it exact.

The triggers are the only writer of retail_metric_rollup: they fire for every INSERT,
UPDATE and DELETE on retail_metric, including plain SQL from other tools, so the rollup
always equals an aggregation of the raw rows (docs/metrics-read-model.md). The SQL
expressions here are mirrored by retailctl.core.sketch; tests keep the two in step.
"""

from django.db import migrations, models

# ln(gamma) with gamma = (1 + 0.01) / (1 - 0.01): log buckets of 1% relative accuracy.
_LN_GAMMA = "0.020000666706669435"
_ZERO_BUCKET = "-100000"
_HUGE_BUCKET = "100000"

_SQLITE_KEY = """
    {p}.metric_type,
    date({p}.recorded_at),
    coalesce(substr(CASE WHEN json_valid({p}.metadata) THEN coalesce(
        json_extract({p}.metadata, '$.route'), json_extract({p}.metadata, '$.path')) END, 1, 200), ''),
    coalesce(CASE WHEN json_valid({p}.metadata) THEN
        substr(CAST(json_extract({p}.metadata, '$.status_code') AS TEXT), 1, 1) || 'xx' END, ''),
    CASE WHEN {p}.value > 1e-6 AND {p}.value < 1e15
         THEN CAST(ceil(ln({p}.value) / {ln_gamma}) AS INTEGER)
         WHEN {p}.value >= 1e15 THEN {huge} ELSE {zero} END
"""


def _sqlite_key(prefix: str) -> str:
    return _SQLITE_KEY.format(p=prefix, ln_gamma=_LN_GAMMA, huge=_HUGE_BUCKET, zero=_ZERO_BUCKET)


_SQLITE_ADD = """
    INSERT INTO retail_metric_rollup
        (metric_type, day, route, status_class, bucket, samples, value_sum)
    VALUES ({key}, 1, NEW.value)
    ON CONFLICT (metric_type, day, route, status_class, bucket)
    DO UPDATE SET samples = samples + 1, value_sum = value_sum + excluded.value_sum;
"""
_SQLITE_SUB = """
    UPDATE retail_metric_rollup SET samples = samples - 1, value_sum = value_sum - OLD.value
    WHERE (metric_type, day, route, status_class, bucket) = ({key});
"""


def _sqlite_statements() -> list[str]:
    add = _SQLITE_ADD.format(key=_sqlite_key("NEW"))
    sub = _SQLITE_SUB.format(key=_sqlite_key("OLD"))
    return [
        f"CREATE TRIGGER retail_metric_rollup_ins AFTER INSERT ON retail_metric BEGIN {add} END",
        f"CREATE TRIGGER retail_metric_rollup_del AFTER DELETE ON retail_metric BEGIN {sub} END",
        "CREATE TRIGGER retail_metric_rollup_upd AFTER UPDATE ON retail_metric "
        f"BEGIN {sub} {add} END",
    ]


_PG_KEY = """
    metric_type AS metric_type,
    (recorded_at AT TIME ZONE 'UTC')::date AS day,
    coalesce(left(coalesce(metadata ->> 'route', metadata ->> 'path'), 200), '') AS route,
    coalesce(left(metadata ->> 'status_code', 1) || 'xx', '') AS status_class,
    CASE WHEN value > 1e-6 AND value < 1e15 THEN ceil(ln(value) / {ln_gamma})::integer
         WHEN value >= 1e15 THEN {huge} ELSE {zero} END AS bucket
""".format(ln_gamma=_LN_GAMMA, huge=_HUGE_BUCKET, zero=_ZERO_BUCKET)

# Statement-level triggers with transition tables: one grouped upsert per statement, so a
# bulk insert or a prune batch costs one rollup write per key, not one per row. ORDER BY
# takes the rollup row locks in one order, so concurrent inserting writers cannot deadlock.
_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION retail_metric_rollup_apply() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE retail_metric_rollup AS r
        SET samples = r.samples - d.samples, value_sum = r.value_sum - d.value_sum
        FROM (
            SELECT {key}, count(*) AS samples, sum(value) AS value_sum
            FROM old_rows GROUP BY 1, 2, 3, 4, 5
        ) AS d
        WHERE r.metric_type = d.metric_type AND r.day = d.day AND r.route = d.route
          AND r.status_class = d.status_class AND r.bucket = d.bucket;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO retail_metric_rollup
            (metric_type, day, route, status_class, bucket, samples, value_sum)
        SELECT {key}, count(*), sum(value) FROM new_rows
        GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
        ON CONFLICT (metric_type, day, route, status_class, bucket) DO UPDATE
        SET samples = retail_metric_rollup.samples + EXCLUDED.samples,
            value_sum = retail_metric_rollup.value_sum + EXCLUDED.value_sum;
    END IF;
    RETURN NULL;
END;
$$
"""


def _pg_statements() -> list[str]:
    return [
        _PG_FUNCTION.replace("{key}", _PG_KEY),
        "CREATE TRIGGER retail_metric_rollup_ins AFTER INSERT ON retail_metric "
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION retail_metric_rollup_apply()",
        "CREATE TRIGGER retail_metric_rollup_del AFTER DELETE ON retail_metric "
        "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION retail_metric_rollup_apply()",
        "CREATE TRIGGER retail_metric_rollup_upd AFTER UPDATE ON retail_metric "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION retail_metric_rollup_apply()",
    ]


def _backfill_sql(vendor: str) -> str:
    key = _PG_KEY if vendor == "postgresql" else _sqlite_key("retail_metric")
    return (
        "INSERT INTO retail_metric_rollup "
        "(metric_type, day, route, status_class, bucket, samples, value_sum) "
        f"SELECT {key}, count(*), sum(value) FROM retail_metric GROUP BY 1, 2, 3, 4, 5"
    )


def install_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor not in {"sqlite", "postgresql"}:
        raise RuntimeError(f"retail_metric rollup triggers support SQLite and PostgreSQL, not {vendor}")
    statements = _pg_statements() if vendor == "postgresql" else _sqlite_statements()
    # Rows recorded before this migration are folded in first, in the same transaction.
    schema_editor.execute(_backfill_sql(vendor))
    for statement in statements:
        schema_editor.execute(statement)


def drop_triggers(apps, schema_editor):
    for name in ("ins", "del", "upd"):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"DROP TRIGGER IF EXISTS retail_metric_rollup_{name} ON retail_metric")
        else:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS retail_metric_rollup_{name}")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS retail_metric_rollup_apply()")


class Migration(migrations.Migration):

    dependencies = [
        ('retail', '0001_initial'),
    ]

    operations = [
        migrations.CreateModel(
            name='MetricRollup',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('metric_type', models.CharField(max_length=64)),
                ('day', models.DateField()),
                ('route', models.CharField(db_default='', default='', max_length=200)),
                ('status_class', models.CharField(db_default='', default='', max_length=3)),
                ('bucket', models.IntegerField()),
                ('samples', models.BigIntegerField(default=0)),
                ('value_sum', models.FloatField(default=0.0)),
            ],
            options={
                'db_table': 'retail_metric_rollup',
                'constraints': [models.UniqueConstraint(fields=('metric_type', 'day', 'route', 'status_class', 'bucket'), name='retail_metric_rollup_key')],
            },
        ),
        migrations.RunPython(install_triggers, drop_triggers),
    ]
