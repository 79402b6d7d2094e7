"""Create retail_metric_batch: the tokens of the batches the metric writer process committed.

A client that lost the child's answer retries with the token and the child skips the
rows already written (retail/writer_process.py). No trigger: the raw rows and their
rollup are unchanged; one row a batch, not a row.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('retail', '0004_metric_lifetime'),
    ]

    operations = [
        migrations.CreateModel(
            name='MetricBatch',
            fields=[
                ('token', models.CharField(max_length=32, primary_key=True, serialize=False)),
                ('written_at', models.DateTimeField(db_index=True)),
            ],
            options={
                'db_table': 'retail_metric_batch',
            },
        ),
    ]
