"""Fixtures of the staff pages' tests."""

import pytest
from django.contrib.auth import get_user_model


@pytest.fixture
def staff_client(client):
    """A test client logged in as a staff user."""
    user = get_user_model().objects.create_user("boss", password="pw-unused-77", is_staff=True)
    client.force_login(user)
    return client
