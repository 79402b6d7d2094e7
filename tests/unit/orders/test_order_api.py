"""The orders API of SPEC §3.1: checkout, order reads, refunds and their error answers."""

import json

import pytest

from orders.models import Order, Refund
from payments.models import Payment

pytestmark = pytest.mark.django_db


def post_order(client, body, **headers):
    payload = body if isinstance(body, bytes) else json.dumps(body)
    return client.post("/api/orders/", payload, content_type="application/json", **headers)


def order_body(*lines, token="tok_ok"):
    return {
        "items": [{"product_id": product.pk, "quantity": quantity} for product, quantity in lines],
        "payment_token": token,
    }


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == code
    assert "detail" in body
    return body


class TestOrderPlace:
    def test_paid_order_answers_201_with_access_token_and_takes_stock(
        self, client, products, stock_of
    ):
        """A successful checkout answers 201, status paid, and reserves the stock."""
        tee, mug = products["TEE-1"], products["MUG-1"]
        response = post_order(client, order_body((tee, 2), (mug, 1)))
        assert response.status_code == 201
        body = response.json()
        assert body["status"] == "paid"
        assert body["total"] == "52.30"
        assert body["payment"]["status"] == "succeeded"
        assert len(body["access_token"]) >= 32
        assert {(i["product_id"], i["quantity"]) for i in body["items"]} == {
            (tee.pk, 2),
            (mug.pk, 1),
        }
        assert (stock_of(tee), stock_of(mug)) == (8, 4)
        order = Order.objects.get(pk=body["id"])
        assert order.paid_at is not None
        assert body["access_token"] not in order.access_token_hash

    def test_declined_payment_answers_402_and_gives_stock_back(self, client, products, stock_of):
        """A declined payment answers 402 with the failed order, and the stock is back."""
        tee = products["TEE-1"]
        response = post_order(client, order_body((tee, 3), token="tok_decline"))
        body = assert_error(response, 402, "payment_declined")
        assert body["status"] == "payment_failed"
        assert body["payment"]["status"] == "declined"
        assert "access_token" not in body
        assert stock_of(tee) == 10

    def test_not_enough_stock_answers_409_and_changes_nothing(self, client, products, stock_of):
        """An order for more than is in stock answers 409 out_of_stock and reserves nothing."""
        tee, last = products["TEE-1"], products["LAST-1"]
        response = post_order(client, order_body((tee, 2), (last, 2)))
        body = assert_error(response, 409, "out_of_stock")
        assert body["detail"]["sku"] == "LAST-1"
        assert (stock_of(tee), stock_of(last)) == (10, 1)
        assert not Order.objects.exists()

    def test_last_unit_sells_once(self, client, products, stock_of):
        """The last unit goes to the first buyer; the second gets 409."""
        last = products["LAST-1"]
        assert post_order(client, order_body((last, 1))).status_code == 201
        assert_error(post_order(client, order_body((last, 1))), 409, "out_of_stock")
        assert stock_of(last) == 0

    @pytest.mark.parametrize(
        "body",
        [
            {"items": [], "payment_token": "tok_ok"},
            {"payment_token": "tok_ok"},
            {"items": [{"product_id": 1, "quantity": 1}]},
            {"items": "nope", "payment_token": "tok_ok"},
            {"items": [{"product_id": "1", "quantity": 1}], "payment_token": "tok_ok"},
            {"items": [{"product_id": 1.0, "quantity": 1}], "payment_token": "tok_ok"},
            {"items": [{"product_id": True, "quantity": 1}], "payment_token": "tok_ok"},
            {"items": [{"product_id": 1, "quantity": 0}], "payment_token": "tok_ok"},
            {"items": [{"product_id": 1, "quantity": -2}], "payment_token": "tok_ok"},
            {"items": [{"product_id": 1, "quantity": 10**9}], "payment_token": "tok_ok"},
            {"items": [{"product_id": 1, "quantity": 1}], "payment_token": 7},
            {"items": [{"product_id": 1, "quantity": 1}], "payment_token": None},
            {"items": [{"product_id": 1, "quantity": 1, "price": "0.01"}], "payment_token": "x"},
            {"items": [{"product_id": 1, "quantity": 1}], "payment_token": "x", "total": 0},
            [{"product_id": 1, "quantity": 1}],
            "tok_ok",
        ],
    )
    def test_malformed_body_answers_400_and_changes_nothing(self, client, products, stock_of, body):
        """Wrong types, missing keys, bad quantities and unknown keys answer 400."""
        assert_error(post_order(client, body), 400, "invalid_request")
        assert stock_of(products["TEE-1"]) == 10
        assert not Order.objects.exists()

    def test_lines_of_one_product_are_added_up(self, client, products, stock_of):
        """Two lines of one product make one line of their sum, shown in the answer.

        The schema cannot say "each product once" (JSON Schema has no uniqueness by key),
        and a schema-valid request must not be refused for it.
        """
        tee = products["TEE-1"]
        response = post_order(client, order_body((tee, 1), (tee, 2)))
        assert response.status_code == 201
        assert [(i["product_id"], i["quantity"]) for i in response.json()["items"]] == [(tee.pk, 3)]
        assert response.json()["total"] == "59.70"
        assert stock_of(tee) == 7

    def test_unknown_product_answers_404(self, client, products):
        """An order for a product that does not exist answers 404 unknown_product."""
        body = {"items": [{"product_id": 999_999, "quantity": 1}], "payment_token": "tok_ok"}
        assert_error(post_order(client, body), 404, "unknown_product")

    @pytest.mark.parametrize("payload", [b"{bad json", b"[1,", b"\x00", b"\xff\xfe"])
    def test_malformed_json_answers_400(self, client, payload):
        """A body that is not JSON answers 400 malformed_json, never a traceback."""
        assert_error(post_order(client, payload), 400, "malformed_json")

    def test_non_json_content_type_answers_415(self, client):
        """A form-encoded body is refused with a JSON 415."""
        response = client.post("/api/orders/", {"items": "1"})
        assert_error(response, 415, "unsupported_media_type")

    def test_get_on_collection_answers_json_405(self, client):
        """GET /api/orders/ is not a listing: 405 with a JSON body."""
        assert_error(client.get("/api/orders/"), 405, "method_not_allowed")


