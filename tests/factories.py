"""Model factories for tests (plain functions; no extra library needed)."""

import itertools
from datetime import timedelta

from django.utils import timezone

from accounts.models import InstagramAccount
from accounts.services.tokens import token_store

_seq = itertools.count(1)


def make_account(
    *,
    slug: str | None = None,
    username: str | None = None,
    token: str | None = "IGAAtestLongLivedToken0000000001",
    token_age: timedelta = timedelta(days=8),
    expires_in: timedelta = timedelta(days=52),
    status: str = InstagramAccount.Status.ACTIVE,
    **fields,
) -> InstagramAccount:
    n = next(_seq)
    username = username or f"account_{n}"
    account = InstagramAccount.objects.create(
        slug=slug or username.replace("_", "-"),
        ig_user_id=fields.pop("ig_user_id", f"178414000000{n:05d}"),
        app_scoped_id=fields.pop("app_scoped_id", f"98765432100{n:05d}"),
        username=username,
        status=status,
        **fields,
    )
    if token:
        now = timezone.now()
        token_store(
            account=account,
            access_token=token,
            issued_at=now - token_age,
            expires_at=now + expires_in,
            permissions=["instagram_business_basic"],
        )
    return account
