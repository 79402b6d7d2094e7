"""JSON API of the catalog."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.selectors import product_get, product_list
from retail.openapi import error_responses


class ProductOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    sku = serializers.CharField()
    name = serializers.CharField()
    price = serializers.DecimalField(max_digits=10, decimal_places=2)
    stock = serializers.IntegerField()


class ProductListApi(APIView):
    @extend_schema(summary="List the catalog", responses=ProductOutputSerializer(many=True))
    def get(self, request):
        return Response(ProductOutputSerializer(product_list(), many=True).data)


class ProductDetailApi(APIView):
    @extend_schema(
        summary="Read one product", responses={200: ProductOutputSerializer, **error_responses(404)}
    )
    def get(self, request, product_id: int):
        return Response(ProductOutputSerializer(product_get(product_id=product_id)).data)
