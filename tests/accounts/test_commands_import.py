"""import_token, import_instatokend, import_starting_token and rotate_token_key."""

import io
import json
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from accounts.models import AccessToken, InstagramAccount
from tests import instagram_fakes as fakes
from tests.accounts.connect_support import database_dump
from tests.factories import make_account

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("agent_settings")]


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def me_by_token(profiles: dict[str, tuple[str, str]]):
    """A /me fake answering per token: {token: (user_id, username)}; others get 190."""

    def answer(request):
        token = parse_qs(urlsplit(request.url).query)["access_token"][0]
        if token not in profiles:
            return (400, {}, json.dumps(fakes.graph_error(190)))
        user_id, username = profiles[token]
        return (200, {}, json.dumps(fakes.me(user_id=user_id, username=username)))

    return answer


# --- import_token --------------------------------------------------------------------------------


def test_import_token(ig):
    ig.add(responses.GET, fakes.ME_URL, json=fakes.me())
    fakes.register_refresh(ig)
    out, _ = run("import_token", "shop", "IGAApastedToken123456", "--default")
    assert out.startswith("imported shop (@acme_bakery): refreshed; valid until")
    assert "[default]" in out
    account = InstagramAccount.objects.get(slug="shop")
    assert account.is_default
    assert AccessToken.objects.get().value == fakes.REFRESHED_TOKEN
    assert "IGAApastedToken123456" not in out


def test_import_token_from_stdin(ig, monkeypatch):
    ig.add(responses.GET, fakes.ME_URL, json=fakes.me())
    fakes.register_refresh(ig)
    monkeypatch.setattr("sys.stdin", io.StringIO("IGAAfromStdin12345678\n"))
    run("import_token", "shop", "-")
    me_call = [c for c in ig.calls if "/me" in c.request.url][0]
    assert "access_token=IGAAfromStdin12345678" in me_call.request.url


def test_import_token_refused_stores_nothing(ig):
    ig.add(responses.GET, fakes.ME_URL, json=fakes.graph_error(190), status=400)
    with pytest.raises(CommandError) as err:
        run("import_token", "shop", "IGAAdeadToken1234567")
    assert "does not accept this token" in str(err.value)
    assert "Nothing was stored" in str(err.value)
    assert "IGAAdeadToken1234567" not in str(err.value)
    assert not InstagramAccount.objects.exists()


def test_import_token_with_a_bad_name(ig):
    with pytest.raises(CommandError) as err:
        run("import_token", "no spaces please", "IGAApastedToken123456")
    assert "not a usable name" in str(err.value)
    assert not ig.calls


def test_import_token_twice_updates_one_account(ig):
    ig.add(responses.GET, fakes.ME_URL, json=fakes.me())
    fakes.register_refresh(ig)
    run("import_token", "shop", "IGAApastedToken123456")
    out, _ = run("import_token", "shop", "IGAApastedToken123456")
    assert out.startswith("updated shop")
    assert InstagramAccount.objects.count() == 1 and AccessToken.objects.count() == 1


# --- import_instatokend --------------------------------------------------------------------------


@pytest.fixture
def config_file(tmp_path):
    def write(data) -> str:
        path = tmp_path / "config.json"
        path.write_text(data if isinstance(data, str) else json.dumps(data))
        return str(path)

    return write


def test_import_instatokend(ig, config_file):
    ig.add_callback(
        responses.GET,
        fakes.ME_URL,
        callback=me_by_token(
            {"IGAAone1234567890": ("1", "first_shop"), "IGAAtwo1234567890": ("2", "second_shop")}
        ),
    )
    ig.add(
        responses.GET,
        fakes.REFRESH_URL,
        json=fakes.graph_error(100, message="token must be at least 24 hours old"),
        status=400,
    )
    path = config_file(
        {
            "port": "8080",
            "refresh_freq": "monthly",
            "my-instagram-1": {"token": "IGAAone1234567890"},
            "my-instagram-2": {"token": "IGAAtwo1234567890"},
        }
    )
    out, _ = run("import_instatokend", path)
    assert "note: port is ignored" in out
    assert "imported my-instagram-1 (@first_shop)" in out
    assert "2 account(s) imported." in out
    accounts = {a.slug: a for a in InstagramAccount.objects.all()}
    assert set(accounts) == {"my-instagram-1", "my-instagram-2"}
    assert {a.refresh_frequency for a in accounts.values()} == {"monthly"}
    assert AccessToken.objects.get(account=accounts["my-instagram-2"]).value == "IGAAtwo1234567890"
    assert "IGAAone1234567890" not in database_dump()
    assert "IGAAone1234567890" not in out


