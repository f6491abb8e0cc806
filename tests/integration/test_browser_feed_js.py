"""The feed JavaScript in headless Chromium, on a site of another origin than the agent:
the Instafeed.js adapter (``/feed/<account>.js``) under the published, unmodified
Instafeed.js 2.1.0, and the agent's own embed (``/feed/embed.js``). The agent is
``feed_js_server.FeedAgent``, which serves the static files as the Django views must.

Besides its own point, every test ends with :meth:`Watch.assert_clean`: each image
came from the agent, nothing was requested from anyone but the site and the agent
(Instagram's hosts are routed to a failure and recorded), no response the page
received contains the token, no request asked the agent for a token, no script
error, and the caption with markup stayed text (no ``window.pwned``, no injected
element, no navigation)."""

import re

import pytest

from tests.integration.feed_js_server import (
    EVIL_CAPTION,
    FAKE_TOKEN,
    FakeAccount,
    FakePost,
    FeedAgent,
    Site,
    acme_posts,
)

pytestmark = pytest.mark.browser

INSTAGRAM = re.compile(
    r"^[a-z]+://([^/?#]*\.)?(instagram\.com|cdninstagram\.com|fbcdn\.net)([:/?#]|$)", re.I
)
EMBED_SIZES = "auto, (max-width: 480px) 50vw, 33vw"
TIMEOUT = 15000


@pytest.fixture
def site():
    s = Site()
    yield s
    s.close()


@pytest.fixture
def other_site():
    """A site that is not in the agent's allow-list."""
    s = Site()
    yield s
    s.close()


@pytest.fixture
def agent(site):
    bakery = [
        FakePost("IMAGE", "Rye loaf"),
        FakePost("CAROUSEL_ALBUM", "Buns", children=["IMAGE", "IMAGE"]),
        FakePost("IMAGE", EVIL_CAPTION),
    ]
    a = FeedAgent(
        {
            "acme": FakeAccount("acme_bakery", acme_posts()),
            "bakery": FakeAccount("the_bakery", bakery, stale=True),
            "gone": FakeAccount("gone", [], feed_error=404),
            "nosync": FakeAccount("nosync", [], feed_error=503),
        },
        allowed_origins={site.origin},
    )
    yield a
    a.close()


def until(page, expression: str):
    """Wait until a JavaScript expression is truthy. It is passed as a function: polling
    a string would need eval, which the strict-CSP page refuses."""
    page.wait_for_function(f"() => ({expression})", timeout=TIMEOUT)


class Watch:
    """Everything the page asks and receives."""

    def __init__(self, page, agent: FeedAgent, site: Site):
        self.page, self.agent, self.site = page, agent, site
        self.requests, self.responses, self.instagram = [], [], []
        self.console: list[tuple[str, str]] = []
        self.page_errors: list[str] = []
        page.context.route(INSTAGRAM, self._refuse)
        page.on("request", lambda r: self.requests.append(r))
        page.on("response", lambda r: self.responses.append(r))
        page.on("console", lambda m: self.console.append((m.type, m.text)))
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))

    def _refuse(self, route):
        self.instagram.append(route.request.url)
        route.abort()

    def goto(self, name: str, html: str, headers: dict | None = None):
        self.url = self.site.page(name, html, headers)
        self.page.goto(self.url)

    def errors(self) -> list[str]:
        return [text for kind, text in self.console if kind == "error"]

    def agent_paths(self, prefix: str) -> list[str]:
        return [path for _, path, _ in self.agent.requests if path.startswith(prefix)]

    def load_all_images(self):
        """Scroll every image in (lazy ones too) and wait until each has loaded."""
        self.page.evaluate("document.querySelectorAll('img').forEach(i => i.scrollIntoView())")
        until(self.page, "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")

    def assert_clean(self):
        agent = self.agent.origin
        assert self.instagram == []
        origins = {re.match(r"^[a-z]+://[^/]+", r.url)[0] for r in self.requests}
        assert origins <= {self.site.origin, agent}, origins
        images = [r.url for r in self.requests if r.resource_type == "image"]
        assert all(u.startswith(f"{agent}/feed/images/") for u in images), images
        sources = self.page.eval_on_selector_all(
            "img", "imgs => imgs.flatMap(i => [i.src, i.currentSrc].filter(Boolean))"
        )
        assert all(u.startswith(f"{agent}/feed/images/") for u in sources), sources
        assert not self.agent_paths("/token")
        for response in self.responses:
            try:
                body = response.body()
            except Exception:  # noqa: BLE001, S112 - redirects, aborted and opaque bodies
                continue
            assert FAKE_TOKEN.encode() not in body, response.url
        assert self.page_errors == []
        # The caption with markup was text everywhere.
        assert self.page.url == self.url
        assert self.page.evaluate("typeof window.pwned") == "undefined"
        injected = "document.querySelectorAll('meta[http-equiv], img[src=\"x\"]').length"
        assert self.page.evaluate(injected) == 0


