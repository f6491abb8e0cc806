"""accounts/services/invites.py: signed, single-use, expiring invite links."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Invite
from accounts.services import errors, invites

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("agent_settings")]


def test_invite_links_are_signed_single_use_and_expiring():
    now = timezone.now()
    invite = invites.invite_create(created_by=None, note=" Cafe ", days=2, now=now)
    assert invite.note == "Cafe" and invite.expires_at == now + timedelta(days=2)
    token = invites.invite_link_token(invite=invite)
    assert invite.key in token and token != invite.key
    assert invites.invite_resolve(token=token, now=now).pk == invite.pk
    with pytest.raises(invites.InviteError) as err:
        invites.invite_resolve(token=token, now=now + timedelta(days=2))
    assert err.value.reason == invites.InviteError.EXPIRED
    for bad in (token + "x", token.replace(invite.key, invite.key[::-1]), "", invite.key):
        with pytest.raises(invites.InviteError) as err:
            invites.invite_resolve(token=bad, now=now)
        assert err.value.reason == invites.InviteError.TAMPERED
    Invite.objects.filter(pk=invite.pk).update(used_at=now)
    with pytest.raises(invites.InviteError) as err:
        invites.invite_resolve(token=token, now=now)
    assert err.value.reason == invites.InviteError.USED


def test_a_signature_from_another_secret_key_is_tampered(settings):
    invite = invites.invite_create(created_by=None)
    token = invites.invite_link_token(invite=invite)
    settings.SECRET_KEY = "another-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
    with pytest.raises(invites.InviteError) as err:
        invites.invite_resolve(token=token)
    assert err.value.reason == invites.InviteError.TAMPERED


@pytest.mark.parametrize("days", [0, -1, 31])
def test_invite_lifetime_is_bounded(days):
    with pytest.raises(errors.ConnectError):
        invites.invite_create(created_by=None, days=days)
    assert not Invite.objects.exists()
