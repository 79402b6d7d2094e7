"""Settle orders whose payment never resolved, giving back the stock of those that failed."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from orders.reconciliation import order_release_stale
from retail.tracing import job_trace


class Command(BaseCommand):
    help = (
        "Settle orders pending longer than N minutes: each one's charge is replayed first, so "
        "an order whose customer was charged is paid, not released; the others fail and give "
        "their stock back through the ledger. Safe to run concurrently."
    )

    def add_arguments(self, parser):
        parser.add_argument("--older-than-minutes", type=int, default=15, metavar="N")

    def handle(self, *args, older_than_minutes: int, **options):
        if older_than_minutes < 1:
            # A live checkout is pending for up to the gateway timeout: never race it.
            raise CommandError("--older-than-minutes must be >= 1")
        with job_trace("release-stale"):
            released = order_release_stale(older_than=timedelta(minutes=older_than_minutes))
        self.stdout.write(f"Released {len(released)} stale order(s).")
        for order_id in released:
            self.stdout.write(f"  order #{order_id}")
