"""Refunds replayable by key: an idempotency key per refund, its reason, a status check."""

import uuid

from django.db import migrations, models


def _give_each_refund_a_key(apps, schema_editor):
    Refund = apps.get_model("orders", "Refund")
    for refund in Refund.objects.filter(idempotency_key__isnull=True).iterator():
        Refund.objects.filter(pk=refund.pk).update(idempotency_key=uuid.uuid4().hex)


class Migration(migrations.Migration):

    dependencies = [
        ("orders", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="refund",
            name="reason",
            field=models.CharField(
                choices=[("requested", "Requested"), ("released", "Released")],
                db_default="requested",
                default="requested",
                max_length=20,
            ),
        ),
        migrations.AddField(
            model_name="refund",
            name="idempotency_key",
            field=models.CharField(max_length=64, null=True),
        ),
        migrations.RunPython(_give_each_refund_a_key, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="refund",
            name="idempotency_key",
            field=models.CharField(max_length=64, unique=True),
        ),
        migrations.AddIndex(
            model_name="refund",
            index=models.Index(fields=["status", "created_at"], name="orders_refund_status_idx"),
        ),
        migrations.AddConstraint(
            model_name="refund",
            constraint=models.CheckConstraint(
                condition=models.Q(status__in=["pending", "succeeded"]),
                name="orders_refund_status_valid",
            ),
        ),
    ]
