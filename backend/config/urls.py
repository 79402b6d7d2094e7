"""URL map of the retail backend (SPEC §3.1, §3.3)."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from retail.apis import healthz, readyz

urlpatterns = [
    path("api/products/", include("catalog.urls")),
    path("api/orders/", include("orders.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics/", include("retail.urls")),
    path("admin/", admin.site.urls),
]

handler400 = "retail.exceptions.bad_request"
handler403 = "retail.exceptions.permission_denied"
handler404 = "retail.exceptions.page_not_found"
handler500 = "retail.exceptions.server_error"