class TestOrderDetail:
    @pytest.fixture
    def placed(self, client, products):
        return post_order(client, order_body((products["TEE-1"], 1))).json()

    def test_access_token_opens_the_order(self, client, placed):
        """The holder of the order's access token may read it."""
        response = client.get(
            f"/api/orders/{placed['id']}/", HTTP_X_ORDER_TOKEN=placed["access_token"]
        )
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "paid"
        assert body["payment"]["status"] == "succeeded"
        assert "access_token" not in body

    @pytest.mark.parametrize("token", [None, "", "wrong", "x" * 500])
    def test_anyone_else_gets_404(self, client, placed, token):
        """Without the right token the order answers 404, like an order that does not exist."""
        headers = {} if token is None else {"HTTP_X_ORDER_TOKEN": token}
        response = client.get(f"/api/orders/{placed['id']}/", **headers)
        assert_error(response, 404, "not_found")

    def test_missing_order_answers_the_same_404(self, client, placed):
        """A missing order and a wrong token look alike."""
        response = client.get("/api/orders/987654/", HTTP_X_ORDER_TOKEN=placed["access_token"])
        assert_error(response, 404, "not_found")

    def test_one_orders_token_does_not_open_another(self, client, products, placed):
        """An access token opens its own order only."""
        other = post_order(client, order_body((products["MUG-1"], 1))).json()
        response = client.get(
            f"/api/orders/{other['id']}/", HTTP_X_ORDER_TOKEN=placed["access_token"]
        )
        assert response.status_code == 404

    def test_staff_reads_any_order(self, client, placed, staff_token):
        """Staff may read every order with their DRF token."""
        response = client.get(
            f"/api/orders/{placed['id']}/", HTTP_AUTHORIZATION=f"Token {staff_token}"
        )
        assert response.status_code == 200

    def test_non_staff_user_does_not(self, client, placed, customer_token):
        """A signed-in customer who is not staff gets 404 without the token."""
        response = client.get(
            f"/api/orders/{placed['id']}/", HTTP_AUTHORIZATION=f"Token {customer_token}"
        )
        assert response.status_code == 404


