"""Feeds for the tests of the feed URLs, read by the real ``feed_sync`` from the
sandbox Instagram on the live server (tests/sandbox_control.py), pictures mirrored
by the real Pillow processing into the database: no hand-written feed JSON.

A pytest plugin (tests/conftest.py): the fixture ``feed_sandbox`` is everywhere."""

from __future__ import annotations

import pytest

from accounts.models import InstagramAccount
from accounts.sandbox import catalog
from accounts.services.feed import Outcome, feed_sync
from tests.factories import make_account

# The sandbox's default feed, newest first (accounts/sandbox/catalog.py PATTERN): a
# portrait photo, a video, a carousel (photo, photo, video), a photo whose caption
# carries markup, a landscape photo without a caption, a reel whose video URL
# Instagram withholds. Their 8 pictures make 19 renditions.
POSTS = 6
MARKUP_CAPTION = catalog.MARKUP_CAPTION


@pytest.fixture
def feed_sandbox(sandbox_live, settings):
    """The sandbox on the live server, set up for quick syncs."""
    settings.INSTAGRAM_GRAPH_VERSION = "v21.0"
    settings.FEED_IMAGE_MAX_BYTES = 1024 * 1024  # sandbox pictures are < 100 kB
    return sandbox_live


def connect(sandbox, *, slug: str, username: str, **fields) -> tuple[InstagramAccount, str]:
    """An account whose token the sandbox minted for ``username``; (account, token)."""
    token = sandbox.mint(username=username)["access_token"]
    return make_account(slug=slug, username=username, token=token, **fields), token


def synced(
    sandbox,
    *,
    slug: str,
    username: str,
    posts: int = POSTS,
    captions: dict[int, str | None] | None = None,
    **fields,
) -> tuple[InstagramAccount, str]:
    """:func:`connect`, with its feed of ``posts`` default posts (``captions``
    replaces some, by position) read once."""
    sandbox.feed(username=username, count=posts)
    for index, caption in (captions or {}).items():
        media_id = catalog.default_post(username, index)["id"]
        sandbox.caption(media_id, caption, username=username)
    account, token = connect(sandbox, slug=slug, username=username, **fields)
    result = feed_sync(account=account)
    assert result.outcome == Outcome.SYNCED, result.message
    assert result.posts == posts
    return account, token
