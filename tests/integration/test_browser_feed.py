"""The feed JavaScript in headless Chromium against the real agent: the Instafeed.js
adapter (``/feed/<account>.js``) under the published, unmodified Instafeed.js 2.1.0
from npm, and the agent's own embed (``/feed/embed.js``), on a site of another
origin listed in ALLOWED_DOMAINS (tests/integration/browser_site.py), then on one
that is not.

The agent is the live server; its feeds were read by the real feed_sync from the
sandbox Instagram (tests/feed_support.py), whose first post carries a caption
written to break out of an attribute, navigate the page and run script, and whose
fourth the sandbox's own markup caption.

Every test ends with :meth:`Watch.assert_clean` (tests/integration/feed_browser.py):
each picture came from the agent's ``/feed/img/``, nothing was requested from anyone
but the site and the agent (the Instagram hosts are routed to a failure and recorded;
the sandbox Instagram and its CDN are never asked), no response the page received
contains an account's real token, nothing asked the agent for a token, no script
error or dialog, and the captions with markup stayed text (no ``window.pwned``, no
injected element, no navigation)."""

import pytest

from accounts.models import InstagramAccount
from accounts.services.accounts import account_rename
from tests.integration.feed_browser import (
    EVIL_CAPTION,
    Agent,
    Watch,
    assert_no_cors_for,
    until,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
EMBED_SIZES = "auto, (max-width: 480px) 50vw, 33vw"


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


# --- The Instafeed.js adapter ---------------------------------------------------------------


def test_adapter_loaded_before_instafeed_renders_the_agents_feed_with_limit_and_next(
    page, live_agent, watch
):
    agent = live_agent
    scripts = _scripts(f"{agent.url}/feed/acme.js", "/instafeed.min.js")
    setup = """window.feed = new Instafeed({
      accessToken: InstagramToken, limit: 2, after: record("after"), error: failed
    });
    window.feed.run();"""
    watch.goto("before.html", _adapter_page(scripts, setup))
    _wait_feeds(page, "window.events.length === 1")
    assert page.evaluate("document.querySelectorAll('#instafeed img').length") == 2
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
    assert [src for _, src, _ in rendered] == agent.images("acme")
    assert [title for _, _, title in rendered] == [p.get("caption", "") for p in posts]
    assert rendered[0][2] == EVIL_CAPTION
    assert "<script>" in rendered[3][2]  # the sandbox's markup caption, as text
    # The first page asked for Instafeed's limit; next() followed the agent's paging.next.
    media = watch.agent_paths("/feed/acme/media")
    assert media[0] == "/feed/acme/media?limit=2"
    assert [m.split("&after=")[0] for m in media] == ["/feed/acme/media?limit=2"] * 3
    assert len(set(media)) == 3
    assert page.evaluate("InstagramToken") == f"tokenagent:{agent.url}/feed/acme/media"
    watch.load_all_images()
    watch.assert_clean()


def test_adapter_loaded_after_instafeed_with_a_const_name(page, live_agent, watch):
    agent = live_agent
    scripts = _scripts("/instafeed.min.js", f"{agent.url}/feed/acme.js?const=ShopFeed")
    setup = 'new Instafeed({accessToken: ShopFeed, after: record("after"), error: failed}).run();'
    watch.goto("after.html", _adapter_page(scripts, setup))
    _wait_feeds(page, "window.events.length")
    srcs = page.eval_on_selector_all("#instafeed img", "imgs => imgs.map(i => i.src)")
    assert srcs == agent.images("acme")
    assert page.evaluate("typeof InstagramToken") == "undefined"
    assert page.evaluate("ShopFeed").startswith("tokenagent:")
    assert watch.agent_paths("/feed/acme/media") == ["/feed/acme/media"]
    watch.load_all_images()
    watch.assert_clean()


def test_two_adapters_two_names_two_accounts_on_one_page(page, live_agent, watch):
    agent = live_agent
    # One adapter before Instafeed.js, one after it; the default account's own URL.
    scripts = _scripts(
        f"{agent.url}/feed.js",
        "/instafeed.min.js",
        f"{agent.url}/feed/bakery.js?const=BakeryFeed",
    )
    setup = """
    new Instafeed({accessToken: InstagramToken, limit: 2, after: record("acme"),
                   error: failed}).run();
    new Instafeed({accessToken: BakeryFeed, target: "second", after: record("bakery"),
                   error: failed}).run();"""
    watch.goto("two.html", _adapter_page(scripts, setup))
    _wait_feeds(page, "window.events.length === 2")
    first = page.eval_on_selector_all("#instafeed img", "imgs => imgs.map(i => i.src)")
    assert first == agent.images("acme", [0, 1])
    second = page.eval_on_selector_all("#second img", "imgs => imgs.map(i => [i.src, i.title])")
    bakery = agent.posts("bakery")
    assert [src for src, _ in second] == agent.images("bakery")
    assert [title for _, title in second] == [p.get("caption", "") for p in bakery]
    assert second[2][1] == EVIL_CAPTION
    assert watch.agent_paths("/feed/media") == ["/feed/media?limit=2"]
    watch.load_all_images()
    watch.assert_clean()


def test_adapter_with_a_custom_template_transform_filter_sort_render_and_hooks(
    page, live_agent, watch
):
    agent = live_agent
    scripts = _scripts(f"{agent.url}/feed/acme.js", "/instafeed.min.js")
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
    order = [4, 3, 2, 0]  # videos filtered out, oldest first
    kinds = {"IMAGE": "image", "CAROUSEL_ALBUM": "album"}
    expected = [
        f"{posts[i].get('caption', 'no caption')} #{kinds[posts[i]['media_type']]}" for i in order
    ]
    assert [f[0] for f in figures] == ["image", "image", "album", "image"]
    assert [f[1] for f in figures] == expected
    assert [f[2] for f in figures] == expected
    assert [f[3] for f in figures] == agent.images("acme", order)
    # Escaping leaves Instafeed's hashtag extraction as it was.
    assert page.evaluate(f"window.tags['{posts[3]['id']}']") == ["sandbox"]
    # What the hooks get is escaped text, too.
    assert page.evaluate("window.successData.data.length") == len(posts)
    escaped = (
        EVIL_CAPTION.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
    )
    assert page.evaluate("window.successData.data[0].caption") == escaped
    assert page.evaluate("document.querySelector('.rendered').textContent") == EVIL_CAPTION
    watch.load_all_images()
    watch.assert_clean()


@pytest.mark.parametrize(
    ("slug", "unlisted", "expected"),
    [
        ("gone", False, "HTTP 404"),
        ("nosync", False, "HTTP 503"),
        ("acme", True, "does not allow this site"),
    ],
    ids=["404", "503", "unlisted-origin"],
)
def test_adapter_reports_the_agents_errors_in_the_console_and_the_error_hook(
    page, live_agent, site, other_site, slug, unlisted, expected
):
    """An account renamed since the page got its adapter (cached for minutes), one
    never read yet, a site that is not listed."""
    agent = live_agent
    watch = Watch(page, agent, other_site if unlisted else site)
    adapter = "acme" if slug == "gone" else slug
    if slug == "gone":

        def renamed_meanwhile(route):
            response = route.fetch()
            account_rename(account=InstagramAccount.objects.get(slug="acme"), slug="gone-now")
            route.fulfill(response=response)

        page.route(f"{agent.url}/feed/acme.js", renamed_meanwhile)
    scripts = _scripts(f"{agent.url}/feed/{adapter}.js", "/instafeed.min.js")
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
        # The page asked; the agent grants that site nothing, so the browser withheld it.
        assert watch.agent_paths("/feed/acme/media") == ["/feed/acme/media"]
        assert_no_cors_for(f"{agent.url}/feed/acme/media", other_site.origin)
        assert any("CORS" in e for e in watch.errors())
    watch.assert_clean()


def test_adapter_leaves_instafeed_instances_with_a_real_token_alone(page, live_agent, watch):
    """The wrapper acts only on its placeholders: another instance on the page still
    calls Instagram (routed to a failure here), with its own token."""
    agent = live_agent
    scripts = _scripts(f"{agent.url}/feed/acme.js", "/instafeed.min.js")
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


def test_adapter_serves_an_amd_loaded_instafeed_through_install(page, live_agent, watch):
    """A loader keeps Instafeed.js off window: the page hands it to the adapter."""
    agent = live_agent
    scripts = (
        "<script>window.define = function (factory) { window.Loaded = factory(); };"
        " window.define.amd = true;</script>\n"
    ) + _scripts("/instafeed.min.js", f"{agent.url}/feed/acme.js")
    setup = """
    window.tokenagentAdapter.install(window.Loaded);
    new Loaded({accessToken: InstagramToken, limit: 2, after: record("after"),
                error: failed}).run();"""
    watch.goto("amd.html", _adapter_page(scripts, setup))
    _wait_feeds(page, "window.events.length")
    assert page.evaluate("typeof window.Instafeed") == "undefined"
    srcs = page.eval_on_selector_all("#instafeed img", "imgs => imgs.map(i => i.src)")
    assert srcs == agent.images("acme", [0, 1])
    watch.load_all_images()
    watch.assert_clean()


# --- The embed ----------------------------------------------------------------------------------


def _embed_page(agent: Agent, body: str, script_attrs: str = "", head: str = "") -> str:
    return f"""<!doctype html><html><head><meta charset="utf-8">{head}<title>shop</title></head>
<body>{body}
<script src="{agent.url}/feed/embed.js" async{script_attrs}></script>
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


def test_embed_renders_linked_responsive_posts_in_several_containers(page, live_agent, watch):
    agent = live_agent
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
        "Sandbox post 2 by @acme_bakery",
        "Sandbox post 3 by @acme_bakery",
        posts[3]["caption"],  # the sandbox's markup caption, as text
        "Instagram post by @acme_bakery",
    ]
    assert items[0]["height"] == "1350"  # the portrait post keeps its own shape
    assert [i["alt"] for i in _items(page, "#b")] == [
        p.get("caption", "") for p in agent.posts("bakery")
    ]
    assert len(_items(page, "#d")) == 2  # the default account
    asked = [p for p in watch.agent_paths("/feed") if not p.startswith("/feed/img/")]
    assert sorted(asked) == [
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


def test_embed_renders_containers_added_later_and_can_skip_its_stylesheet(page, live_agent, watch):
    agent = live_agent
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
    bakery = agent.posts("bakery")
    assert [i["alt"] for i in _items(page, "#late")] == [p["caption"] for p in bakery[:2]]
    assert page.evaluate("document.querySelectorAll('link').length") == 0
    assert watch.agent_paths("/feed/embed.css") == []
    watch.load_all_images()
    watch.assert_clean()


def test_embed_of_a_feed_not_read_yet_keeps_the_sites_content(page, live_agent, watch):
    agent = live_agent
    body = '<div id="a" data-tokenagent-feed="nosync"><a href="/ig">Follow us</a></div>'
    watch.goto("nosync.html", _embed_page(agent, body))
    until(page, "document.querySelector('.tokenagent-feed--error')")
    said = [e for e in watch.errors() if e.startswith("tokenagent: ")]
    assert len(said) == 1 and "HTTP 503" in said[0] and "not read this account" in said[0]
    assert page.evaluate("document.querySelector('#a').innerHTML") == '<a href="/ig">Follow us</a>'
    watch.assert_clean()


def test_embed_on_an_unlisted_site_renders_nothing_and_says_why(page, live_agent, other_site):
    agent = live_agent
    watch = Watch(page, agent, other_site)
    body = '<div id="a" data-tokenagent-feed="acme"><a href="/ig">Instagram</a></div>'
    watch.goto("unlisted.html", _embed_page(agent, body))
    until(page, "document.querySelector('.tokenagent-feed--error')")
    said = [e for e in watch.errors() if e.startswith("tokenagent: ")]
    assert len(said) == 1
    assert f"{agent.url}/feed/acme.json" in said[0]
    assert "does not allow this site" in said[0] and other_site.origin in said[0]
    # The site's own fallback content stays; nothing of the feed was rendered.
    assert page.evaluate("document.querySelector('#a').innerHTML") == (
        '<a href="/ig">Instagram</a>'
    )
    assert page.evaluate("document.images.length") == 0
    assert watch.agent_paths("/feed/acme.json") == ["/feed/acme.json"]
    assert_no_cors_for(f"{agent.url}/feed/acme.json", other_site.origin)
    # No feed JSON reaches the page through CORS, whatever the script.
    for url in ("/feed/acme.json", "/feed/acme/media", "/feed.json"):
        read = page.evaluate(
            f"""fetch("{agent.url}{url}").then(r => r.text(), e => "blocked: " + e.name)"""
        )
        assert read == "blocked: TypeError", url
    watch.assert_clean()


def test_embed_under_a_strict_csp_renders_without_violations(page, live_agent, watch):
    agent = live_agent
    a = agent.url
    csp = f"default-src 'none'; script-src {a}; img-src {a}; connect-src {a}; style-src {a}"
    page.add_init_script(
        "window.violations = [];"
        "document.addEventListener('securitypolicyviolation', e => "
        "window.violations.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    body = '<div data-tokenagent-feed="acme"></div><div data-tokenagent-feed="bakery"></div>'
    head = f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
    watch.goto("csp.html", _embed_page(agent, body, head=head))
    _wait_ready(page, 2)
    count = len(agent.posts("acme")) + len(agent.posts("bakery"))
    assert page.evaluate("document.querySelectorAll('.tokenagent-feed__item').length") == count
    assert (
        page.evaluate("getComputedStyle(document.querySelector('.tokenagent-feed__grid')).display")
        == "grid"
    )
    watch.load_all_images()
    assert page.evaluate("window.violations") == []
    assert not [e for e in watch.errors() if "Content Security Policy" in e]
    assert page.evaluate("document.querySelectorAll('[style]').length") == 0
    watch.assert_clean()