@pytest.fixture
def watch(page, agent, site):
    return Watch(page, agent, site)


def _adapter_page(scripts: str, setup: str) -> str:
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>shop</title></head>
<body><div id="instafeed"></div><div id="second"></div>
{scripts}
<script>
  window.events = [];
  window.feedErrors = [];
  function record(name) {{ return function () {{ window.events.push(name); }}; }}
  function failed(e) {{ window.feedErrors.push(String(e && e.message)); }}
  {setup}
</script>
</body></html>"""


def _scripts(*sources: str) -> str:
    return "\n".join(f'<script src="{src}"></script>' for src in sources)


def _wait_feeds(page, condition: str):
    """Wait until ``condition`` holds or Instafeed reported an error; assert it did not."""
    until(page, f"({condition}) || window.feedErrors.length")
    assert page.evaluate("window.feedErrors") == []


def _image_urls(agent: FeedAgent, slug: str, indexes=None) -> list[str]:
    posts = agent.posts(slug)
    return [posts[i]["image"]["url"] for i in (indexes or range(len(posts)))]


# --- The Instafeed.js adapter --------------------------------------------------------


def test_adapter_loaded_before_instafeed_renders_the_agents_feed_with_limit_and_next(
    page, agent, site, watch
):
    scripts = _scripts(f"{agent.origin}/feed/acme.js", "/instafeed.min.js")
    setup = """window.feed = new Instafeed({
      accessToken: InstagramToken, limit: 3, after: record("after"), error: failed
    });
    window.feed.run();"""
    watch.goto("before.html", _adapter_page(scripts, setup))
    _wait_feeds(page, "window.events.length === 1")
    assert page.evaluate("document.querySelectorAll('#instafeed img').length") == 3
    assert page.evaluate("window.feed.hasNext()") is True
    page.evaluate("window.feed.next()")
    until(page, "window.events.length === 2")
    page.evaluate("window.feed.next()")
    until(page, "window.events.length === 3")
    assert page.evaluate("window.feed.hasNext()") is False

    rendered = page.eval_on_selector_all(
        "#instafeed a",
        "links => links.map(a => [a.href, a.firstChild.src, a.firstChild.title])",
    )
    posts = agent.posts("acme")
    assert [href for href, _, _ in rendered] == [p["permalink"] for p in posts]
    # Videos show their thumbnail (mirrored on the agent), never Instagram's video URL.
    assert [src for _, src, _ in rendered] == _image_urls(agent, "acme")
    assert [title for _, _, title in rendered] == [p.get("caption", "") for p in posts]
    assert rendered[0][2] == EVIL_CAPTION
    # The first page asked for Instafeed's limit; next() followed the agent's paging.next.
    media = watch.agent_paths("/feed/acme/media")
    assert media[0] == "/feed/acme/media?limit=3"
    assert [m.split("&after=")[0] for m in media] == ["/feed/acme/media?limit=3"] * 3
    assert len(set(media)) == 3
    token = page.evaluate("InstagramToken")
    assert token == f"tokenagent:{agent.origin}/feed/acme/media"
    watch.load_all_images()
    watch.assert_clean()


def test_adapter_loaded_after_instafeed_with_a_const_name(page, agent, site, watch):
    scripts = _scripts("/instafeed.min.js", f"{agent.origin}/feed/acme.js?const=ShopFeed")
    setup = (
        """new Instafeed({accessToken: ShopFeed, after: record("after"), error: failed}).run();"""
    )
    watch.goto("after.html", _adapter_page(scripts, setup))
    _wait_feeds(page, "window.events.length")
    srcs = page.eval_on_selector_all("#instafeed img", "imgs => imgs.map(i => i.src)")
    assert srcs == _image_urls(agent, "acme")
    assert page.evaluate("typeof InstagramToken") == "undefined"
    assert page.evaluate("ShopFeed").startswith("tokenagent:")
    assert watch.agent_paths("/feed/acme/media") == ["/feed/acme/media"]
    watch.load_all_images()
    watch.assert_clean()


def test_two_adapters_two_names_two_accounts_on_one_page(page, agent, site, watch):
    # One adapter before Instafeed.js, one after it.
    scripts = _scripts(
        f"{agent.origin}/feed/acme.js",
        "/instafeed.min.js",
        f"{agent.origin}/feed/bakery.js?const=BakeryFeed",
    )
    setup = """
    new Instafeed({accessToken: InstagramToken, limit: 2, after: record("acme"),
                   error: failed}).run();
    new Instafeed({accessToken: BakeryFeed, target: "second", after: record("bakery"),
                   error: failed}).run();"""
    watch.goto("two.html", _adapter_page(scripts, setup))
    _wait_feeds(page, "window.events.length === 2")
    first = page.eval_on_selector_all("#instafeed img", "imgs => imgs.map(i => i.src)")
    second = page.eval_on_selector_all("#second img", "imgs => imgs.map(i => i.title)")
    assert first == _image_urls(agent, "acme", [0, 1])
    assert second == ["Rye loaf", "Buns", EVIL_CAPTION]
    assert page.eval_on_selector_all("#second img", "imgs => imgs.map(i => i.src)") == (
        _image_urls(agent, "bakery")
    )
    watch.load_all_images()
    watch.assert_clean()


def test_adapter_with_template_transform_filter_sort_render_and_hooks(page, agent, site, watch):
    scripts = _scripts(f"{agent.origin}/feed/acme.js", "/instafeed.min.js")
    setup = """
    window.tags = {};
    new Instafeed({
      accessToken: InstagramToken,
      template: '<figure class="post" data-type="{{type}}"><a href="{{link}}">' +
        '<img src="{{image}}" alt="{{caption}}"></a><figcaption>{{caption}}</figcaption></figure>',
      transform: function (item) {
        window.tags[item.id] = item.tags;
        item.caption = (item.caption || "no caption") + " #" + item.type;
        return item;
      },
      filter: function (item) { return item.type !== "video"; },
      sort: function (a, b) { return a.timestamp < b.timestamp ? -1 : 1; },
      before: record("before"),
      success: function (data) { window.successData = data; window.events.push("success"); },
      after: record("after"),
      error: failed
    }).run();
    new Instafeed({
      accessToken: InstagramToken, target: "second", limit: 1,
      render: function (item) { return '<p class="rendered">' + item.caption + '</p>'; },
      error: failed
    }).run();"""
    watch.goto("custom.html", _adapter_page(scripts, setup))
    _wait_feeds(page, "window.events.includes('after') && document.querySelector('.rendered')")
    assert page.evaluate("window.events") == ["before", "success", "after"]
    figures = page.eval_on_selector_all(
        "figure.post",
        "fs => fs.map(f => [f.dataset.type, f.querySelector('figcaption').textContent, "
        "f.querySelector('img').alt, f.querySelector('img').src])",
    )
    posts = agent.posts("acme")
    order = [5, 4, 3, 2, 0]  # videos filtered out, oldest first
    expected = [
        "#sale today only #image",
        "Croissants & coffee <3 'fresh' #image",
        "no caption #image",
        "Three cakes #album",
        f"{EVIL_CAPTION} #image",
    ]
    assert [f[0] for f in figures] == ["image", "image", "image", "album", "image"]
    assert [f[1] for f in figures] == expected
    assert [f[2] for f in figures] == expected
    assert [f[3] for f in figures] == _image_urls(agent, "acme", order)
    # Escaping leaves Instafeed's hashtag extraction as it was.
    assert page.evaluate(f"window.tags['{posts[5]['id']}']") == ["sale"]
    # What the hooks get is escaped text, too.
    assert page.evaluate("window.successData.data.length") == 7
    assert page.evaluate("window.successData.data[0].caption") == (
        EVIL_CAPTION.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
    )
    assert page.evaluate("document.querySelector('.rendered').textContent") == EVIL_CAPTION
    watch.load_all_images()
    watch.assert_clean()


@pytest.mark.parametrize(
    "slug, unlisted, expected",
    [
        ("gone", False, "HTTP 404"),
        ("nosync", False, "HTTP 503"),
        ("acme", True, "does not allow this site"),
    ],
    ids=["404", "503", "unlisted-origin"],
)
def test_adapter_reports_the_agents_errors_in_the_console_and_the_error_hook(
    page, agent, site, other_site, slug, unlisted, expected
):
    watch = Watch(page, agent, other_site if unlisted else site)
    scripts = _scripts(f"{agent.origin}/feed/{slug}.js", "/instafeed.min.js")
    setup = "new Instafeed({accessToken: InstagramToken, error: failed}).run();"
    watch.goto("error.html", _adapter_page(scripts, setup))
    until(page, "window.feedErrors.length")
    hook = page.evaluate("window.feedErrors")
    assert len(hook) == 1
    assert hook[0].startswith("api request error: tokenagent: ")
    assert expected in hook[0]
    said = [e for e in watch.errors() if e.startswith("tokenagent: ")]
    assert len(said) == 1 and expected in said[0]
    assert page.evaluate("document.querySelectorAll('#instafeed *').length") == 0
    if unlisted:
        # The agent refused the site; the browser would not have let it read the feed.
        assert ("GET", f"/feed/{slug}/media", other_site.origin) in agent.requests
        assert any("CORS" in e for e in watch.errors())
    watch.assert_clean()


def test_adapter_leaves_instafeed_instances_with_a_real_token_alone(page, agent, site, watch):
    """The wrapper acts only on its placeholders: another instance on the page still
    calls Instagram (routed to a failure here), with its own token."""
    scripts = _scripts(f"{agent.origin}/feed/acme.js", "/instafeed.min.js")
    setup = """
    new Instafeed({accessToken: InstagramToken, limit: 1, after: record("agent"),
                   error: failed}).run();
    new Instafeed({accessToken: "IGQVJother", target: "second", error: failed}).run();"""
    watch.goto("mixed.html", _adapter_page(scripts, setup))
    until(page, "window.events.length && window.feedErrors.length")
    assert page.evaluate("document.querySelectorAll('#instafeed img').length") == 1
    assert len(watch.instagram) == 1
    assert watch.instagram[0].startswith("https://graph.instagram.com/me/media?")
    assert "access_token=IGQVJother" in watch.instagram[0]
    assert "tokenagent" not in watch.instagram[0]
    # That one was expected; assert_clean checks that there was no other.
    expected = watch.instagram.pop()
    watch.requests = [r for r in watch.requests if r.url != expected]
    watch.assert_clean()


def test_adapter_serves_an_amd_loaded_instafeed_through_install(page, agent, site, watch):
    """A loader keeps Instafeed.js off window: the page hands it to the adapter."""
    scripts = (
        "<script>window.define = function (factory) { window.Loaded = factory(); };"
        " window.define.amd = true;</script>\n"
    ) + _scripts("/instafeed.min.js", f"{agent.origin}/feed/acme.js")
    setup = """
    window.tokenagentAdapter.install(window.Loaded);
    new Loaded({accessToken: InstagramToken, limit: 2, after: record("after"),
                error: failed}).run();"""
    watch.goto("amd.html", _adapter_page(scripts, setup))
    _wait_feeds(page, "window.events.length")
    assert page.evaluate("typeof window.Instafeed") == "undefined"
    srcs = page.eval_on_selector_all("#instafeed img", "imgs => imgs.map(i => i.src)")
    assert srcs == _image_urls(agent, "acme", [0, 1])
    watch.load_all_images()
    watch.assert_clean()


# --- The embed ---------------------------------------------------------------------------


def _embed_page(agent: FeedAgent, body: str, script_attrs: str = "") -> str:
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>shop</title></head>
<body>{body}
<script src="{agent.origin}/feed/embed.js" async{script_attrs}></script>
</body></html>"""


