"""accounts/services/imports.py: imports of existing tokens (validated, probed, all
or nothing), instatokend's config.json and STARTING_TOKEN."""

import json
from datetime import timedelta

import pytest
import responses
from django.utils import timezone

from accounts.models import AccessToken, InstagramAccount
from accounts.services import accounts as account_services
from accounts.services import imports
from tests import instagram_fakes as fakes
from tests.accounts.connect_support import OWNER
from tests.factories import make_account

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("agent_settings")]


# --- Imports -------------------------------------------------------------------------------------


def test_import_validates_with_me_before_storing(ig):
    ig.add(responses.GET, fakes.ME_URL, json=fakes.graph_error(190), status=400)
    with pytest.raises(imports.TokenInvalid) as err:
        imports.account_import_token(access_token="IGAAdeadTokenValue12345")
    assert "does not accept this token" in str(err.value)
    assert "IGAAdeadTokenValue12345" not in str(err.value)
    assert not InstagramAccount.objects.exists()
    assert len(ig.calls) == 1  # no refresh attempted


@pytest.mark.parametrize("value", ["", "   ", "two words"])
def test_import_refuses_an_empty_or_spaced_token_without_calling_instagram(ig, value):
    with pytest.raises(imports.TokenInvalid):
        imports.account_import_token(access_token=value)
    assert not ig.calls


def test_import_refreshes_to_learn_the_expiry(ig):
    ig.add(responses.GET, fakes.ME_URL, json=fakes.me())
    fakes.register_refresh(ig)
    result = imports.account_import_token(access_token="IGAApastedToken123456")
    token = AccessToken.objects.get(account=result.account)
    assert token.value == fakes.REFRESHED_TOKEN  # what the refresh returned
    assert token.refreshed_at is not None
    assert timedelta(days=59) < token.expires_at - timezone.now() < timedelta(days=61)
    assert result.created and result.account.slug == OWNER


def test_import_of_a_token_younger_than_a_day(ig):
    ig.add(responses.GET, fakes.ME_URL, json=fakes.me())
    ig.add(
        responses.GET,
        fakes.REFRESH_URL,
        json=fakes.graph_error(100, message="Token must be at least 24 hours old"),
        status=400,
    )
    result = imports.account_import_token(access_token="IGAAyoungToken1234567")
    token = AccessToken.objects.get(account=result.account)
    assert token.value == "IGAAyoungToken1234567"
    assert timedelta(days=58) < token.expires_at - timezone.now() <= timedelta(days=59)
    assert "24 hours" in result.note


def test_import_when_the_refresh_fails_marks_the_expiry_unknown(ig):
    ig.add(responses.GET, fakes.ME_URL, json=fakes.me())
    ig.add(responses.GET, fakes.REFRESH_URL, json=fakes.graph_error(2), status=500)
    result = imports.account_import_token(access_token="IGAAokToken123456789")
    token = AccessToken.objects.get(account=result.account)
    assert token.value == "IGAAokToken123456789"
    assert token.expires_at - timezone.now() <= timedelta(days=7)
    from accounts.refresh_policy import token_is_due

    assert token_is_due(token=token, account=result.account, now=timezone.now())
    assert "unknown" in result.note


def test_import_with_a_slug_taken_by_another_account_stores_nothing(ig):
    other = make_account(username="someone", slug="shop", ig_user_id="1")
    before = AccessToken.objects.get(account=other).ciphertext
    ig.add(responses.GET, fakes.ME_URL, json=fakes.me())
    with pytest.raises(account_services.SlugError):
        imports.account_import_token(access_token="IGAApasted1234567890", slug="shop")
    assert InstagramAccount.objects.count() == 1
    assert AccessToken.objects.get(account=other).ciphertext == before
    assert not [c for c in ig.calls if c.request.url.startswith(fakes.REFRESH_URL)]


