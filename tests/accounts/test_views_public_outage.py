"""A database outage with a cold cache: the token URLs say so (503 + Retry-After,
or JavaScript that sets the global to null) instead of answering 500."""

import pytest
from django.db import OperationalError

from accounts.selectors import serving


@pytest.fixture
def database_down(monkeypatch):
    def down(slug):
        raise OperationalError("could not connect to server: Connection refused")

    monkeypatch.setattr(serving, "served_token", down)


@pytest.mark.parametrize("path", ["/token/acme.json", "/token/acme", "/token.json"])
def test_json_and_plain_answer_503_with_retry_after(client, database_down, path):
    response = client.get(path)
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response["Cache-Control"] == "no-store"
    assert response.json()["error"] == "unavailable"


def test_js_sets_the_global_to_null_and_says_why(client, database_down):
    response = client.get("/token/acme.js")
    assert response.status_code == 200
    body = response.content.decode()
    assert "null" in body
    assert "cannot reach its database" in body
    assert response["Cache-Control"] == "no-store"
