"""Hostile input on Instagram Login: ``/login/``'s ``next``, every parameter of the
OAuth callback, forged and replayed callbacks, invite links, and Instagram's own
answers (a hostile username). Nothing answers 500, nothing is reflected
unescaped, no redirect leaves the site (except to Instagram's authorize page),
and nothing is stored or exchanged without this browser's own unused state."""

import re
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import responses
from django.test import Client
from django.utils.http import url_has_allowed_host_and_scheme
from hypothesis import given
from hypothesis import strategies as st

from accounts.models import InstagramAccount, OAuthState
from accounts.views.oauth import NEXT_SESSION_KEY
from tests import instagram_fakes as fakes
from tests.security import hostile

OWNER = fakes.OWNER
CALLBACK = "/oauth/instagram/callback/"
AUTHORIZE = fakes.AUTHORIZE_URL
FUZZ = hostile.fuzz(max_examples=60)
OPEN_REDIRECTS = [
    "https://evil.example/",
    "//evil.example/",
    "/\\evil.example",
    "\\\\evil.example",
    "/\t/evil.example",
    "/%09/evil.example",
    "https:evil.example",
    "javascript:alert(1)",
    "http://testserver@evil.example/",
    "\x00//evil.example",
    " //evil.example",
]

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("agent_settings")]


def _start(client, **params) -> str:
    """``/login/`` -> Instagram; returns the state handed to this browser."""
    response = client.get("/login/", params)
    assert response.status_code == 302, response.status_code
    assert response["Location"].startswith(AUTHORIZE + "?")
    return parse_qs(urlsplit(response["Location"]).query)["state"][0]


def _instagram():
    """Instagram's side, recording calls; unregistered URLs fail the call."""
    return responses.RequestsMock(assert_all_requests_are_fired=False)


def _stays_on_site(location: str) -> bool:
    """Whether a browser following ``Location`` stays on this host (browsers drop
    tabs and newlines, trim control characters and read ``\\`` as ``/``)."""
    c0_and_space = "".join(chr(i) for i in range(0x21))
    cleaned = re.sub(r"[\t\n\r]", "", location).strip(c0_and_space).replace("\\", "/")
    parts = urlsplit(cleaned)
    # A relative reference (with or without a leading slash) stays on this host.
    return parts.scheme == "" and parts.netloc == ""


def _page_text(response) -> str:
    return response.content.decode("utf-8", errors="replace")


# --- /login/ ---------------------------------------------------------------------------------


@FUZZ
@given(next_url=hostile.text)
def test_login_only_ever_redirects_to_instagram_and_keeps_only_a_local_next(next_url):
    client = Client()
    response = client.get("/login/", {"next": next_url})
    assert response.status_code == 302
    assert response["Location"].startswith(AUTHORIZE + "?")
    hostile.assert_not_reflected(response, next_url)
    kept = client.session.get(NEXT_SESSION_KEY)
    if kept is not None:
        assert url_has_allowed_host_and_scheme(kept, allowed_hosts={"testserver"})
        assert _stays_on_site(kept), kept


@pytest.mark.parametrize("next_url", OPEN_REDIRECTS)
def test_a_completed_sign_in_never_lands_off_site(next_url):
    client = Client()
    state = _start(client, next=next_url)
    with _instagram() as ig:
        fakes.register_login(ig, username=OWNER)
        response = client.get(CALLBACK, {"state": state, "code": "AQDxCode"})
    assert response.status_code == 302
    assert _stays_on_site(response["Location"]), response["Location"]


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_login_and_callback_accept_only_get(method):
    for url in ("/login/", CALLBACK):
        assert getattr(Client(), method)(url).status_code == 405


# --- The callback without this browser's state ------------------------------------------------

callback_params = st.dictionaries(
    st.sampled_from(["state", "code", "error", "error_reason", "error_description", "x"]),
    hostile.text,
    max_size=5,
)


@FUZZ
@given(params=callback_params)
def test_a_callback_without_a_state_of_ours_stores_and_exchanges_nothing(params):
    before = hostile.snapshot()
    with _instagram() as ig:
        response = Client().get(CALLBACK, params)
        assert len(ig.calls) == 0, "Instagram was called without a valid state"
    assert response.status_code == 400
    hostile.assert_not_reflected(response, *params.values())
    assert hostile.snapshot() == before


@FUZZ
@given(raw=st.text(max_size=300))
def test_a_callback_with_any_raw_query_string_is_a_clear_400(raw):
    with _instagram() as ig:
        response = Client().get(f"{CALLBACK}?{quote(raw, safe='%&=+;,/?:@#')}")
        assert len(ig.calls) == 0
    assert response.status_code == 400


