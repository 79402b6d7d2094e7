"""JSON API of checkout, order reads and refunds."""

import time

from django.conf import settings
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from orders.exceptions import PaymentUnavailable
from orders.models import Order, Refund
from orders.selectors import order_info, order_info_for_reader
from orders.services import OrderLine, order_place, order_refund
from orders.throttling import CheckoutRateThrottle
from payments.models import Payment
from retail.exceptions import error_body
from retail.serializers import StrictCharField, StrictIntegerField, StrictSerializer

_MAX_DB_ID = 2**63 - 1


class OrderLineInputSerializer(StrictSerializer):
    product_id = StrictIntegerField(min_value=1, max_value=_MAX_DB_ID)
    quantity = StrictIntegerField(min_value=1, max_value=settings.RETAIL_MAX_QUANTITY_PER_LINE)


class OrderPlaceInputSerializer(StrictSerializer):
    items = OrderLineInputSerializer(
        many=True, allow_empty=False, max_length=settings.RETAIL_MAX_LINES_PER_ORDER
    )
    payment_token = StrictCharField(max_length=200, trim_whitespace=False)

    def validate_items(self, items):
        product_ids = [item["product_id"] for item in items]
        if len(set(product_ids)) != len(product_ids):
            raise serializers.ValidationError("Each product may appear once; sum the quantities.")
        return items


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

    @extend_schema(request=OrderPlaceInputSerializer, responses={201: OrderOutputSerializer})
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
        parameters=[OpenApiParameter("X-Order-Token", str, OpenApiParameter.HEADER)],
        responses=OrderOutputSerializer,
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

    @extend_schema(request=None, responses=OrderOutputSerializer)
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
