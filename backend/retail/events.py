"""The business events (SPEC §3.5): every name in one place, with the fields each carries.

Domain services write them through `retail.logging.log_event`, one JSON line each, off the
request path like every log line, with `request_id` and `trace_id` beside the fields listed
here. No event carries a card token, a secret or raw client input. The fake gateway writes
`gateway.charge`, `gateway.refund` and `gateway.control` to gateway.log (status_code,
outcome, duration_ms, mode, amount and its ids).
"""

# Checkout, stock reserved: order_id, payment_id, amount, items.
ORDER_PLACED = "order.placed"
# Checkout refused for want of stock: product_id, sku.
ORDER_OUT_OF_STOCK = "order.out_of_stock"
# The database guard refused a stock write: product_id, sku, error, attempt, retried.
STOCK_CONFLICT = "stock.conflict"
# The gateway was asked: order_id, payment_id, amount, duration_ms (the gateway's latency),
# outcome succeeded | declined | failed | unknown, and the failure's reason.
PAYMENT_CHARGE = "payment.charge"
# The OPEN breaker turned a checkout away: duration_ms, retry_after.
PAYMENT_FAST_FAIL = "payment.fast_fail"
# Settle: order_id, payment_id, amount.
ORDER_PAID = "order.paid"
# Settle, declined or failed (the stock is back): order_id, payment_id, outcome.
ORDER_PAYMENT_FAILED = "order.payment_failed"
# Settle, the outcome unknown (the stock stays reserved): order_id, payment_id.
ORDER_PENDING = "order.pending"
# A refund completed: refund_id, order_id, amount, reason (requested | released).
REFUND_MADE = "refund.made"
# The gateway refused a refund, or did not answer: refund_id, order_id, amount, reason.
REFUND_FAILED = "refund.failed"
REFUND_UNKNOWN = "refund.unknown"
# reconcile_payments settled one: kind (charge | refund), outcome, order_id, and
# payment_id or refund_id.
PAYMENT_RECONCILED = "payment.reconciled"
# release_stale_orders failed an order and gave its stock back: order_id.
ORDER_STALE_RELEASED = "order.stale_released"
# A pending order whose payment succeeded (no settle leaves this state): order_id,
# payment_id. ERROR: a person must look.
ORDER_INCONSISTENT = "order.inconsistent"
# The payment breaker moved: breaker, from, to, pid.
BREAKER_STATE_CHANGE = "breaker.state_change"
# A checkout over the rate: scope, client, rate.
THROTTLE_REJECTED = "throttle.rejected"
