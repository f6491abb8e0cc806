"""The real client: headless Chromium runs the published Instafeed.js 2.1.0 (from
npm, node_modules/) on a page of *another origin* than the agent, the way a
user's site does, with the token from the agent's ``.js`` snippet or ``.json`` URL.

The site is a small HTTP server on 127.0.0.1 serving the page and instafeed.min.js;
the agent is the live server on localhost, so every token request is cross-origin
and ALLOWED_DOMAINS (set to the site's full origin) is exercised for real: the
browser enforces CORS on the JSON, the agent checks the Referer on the snippet.
Instafeed.js calls https://graph.instagram.com/me/media; Playwright routes those
requests to the sandbox Instagram's ``/me/media``, which accepts only the token it
minted for the account and lists pictures it serves itself.
"""

import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings

from accounts.models import InstagramAccount
from tests.factories import make_account

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

INSTAFEED = Path(settings.BASE_DIR) / "node_modules/instafeed.js/dist/instafeed.min.js"


SNIPPET_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>shop</title></head><body>
<div id="instafeed"></div>
<script src="{agent}/token/{slug}.js"></script>
<script src="/instafeed.min.js"></script>
<script>
  window.feedError = null;
  new Instafeed({{
    accessToken: InstagramToken,
    error: function (err) {{ window.feedError = String(err && err.message); }}
  }}).run();
</script>
</body></html>"""

JSON_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>shop</title></head><body>
<div id="instafeed"></div>
<script src="/instafeed.min.js"></script>
<script>
  window.feedError = null;
  new Instafeed({{
    accessToken: function (done) {{
      fetch("{agent}/token/{slug}.json")
        .then(function (r) {{ return r.json(); }})
        .then(function (d) {{ d.token ? done(null, d.token) : done(new Error(d.detail)); }})
        .catch(done);
    }},
    error: function (err) {{ window.feedError = String(err && err.message); }}
  }}).run();
</script>
</body></html>"""

NULL_PAGE = """<!doctype html><html><head><meta charset="utf-8"></head><body>
<script src="{agent}/token/{slug}.js"></script>
<script src="{agent}/token/{slug}.js"></script>
<script>
  window.after = typeof InstagramToken === "undefined" ? "undefined" : InstagramToken;
</script>
</body></html>"""


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


def _assert_feed_rendered(page):
    page.wait_for_function(
        "document.querySelectorAll('#instafeed img').length >= 3 || window.feedError",
        timeout=15000,
    )
    assert page.evaluate("window.feedError") is None
    # The feed's pictures, not the <img src=x> that Instafeed's default template lets a
    # hostile sandbox caption inject (it renders captions as HTML).
    page.wait_for_function(
        "Array.from(document.querySelectorAll('#instafeed img[src*=\"/sandbox/cdn/\"]'))"
        ".every(img => img.complete && img.naturalWidth > 0)",
        timeout=15000,
    )
    return page.eval_on_selector_all("#instafeed img", "imgs => imgs.length")


def test_instafeed_runs_with_the_token_from_the_js_snippet(page, site, agent, graph, token):
    make_account(slug="acme", username="acme_bakery", token=token)
    snippet = []
    page.on(
        "response",
        lambda r: snippet.append(r) if r.url.startswith(f"{agent}/token/acme.js") else None,
    )
    page.goto(site.page("snippet.html", SNIPPET_PAGE.format(agent=agent, slug="acme")))
    assert _assert_feed_rendered(page) >= 3
    assert page.evaluate("InstagramToken") == token
    assert graph and set(graph) == {token}
    assert snippet[0].status == 200
    assert snippet[0].headers["content-type"] == "text/javascript; charset=utf-8"


def test_instafeed_runs_with_the_json_url_and_the_access_token_function(
    page, site, agent, graph, token
):
    make_account(slug="acme", username="acme_bakery", token=token)
    responses = []
    page.on(
        "response",
        lambda r: responses.append(r) if r.url == f"{agent}/token/acme.json" else None,
    )
    page.goto(site.page("json.html", JSON_PAGE.format(agent=agent, slug="acme")))
    assert _assert_feed_rendered(page) >= 3
    assert graph and set(graph) == {token}
    # The browser let the page read it because the agent allowed the site's origin.
    assert responses[0].headers["access-control-allow-origin"] == site.origin
    assert "origin" in responses[0].headers["vary"].lower()


def test_an_unusable_token_sets_null_and_says_why_in_the_console(page, site, agent):
    make_account(slug="broken", status=InstagramAccount.Status.NEEDS_RECONNECT)
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    page.goto(site.page("null.html", NULL_PAGE.format(agent=agent, slug="broken")))
    page.wait_for_function("window.after !== undefined", timeout=10000)
    # Included twice: no redeclaration error, the global is null, the console says why.
    assert page.evaluate("window.after") is None
    why = [e for e in errors if e.startswith("tokenagent:")]
    assert len(why) == 2
    assert "needs_reconnect" in why[0]
    assert not [e for e in errors if e.startswith("uncaught")]


def test_a_site_outside_allowed_domains_gets_nothing(
    page, site, live_server, settings, graph, token
):
    settings.ALLOWED_DOMAINS = "shop.example"
    make_account(slug="acme", username="acme_bakery", token=token)
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(site.page("json.html", JSON_PAGE.format(agent=live_server.url, slug="acme")))
    page.wait_for_function("window.feedError", timeout=15000)
    assert page.evaluate("document.querySelectorAll('#instafeed img').length") == 0
    assert graph == []  # Instafeed.js never got a token to call Instagram with
    assert any("CORS" in e or "Access-Control-Allow-Origin" in e for e in errors), errors
    page.goto(site.page("snippet.html", SNIPPET_PAGE.format(agent=live_server.url, slug="acme")))
    page.wait_for_load_state("load")
    # 403: the browser does not run it, so the global is never set.
    assert page.evaluate("typeof InstagramToken") == "undefined"
    assert graph == []
