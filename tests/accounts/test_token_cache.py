"""accounts/token_cache.py: the receivers are the one invalidation mechanism. Each
committed transaction that writes accounts or tokens drops their served copies
once (a disconnect deletes a token and saves the account: one invalidation), a
renamed account stops being served under its old name at once, and a rolled-back
write drops nothing."""

import pytest
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from accounts import token_cache
from accounts.models import AccessToken, InstagramAccount
from tests.factories import make_account

TOKEN = "IGAAtestLongLivedToken0000000001"
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]


@pytest.fixture
def drops(monkeypatch):
    """The invalidations the receivers run, one list item each (the keys dropped)."""
    calls: list[set[str]] = []
    real = token_cache._drop

    def recording(accounts):
        calls.append({s for slugs in accounts.values() for s in slugs})
        real(accounts)

    monkeypatch.setattr(token_cache, "_drop", recording)
    return calls


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """``make_account`` as a committed transaction (its after-commit work done), so
    that what a test then does starts a transaction of its own, as in production."""

    def make(**kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return make_account(**kwargs)

    return make


@pytest.fixture
def acme(committed):
    return committed(username="acme_bakery", slug="acme", token=TOKEN)


@pytest.fixture
def owner(client, django_user_model):
    client.force_login(django_user_model.objects.create_user(username="owner", is_staff=True))
    return client


def _warm(client, *urls):
    for url in urls:
        client.get(url)


def test_a_rename_invalidates_once_and_the_old_name_stops_at_once(
    owner, acme, drops, django_capture_on_commit_callbacks
):
    _warm(owner, "/token/acme.json", "/token.json", "/token/nobody.json")
    drops.clear()  # what the fixtures committed
    # Even without the per-account index of stored keys, the old name is dropped.
    cache.delete(token_cache._index_key(acme.pk))
    with django_capture_on_commit_callbacks(execute=True):
        response = owner.post("/accounts/acme/rename/", {"slug": "bakery"})
    assert response.status_code == 302
    assert len(drops) == 1
    assert drops[0] == {"acme", "bakery"}
    assert owner.get("/token/acme.json").status_code == 404
    assert owner.get("/token/bakery.json").json()["token"] == TOKEN
    assert owner.get("/token.json").json()["account"] == "bakery"


def test_a_disconnect_invalidates_once(owner, acme, drops, django_capture_on_commit_callbacks):
    _warm(owner, "/token/acme.json", "/token.js", "/token")
    drops.clear()  # what the fixtures committed
    with django_capture_on_commit_callbacks(execute=True):
        assert owner.post("/accounts/acme/disconnect/").status_code == 302
    assert len(drops) == 1
    assert owner.get("/token/acme.json").json()["error"] == "disconnected"
    assert owner.get("/token.js")["X-Tokenagent-Error"] == "disconnected"
    assert owner.get("/token").status_code == 503


def test_set_default_invalidates_once(
    owner, acme, committed, drops, django_capture_on_commit_callbacks
):
    committed(username="cafe_shop", slug="cafe", token="IGAAcafeToken000000000000")
    _warm(owner, "/token.json", "/token/acme.json", "/token/cafe.json")
    drops.clear()  # what the fixtures committed
    with django_capture_on_commit_callbacks(execute=True):
        assert owner.post("/accounts/cafe/default/").status_code == 302
    assert len(drops) == 1
    assert owner.get("/token.json").json()["account"] == "cafe"
    assert owner.get("/token").content == b"IGAAcafeToken000000000000"


def test_a_token_saved_through_the_orm_invalidates_once(
    client, acme, drops, django_capture_on_commit_callbacks
):
    _warm(client, "/token/acme.json", "/token.json")
    drops.clear()  # what the fixtures committed
    token = AccessToken.objects.get(account=acme)  # its account not loaded with it
    with django_capture_on_commit_callbacks(execute=True):
        token.value = "IGAAsavedToken000000000000"
        token.version += 1
        token.save()
    assert drops == [{"acme"}]
    assert client.get("/token/acme.json").json()["token"] == "IGAAsavedToken000000000000"
    assert client.get("/token.json").json()["token"] == "IGAAsavedToken000000000000"


def test_many_writes_in_one_transaction_are_one_invalidation(
    client, acme, committed, drops, django_capture_on_commit_callbacks
):
    other = committed(username="cafe_shop", slug="cafe")
    drops.clear()  # what the fixtures committed
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        AccessToken.objects.filter(account=acme).delete()
        acme.status = InstagramAccount.Status.DISCONNECTED
        acme.save()
        other.allowed_domains = "shop.example"
        other.save(update_fields=["allowed_domains"])
    assert drops == [{"acme", "cafe"}]


def test_a_rolled_back_write_drops_nothing(client, acme, drops, django_capture_on_commit_callbacks):
    _warm(client, "/token/acme.json")
    drops.clear()  # what the fixtures committed
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            acme.status = InstagramAccount.Status.NEEDS_RECONNECT
            acme.save()
            raise RuntimeError("rolled back")
    assert drops == []
    assert client.get("/token/acme.json").status_code == 200
    # The next write's commit is not lost with the rolled-back one.
    with django_capture_on_commit_callbacks(execute=True):
        acme.refresh_from_db()
        acme.status = InstagramAccount.Status.NEEDS_RECONNECT
        acme.save()
    assert len(drops) == 1
    assert client.get("/token/acme.json").json()["error"] == "needs_reconnect"


def test_a_new_account_is_served_at_once_after_its_name_was_unknown(client, committed, drops):
    assert client.get("/token/late.json").status_code == 404
    assert drops == []
    committed(slug="late", token=TOKEN)
    assert len(drops) == 1
    assert client.get("/token/late.json").json()["token"] == TOKEN


@pytest.mark.django_db(transaction=True)
def test_a_real_commit_invalidates_once(client, drops):
    """With real transactions (no test wrapper): the flush runs at commit."""
    account = make_account(slug="real", token=TOKEN)
    _warm(client, "/token/real.json")
    drops.clear()  # what the account's creation committed
    with transaction.atomic():
        AccessToken.objects.filter(account=account).delete()
        account.status = InstagramAccount.Status.DISCONNECTED
        account.save()
        assert drops == []  # not before the commit
    assert drops == [{"real"}]
    assert client.get("/token/real.json").json()["error"] == "disconnected"
    # Outside a transaction each write is its own commit.
    account.slug = "renamed"
    account.save()
    assert drops[-1] == {"real", "renamed"}
    assert client.get("/token/real.json").status_code == 404


def test_an_update_query_is_covered_by_an_explicit_invalidate(client, acme):
    _warm(client, "/token/acme.json")
    InstagramAccount.objects.filter(pk=acme.pk).update(
        status=InstagramAccount.Status.NEEDS_RECONNECT, updated_at=timezone.now()
    )
    assert client.get("/token/acme.json").status_code == 200  # bypassed the receivers
    token_cache.invalidate(acme)
    assert client.get("/token/acme.json").json()["error"] == "needs_reconnect"
