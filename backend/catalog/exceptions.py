"""Errors of the catalog domain."""

from retail.exceptions import ApplicationError


class ProductNotFound(ApplicationError):
    """An order names a product that does not exist: a well-formed request for a missing thing."""

    status_code = 404
    code = "unknown_product"
    default_detail = "No such product."


class OutOfStock(ApplicationError):
    """Not enough stock for an order line; nothing was reserved."""

    status_code = 409
    code = "out_of_stock"
    default_detail = "Not enough stock."
