"""Drive simulated shop traffic through the real WSGI application."""

import random
from collections import Counter

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token

from catalog.models import Product
from retail.wsgi_client import wsgi_call

DEMO_STAFF_USERNAME = "demo-staff"


class Command(BaseCommand):
    help = "Send browsing, orders, declines, refunds and bad requests through the WSGI stack."

    def add_arguments(self, parser):
        parser.add_argument("--requests", type=int, default=300, metavar="N")
        parser.add_argument("--seed", type=int, default=42)

    def handle(self, *args, requests: int, seed: int, **options):
        rng = random.Random(seed)
        staff_token = self._staff_token()
        product_ids = list(
            Product.objects.exclude(sku="FLASH-001")
            .filter(stock__gt=10)
            .values_list("id", flat=True)
        )
        if not product_ids:
            self.stderr.write("No products with stock: run `manage.py seed_demo` first.")
            return
        paid_orders: list[int] = []
        outcomes: Counter[str] = Counter()
        for _ in range(requests):
            roll = rng.random()
            if roll < 0.45:
                status, _, _ = wsgi_call(
                    "GET",
                    rng.choice(["/api/products/", f"/api/products/{rng.choice(product_ids)}/"]),
                )
                outcomes[f"browse {status}"] += 1
            elif roll < 0.80:
                # About 1 in 100 cards is declined: realistic, and A2 (>= 95 % success) holds.
                token = "tok_decline" if rng.random() < 0.01 else "tok_ok"
                body = {
                    "items": [{"product_id": rng.choice(product_ids), "quantity": 1}],
                    "payment_token": token,
                }
                # Many shoppers, not one: each comes from its own loopback address.
                client_ip = f"127.0.{rng.randrange(256)}.{rng.randrange(1, 255)}"
                status, _, data = wsgi_call("POST", "/api/orders/", body, client_ip=client_ip)
                outcomes[f"order {status}"] += 1
                if status == 201:
                    paid_orders.append(data["id"])
                    wsgi_call(
                        "GET",
                        f"/api/orders/{data['id']}/",
                        headers={"X-Order-Token": data["access_token"]},
                    )
            elif roll < 0.87 and paid_orders:
                order_id = paid_orders.pop(rng.randrange(len(paid_orders)))
                status, _, _ = wsgi_call(
                    "POST",
                    f"/api/orders/{order_id}/refund/",
                    {},
                    {"Authorization": f"Token {staff_token}"},
                )
                outcomes[f"refund {status}"] += 1
            else:
                path, body = rng.choice(
                    [
                        ("/api/orders/", {"items": [], "payment_token": "tok_ok"}),
                        (
                            "/api/orders/",
                            {
                                "items": [{"product_id": 10**9, "quantity": 1}],
                                "payment_token": "tok_ok",
                            },
                        ),
                        ("/api/products/999999/", None),
                    ]
                )
                status, _, _ = wsgi_call("POST" if body is not None else "GET", path, body)
                outcomes[f"bad request {status}"] += 1
        for outcome, count in sorted(outcomes.items()):
            self.stdout.write(f"{outcome:<24} {count:>5}")
        self.stdout.write(self.style.SUCCESS(f"Sent {requests} simulated requests."))

    def _staff_token(self) -> str:
        user, created = get_user_model().objects.get_or_create(
            username=DEMO_STAFF_USERNAME, defaults={"is_staff": True}
        )
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        return Token.objects.get_or_create(user=user)[0].key
