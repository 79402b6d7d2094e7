"""Random interleavings of checkouts, refunds, gateway faults, crashes and reconciliation.

hypothesis drives the real services in-process against a scripted gateway that keeps the
gateway's promises (idempotency keys; a refusal means nothing was done) and can lose any
answer, or the whole process, at any point. After every step the ledger balances and no
charge is refunded twice; once the gateway answers again and reconciliation has run, every
money invariant of SPEC §3.4 holds.
"""

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

import orders.reconciliation
import orders.refunds
import orders.services
import payments.services
from catalog.models import Product, StockMovement
from catalog.selectors import stock_audit
from catalog.services import product_create
from orders.exceptions import OrderNotRefundable, PaymentUnavailable
from orders.models import Order, OrderItem, Refund
from orders.reconciliation import order_release_stale, payments_reconcile
from orders.refunds import order_refund
from orders.services import OrderLine, order_place
from payments.exceptions import GatewayUnavailable, OutcomeUnknown
from payments.gateways import ChargeResult, RefundResult
from payments.models import Payment

pytestmark = pytest.mark.django_db

# What the next gateway call does. `lost_*`: the request arrived or not, the answer never
# came back; `killed_*`: the worker process died before or after the gateway acted.
FAULTS = ["answer", "refuse", "lost_before", "lost_after", "killed_before", "killed_after"]


class _Killed(BaseException):
    """The worker process died here (kill -9): nothing after this line runs."""


class ScriptedGateway:
    """A gateway that keeps SPEC §3.4's promises, with the next call's fault chosen by a test."""

    def __init__(self) -> None:
        self.charges: dict[str, ChargeResult] = {}
        self.refunds: dict[str, tuple[str, RefundResult]] = {}
        self.fault = "answer"

    def charge(self, *, amount, currency, token, idempotency_key) -> ChargeResult:
        def act() -> ChargeResult:
            if idempotency_key not in self.charges:
                status = "declined" if token == "tok_decline" else "succeeded"
                self.charges[idempotency_key] = ChargeResult(status, f"ch_{uuid.uuid4().hex}")
            return self.charges[idempotency_key]

        return self._call(act)

    def refund(self, *, charge_id, amount, idempotency_key) -> RefundResult:
        def act() -> RefundResult:
            assert self.charge_succeeded(charge_id), "refund of a charge that never succeeded"
            if idempotency_key not in self.refunds:
                self.refunds[idempotency_key] = (charge_id, RefundResult(f"re_{uuid.uuid4().hex}"))
            return self.refunds[idempotency_key][1]

        return self._call(act)

    def _call(self, act):
        fault, self.fault = self.fault, "answer"
        if fault == "refuse":
            raise GatewayUnavailable("HTTP 503")
        if fault == "lost_before":
            raise OutcomeUnknown("timed out before the gateway got the request")
        if fault == "killed_before":
            raise _Killed
        answer = act()
        if fault == "lost_after":
            raise OutcomeUnknown("timed out after the gateway acted")
        if fault == "killed_after":
            raise _Killed
        return answer

    def charge_succeeded(self, charge_id: str) -> bool:
        return any(
            c.charge_id == charge_id and c.status == "succeeded" for c in self.charges.values()
        )

    @property
    def succeeded_charges(self) -> int:
        return sum(1 for c in self.charges.values() if c.status == "succeeded")

    @property
    def refunded_twice(self) -> int:
        charge_ids = [charge_id for charge_id, _ in self.refunds.values()]
        return len(charge_ids) - len(set(charge_ids))


class MoneyMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        for model in (StockMovement, Refund, Payment, OrderItem, Order, Product):
            model.objects.all().delete()
        self.products = [
            product_create(sku=f"P-{n}", name=f"P{n}", price=Decimal("5.00"), stock=4)
            for n in range(2)
        ]
        self.opening = {product.pk: 4 for product in self.products}
        self.gateway = ScriptedGateway()

    @rule(
        product=st.integers(0, 1),
        quantity=st.integers(1, 2),
        token=st.sampled_from(["tok_ok", "tok_ok", "tok_decline"]),
        fault=st.sampled_from(FAULTS),
    )
    def checkout(self, product, quantity, token, fault):
        self.gateway.fault = fault
        line = OrderLine(product_id=self.products[product].pk, quantity=quantity)
        try:
            order_place(lines=[line], payment_token=token)
        except (_Killed, PaymentUnavailable, orders.services.OutOfStock):
            pass
        finally:
            # A checkout turned away before the gateway leaves no fault for the next step.
            self.gateway.fault = "answer"

    @rule(data=st.data(), fault=st.sampled_from(FAULTS))
    def refund(self, data, fault):
        refundable = list(
            Order.objects.filter(status=Order.Status.PAID).values_list("pk", flat=True)
        )
        if not refundable:
            return
        self.gateway.fault = fault
        try:
            order_refund(order_id=data.draw(st.sampled_from(refundable)), actor=None)
        except (_Killed, PaymentUnavailable, OrderNotRefundable):
            pass
        finally:
            self.gateway.fault = "answer"

    @rule(fault=st.sampled_from(["answer", "refuse", "lost_before", "killed_after"]))
    def reconcile(self, fault):
        self.gateway.fault = fault
        try:
            payments_reconcile(older_than=timedelta(0))
        except _Killed:
            pass
        finally:
            self.gateway.fault = "answer"

    @rule()
    def release_stale(self):
        order_release_stale(older_than=timedelta(0))

    @invariant()
    def ledger_balances_and_nothing_is_refunded_twice(self):
        assert all(row.consistent for row in stock_audit())
        assert self.gateway.refunded_twice == 0

    def teardown(self):
        self.gateway.fault = "answer"
        payments_reconcile(older_than=timedelta(0))
        paid = Order.objects.filter(status=Order.Status.PAID)
        assert self.gateway.succeeded_charges - len(self.gateway.refunds) == paid.count()
        assert not Order.objects.filter(status=Order.Status.PENDING).exists()
        assert not Refund.objects.filter(status=Refund.Status.PENDING).exists()
        for product in Product.objects.all():
            sold = sum(
                item.quantity for item in OrderItem.objects.filter(product=product, order__in=paid)
            )
            assert product.stock == self.opening[product.pk] - sold


def test_money_invariants_hold_under_any_interleaving(monkeypatch):
    """Checkouts, refunds, faults, crashes and reconciliation in any order keep the money."""
    machine_gateway: dict[str, ScriptedGateway] = {}

    class Machine(MoneyMachine):
        def __init__(self) -> None:
            super().__init__()
            machine_gateway["current"] = self.gateway

    def current_gateway(*, guarded: bool = True):
        return machine_gateway["current"]

    for module in (payments.services, orders.services, orders.refunds, orders.reconciliation):
        monkeypatch.setattr(module, "payment_gateway", current_gateway)
    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=100,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
