"""URLs of the staff metrics pages (SPEC §3.3), mounted under /metrics/."""

from django.urls import path

from retail import views

app_name = "metrics"

urlpatterns = [
    path("dashboard/", views.metrics_dashboard, name="dashboard"),
    path("live/", views.metrics_live, name="live"),
    path("stream/", views.metrics_stream, name="stream"),
    path("errors/", views.metrics_errors, name="errors"),
    path("requests/<str:request_id>/", views.metrics_request, name="request"),
    path("quality-scenarios/", views.quality_scenarios, name="quality_scenarios"),
    path("api/", views.metrics_api, name="api"),
    path("prometheus", views.metrics_prometheus, name="prometheus"),
]
