"""Drive known traffic through the real WSGI stack (run as a subprocess by the e2e tests).

`drive`: migrate, seed, then orders, declines, a refund, 404s and browsing, each with its
own X-Request-ID; prints what was done as JSON. `api`: print /metrics/api/ (days=7) as
answered to the bearer token; run it with RETAIL_OBSERVABILITY=off so it records nothing.
"""

import json
import sys

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402

from retail.metrics import flush_metrics  # noqa: E402
from retail.wsgi_client import wsgi_call  # noqa: E402


def drive() -> dict:
    call_command("migrate", "--noinput", verbosity=0)
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    staff = get_user_model().objects.create_user(
        "e2e-staff", password="unused-e2e-9", is_staff=True
    )
    token = Token.objects.create(user=staff).key
    calls = []

    def call(method, path, body=None, request_id=None, headers=None, ip="10.0.0.1"):
        headers = dict(headers or {})
        if request_id:
            headers["X-Request-ID"] = request_id
        status, response_headers, data = wsgi_call(method, path, body, headers, client_ip=ip)
        calls.append(
            {"path": path, "status": status, "request_id": response_headers["X-Request-ID"]}
        )
        return status, data

    _, products = call("GET", "/api/products/", request_id="e2e-browse-0")
    product_id = next(p["id"] for p in products if p["sku"] != "FLASH-001")
    paid = []
    for index, token_name in enumerate(["tok_ok"] * 4 + ["tok_decline"] * 2):
        status, data = call(
            "POST",
            "/api/orders/",
            {"items": [{"product_id": product_id, "quantity": 1}], "payment_token": token_name},
            request_id=f"e2e-order-{index}",
            ip=f"10.0.1.{index + 1}",
        )
        if status == 201:
            paid.append(data["id"])
    call(
        "POST",
        f"/api/orders/{paid[0]}/refund/",
        {},
        request_id="e2e-refund-0",
        headers={"Authorization": f"Token {token}"},
    )
    for index in range(2):
        call("GET", "/api/products/999999/", request_id=f"e2e-missing-{index}")
    # `/api/x%00/` as a server decodes it: PostgreSQL's jsonb refuses a NUL, and the rows
    # recorded around this request must all be written all the same.
    call("GET", "/api/x\x00/", request_id="e2e-nul-0")
    for index in range(1, 3):
        call("GET", "/api/products/", request_id=f"e2e-browse-{index}")
    flush_metrics()
    return {"calls": calls, "paid_orders": len(paid)}


def api() -> dict:
    import os

    status, _, data = wsgi_call(
        "GET",
        "/metrics/api/",
        headers={"Authorization": f"Bearer {os.environ['RETAIL_METRICS_TOKEN']}"},
    )  # no query string: days defaults to 7
    return {"status": status, "document": data}


if __name__ == "__main__":
    result = drive() if sys.argv[1] == "drive" else api()
    # Log lines go to stdout too: the marker tells the result apart.
    print("RESULT " + json.dumps(result), flush=True)
