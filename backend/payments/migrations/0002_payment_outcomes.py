"""Unknown outcomes: the `unknown` status, the replay token, and one payment per order."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("payments", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="payment",
            name="replay_token",
            field=models.CharField(blank=True, db_default="", default="", max_length=200),
        ),
        migrations.AlterField(
            model_name="payment",
            name="status",
            field=models.CharField(
                choices=[
                    ("pending", "Pending"),
                    ("succeeded", "Succeeded"),
                    ("declined", "Declined"),
                    ("failed", "Failed"),
                    ("rejected_open_circuit", "Rejected Open Circuit"),
                    ("unknown", "Unknown"),
                ],
                default="pending",
                max_length=30,
            ),
        ),
        migrations.RemoveConstraint(model_name="payment", name="payments_one_success_per_order"),
        migrations.AddConstraint(
            model_name="payment",
            constraint=models.UniqueConstraint(
                fields=("order",), name="payments_one_payment_per_order"
            ),
        ),
        migrations.AddConstraint(
            model_name="payment",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    status__in=[
                        "pending",
                        "succeeded",
                        "declined",
                        "failed",
                        "rejected_open_circuit",
                        "unknown",
                    ]
                ),
                name="payments_payment_status_valid",
            ),
        ),
    ]