def test_a_forged_callback_carrying_someone_elses_state_is_refused_and_does_not_burn_it():
    """Login CSRF: an attacker starts a sign-in, then makes the victim's browser
    finish it with the attacker's state and code."""
    attacker, victim = Client(), Client()
    state = _start(attacker)
    _start(victim)
    with _instagram() as ig:
        response = victim.get(CALLBACK, {"state": state, "code": "AQDattackerCode"})
        assert len(ig.calls) == 0
    assert response.status_code == 400
    assert b"another browser" in response.content
    assert OAuthState.objects.get(state=state).used_at is None
    assert not InstagramAccount.objects.exists()


def test_a_replayed_callback_is_refused_and_exchanges_the_code_only_once():
    client = Client()
    state = _start(client)
    with _instagram() as ig:
        fakes.register_login(ig, username=OWNER)
        first = client.get(CALLBACK, {"state": state, "code": "AQDxCode"})
        second = client.get(CALLBACK, {"state": state, "code": "AQDxCode"})
        exchanges = [c for c in ig.calls if c.request.url == fakes.CODE_EXCHANGE_URL]
    assert first.status_code == 302
    assert second.status_code == 400
    assert len(exchanges) == 1


# --- The callback with this browser's state and hostile values --------------------------------


@FUZZ
@given(code=hostile.text.filter(lambda c: c.strip() and not c.startswith("#")))
def test_any_code_is_exchanged_at_most_once_and_nothing_is_stored_when_refused(code):
    client = Client()
    state = _start(client)
    before = hostile.snapshot()
    with _instagram() as ig:
        ig.add(
            responses.POST,
            fakes.CODE_EXCHANGE_URL,
            json=fakes.code_exchange_error(),
            status=400,
        )
        response = client.get(CALLBACK, {"state": state, "code": code})
        assert len(ig.calls) <= 1
    assert response.status_code == 400
    hostile.assert_not_reflected(response, code)
    after = hostile.snapshot()
    # Only the state was used up; no account, token or user appeared.
    assert {k: v for k, v in after.items() if k != "states_used"} == {
        k: v for k, v in before.items() if k != "states_used"
    }


@FUZZ
@given(error=hostile.text, reason=hostile.text, description=hostile.text)
def test_instagram_error_parameters_are_never_echoed_raw(error, reason, description):
    client = Client()
    state = _start(client)
    with _instagram() as ig:
        response = client.get(
            CALLBACK,
            {
                "state": state,
                "error": error,
                "error_reason": reason,
                "error_description": description,
            },
        )
        assert len(ig.calls) == 0
    assert response.status_code == 400
    hostile.assert_not_reflected(response, error, reason, description)
    assert not InstagramAccount.objects.exists()


def test_a_hostile_username_from_instagram_is_escaped_on_the_refusal_page():
    """Instagram's answers are input too: a username that is markup is shown as text."""
    payload = '<img src=x onerror="alert(1)">'
    client = Client()
    state = _start(client)
    with _instagram() as ig:
        fakes.register_login(ig, username=payload)
        response = client.get(CALLBACK, {"state": state, "code": "AQDxCode"})
    assert response.status_code == 403
    assert payload not in _page_text(response)
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in _page_text(response)
    assert not InstagramAccount.objects.exists()


def test_an_instagram_error_message_with_markup_is_escaped():
    client = Client()
    state = _start(client)
    with _instagram() as ig:
        ig.add(
            responses.POST,
            fakes.CODE_EXCHANGE_URL,
            json=fakes.code_exchange_error("<script>alert(document.cookie)</script>"),
            status=400,
        )
        response = client.get(CALLBACK, {"state": state, "code": "AQDxCode"})
    assert response.status_code == 400
    assert "<script>alert(document.cookie)</script>" not in _page_text(response)


# --- Invite links ------------------------------------------------------------------------------


@FUZZ
@given(token=hostile.text, post=st.booleans())
def test_a_forged_invite_link_opens_nothing(token, post):
    before = hostile.snapshot()
    client = Client()
    url = f"/invite/{quote(token, safe='')}/"
    response = client.post(url) if post else client.get(url)
    assert response.status_code in (400, 404)
    hostile.assert_not_reflected(response, token)
    assert not OAuthState.objects.filter(purpose=OAuthState.Purpose.INVITE).exists()
    assert hostile.snapshot() == before


def test_states_are_unguessable():
    client = Client()
    states = {_start(client) for _ in range(20)}
    assert len(states) == 20
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{40,}", s) for s in states)


def test_a_state_with_a_nul_byte_is_unknown_without_a_query(django_assert_num_queries):
    """Regression: PostgreSQL refuses NUL in a query, which made this a 500."""
    from django.contrib.sessions.backends.db import SessionStore

    from accounts.oauth import StateError, oauth_state_consume

    with django_assert_num_queries(0), pytest.raises(StateError) as err:
        oauth_state_consume(session=SessionStore(), state="abc\x00def")
    assert err.value.reason == StateError.UNKNOWN
