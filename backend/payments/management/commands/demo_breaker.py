"""Show the payment breaker opening and closing against the fake gateway."""

import threading
import time
import uuid

from django.core.management.base import BaseCommand, CommandError
from django.test.utils import override_settings

from catalog.models import Product
from catalog.services import FLASH_SALE_SKU
from payments.breaker import payment_breaker
from payments.fake_gateway import fake_gateway_server
from retail.wsgi_client import wsgi_call


class Command(BaseCommand):
    help = (
        "Drive checkouts through the WSGI stack while a fake gateway goes down and up: "
        "the breaker opens, fails fast, and one trial closes it (a few seconds)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--fail-max", type=int, default=3, metavar="N")
        parser.add_argument("--reset-seconds", type=float, default=2.0, metavar="S")

    def handle(self, *args, fail_max: int, reset_seconds: float, **options):
        product = Product.objects.exclude(sku=FLASH_SALE_SKU).filter(stock__gt=20).first()
        if product is None:
            raise CommandError("No product with stock: run `manage.py seed_demo` first.")
        server = fake_gateway_server(host="127.0.0.1", port=0)
        gateway = server.RequestHandlerClass.state
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        settings = {
            "RETAIL_PAYMENT_GATEWAY_URL": f"http://127.0.0.1:{server.server_address[1]}",
            "RETAIL_BREAKER_FAIL_MAX": fail_max,
            "RETAIL_BREAKER_RESET_SECONDS": reset_seconds,
            "RETAIL_SHARED_STATE_PREFIX": f"demo-{uuid.uuid4().hex[:8]}",
        }
        try:
            with override_settings(**settings):
                self._run(product, gateway, fail_max=fail_max, reset_seconds=reset_seconds)
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

    def _run(self, product, gateway, *, fail_max: int, reset_seconds: float) -> None:
        breaker = payment_breaker()
        self.stdout.write(f"{'phase':<26} {'answer':<24} {'ms':>7}  breaker")
        self._checkouts("gateway up", 2, product, breaker)
        gateway.configure({"mode": "down"})
        self._checkouts("gateway down", fail_max, product, breaker)
        self._checkouts("breaker open: fail fast", 3, product, breaker)
        gateway.configure({"mode": "up"})
        deadline = time.monotonic() + reset_seconds + 5
        while breaker.open_remaining() > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.stdout.write(f"{'(gateway back; reset ' + str(reset_seconds) + ' s over)':<26}")
        self._checkouts("half-open trial", 1, product, breaker)
        self._checkouts("closed again", 2, product, breaker)
        ok = breaker.state == "closed"
        message = "The breaker opened, failed fast and closed again."
        self.stdout.write(self.style.SUCCESS(message) if ok else self.style.ERROR(message))

    def _checkouts(self, phase: str, count: int, product, breaker) -> None:
        body = {"items": [{"product_id": product.pk, "quantity": 1}], "payment_token": "tok_ok"}
        for _ in range(count):
            # A fresh address each time: the demo shows the breaker, not the throttle.
            client_ip = f"127.1.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"
            started = time.perf_counter()
            status, _, data = wsgi_call("POST", "/api/orders/", body, client_ip=client_ip)
            elapsed_ms = (time.perf_counter() - started) * 1000
            answer = f"{status} {data.get('error') or data.get('status')}"
            self.stdout.write(f"{phase:<26} {answer:<24} {elapsed_ms:>7.1f}  {breaker.state}")
