"""Create retail_metric_pruned: what `retailctl prune` deleted, so lifetime counters never drop.

Prometheus reads a counter that goes down as a reset. The rollup follows the raw rows
(its delete trigger subtracts pruned rows), so prune adds what it deletes here, in the
same transaction; lifetime totals are rollup + pruned. No trigger: the metric INSERT
path costs what it did.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('retail', '0003_alert'),
    ]

    operations = [
        migrations.CreateModel(
            name='MetricPruned',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('metric_type', models.CharField(max_length=64)),
                ('status_class', models.CharField(db_default='', default='', max_length=3)),
                ('bucket', models.IntegerField()),
                ('samples', models.BigIntegerField(default=0)),
                ('value_sum', models.FloatField(default=0.0)),
            ],
            options={
                'db_table': 'retail_metric_pruned',
                'constraints': [models.UniqueConstraint(fields=('metric_type', 'status_class', 'bucket'), name='retail_metric_pruned_key')],
            },
        ),
    ]
