"""JSON API of checkout, order reads and refunds."""

import time

from django.conf import settings
from django.core.validators import RegexValidator
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from orders.exceptions import PaymentUnavailable
from orders.models import Order, Refund
from orders.refunds import order_refund
from orders.selectors import order_info, order_info_for_reader
from orders.services import OrderLine, order_place
from orders.throttling import CheckoutRateThrottle
from payments.models import Payment
from retail.exceptions import error_body
from retail.openapi import error_responses
from retail.serializers import StrictCharField, StrictIntegerField, StrictSerializer

_MAX_DB_ID = 2**63 - 1
PAYMENT_TOKEN_PATTERN = r"^[!-~]+$"


class OrderLineInputSerializer(StrictSerializer):
    """One line of an order: a product and how many."""

    product_id = StrictIntegerField(min_value=1, max_value=_MAX_DB_ID)
    quantity = StrictIntegerField(min_value=1, max_value=settings.RETAIL_MAX_QUANTITY_PER_LINE)


class OrderPlaceInputSerializer(StrictSerializer):
    """A guest order: its lines (lines of one product are added up) and the token to charge."""

    items = OrderLineInputSerializer(
        many=True, allow_empty=False, max_length=settings.RETAIL_MAX_LINES_PER_ORDER
    )
    # Visible ASCII only: tokens of real gateways are, and no control character or
    # terminal escape of a hostile client can then reach a log line through it.
    payment_token = StrictCharField(
        min_length=1,
        max_length=200,
        trim_whitespace=False,
        validators=[RegexValidator(PAYMENT_TOKEN_PATTERN, "Use visible ASCII characters only.")],
    )


class OrderItemOutputSerializer(serializers.Serializer):
    product_id = serializers.IntegerField()
    sku = serializers.CharField()
    name = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_price = serializers.DecimalField(max_digits=10, decimal_places=2)


class PaymentOutputSerializer(serializers.Serializer):
    status = serializers.CharField()
    amount = serializers.DecimalField(max_digits=12, decimal_places=2)
    latency_ms = serializers.FloatField(allow_null=True)


class RefundOutputSerializer(serializers.Serializer):
    status = serializers.CharField()
    amount = serializers.DecimalField(max_digits=12, decimal_places=2)


class OrderOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    total = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()
    items = OrderItemOutputSerializer(many=True)
    payment = PaymentOutputSerializer(allow_null=True)
    refund = RefundOutputSerializer(allow_null=True)
    created_at = serializers.DateTimeField()
    paid_at = serializers.DateTimeField(allow_null=True)


class OrderPlacedOutputSerializer(OrderOutputSerializer):
    access_token = serializers.CharField(
        help_text="Shown once: send it as X-Order-Token to read the order back."
    )


class OrderDeclinedOutputSerializer(OrderOutputSerializer):
    error = serializers.CharField()
    detail = serializers.CharField()
    request_id = serializers.CharField(allow_null=True)


# When to ask again about an order whose outcome is unknown: reconcile_payments runs every
# minute from cron.
UNKNOWN_RETRY_AFTER_SECONDS = 60


