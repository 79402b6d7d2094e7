"""Settle every payment and refund whose outcome is unknown (cron: every minute)."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from orders.reconciliation import payments_reconcile
from retail.tracing import job_trace


class Command(BaseCommand):
    help = (
        "Replay, with its own idempotency key, every charge and refund whose outcome a timeout "
        "or a crash left open, and settle its order. Idempotent; safe while the backend runs "
        "and twice at once. Exit 1 when some outcome is still unknown."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than-seconds",
            type=int,
            default=30,
            metavar="S",
            help="Leave alone what is younger (a checkout may still be waiting on it). Default 30.",
        )

    def handle(self, *args, older_than_seconds: int, **options):
        if older_than_seconds < 0:
            raise CommandError("--older-than-seconds must be >= 0")
        with job_trace("reconcile") as request_id:
            report = payments_reconcile(older_than=timedelta(seconds=older_than_seconds))
        self.stdout.write(f"Run {request_id} (retailctl trace {request_id}).")
        charges = ", ".join(f"{n} {outcome}" for outcome, n in sorted(report.charges.items()))
        refunds = ", ".join(f"{n} {outcome}" for outcome, n in sorted(report.refunds.items()))
        self.stdout.write(f"Charges replayed: {charges or 'none'}.")
        self.stdout.write(f"Refunds replayed: {refunds or 'none'}.")
        if report.still_open_payments or report.still_open_refunds:
            # A non-zero exit makes cron (and whoever reads its mail) notice a gateway that
            # still does not answer.
            raise CommandError(
                f"Still unknown: payments {report.still_open_payments or '-'}, "
                f"refunds {report.still_open_refunds or '-'}; the next run replays them.",
                returncode=1,
            )