def test_import_updates_and_renames_an_existing_account(ig):
    account = make_account(username=OWNER, slug="old", ig_user_id=fakes.USER_ID)
    InstagramAccount.objects.filter(pk=account.pk).update(
        status=InstagramAccount.Status.NEEDS_RECONNECT
    )
    ig.add(responses.GET, fakes.ME_URL, json=fakes.me())
    fakes.register_refresh(ig)
    result = imports.account_import_token(access_token="IGAApasted1234567890", slug="new")
    assert not result.created and result.account.pk == account.pk
    account.refresh_from_db()
    assert account.slug == "new" and account.status == InstagramAccount.Status.ACTIVE


def test_instatokend_config_parsing():
    config = imports.instatokend_config_parse(
        text=json.dumps(
            {
                "port": "8080",
                "refresh_freq": "weekly",
                "my-instagram-1": {"token": " IGAAone1234567890 "},
                "my-instagram-2": {"token": "IGAAtwo1234567890"},
            }
        )
    )
    assert config.accounts == [
        ("my-instagram-1", "IGAAone1234567890"),
        ("my-instagram-2", "IGAAtwo1234567890"),
    ]
    assert config.refresh_frequency == "weekly"
    assert any("port" in n for n in config.notes)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "one JSON object"),
        ('{"port": "1"}', "names no account"),
        ('{"a": "IGAAx"}', "expected"),
        ('{"a": {"token": 5}}', "expected"),
        ('{"a": {"token": "  "}}', "empty"),
    ],
)
def test_instatokend_config_errors(text, says):
    with pytest.raises(imports.ImportConfigError) as err:
        imports.instatokend_config_parse(text=text)
    assert says in str(err.value)


def test_instatokend_test_frequency_is_noted_not_applied():
    config = imports.instatokend_config_parse(text='{"refresh_freq": "test", "a": {"token": "x"}}')
    assert config.refresh_frequency is None and "test" in config.notes[0]


def test_instatokend_import_is_all_or_nothing(ig):
    def me_for(request):
        token = dict(p.split("=") for p in request.url.split("?")[1].split("&"))["access_token"]
        if token == "IGAAbad1234567890":
            return (400, {}, json.dumps(fakes.graph_error(190)))
        user = {"IGAAone1234567890": ("1", "one"), "IGAAtwo1234567890": ("2", "two")}[token]
        return (200, {}, json.dumps(fakes.me(user_id=user[0], username=user[1])))

    ig.add_callback(responses.GET, fakes.ME_URL, callback=me_for)
    fakes.register_refresh(ig)
    config = imports.instatokend_config_parse(
        text=json.dumps(
            {
                "a": {"token": "IGAAone1234567890"},
                "b": {"token": "IGAAbad1234567890"},
                "c": {"token": "IGAAtwo1234567890"},
            }
        )
    )
    with pytest.raises(imports.TokenInvalid) as err:
        imports.accounts_import_instatokend(config=config)
    assert str(err.value).startswith("b: ")
    assert not InstagramAccount.objects.exists()


def test_starting_token_is_imported_once(ig):
    ig.add(responses.GET, fakes.ME_URL, json=fakes.me())
    ig.add(
        responses.GET,
        fakes.REFRESH_URL,
        json=fakes.refreshed(token="IGAAstartingToken1234"),  # same string comes back
    )
    first = imports.starting_token_import(access_token="IGAAstartingToken1234")
    assert first is not None and first.account.is_default
    calls = len(ig.calls)
    assert imports.starting_token_import(access_token="IGAAstartingToken1234") is None
    assert len(ig.calls) == calls  # recognised locally, no call to Instagram
    assert InstagramAccount.objects.count() == 1


def test_starting_token_is_not_reimported_over_a_refreshed_token(ig):
    ig.add(responses.GET, fakes.ME_URL, json=fakes.me())
    make_account(username=OWNER, ig_user_id=fakes.USER_ID, token="IGAAnewerRefreshedOne")
    assert imports.starting_token_import(access_token="IGAAoriginalStarting1") is None
    assert AccessToken.objects.get().value == "IGAAnewerRefreshedOne"


def test_starting_token_unset_does_nothing(ig):
    assert imports.starting_token_import(access_token="") is None
    assert not ig.calls