# Order data carries access tokens and personal data: never kept by a cache.
@method_decorator(never_cache, name="dispatch")
class OrderPlaceApi(APIView):
    throttle_classes = [CheckoutRateThrottle]

    def initial(self, request, *args, **kwargs):
        # Stamped before authentication and throttling, so a fast-fail's recorded latency
        # is all the server-side work of the view.
        request.started = time.perf_counter()
        super().initial(request, *args, **kwargs)

    @extend_schema(
        summary="Place a guest order and pay for it",
        request=OrderPlaceInputSerializer,
        examples=[
            OpenApiExample(
                "Two of product 1, paid",
                value={"items": [{"product_id": 1, "quantity": 2}], "payment_token": "tok_ok"},
                request_only=True,
            ),
            OpenApiExample(
                "A declined card",
                value={"items": [{"product_id": 2, "quantity": 1}], "payment_token": "tok_decline"},
                request_only=True,
            ),
        ],
        responses={
            201: OpenApiResponse(OrderPlacedOutputSerializer, "Paid."),
            202: OpenApiResponse(
                OrderPlacedOutputSerializer,
                "The payment's outcome is unknown (the gateway did not answer in time): the "
                "order is pending with its stock reserved; read it back later.",
            ),
            402: OpenApiResponse(OrderDeclinedOutputSerializer, "Declined; the stock is back."),
            **error_responses(400, 404, 409, 413, 415, 429, 503),
        },
    )
    def post(self, request):
        serializer = OrderPlaceInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        placed = order_place(
            lines=[OrderLine(**item) for item in serializer.validated_data["items"]],
            payment_token=serializer.validated_data["payment_token"],
            started=request.started,
        )
        data = OrderOutputSerializer(placed.info).data
        # The order's status, not the charge's: a charge can succeed for an order released
        # meanwhile; orders.services refunds that charge.
        if placed.order.status == Order.Status.PAID:
            return Response({**data, "access_token": placed.access_token}, status=201)
        if placed.order.status == Order.Status.PENDING:
            return Response(
                {**data, "access_token": placed.access_token},
                status=status.HTTP_202_ACCEPTED,
                headers={"Retry-After": str(UNKNOWN_RETRY_AFTER_SECONDS)},
            )
        if placed.payment.status == Payment.Status.DECLINED:
            body = {**data, **error_body("payment_declined", "The payment was declined.")}
            return Response(body, status=status.HTTP_402_PAYMENT_REQUIRED)
        raise PaymentUnavailable(
            {"message": PaymentUnavailable.default_detail, "order_id": placed.order.pk},
            headers={"Retry-After": str(int(settings.RETAIL_BREAKER_RESET_SECONDS))},
        )


@method_decorator(never_cache, name="dispatch")
class OrderDetailApi(APIView):
    @extend_schema(
        summary="Read an order (its access token, or staff)",
        parameters=[
            OpenApiParameter(
                "X-Order-Token",
                str,
                OpenApiParameter.HEADER,
                description="The access_token checkout returned; staff need none.",
            )
        ],
        responses={200: OrderOutputSerializer, **error_responses(404)},
    )
    def get(self, request, order_id: int):
        user = request.user
        order = order_info_for_reader(
            order_id=order_id,
            access_token=request.headers.get("X-Order-Token"),
            is_staff=bool(user and user.is_active and user.is_staff),
        )
        return Response(OrderOutputSerializer(order).data)


@method_decorator(never_cache, name="dispatch")
class OrderRefundApi(APIView):
    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [IsAdminUser]

    @extend_schema(
        summary="Refund a paid order in full (staff)",
        request=None,
        responses={
            200: OpenApiResponse(OrderOutputSerializer, "Refunded; the stock is back."),
            202: OpenApiResponse(
                OrderOutputSerializer,
                "The gateway did not answer in time: the refund is pending; retrying replays "
                "it (never a second refund).",
            ),
            **error_responses(400, 401, 403, 404, 409, 413, 415, 503),
        },
    )
    def post(self, request, order_id: int):
        refund = order_refund(order_id=order_id, actor=request.user)
        data = OrderOutputSerializer(order_info(order_id=order_id)).data
        if refund.status == Refund.Status.PENDING:
            # The gateway did not answer: a retry replays this refund (never a second one).
            return Response(
                data,
                status=status.HTTP_202_ACCEPTED,
                headers={"Retry-After": str(UNKNOWN_RETRY_AFTER_SECONDS)},
            )
        return Response(data)


def add_order_links(result, generator, request, public):
    """Postprocessing hook: link checkout's answers to reading and refunding the order.

    OpenAPI links tell a client (and schemathesis's stateful phase) that the `id` and
    `access_token` of a placed order are what the order's own operations take.
    """
    read = {
        "operationId": "orders_retrieve",
        "parameters": {
            "order_id": "$response.body#/id",
            "header.X-Order-Token": "$response.body#/access_token",
        },
    }
    refund = {
        "operationId": "orders_refund_create",
        "parameters": {"order_id": "$response.body#/id"},
    }
    answers = result["paths"].get("/api/orders/", {}).get("post", {}).get("responses", {})
    for code in ("201", "202"):
        if code in answers:
            answers[code]["links"] = {"ReadOrder": read, "RefundOrder": refund}
    return result
