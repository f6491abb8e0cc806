"""What the browser tests of the feed share (tests/integration/test_browser_feed.py,
test_browser_feed_pages.py): the live agent with feeds read by the real feed_sync
from the sandbox, a site that is not listed, and :class:`Watch`, which records what a
page asks and receives and checks that it stayed clean. The fixtures are imported by
name in tests/integration/conftest.py."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING

import pytest
import requests

from accounts.services.feed import feed_sync
from tests.feed_support import connect, synced
from tests.integration.browser_site import INSTAFEED, Site

if TYPE_CHECKING:
    from playwright.sync_api import Request, Response

INSTAGRAM = re.compile(
    r"^[a-z]+://([^/?#]*\.)?(instagram\.com|cdninstagram\.com|fbcdn\.net)([:/?#]|$)", re.I
)
EVIL_CAPTION = (
    'x"><img src=x onerror="window.pwned=1"><meta http-equiv="refresh" content="0;url=about:blank">'
)
TIMEOUT = 15000


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``; the whole URL when it has no host."""
    found = re.match(r"^[a-z]+://[^/]+", url)
    return found[0] if found else url


class Agent:
    """The live agent with its feeds: acme (the default: 6 posts of every kind),
    bakery (3 posts, served stale: its last sync failed) and nosync (connected,
    never read); ``tokens`` holds the real token strings."""

    def __init__(self, url: str, sandbox):
        self.url = url
        acme, acme_token = synced(
            sandbox, slug="acme", username="acme_bakery", captions={0: EVIL_CAPTION}
        )
        acme.is_default = True
        acme.save()
        bakery, bakery_token = synced(
            sandbox, slug="bakery", username="the_bakery", posts=3, captions={2: EVIL_CAPTION}
        )
        sandbox.fail("media", ["http500"])
        feed_sync(account=bakery)
        _, nosync_token = connect(sandbox, slug="nosync", username="no_sync_yet")
        self.tokens = [acme_token, bakery_token, nosync_token]

    def feed(self, slug: str) -> dict:
        return requests.get(f"{self.url}/feed/{slug}.json", timeout=10).json()

    def posts(self, slug: str) -> list[dict]:
        return self.feed(slug)["posts"]

    def images(self, slug: str, indexes=None) -> list[str]:
        posts = self.posts(slug)
        return [posts[i]["image"]["url"] for i in (indexes or range(len(posts)))]


@pytest.fixture
def own_cache(settings):
    """A cache of this test's own (the sandbox's state and the served copies)."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"browser-feed-{uuid.uuid4()}",
        }
    }


@pytest.fixture
def live_agent(own_cache, agent, feed_sandbox):
    return Agent(agent, feed_sandbox)


@pytest.fixture
def other_site(tmp_path_factory):
    """A site that is not in the agent's ALLOWED_DOMAINS."""
    root = tmp_path_factory.mktemp("other-site")
    (root / "instafeed.min.js").write_bytes(INSTAFEED.read_bytes())
    s = Site(root)
    yield s
    s.close()


def assert_no_cors_for(url: str, origin: str) -> None:
    """What the agent answers that site: the feed, but nothing a browser lets it read."""
    answer = requests.get(url, headers={"Origin": origin}, timeout=10)
    assert answer.status_code == 200
    assert "Access-Control-Allow-Origin" not in answer.headers
    assert answer.headers["Vary"] == "Origin, Accept-Encoding"


def until(page, expression: str):
    """Wait until a JavaScript expression is truthy (passed as a function: polling a
    string would need eval, which the strict-CSP page refuses)."""
    page.wait_for_function(f"() => ({expression})", timeout=TIMEOUT)


class Watch:
    """Everything the page asks and receives."""

    def __init__(self, page, agent: Agent, site: Site, *, also: tuple[str, ...] = ()):
        self.page, self.agent, self.site = page, agent, site
        # Other origins the page may ask (jsDelivr, for the snippets that load Instafeed.js).
        self.also = set(also)
        self.requests: list[Request] = []
        self.responses: list[Response] = []
        self.instagram: list[str] = []
        self.console: list[tuple[str, str]] = []
        self.page_errors: list[str] = []
        self.dialogs: list[str] = []
        page.context.route(INSTAGRAM, self._refuse)
        page.on("request", lambda r: self.requests.append(r))
        page.on("response", lambda r: self.responses.append(r))
        page.on("console", lambda m: self.console.append((m.type, m.text)))
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        page.on("dialog", self._dialog)

    def _refuse(self, route):
        self.instagram.append(route.request.url)
        route.abort()

    def _dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def goto(self, name: str, html: str):
        self.url = self.site.page(name, html)
        self.page.goto(self.url)

    def errors(self) -> list[str]:
        return [text for kind, text in self.console if kind == "error"]

    def agent_paths(self, prefix: str) -> list[str]:
        """Paths (with query) of the requests to the agent starting with ``prefix``."""
        paths = [r.url.removeprefix(self.agent.url) for r in self.requests]
        return [
            p
            for r, p in zip(self.requests, paths, strict=True)
            if r.url.startswith(self.agent.url) and p.startswith(prefix)
        ]

    def load_all_images(self):
        """Scroll every image in (lazy ones too) and wait until each has loaded."""
        self.page.evaluate("document.querySelectorAll('img').forEach(i => i.scrollIntoView())")
        until(self.page, "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")

    def assert_clean(self):
        agent = self.agent.url
        assert self.instagram == []
        origins = {_origin(r.url) for r in self.requests}
        assert origins <= {self.site.origin, agent, *self.also}, origins
        assert not self.agent_paths("/sandbox/")  # the stand-in Instagram, its CDN
        assert not self.agent_paths("/token")
        images = [r.url for r in self.requests if r.resource_type == "image"]
        assert all(u.startswith(f"{agent}/feed/img/") for u in images), images
        sources = self.page.eval_on_selector_all(
            "img", "imgs => imgs.flatMap(i => [i.src, i.currentSrc].filter(Boolean))"
        )
        assert all(u.startswith(f"{agent}/feed/img/") for u in sources), sources
        for response in self.responses:
            try:
                body = response.body()
            except Exception:  # noqa: BLE001, S112 - redirects, aborted and opaque bodies
                continue
            for token in self.agent.tokens:
                assert token.encode() not in body, response.url
        assert self.page_errors == []
        assert self.dialogs == []
        # The captions with markup were text everywhere.
        assert self.page.url == self.url
        assert self.page.evaluate("typeof window.pwned") == "undefined"
        # Anything a caption could inject, where the scripts render, and a refresh anywhere.
        injected = (
            "document.querySelectorAll(':is(#instafeed, #second, [data-tokenagent-feed]) "
            ':is(meta, script, b, img[src="x"]), meta[http-equiv=refresh]\').length'
        )
        assert self.page.evaluate(injected) == 0


@pytest.fixture
def watch(page, live_agent, site):
    return Watch(page, live_agent, site)
