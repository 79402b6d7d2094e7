"""URLs of the catalog API."""

from django.urls import path

from catalog.apis import ProductDetailApi, ProductListApi

urlpatterns = [
    path("", ProductListApi.as_view(), name="product-list"),
    path("<int:product_id>/", ProductDetailApi.as_view(), name="product-detail"),
]
