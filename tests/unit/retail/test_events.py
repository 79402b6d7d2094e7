"""SPEC §3.5's business events are named in retail.events, and each is written somewhere."""

from pathlib import Path

from retail import events

SPEC_EVENTS = {
    "order.placed", "order.paid", "order.payment_failed", "order.pending", "order.out_of_stock",
    "stock.conflict", "payment.charge", "payment.fast_fail", "payment.reconciled",
    "refund.made", "breaker.state_change", "throttle.rejected",
}  # fmt: skip
BACKEND = Path(events.__file__).resolve().parents[1]


def test_every_spec_event_has_a_name_and_a_writer():
    """Each name is a constant of retail.events, used by the code that writes it."""
    names = {
        constant: value
        for constant, value in vars(events).items()
        if constant.isupper() and isinstance(value, str)
    }
    assert SPEC_EVENTS <= set(names.values())
    sources = "".join(
        path.read_text() for path in BACKEND.rglob("*.py") if "migrations" not in path.parts
    )
    unused = [constant for constant in names if f"events.{constant}" not in sources]
    assert unused == []
