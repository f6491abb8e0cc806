"""Who counts as an owner: Django staff, or a user linked to an Instagram account
whose username is in OWNER_INSTAGRAM_USERNAMES (checked on every request, so
removing a name from the setting locks that person out at once)."""

from functools import wraps

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied


def is_owner(user) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_staff:
        return True
    account = getattr(user, "instagram_account", None)
    return bool(account) and account.username.lower() in settings.OWNER_INSTAGRAM_USERNAMES


def owner_required(view):
    """Anonymous visitors go to sign-in; signed-in non-owners get 403."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not is_owner(request.user):
            raise PermissionDenied("Only the agent's owners may see this page.")
        return view(request, *args, **kwargs)

    return wrapper