class TestOrderRefund:
    @pytest.fixture
    def placed(self, client, products):
        return post_order(client, order_body((products["TEE-1"], 4))).json()

    def refund(self, client, order_id, **headers):
        return client.post(
            f"/api/orders/{order_id}/refund/", "{}", content_type="application/json", **headers
        )

    def test_staff_refund_returns_stock(self, client, products, placed, staff_token, stock_of):
        """A staff refund answers 200 refunded and returns the stock."""
        assert stock_of(products["TEE-1"]) == 6
        response = self.refund(client, placed["id"], HTTP_AUTHORIZATION=f"Token {staff_token}")
        assert response.status_code == 200
        assert response.json()["status"] == "refunded"
        assert stock_of(products["TEE-1"]) == 10
        refund = Refund.objects.get(order_id=placed["id"])
        assert refund.status == Refund.Status.SUCCEEDED
        assert refund.completed_at is not None

    def test_second_refund_answers_409(self, client, products, placed, staff_token, stock_of):
        """Refunding twice answers 409 and returns the stock only once."""
        auth = {"HTTP_AUTHORIZATION": f"Token {staff_token}"}
        assert self.refund(client, placed["id"], **auth).status_code == 200
        assert_error(self.refund(client, placed["id"], **auth), 409, "not_refundable")
        assert stock_of(products["TEE-1"]) == 10

    def test_failed_order_is_not_refundable(self, client, products, staff_token):
        """An order whose payment failed cannot be refunded."""
        failed = post_order(client, order_body((products["MUG-1"], 1), token="tok_decline")).json()
        response = self.refund(client, failed["id"], HTTP_AUTHORIZATION=f"Token {staff_token}")
        assert_error(response, 409, "not_refundable")

    def test_anonymous_gets_401(self, client, placed):
        """Without credentials a refund answers 401 and changes nothing."""
        assert_error(self.refund(client, placed["id"]), 401, "not_authenticated")
        assert Order.objects.get(pk=placed["id"]).status == "paid"

    def test_bad_token_gets_401(self, client, placed):
        """An unknown DRF token answers 401."""
        response = self.refund(client, placed["id"], HTTP_AUTHORIZATION="Token nope")
        assert_error(response, 401, "authentication_failed")

    def test_non_staff_gets_403(self, client, placed, customer_token):
        """A signed-in user who is not staff answers 403."""
        response = self.refund(client, placed["id"], HTTP_AUTHORIZATION=f"Token {customer_token}")
        assert_error(response, 403, "permission_denied")
        assert not Refund.objects.exists()

    def test_staff_session_may_refund(self, client, placed, staff_token):
        """A staff session (the admin login) may refund too, with its CSRF token."""
        from django.contrib.auth import get_user_model

        client.force_login(get_user_model().objects.get(username="staff"))
        assert self.refund(client, placed["id"]).status_code == 200

    def test_missing_order_answers_404(self, client, staff_token):
        """Refunding an order that does not exist answers 404."""
        response = self.refund(client, 424242, HTTP_AUTHORIZATION=f"Token {staff_token}")
        assert_error(response, 404, "not_found")


def test_every_paid_order_has_exactly_one_succeeded_payment(client, products):
    """Paid orders carry one succeeded payment; failed ones none."""
    for token in ["tok_ok", "tok_decline", "tok_ok"]:
        post_order(client, order_body((products["TEE-1"], 1), token=token))
    for order in Order.objects.all():
        succeeded = order.payments.filter(status=Payment.Status.SUCCEEDED).count()
        assert succeeded == (1 if order.status == "paid" else 0)
