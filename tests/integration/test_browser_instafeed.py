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

import pytest

from accounts.models import InstagramAccount
from tests.factories import make_account
from tests.integration.browser_site import assert_feed_rendered

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


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


def test_instafeed_runs_with_the_token_from_the_js_snippet(page, site, agent, graph, token):
    make_account(slug="acme", username="acme_bakery", token=token)
    snippet = []
    page.on(
        "response",
        lambda r: snippet.append(r) if r.url.startswith(f"{agent}/token/acme.js") else None,
    )
    page.goto(site.page("snippet.html", SNIPPET_PAGE.format(agent=agent, slug="acme")))
    assert assert_feed_rendered(page) >= 3
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
    assert assert_feed_rendered(page) >= 3
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


# A page that hides its address: the script tag sends neither Referer nor Origin.
HIDDEN_PAGE = """<!doctype html><html><head><meta charset="utf-8">{meta}</head><body>
<script {attribute} src="{agent}/token/{slug}.js"></script>
<script>
  window.after = typeof InstagramToken === "undefined" ? "undefined" : InstagramToken;
</script>
</body></html>"""


@pytest.mark.parametrize(
    ("meta", "attribute"),
    [
        ("", 'referrerpolicy="no-referrer"'),
        ('<meta name="referrer" content="no-referrer">', ""),
    ],
)
def test_a_page_hiding_its_address_gets_no_token(
    page, site, live_server, settings, meta, attribute
):
    """An unlisted site must not get the token by suppressing its Referer."""
    settings.ALLOWED_DOMAINS = "shop.example"
    make_account(slug="acme", username="acme_bakery", token="IGAAhiddenPageToken000000001")
    requests = []
    page.on("request", lambda r: requests.append(r) if "/token/acme.js" in r.url else None)
    html = HIDDEN_PAGE.format(meta=meta, attribute=attribute, agent=live_server.url, slug="acme")
    page.goto(site.page("hidden.html", html))
    page.wait_for_function("window.after !== undefined", timeout=10000)
    assert page.evaluate("window.after") == "undefined"
    # The browser really sent no address, so only the agent's refusal stopped it.
    sent = requests[0].headers
    assert not sent.get("referer") and not sent.get("origin")


# What the README tells a listed site with a no-referrer policy to do.
LISTED_NO_REFERRER_PAGE = SNIPPET_PAGE.replace(
    "<title>", '<meta name="referrer" content="no-referrer"><title>'
).replace(
    '<script src="{agent}', '<script referrerpolicy="strict-origin-when-cross-origin" src="{agent}'
)


def test_a_listed_site_with_a_no_referrer_policy_renders_when_its_tag_sends_the_origin(
    page, site, agent, graph, token
):
    make_account(slug="acme", username="acme_bakery", token=token)
    page.goto(site.page("listed.html", LISTED_NO_REFERRER_PAGE.format(agent=agent, slug="acme")))
    assert assert_feed_rendered(page) >= 3
    assert set(graph) == {token}


# instatokend's documented client code, with only the host changed.
INSTATOKEND_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>shop</title>
</head><body>
<div id="instafeed"></div>
<script src="/instafeed.min.js"></script>
<script>
  window.feedError = null;
  fetch("{agent}/token/my-instagram-1")
    .then(r => r.json())
    .then(d => new Instafeed({{accessToken: d.token}}).run())
    .catch(e => {{ window.feedError = String(e); }});
</script>
</body></html>"""


def test_instatokends_page_renders_with_only_the_host_changed(page, site, agent, graph, token):
    make_account(slug="my-instagram-1", username="acme_bakery", token=token)
    page.goto(site.page("instatokend.html", INSTATOKEND_PAGE.format(agent=agent)))
    assert assert_feed_rendered(page) >= 3
    assert set(graph) == {token}
