"""The user's website for the browser tests: a small HTTP server on 127.0.0.1 (another
origin than the agent on localhost) serving test pages and the published
Instafeed.js 2.1.0 from npm (node_modules/), plus fixtures that stand in for the
Graph API and jsDelivr in the closed network.

Test modules import the fixtures they use by name."""

import json
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings

from accounts import snippets

INSTAFEED = Path(settings.BASE_DIR) / "node_modules/instafeed.js/dist/instafeed.min.js"
# The smallest valid PNG (1x1, transparent).
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


class Site:
    """The user's website: a static server for the test pages and Instafeed.js."""

    def __init__(self, root: Path):
        self.root = root
        handler = partial(_QuietHandler, directory=str(root))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.origin = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def page(self, name: str, html: str) -> str:
        (self.root / name).write_text(html)
        return f"{self.origin}/{name}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def site(tmp_path):
    if not INSTAFEED.is_file():
        pytest.fail("node_modules/instafeed.js is missing: run scripts/install-test-tools (npm ci)")
    (tmp_path / "instafeed.min.js").write_bytes(INSTAFEED.read_bytes())
    s = Site(tmp_path)
    yield s
    s.close()


@pytest.fixture
def agent(live_server, settings, site):
    """The agent, restricted to the site's origin (the full-origin form of ALLOWED_DOMAINS)."""
    settings.ALLOWED_DOMAINS = f"https://unrelated.example {site.origin}"
    return live_server.url


@pytest.fixture
def graph(page, sandbox_live):
    """Instafeed.js's Graph API calls, routed to the sandbox Instagram's ``/me/media``
    (which checks the token); records the tokens Instafeed.js sent."""
    seen: list[str] = []

    def handle(route):
        url = urlsplit(route.request.url)
        seen.append(parse_qs(url.query).get("access_token", [""])[0])
        response = route.fetch(url=f"{sandbox_live.base_url}{url.path}?{url.query}")
        route.fulfill(response=response)

    page.route("https://graph.instagram.com/**", handle)
    return seen


@pytest.fixture
def token(sandbox_live) -> str:
    """A long-lived token the sandbox accepts."""
    return sandbox_live.mint(username="acme_bakery", age_hours=48)["access_token"]


@pytest.fixture
def cdn(page):
    """jsDelivr, serving the npm file the snippets load (byte for byte what the CDN
    serves, so the integrity hash holds)."""
    page.route(
        snippets.INSTAFEED_CDN_URL,
        lambda route: route.fulfill(
            body=INSTAFEED.read_bytes(),
            content_type="application/javascript",
            headers={"Access-Control-Allow-Origin": "*"},
        ),
    )


def media_page(posts: list[dict]) -> dict:
    """A Graph ``/me/media`` answer with ``posts`` (caption and picture URL each)."""
    return {
        "data": [
            {
                "id": f"1790000000000{i:04d}",
                "media_type": "IMAGE",
                "media_url": post["media_url"],
                "permalink": f"https://www.instagram.com/p/C{i:04d}/",
                "caption": post["caption"],
                "timestamp": "2026-11-01T08:00:00+0000",
                "username": "acme_bakery",
            }
            for i, post in enumerate(posts)
        ],
        "paging": {},
    }


def route_graph(page, media: dict) -> None:
    """Answer Instafeed.js's Graph calls with ``media`` and its pictures with a PNG
    (from Instagram's CDN hosts, which the preview page's policy allows)."""
    page.route(
        "https://graph.instagram.com/**",
        lambda route: route.fulfill(
            body=json.dumps(media),
            content_type="application/json",
            headers={"Access-Control-Allow-Origin": "*"},
        ),
    )
    page.route(
        "https://*.cdninstagram.com/**",
        lambda route: route.fulfill(body=PNG, content_type="image/png"),
    )


def assert_feed_rendered(page, count: int = 3) -> int:
    page.wait_for_function(
        f"document.querySelectorAll('#instafeed img').length >= {count} || window.feedError",
        timeout=15000,
    )
    assert page.evaluate("window.feedError") is None
    # The feed's pictures (the sandbox CDN's, or Instagram's routed above), not an
    # <img src=x> that Instafeed's default template lets a hostile caption inject.
    page.wait_for_function(
        "Array.from(document.querySelectorAll("
        '\'#instafeed img[src*="/sandbox/cdn/"], #instafeed img[src*="cdninstagram"]\'))'
        ".every(img => img.complete && img.naturalWidth > 0)",
        timeout=15000,
    )
    return page.eval_on_selector_all("#instafeed img", "imgs => imgs.length")
