"""The served copy of each account's token lives in the Django cache (shared by
web and worker) so the token endpoints do not query the database on every hit.

Writers call :func:`invalidate` after commit; readers rebuild on a miss."""

from django.core.cache import cache

from accounts.models import InstagramAccount

DEFAULT_KEY = "token:__default__"


def key_for(slug: str) -> str:
    return f"token:slug:{slug}"


def invalidate(account: InstagramAccount) -> None:
    """Drop the cached copies that may serve ``account`` (by slug and as default)."""
    cache.delete_many([key_for(account.slug), DEFAULT_KEY])
