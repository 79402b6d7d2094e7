"""URLs of the orders API."""

from django.urls import path

from orders.apis import OrderDetailApi, OrderPlaceApi, OrderRefundApi

urlpatterns = [
    path("", OrderPlaceApi.as_view(), name="order-place"),
    path("<int:order_id>/", OrderDetailApi.as_view(), name="order-detail"),
    path("<int:order_id>/refund/", OrderRefundApi.as_view(), name="order-refund"),
]