def test_import_instatokend_with_one_bad_token_stores_nothing(ig, config_file):
    ig.add_callback(
        responses.GET, fakes.ME_URL, callback=me_by_token({"IGAAone1234567890": ("1", "first")})
    )
    path = config_file({"a": {"token": "IGAAone1234567890"}, "b": {"token": "IGAAdead1234567890"}})
    with pytest.raises(CommandError) as err:
        run("import_instatokend", path)
    assert str(err.value).startswith("b: Instagram does not accept this token")
    assert not InstagramAccount.objects.exists()
    assert not [c for c in ig.calls if c.request.url.startswith(fakes.REFRESH_URL)]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("{oops", "not valid JSON"),
        ('{"port": "8080"}', "names no account"),
        ('{"bad name!": {"token": "IGAAx1234567890"}}', "not a usable name"),
    ],
)
def test_import_instatokend_bad_files(ig, config_file, content, says):
    with pytest.raises(CommandError) as err:
        run("import_instatokend", config_file(content))
    assert says in str(err.value)
    assert not ig.calls and not InstagramAccount.objects.exists()


def test_import_instatokend_missing_file(tmp_path):
    with pytest.raises(CommandError) as err:
        run("import_instatokend", str(tmp_path / "nope.json"))
    assert "Cannot read" in str(err.value)


# --- import_starting_token -----------------------------------------------------------------------


def test_starting_token_unset_is_a_quiet_no_op(ig, settings):
    settings.STARTING_TOKEN = ""
    out, err = run("import_starting_token")
    assert "not set" in out and not err
    assert not ig.calls


def test_starting_token_is_imported_as_the_default_once(ig, settings):
    settings.STARTING_TOKEN = "IGAAstartingToken1234"
    ig.add(responses.GET, fakes.ME_URL, json=fakes.me())
    ig.add(responses.GET, fakes.REFRESH_URL, json=fakes.refreshed(token="IGAAstartingToken1234"))
    out, _ = run("import_starting_token")
    assert "STARTING_TOKEN imported as acme_bakery (@acme_bakery)" in out
    assert InstagramAccount.objects.get().is_default
    out, _ = run("import_starting_token")
    assert "already imported" in out
    assert InstagramAccount.objects.count() == 1


def test_a_bad_starting_token_does_not_fail_the_release(ig, settings):
    settings.STARTING_TOKEN = "IGAAdeadStarting12345"
    ig.add(responses.GET, fakes.ME_URL, json=fakes.graph_error(190), status=400)
    out, err = run("import_starting_token")  # exit status 0: no exception
    assert err.startswith("ERROR: STARTING_TOKEN was not imported")
    assert "IGAAdeadStarting12345" not in err + out
    assert not InstagramAccount.objects.exists()


def test_a_bad_starting_token_fails_with_strict(ig, settings):
    settings.STARTING_TOKEN = "IGAAdeadStarting12345"
    ig.add(responses.GET, fakes.ME_URL, json=fakes.graph_error(190), status=400)
    with pytest.raises(CommandError):
        run("import_starting_token", "--strict")


# --- rotate_token_key ----------------------------------------------------------------------------


def test_rotate_token_key(settings):
    old = Fernet.generate_key().decode()
    settings.TOKEN_ENCRYPTION_KEY = old
    make_account(username="a_a")
    make_account(username="b_b")
    before = set(AccessToken.objects.values_list("ciphertext", flat=True))
    new = Fernet.generate_key().decode()
    settings.TOKEN_ENCRYPTION_KEY = f"{new},{old}"
    out, _ = run("rotate_token_key")
    assert out.strip() == "Re-encrypted 2 token(s) under the newest key."
    assert not before & set(AccessToken.objects.values_list("ciphertext", flat=True))
    settings.TOKEN_ENCRYPTION_KEY = new
    assert {t.masked for t in AccessToken.objects.all()} == {"IGAA…0001"}


def test_rotate_token_key_reports_unreadable_tokens(settings):
    settings.TOKEN_ENCRYPTION_KEY = Fernet.generate_key().decode()
    make_account(username="a_a")
    settings.TOKEN_ENCRYPTION_KEY = Fernet.generate_key().decode()
    with pytest.raises(CommandError) as err:
        run("rotate_token_key")
    assert "a-a" in str(err.value)


def test_names_are_echoed_safely(ig, config_file):
    """A token pasted where a name belongs is never printed; markup is defused."""
    ig.add(responses.GET, fakes.ME_URL, json=fakes.graph_error(190), status=400)
    with pytest.raises(CommandError) as err:
        run("import_instatokend", config_file({"IGAAlooksLikeAToken123": {"token": "IGAAx1"}}))
    assert "IGAAlooksLikeAToken123" not in str(err.value) and "[redacted]" in str(err.value)
    with pytest.raises(CommandError) as err:
        run("import_instatokend", config_file({"<b>shop</b>": {"token": "IGAAx1234567890"}}))
    assert "<b>" not in str(err.value) and "?b?shop??b?" in str(err.value)
