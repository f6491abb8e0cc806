"""OAuth state (accounts/oauth.py): random, bound to the session, single-use,
short-lived; the redirect URI built from the request."""

from datetime import timedelta

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.test import RequestFactory
from django.utils import timezone

from accounts.models import OAuthState
from accounts.oauth import (
    STATE_TTL,
    StateError,
    oauth_redirect_uri,
    oauth_state_consume,
    oauth_state_create,
)

pytestmark = pytest.mark.django_db

SIGN_IN = OAuthState.Purpose.SIGN_IN


def _session() -> SessionStore:
    return SessionStore()


def test_create_makes_the_session_exist_and_binds_the_state_to_it():
    session = _session()
    before = session.session_key
    assert before is None
    state = oauth_state_create(session=session, purpose=SIGN_IN)
    assert session.session_key
    assert state.session_key == session.session_key
    assert SessionStore().exists(session.session_key)


def test_states_are_random_and_long():
    session = _session()
    a = oauth_state_create(session=session, purpose=SIGN_IN).state
    b = oauth_state_create(session=session, purpose=SIGN_IN).state
    assert a != b
    assert len(a) >= 40


def test_consume_returns_the_state_once():
    session = _session()
    state = oauth_state_create(session=session, purpose=SIGN_IN)
    consumed = oauth_state_consume(session=session, state=state.state)
    assert consumed.pk == state.pk and consumed.used_at is not None
    with pytest.raises(StateError) as err:
        oauth_state_consume(session=session, state=state.state)
    assert err.value.reason == StateError.USED


@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_state(value):
    with pytest.raises(StateError) as err:
        oauth_state_consume(session=_session(), state=value)
    assert err.value.reason == StateError.MISSING


def test_unknown_state():
    session = _session()
    oauth_state_create(session=session, purpose=SIGN_IN)
    with pytest.raises(StateError) as err:
        oauth_state_consume(session=session, state="not-a-state-we-issued")
    assert err.value.reason == StateError.UNKNOWN


def test_state_from_another_session_is_refused_and_not_burnt():
    mine, theirs = _session(), _session()
    state = oauth_state_create(session=mine, purpose=SIGN_IN)
    oauth_state_create(session=theirs, purpose=SIGN_IN)
    with pytest.raises(StateError) as err:
        oauth_state_consume(session=theirs, state=state.state)
    assert err.value.reason == StateError.OTHER_SESSION
    # The real browser can still complete its sign-in.
    assert oauth_state_consume(session=mine, state=state.state).pk == state.pk


def test_state_without_any_session_is_refused():
    state = oauth_state_create(session=_session(), purpose=SIGN_IN)
    with pytest.raises(StateError) as err:
        oauth_state_consume(session=_session(), state=state.state)
    assert err.value.reason == StateError.OTHER_SESSION


def test_state_expires_after_the_ttl():
    session = _session()
    start = timezone.now()
    state = oauth_state_create(session=session, purpose=SIGN_IN, now=start)
    with pytest.raises(StateError) as err:
        oauth_state_consume(session=session, state=state.state, now=start + STATE_TTL)
    assert err.value.reason == StateError.EXPIRED
    fresh = oauth_state_create(session=session, purpose=SIGN_IN, now=start)
    just_in_time = start + STATE_TTL - timedelta(seconds=1)
    assert oauth_state_consume(session=session, state=fresh.state, now=just_in_time)


def test_ttl_is_minutes_not_hours():
    assert timedelta(minutes=2) <= STATE_TTL <= timedelta(minutes=15)


def test_conditional_claim_lets_only_one_of_two_racers_through(monkeypatch):
    """Both racers read the row as unused; the conditional UPDATE decides."""
    session = _session()
    state = oauth_state_create(session=session, purpose=SIGN_IN)
    real_update = OAuthState.objects.filter(pk=state.pk).update

    # The other tab claims it between our read and our UPDATE.
    original_filter = type(OAuthState.objects).filter
    calls = {"n": 0}

    def racing_filter(self, *args, **kwargs):
        if kwargs.get("used_at__isnull") is True and calls["n"] == 0:
            calls["n"] += 1
            real_update(used_at=timezone.now())
        return original_filter(self, *args, **kwargs)

    monkeypatch.setattr(type(OAuthState.objects), "filter", racing_filter)
    with pytest.raises(StateError) as err:
        oauth_state_consume(session=session, state=state.state)
    assert err.value.reason == StateError.USED
    assert calls["n"] == 1


def test_old_states_are_purged_when_new_ones_are_made():
    session = _session()
    old = oauth_state_create(
        session=session, purpose=SIGN_IN, now=timezone.now() - timedelta(days=2)
    )
    oauth_state_create(session=session, purpose=SIGN_IN)
    assert not OAuthState.objects.filter(pk=old.pk).exists()


def test_redirect_uri_is_built_from_the_request(settings):
    settings.ALLOWED_HOSTS = ["agent.example.com"]
    rf = RequestFactory()
    assert (
        oauth_redirect_uri(request=rf.get("/login/", HTTP_HOST="agent.example.com"))
        == "http://agent.example.com/oauth/instagram/callback/"
    )
    behind_proxy = rf.get("/login/", HTTP_HOST="agent.example.com", HTTP_X_FORWARDED_PROTO="https")
    assert (
        oauth_redirect_uri(request=behind_proxy)
        == "https://agent.example.com/oauth/instagram/callback/"
    )
