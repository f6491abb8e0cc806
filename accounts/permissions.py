"""Who counts as an owner, decided in one place for sign-in and for every request.

An owner is Django staff, or the Instagram account a listed username
(``OWNER_INSTAGRAM_USERNAMES``) is pinned to: the first sign-in of a listed name
pins its Instagram user id (``OwnerIdentity``), so the owner keeps access under a
new handle and whoever registers the old handle gets nothing. Checked on every
request, so removing a name from the setting locks that person out at once.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import Q

from accounts.models import OwnerIdentity
from accounts.usernames import username_or_none

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User
    from django.http import HttpRequest, HttpResponse

    from accounts.models import InstagramAccount


def owner_listed_name(username: str) -> str | None:
    """``username`` as Instagram spells it, if it is listed; else None."""
    name = username_or_none(username)
    return name if name is not None and name in settings.OWNER_INSTAGRAM_USERNAMES else None


def owner_listed(*, ig_user_id: str, username: str) -> bool:
    """The owner rule for an Instagram account: a listed name is pinned to its
    user id (whatever it is called now), or its current username is listed and
    pinned to no one yet (its first sign-in pins it). One query."""
    listed = settings.OWNER_INSTAGRAM_USERNAMES
    if not listed:
        return False
    name = owner_listed_name(username)
    mine = Q(ig_user_id=ig_user_id) | Q(username=name) if name else Q(ig_user_id=ig_user_id)
    pins = list(
        OwnerIdentity.objects.filter(mine, username__in=listed).values_list(
            "username", "ig_user_id"
        )
    )
    if any(pinned_id == ig_user_id for _, pinned_id in pins):
        return True
    return name is not None and all(pinned_name != name for pinned_name, _ in pins)


def is_owner(user: User | AnonymousUser) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_staff:
        return True
    account = getattr(user, "instagram_account", None)
    return account is not None and owner_listed(
        ig_user_id=account.ig_user_id, username=account.username
    )


def owner_may_sign_in(*, ig_user_id: str, username: str, account: InstagramAccount | None) -> bool:
    """Who may sign in with the Instagram account ``/me`` described: an owner by
    :func:`owner_listed`, or one already linked to an active staff user."""
    if owner_listed(ig_user_id=ig_user_id, username=username):
        return True
    user = account.user if account is not None else None
    return bool(user is not None and user.is_staff and user.is_active)


def owner_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Anonymous visitors go to sign-in; signed-in non-owners get 403."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not is_owner(request.user):
            raise PermissionDenied("Only the agent's owners may see this page.")
        return view(request, *args, **kwargs)

    return wrapper
