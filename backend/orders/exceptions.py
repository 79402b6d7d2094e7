"""Errors of the orders domain."""

from retail.exceptions import ApplicationError


class OrderNotRefundable(ApplicationError):
    """Only a paid order, not yet refunded, can be refunded."""

    status_code = 409
    code = "not_refundable"
    default_detail = "Only a paid order can be refunded."


class PaymentUnavailable(ApplicationError):
    """The payment gateway cannot take payments now; try again later."""

    status_code = 503
    code = "payment_unavailable"
    default_detail = "The payment service is unavailable; try again later."
