"""The agent's feed URLs played by a small stdlib HTTP server, and a site of another
origin, for the browser tests of the feed JavaScript (test_browser_feed_js.py).

:class:`FeedAgent` serves the static files under accounts/static/accounts/feed/ the
way the Django views must, so it doubles as the executable contract for them:

- ``GET /feed/<account>.js[?const=Name]`` (the Instafeed.js adapter): ``?const=``
  checked with ``snippets.js_identifier_problem`` (400 + a ``console.error`` body when
  refused; absent: ``JS_CONSTANT_NAME``), unknown account 404 (same kind of body), else
  200 ``text/javascript; charset=utf-8`` whose body is :func:`adapter_header` (the ONE
  line the adapter reads) followed by adapter.js unchanged, ``Cache-Control: public``,
  an ``ETag``, ``X-Content-Type-Options: nosniff``. No CORS and no Referer gate: the
  file holds no secret, and a site that is not allowed gets a clear console message
  from the adapter when the agent refuses its feed request.
- ``GET /feed/embed.js`` and ``GET /feed/embed.css``: the files unchanged
  (``text/javascript`` / ``text/css``, ``charset=utf-8``); embed.js links embed.css
  from the URL next to its own.
- ``GET /feed/<account>.json[?limit=N]`` and ``GET /feed/<account>/media[?limit=N&after=C]``
  (the Graph ``/me/media`` shape, ``paging.next`` an absolute URL back here, absent on
  the last page): CORS for listed origins only (the ``Origin`` echoed, ``Vary: Origin``),
  403 with a JSON ``{"error", "detail"}`` and no CORS header for any other ``Origin``.
- images on the agent, content-addressed, ``immutable``, ``Cross-Origin-Resource-Policy:
  cross-origin``; and ``/token/<account>.json``/``.js`` with :data:`FAKE_TOKEN`, as the
  agent would, so a test can see that no page ever receives it.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

from PIL import Image

from accounts.snippets import js_identifier_problem, js_refusal, js_string

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "accounts/static/accounts/feed"
INSTAFEED = ROOT / "node_modules/instafeed.js/dist/instafeed.min.js"

FAKE_TOKEN = "IGAAtokenagentFAKEtoken7c41d2e9NEVERinAbrowser"
EVIL_CAPTION = (
    'x"><img src=x onerror="window.pwned=1"><meta http-equiv="refresh" content="0;url=about:blank">'
)
# Instagram's own video URL, as the agent passes it on (PRODUCT.md: video_url).
INSTAGRAM_VIDEO = "https://scontent.cdninstagram.com/v/t50.2886-16/{id}.mp4?oe=6700AA00"
WIDTHS = (160, 320, 640)
DEFAULT_PAGE = 25
MAX_POSTS = 50
JAVASCRIPT = "text/javascript; charset=utf-8"
JSON_TYPE = "application/json"
_ACCOUNT = r"[-a-zA-Z0-9_]{1,64}"
_ROUTES = [
    ("embed_js", re.compile(r"/feed/embed\.js")),
    ("embed_css", re.compile(r"/feed/embed\.css")),
    ("adapter", re.compile(rf"/feed/(?P<slug>{_ACCOUNT})\.js")),
    ("feed", re.compile(rf"/feed/(?P<slug>{_ACCOUNT})\.json")),
    ("feed", re.compile(r"/feed\.json")),
    ("media", re.compile(rf"/feed/(?P<slug>{_ACCOUNT})/media")),
    ("image", re.compile(r"/feed/images/(?P<name>[0-9a-f]{16}\.jpg)")),
    ("token", re.compile(rf"/token/(?P<slug>{_ACCOUNT})\.(?P<ext>json|js)")),
]


def adapter_header(name: str, media_url: str) -> str:
    """The line the ``/feed/<account>.js`` view writes before adapter.js."""
    return (
        "(window.__tokenagentFeeds = window.__tokenagentFeeds || []).push("
        f'{{"name": {js_string(name)}, "media": {js_string(media_url)}}});\n'
    )


@dataclass
class FakePost:
    media_type: str  # IMAGE, VIDEO, CAROUSEL_ALBUM
    caption: str | None = None
    children: list[str] = field(default_factory=list)  # media types of the carousel items
    portrait: bool = False


@dataclass
class FakeAccount:
    username: str
    posts: list[FakePost]
    stale: bool = False
    # Simulate the agent's answer on the feed URLs: 404 (account gone), 503 (no snapshot).
    feed_error: int | None = None


def acme_posts() -> list[FakePost]:
    """Seven posts, newest first: every media type, markup and entities in captions."""
    return [
        FakePost("IMAGE", EVIL_CAPTION),
        FakePost("VIDEO", "Our new oven, in motion"),
        FakePost("CAROUSEL_ALBUM", "Three cakes", children=["IMAGE", "VIDEO", "IMAGE"]),
        FakePost("IMAGE", None, portrait=True),
        FakePost("IMAGE", "Croissants & coffee <3 'fresh'"),
        FakePost("IMAGE", "#sale today only"),
        FakePost("VIDEO", "Second video"),
    ]


def _jpeg(width: int, height: int, seed: int) -> bytes:
    color = ((seed * 67) % 256, (seed * 131) % 256, (seed * 199) % 256)
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "JPEG", quality=70)
    return out.getvalue()


class FeedAgent:
    """The agent's public feed URLs on ``http://127.0.0.1:<port>``; ``requests`` records
    (method, path with query, Origin header) of everything asked."""

    def __init__(
        self,
        accounts: dict[str, FakeAccount],
        *,
        allowed_origins: set[str],
        default_account: str | None = None,
        js_constant_name: str = "InstagramToken",
    ):
        self.accounts = accounts
        self.allowed_origins = allowed_origins
        self.default_account = default_account or next(iter(accounts))
        self.js_constant_name = js_constant_name
        self.requests: list[tuple[str, str, str | None]] = []
        self.images: dict[str, bytes] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.origin = f"http://127.0.0.1:{self.server.server_port}"
        self._snapshots = {slug: self._snapshot(slug, acct) for slug, acct in accounts.items()}
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    # --- the data -------------------------------------------------------------

    def _image(self, seed: int, portrait: bool) -> dict:
        sizes = []
        for width in WIDTHS:
            height = width * 5 // 4 if portrait else width
            body = _jpeg(width, height, seed)
            name = hashlib.sha256(body).hexdigest()[:16] + ".jpg"
            self.images[name] = body
            sizes.append(
                {"url": f"{self.origin}/feed/images/{name}", "width": width, "height": height}
            )
        return {**sizes[-1], "sizes": sizes}

    def _snapshot(self, slug: str, account: FakeAccount) -> list[dict]:
        """The posts in the ``/feed/<account>.json`` shape."""
        posts = []
        for n, fake in enumerate(account.posts):
            seed = sum(map(ord, slug)) * 10 + n
            post_id = f"{17900000000000000 + seed}"
            post = {
                "id": post_id,
                "media_type": fake.media_type,
                "permalink": f"https://www.instagram.com/p/{slug}{n}/",
                "timestamp": f"2024-05-{28 - n:02d}T12:00:00+0000",
            }
            if fake.caption is not None:
                post["caption"] = fake.caption
            children = [
                {
                    "id": f"{post_id}{c}",
                    "media_type": kind,
                    "image": self._image(seed * 7 + c, False),
                }
                for c, kind in enumerate(fake.children)
            ]
            for child in children:
                if child["media_type"] == "VIDEO":
                    child["video_url"] = INSTAGRAM_VIDEO.format(id=child["id"])
            post["image"] = children[0]["image"] if children else self._image(seed, fake.portrait)
            if fake.media_type == "VIDEO":
                post["video_url"] = INSTAGRAM_VIDEO.format(id=post_id)
            if children:
                post["children"] = children
            posts.append(post)
        return posts

    def posts(self, slug: str) -> list[dict]:
        """The account's posts in the ``/feed/<account>.json`` shape, newest first."""
        return self._snapshots[slug]

    def feed_body(self, slug: str, limit: int) -> dict:
        account = self.accounts[slug]
        return {
            "account": slug,
            "username": account.username,
            "updated_at": "2024-05-28T12:30:00Z",
            "stale": account.stale,
            "posts": self._snapshots[slug][:limit],
        }

    def _graph_item(self, post: dict, username: str | None) -> dict:
        """A post in the Graph ``/me/media`` shape, images on the agent."""
        item = {"id": post["id"], "media_type": post["media_type"]}
        if post["media_type"] == "VIDEO":
            item["media_url"] = post["video_url"]
            item["thumbnail_url"] = post["image"]["url"]
        else:
            item["media_url"] = post["image"]["url"]
        for key in ("permalink", "caption", "timestamp"):
            if key in post:
                item[key] = post[key]
        if username:
            item["username"] = username
        if "children" in post:
            item["children"] = {"data": [self._graph_item(c, None) for c in post["children"]]}
        return item

    def media_body(self, slug: str, limit: int, after: str | None) -> dict:
        posts = self._snapshots[slug]
        ids = [p["id"] for p in posts]
        start = ids.index(after) + 1 if after else 0
        page = posts[start : start + limit]
        body = {"data": [self._graph_item(p, self.accounts[slug].username) for p in page]}
        body["paging"] = {}
        if start + limit < len(posts):
            query = urlencode({"limit": limit, "after": page[-1]["id"]})
            body["paging"]["next"] = f"{self.origin}/feed/{slug}/media?{query}"
        return body

    # --- HTTP -----------------------------------------------------------------

    def _handler(self):
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_OPTIONS(self):
                self._send(204, b"", None, cors=True)

            def do_GET(self):
                url = urlsplit(self.path)
                agent.requests.append(("GET", self.path, self.headers.get("Origin")))
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                for name, pattern in _ROUTES:
                    match = pattern.fullmatch(url.path)
                    if match:
                        getattr(self, f"_{name}")(query, **match.groupdict())
                        return
                self._json(404, {"error": "not_found", "detail": "no such URL"})

            def _send(self, status, body: bytes, content_type, *, cors=False, cache=None):
                origin = self.headers.get("Origin")
                tag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
                if status == 200 and self.headers.get("If-None-Match") == tag:
                    status, body = 304, b""
                self.send_response(status)
                if content_type and status != 304:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Content-Type-Options", "nosniff")
                if status in (200, 304):
                    self.send_header("ETag", tag)
                    self.send_header("Cache-Control", cache or "public, max-age=60")
                else:
                    self.send_header("Cache-Control", "no-store")
                if cors:
                    self.send_header("Vary", "Origin")
                    if origin in agent.allowed_origins:
                        self.send_header("Access-Control-Allow-Origin", origin)
                        self.send_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status, data):
                self._send(status, json.dumps(data).encode(), JSON_TYPE, cors=True)

            def _origin_refused(self) -> bool:
                origin = self.headers.get("Origin")
                if origin is None or origin in agent.allowed_origins:
                    return False
                detail = "this site is not allowed to load the feed (ALLOWED_DOMAINS)."
                self._json(403, {"error": "origin_not_allowed", "detail": detail})
                return True

            def _file(self, name, content_type, prefix=""):
                body = prefix.encode() + (STATIC / name).read_bytes()
                self._send(200, body, content_type, cache="public, max-age=300")

            def _embed_js(self, query):
                self._file("embed.js", JAVASCRIPT)

            def _embed_css(self, query):
                self._file("embed.css", "text/css; charset=utf-8")

            def _adapter(self, query, slug):
                name = query.get("const", agent.js_constant_name)
                problem = js_identifier_problem(name)
                if problem:
                    body = js_refusal(f"?const= refused: {problem}; nothing was set.")
                    self._send(400, body.encode(), JAVASCRIPT)
                elif slug not in agent.accounts:
                    self._send(404, js_refusal("unknown account").encode(), JAVASCRIPT)
                else:
                    self._file(
                        "adapter.js",
                        JAVASCRIPT,
                        adapter_header(name, f"{agent.origin}/feed/{slug}/media"),
                    )

            def _limit(self, query, default) -> int | None:
                raw = query.get("limit")
                if raw is None:
                    return default
                if not raw.isdigit() or int(raw) < 1:
                    self._json(
                        400, {"error": "bad_limit", "detail": "limit must be a positive integer"}
                    )
                    return None
                return min(int(raw), MAX_POSTS)

            def _feed_account(self, slug) -> str | None:
                slug = slug or agent.default_account
                account = agent.accounts.get(slug)
                if self._origin_refused():
                    return None
                if account is None or account.feed_error == 404:
                    self._json(404, {"error": "unknown_account", "detail": "no such account"})
                    return None
                if account.feed_error == 503:
                    detail = "the feed has not been read from Instagram yet"
                    self._json(503, {"error": "feed_unavailable", "detail": detail})
                    return None
                return slug

            def _feed(self, query, slug=None):
                slug = self._feed_account(slug)
                limit = slug and self._limit(query, MAX_POSTS)
                if limit:
                    self._json(200, agent.feed_body(slug, limit))

            def _media(self, query, slug):
                slug = self._feed_account(slug)
                limit = slug and self._limit(query, DEFAULT_PAGE)
                if not limit:
                    return
                after = query.get("after")
                if after and after not in {p["id"] for p in agent._snapshots[slug]}:
                    self._json(400, {"error": "bad_cursor", "detail": "unknown paging cursor"})
                    return
                self._json(200, agent.media_body(slug, limit, after))

            def _image(self, query, name):
                body = agent.images.get(name)
                if body is None:
                    self._json(404, {"error": "not_found", "detail": "no such image"})
                    return
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "public, max-age=31536000, immutable")
                self.send_header("Cross-Origin-Resource-Policy", "cross-origin")
                self.end_headers()
                self.wfile.write(body)

            def _token(self, query, slug, ext):
                if ext == "json":
                    self._json(200, {"token": FAKE_TOKEN, "account": slug})
                else:
                    body = f"window.InstagramToken = {js_string(FAKE_TOKEN)};\n"
                    self._send(200, body.encode(), JAVASCRIPT)

        return Handler


class Site:
    """A user's website on its own origin: pages registered with :meth:`page` (with
    their own headers, e.g. a CSP) and the published Instafeed.js at /instafeed.min.js."""

    def __init__(self):
        self.pages: dict[str, tuple[bytes, str, dict[str, str]]] = {
            "/instafeed.min.js": (INSTAFEED.read_bytes(), JAVASCRIPT, {}),
        }
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                found = site.pages.get(urlsplit(self.path).path)
                if found is None:
                    self.send_error(404)
                    return
                body, content_type, headers = found
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def page(self, name: str, html: str, headers: dict[str, str] | None = None) -> str:
        self.pages[f"/{name}"] = (html.encode(), "text/html; charset=utf-8", headers or {})
        return f"{self.origin}/{name}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()
