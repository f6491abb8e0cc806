"""The WSGI fast path (accounts/fastpath.py) against Django on the feed URLs: for a
table of requests (``/feed/<account>.json``, ``/feed.json``, ``/feed/<account>/media``,
``/feed/media`` and the mirrored pictures; GET, HEAD, OPTIONS and write methods;
Origin, Referer, If-None-Match and Accept-Encoding variants; hostile ``limit``,
``after``, paths and account names; unknown, feed-only, stale, never-synced and
disconnected accounts; known, unknown and malformed picture names) both give the
same status, headers and body, byte for byte (gzip included), with the cache cold
and warm, ALLOWED_DOMAINS set and unset.

As in test_fastpath_differential.py (whose machinery this uses), every case says
whether the fast path must answer it itself when the cache is warm, and the
requests reaching Django are counted. Feeds are read by the real feed_sync from the
sandbox Instagram on the live server (tests/feed_support.py)."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from django.core.cache import cache
from django.utils import timezone

from accounts import token_cache
from accounts.models import FeedSnapshot, InstagramAccount
from accounts.selectors import served_images
from accounts.services.feed import feed_delete
from tests.accounts.test_fastpath_differential import (
    ORIGINS,
    Case,
    agreed,
    assert_a_broken_rule_is_logged_and_django_answers,
    call,
    differences,
    etags_of,
    report,
    stack_cases,
    url_cases,
)
from tests.factories import make_account
from tests.feed_support import connect, synced

pytestmark = pytest.mark.django_db(transaction=True)

SLUGS = ("acme", "narrow", "gone", "failing", "solo", "fresh", "off", "nobody", "x" * 300)
PATHS = ["/feed.json", "/feed/media"] + [
    p for s in SLUGS for p in (f"/feed/{s}.json", f"/feed/{s}/media")
]
VARIANT_PATHS = ["/feed.json", "/feed/acme/media", "/feed/narrow.json", "/feed/nobody.json"]
ENCODINGS = ["gzip", "gzip, deflate, br", "br", "identity", "GZIP", "x-gzip", "gzip;q=0"]


@pytest.fixture
def feed_clock(clock, monkeypatch):
    """The feed's clock (max-age counts down, staleness sets in) is the test's."""
    now = SimpleNamespace(now=lambda: datetime.fromtimestamp(clock.now, UTC))
    monkeypatch.setattr("accounts.feed_serving_policy.timezone", now)
    return clock


@pytest.fixture
def feeds(feed_sandbox, settings):
    """Every state a feed URL serves, the pictures kept per process as in production;
    returns the URLs of two of acme's pictures, its post ids and a picture's size."""
    settings.FEED_IMAGE_MEMORY_BYTES = 16 * 1024 * 1024
    served_images.forget()
    acme, _ = synced(feed_sandbox, slug="acme", username="acme_bakery", is_default=True)
    synced(
        feed_sandbox,
        slug="narrow",
        username="narrow_bakery",
        posts=2,
        allowed_domains="https://shop.example.com example.com",
    )
    gone, _ = synced(feed_sandbox, slug="gone", username="gone_bakery", posts=1)
    gone.status = InstagramAccount.Status.NEEDS_RECONNECT
    gone.save()
    failing, _ = synced(feed_sandbox, slug="failing", username="failing_bakery", posts=1)
    snapshot = FeedSnapshot.objects.get(account=failing)
    snapshot.last_error_at = timezone.now() + timedelta(seconds=1)
    snapshot.save()
    synced(feed_sandbox, slug="solo", username="solo_bakery", posts=2, feed_only=True)
    connect(feed_sandbox, slug="fresh", username="fresh_bakery")
    make_account(slug="off", username="off_bakery", status=InstagramAccount.Status.DISCONNECTED)
    posts = FeedSnapshot.objects.get(account=acme).posts
    sizes = [s for p in posts for s in p["image"]["sizes"]]
    pictures = [f"/feed/img/{s['sha256']}-{s['width']}.jpg" for s in sizes[:2]]
    return pictures, [p["id"] for p in posts], sizes[0]


def forget_feeds() -> None:
    keys = [token_cache.FEED_DEFAULT_KEY, token_cache.SLUGS_KEY, token_cache.IMAGES_KEY]
    keys += [token_cache.feed_key_for(s) for s in SLUGS]
    cache.delete_many(keys)
    token_cache.clear_local()
    served_images.forget()


def table(django, pictures: list[str], ids: list[str], size: dict) -> list[Case]:
    cases: list[Case] = []
    tags = etags_of(django, PATHS)
    for path in PATHS:
        variants = path in VARIANT_PATHS
        cases += url_cases(path, tags.get(path), variants=variants)
        # The same, gzipped for browsers that ask.
        for encoding in ENCODINGS if variants else ENCODINGS[:1]:
            cases.append(Case("GET", path, headers={"Accept-Encoding": encoding}))
        for origin in ORIGINS[1:] if variants else ORIGINS[1:3]:
            cases.append(Case("GET", path, headers={"Origin": origin, "Accept-Encoding": "gzip"}))
        tag = tags.get(path)
        for value in (tag, f"W/{tag}", '"nope"') if tag else ():
            zipped = {"If-None-Match": value, "Accept-Encoding": "gzip"}
            cases.append(Case("GET", path, headers=zipped))
    queries = [
        "limit=1",
        "limit=2",
        "limit=50",
        "limit=100",
        "limit=101",
        "limit=999999",
        "limit=9999999",
        "limit=0",
        "limit=-1",
        "limit=01",
        "limit=1.5",
        "limit=%31",
        "limit=",
        "limit=abc",
        "limit=%F0%9F%98%80",
        "limit=1&limit=3",
        "limit=" + "9" * 500,
        f"after={ids[0]}",
        f"after={ids[1]}&limit=2",
        f"after={ids[-1]}",
        "after=17800000000000000",
        "after=",
        "after=!!",
        "after=" + "a" * 65,
        "after=%3Cscript%3E",
        "v=123&_=456",
        "const=<x>",
        "%ZZ=%",
        "callback=evil",
    ]
    for query in queries:
        for path in ("/feed/acme.json", "/feed/acme/media", "/feed/media", "/feed/nobody.json"):
            cases.append(Case("GET", path, query=query))
        cases.append(
            Case("GET", "/feed/acme/media", query=query, headers={"Accept-Encoding": "gzip"})
        )
        cases.append(Case("GET", "/feed/fresh.json", query=query))
    many = "&".join(f"f{i}=1" for i in range(1200))
    cases.append(Case("GET", "/feed/acme.json", query=many, fast=False))
    for path in ("/feed/acme.json", "/feed/acme/media", pictures[0]):
        # HSTS and https image URLs in the body behind the proxy; the image URLs and
        # paging.next follow the Host the browser named.
        cases += stack_cases(path)
        cases.append(Case("GET", path, headers={"Host": "LOCALHOST:8000"}))
    # Pictures: warm, the bytes are this process's copy (read by Django twice: the
    # first read starts the generation, the next keeps them); a revalidation needs none.
    sha, width = size["sha256"], size["width"]
    for path in pictures:
        tag = f'"{path.rsplit("/", 1)[1].split("-")[0]}"'
        for method in ("GET", "HEAD"):
            cases.append(Case(method, path))
            cases.append(Case(method, path, headers={"Accept-Encoding": "gzip"}))
            for value in (tag, f"W/{tag}", f'"nope", {tag}', "*", '"nope"'):
                cases.append(Case(method, path, headers={"If-None-Match": value}))
        cases.append(Case("OPTIONS", path))
        cases.append(Case("OPTIONS", path, headers={"Origin": "https://evil.test"}))
        cases.append(Case("GET", path, headers={"Origin": "https://evil.test"}))
        cases.append(Case("GET", path, query="v=1&limit=x"))
        for method in ("POST", "PUT", "DELETE"):
            cases.append(Case(method, path, fast=False))
    for name, fast in (
        (f"{'0' * 64}-320.jpg", False),  # well formed, not stored: a database read
        (f"{sha}-{width + 1}.jpg", False),  # not its width
        (f"{sha}.jpg", True),
        (f"{sha}-0.jpg", True),
        (f"{sha}-{width}.png", True),
        (f"{sha.upper()}-{width}.jpg", True),
        (f"{sha[:-1]}-{width}.jpg", True),
        (f"{sha}-{width}.jpg.jpg", True),
        ("%3Cscript%3E.jpg", True),
        ("a" * 5000, True),
        ("..", True),
    ):
        cases.append(Case("GET", f"/feed/img/{name}", fast=fast))
        cases.append(Case("HEAD", f"/feed/img/{name}", fast=fast))
        # A 304 for a well-formed name needs no read, stored or not (as in Django).
        cases.append(Case("GET", f"/feed/img/{name}", headers={"If-None-Match": "*"}))
    for path, fast in (
        ("/feed/", False),
        ("/feed", False),
        ("/feeds.json", False),
        ("/feed/acme.json/", False),
        ("/feed/acme/media/", False),
        ("/feed/acme.JSON", False),
        ("/feed/ACME.json", True),  # slugs are case-sensitive: an unknown account
        ("/feed/a/b.json", False),
        ("/feed/%E2%82%AC.json", False),
        ("/feed/\xe2\x82\xac.json", False),
        ("/feed/embed.json", True),
        ("/feed/img.json", True),
        ("/feed/img/", False),
        (f"/feed/img/{sha}-{width}.jpg/", False),
        ("/feed/media.json", True),
        ("/feed/acme.json\n", False),
        ("/feed.json/", False),
        ("/feed/embed.js", False),
        ("/feed/acme.js", False),
    ):
        cases.append(Case("GET", path, fast=fast))
    return cases


@pytest.mark.parametrize(
    ("allowed_domains", "local_seconds"),
    [("", 0), ("example.com, *.example.org http://localhost:8080", 60)],
    ids=["unrestricted-shared-cache", "restricted-process-copy"],
)
def test_the_fast_path_answers_the_feed_exactly_as_django(
    handlers,
    feed_clock,
    feeds,
    settings,
    allowed_domains,
    local_seconds,
):
    settings.ALLOWED_DOMAINS = allowed_domains
    settings.TOKEN_CACHE_LOCAL_SECONDS = local_seconds
    django, counting, fast = handlers
    pictures, ids, size = feeds
    cases = table(django, pictures, ids, size)
    different, answered = differences(
        django, counting, fast, cases, paths=PATHS + pictures * 2, forget=forget_feeds
    )
    assert not different, report(different)
    assert answered >= sum(case.fast for case in cases) > 800


def test_the_feed_fast_path_agrees_under_the_production_security_settings(
    handlers,
    feed_clock,
    feeds,
    settings,
):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.ALLOWED_DOMAINS = "example.com"
    django, counting, fast = handlers
    pictures, _, _ = feeds
    secure = {"X-Forwarded-Proto": "https"}
    cases = []
    for path in [*PATHS, *pictures]:
        cases.append(Case("GET", path, fast=False))  # 301 to https
        cases.append(Case("GET", path, headers=secure))
        cases.append(Case("GET", path, headers={**secure, "Accept-Encoding": "gzip"}))
        cases.append(Case("OPTIONS", path, headers={**secure, "Origin": "https://example.com"}))
        cases.append(Case("POST", path, headers=secure, fast=False))
    different, _ = differences(
        django, counting, fast, cases, paths=PATHS + pictures * 2, forget=forget_feeds
    )
    assert not different, report(different)
    _, headers, body = call(fast, Case("GET", "/feed/acme.json", headers=secure).build())
    assert dict(headers)["Strict-Transport-Security"].startswith("max-age=31536000")
    assert b'"url": "https://127.0.0.1:8000/feed/img/' in body


def test_a_warm_feed_read_is_answered_without_django_and_gzipped_alike(
    handlers,
    feed_clock,
    feeds,
    django_assert_num_queries,
):
    django, counting, fast = handlers
    forget_feeds()
    request = Case("GET", "/feed/acme.json", headers={"Accept-Encoding": "gzip, br"})
    call(fast, request.build())
    assert counting.calls == 1  # a miss: Django built the entry
    with django_assert_num_queries(0):
        status, headers, body = call(fast, request.build())
    assert status == "200 OK" and counting.calls == 1
    found = dict(headers)
    assert found["Content-Encoding"] == "gzip" and found["ETag"].startswith('W/"')
    assert found["Vary"] == "Origin, Accept-Encoding"
    assert found["Content-Length"] == str(len(body))
    _, _, plain = call(django, Case("GET", "/feed/acme.json").build())
    assert gzip.decompress(body) == plain


def test_a_kept_feed_answer_follows_the_clock_and_a_sync(
    handlers,
    feed_clock,
    feeds,
    feed_sandbox,
):
    django, counting, fast = handlers
    forget_feeds()
    request = Case("GET", "/feed/acme.json")

    def both() -> tuple:
        return agreed(fast, django, request)

    first = both()
    calls = counting.calls
    assert both() == first and counting.calls == calls
    feed_clock.now += 5  # max-age counts down: not the kept answer
    later = both()
    assert counting.calls == calls
    assert dict(later[1])["Cache-Control"] != dict(first[1])["Cache-Control"]
    feed_clock.now += 3 * 3600  # the syncs stopped: stale, cached a minute
    stale = both()
    assert b'"stale": true' in stale[2] and b'"stale": false' in first[2]
    assert dict(stale[1])["Cache-Control"] == "public, max-age=60"
    snapshot = FeedSnapshot.objects.get(account__slug="acme")
    snapshot.posts = snapshot.posts[:1]
    snapshot.save()  # the write drops the served copy
    fewer = both()
    assert counting.calls == calls + 1  # a miss: Django rebuilt it
    assert fewer[2].count(b'"media_type"') < first[2].count(b'"media_type"')


def test_a_broken_feed_rule_is_logged_and_django_answers(
    handlers,
    feed_clock,
    feeds,
    monkeypatch,
    caplog,
):
    assert_a_broken_rule_is_logged_and_django_answers(
        handlers,
        monkeypatch,
        caplog,
        rule="accounts.feed_serving_policy.feed_answer",
        path="/feed/acme.json",
    )


def test_deleted_pictures_stop_being_served_by_every_path_and_the_copy_is_bounded(
    handlers,
    feed_clock,
    feeds,
    settings,
):
    django, counting, fast = handlers
    pictures, _, _ = feeds
    forget_feeds()
    # Django reads them; the first read after a deletion (none kept) starts the
    # generation, the next ones keep them.
    for path in pictures * 2:
        assert call(fast, Case("GET", path).build())[0] == "200 OK"
    calls = counting.calls
    kept = [call(fast, Case("GET", path).build()) for path in pictures]
    assert counting.calls == calls  # from this process's copy
    assert kept == [call(django, Case("GET", path).build()) for path in pictures]
    feed_delete(account=InstagramAccount.objects.get(slug="acme"))  # deletes its pictures
    for path in pictures:
        got = call(fast, Case("GET", path).build())
        assert got[0] == "404 Not Found"
        assert got == call(django, Case("GET", path).build())
    assert counting.calls == calls + len(pictures)  # the copies went with the generation
    # Bounded: the least recently served go first; one over a quarter of it is not kept.
    narrow = FeedSnapshot.objects.get(account__slug="narrow").posts
    paths = [
        f"/feed/img/{s['sha256']}-{s['width']}.jpg" for p in narrow for s in p["image"]["sizes"]
    ]
    sizes = [len(call(django, Case("GET", path).build())[2]) for path in paths]
    budget = settings.FEED_IMAGE_MEMORY_BYTES = sum(sizes) // 2
    served_images.forget()
    for path in paths:
        call(django, Case("GET", path).build())
        assert served_images._held <= budget
    kept_names = list(served_images._copies)
    assert len(kept_names) < len(paths)
    smallest = min(range(len(paths)), key=sizes.__getitem__)
    call(django, Case("GET", paths[smallest]).build())
    assert list(served_images._copies)[-1] == paths[smallest].rsplit("/", 1)[1]
    big = [p for p, n in zip(paths, sizes, strict=True) if n > budget // 4]
    assert not any(p.rsplit("/", 1)[1] in served_images._copies for p in big)