def _items(page, selector: str) -> list[dict]:
    return page.eval_on_selector_all(
        f"{selector} li",
        """lis => lis.map(li => {
          const img = li.querySelector("img"), label = li.querySelector(".tokenagent-feed__label");
          return {cls: li.className, href: li.querySelector("a").href, alt: img.alt,
                  src: img.getAttribute("src"), srcset: img.getAttribute("srcset"),
                  sizes: img.getAttribute("sizes"), width: img.getAttribute("width"),
                  height: img.getAttribute("height"), loading: img.getAttribute("loading"),
                  label: label && label.textContent};
        })""",
    )


def _wait_ready(page, count: int):
    until(page, f"document.querySelectorAll('.tokenagent-feed--ready').length === {count}")


def test_embed_renders_linked_responsive_posts_in_several_containers(page, agent, site, watch):
    body = (
        '<div id="a" data-tokenagent-feed="acme" data-limit="5"></div>'
        '<div id="b" data-tokenagent-feed="bakery"></div>'
        '<div id="d" data-tokenagent-feed="" data-limit="2"></div><footer>end</footer>'
    )
    watch.goto("embed.html", _embed_page(agent, body))
    _wait_ready(page, 3)
    posts = agent.posts("acme")
    items = _items(page, "#a")
    assert len(items) == 5
    kinds = ["image", "video", "carousel", "image", "image"]
    for item, post, kind in zip(items, posts, kinds, strict=False):
        image = post["image"]
        assert item["cls"] == f"tokenagent-feed__item tokenagent-feed__item--{kind}"
        assert item["href"] == post["permalink"]
        assert item["src"] == image["url"]
        assert item["srcset"] == ", ".join(f"{s['url']} {s['width']}w" for s in image["sizes"])
        assert item["sizes"] == EMBED_SIZES
        assert (item["width"], item["height"]) == (str(image["width"]), str(image["height"]))
        assert item["loading"] == "lazy"
        assert item["label"] == {"video": "Video", "carousel": "Carousel"}.get(kind)
    assert [i["alt"] for i in items] == [
        EVIL_CAPTION,
        "Our new oven, in motion",
        "Three cakes",
        "Instagram post by @acme_bakery",
        "Croissants & coffee <3 'fresh'",
    ]
    assert items[3]["height"] == "800"  # the portrait post keeps its own shape
    assert [i["alt"] for i in _items(page, "#b")] == ["Rye loaf", "Buns", EVIL_CAPTION]
    assert len(_items(page, "#d")) == 2  # the default account
    asked = watch.agent_paths("/feed.json") + watch.agent_paths("/feed/")
    assert sorted(p for p in asked if not p.startswith("/feed/images/")) == [
        "/feed.json?limit=2",
        "/feed/acme.json?limit=5",
        "/feed/bakery.json",
        "/feed/embed.css",
        "/feed/embed.js",
    ]
    classes = page.eval_on_selector_all("[data-tokenagent-feed]", "ds => ds.map(d => d.className)")
    assert classes == [
        "tokenagent-feed tokenagent-feed--ready",
        "tokenagent-feed tokenagent-feed--ready tokenagent-feed--stale",
        "tokenagent-feed tokenagent-feed--ready",
    ]
    # The stylesheet made a grid; the labels are there for screen readers only.
    assert (
        page.evaluate("getComputedStyle(document.querySelector('.tokenagent-feed__grid')).display")
        == "grid"
    )
    label = "document.querySelector('.tokenagent-feed__label').getBoundingClientRect()"
    assert page.evaluate(f"{label}.width <= 1 && {label}.height <= 1")
    # Images loading later do not move anything.
    page.evaluate(
        "window.shift = 0; new PerformanceObserver(l => l.getEntries()"
        ".forEach(e => window.shift += e.value)).observe({type: 'layout-shift'})"
    )
    watch.load_all_images()
    page.wait_for_timeout(300)
    assert page.evaluate("window.shift") == 0
    watch.assert_clean()


def test_embed_renders_containers_added_later_and_can_skip_its_stylesheet(page, agent, site, watch):
    watch.goto(
        "later.html",
        _embed_page(
            agent,
            '<div id="a" data-tokenagent-feed="acme" data-limit="1"></div>',
            ' data-css="none"',
        ),
    )
    _wait_ready(page, 1)
    page.evaluate(
        """() => {
          const div = document.createElement("div");
          div.id = "late";
          div.setAttribute("data-tokenagent-feed", "bakery");
          div.setAttribute("data-limit", "2");
          const wrap = document.createElement("section");
          wrap.appendChild(div);
          document.body.appendChild(wrap);
        }"""
    )
    _wait_ready(page, 2)
    assert [i["alt"] for i in _items(page, "#late")] == ["Rye loaf", "Buns"]
    assert page.evaluate("document.querySelectorAll('link').length") == 0
    assert watch.agent_paths("/feed/embed.css") == []
    watch.load_all_images()
    watch.assert_clean()


def test_embed_on_an_unlisted_site_renders_nothing_and_says_why(page, agent, other_site):
    watch = Watch(page, agent, other_site)
    body = '<div id="a" data-tokenagent-feed="acme"><a href="/ig">Instagram</a></div>'
    watch.goto("unlisted.html", _embed_page(agent, body))
    until(page, "document.querySelector('.tokenagent-feed--error')")
    said = [e for e in watch.errors() if e.startswith("tokenagent: ")]
    assert len(said) == 1
    assert f"{agent.origin}/feed/acme.json" in said[0]
    assert "does not allow this site" in said[0] and other_site.origin in said[0]
    # The site's own fallback content stays; nothing of the feed was rendered.
    assert page.evaluate("document.querySelector('#a').innerHTML") == (
        '<a href="/ig">Instagram</a>'
    )
    assert page.evaluate("document.images.length") == 0
    assert ("GET", "/feed/acme.json", other_site.origin) in agent.requests
    # No feed JSON reaches the page through CORS, whatever the script.
    read = page.evaluate(
        f"""fetch("{agent.origin}/feed/acme.json").then(r => r.text(), e => "blocked: " + e.name)"""
    )
    assert read == "blocked: TypeError"
    watch.assert_clean()


def test_embed_under_a_strict_csp_renders_without_violations(page, agent, site, watch):
    a = agent.origin
    csp = f"default-src 'none'; script-src {a}; img-src {a}; connect-src {a}; style-src {a}"
    page.add_init_script(
        "window.violations = [];"
        "document.addEventListener('securitypolicyviolation', e => "
        "window.violations.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    body = '<div data-tokenagent-feed="acme"></div><div data-tokenagent-feed="bakery"></div>'
    watch.goto("csp.html", _embed_page(agent, body), {"Content-Security-Policy": csp})
    _wait_ready(page, 2)
    assert page.evaluate("document.querySelectorAll('.tokenagent-feed__item').length") == 10
    assert (
        page.evaluate("getComputedStyle(document.querySelector('.tokenagent-feed__grid')).display")
        == "grid"
    )
    watch.load_all_images()
    assert page.evaluate("window.violations") == []
    assert not [e for e in watch.errors() if "Content Security Policy" in e]
    assert page.evaluate("document.querySelectorAll('[style]').length") == 0
    watch.assert_clean()
