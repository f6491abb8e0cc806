"""What the owner is told to paste, run in Chromium against the real agent: the
account page's and the README's feed snippets (the embed, the Instafeed.js adapter)
on a listed site of another origin, and the preview page, which renders the embed
from the agent itself (so offline too, jsDelivr unreachable) and the Instafeed.js
adapter once the CDN answers. Each page is checked clean as in test_browser_feed.py
(pictures from the agent, nothing from Instagram, no token, captions as text)."""

import html
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.template.loader import render_to_string
from django.test import RequestFactory

from accounts import snippets
from accounts.models import InstagramAccount
from tests.integration.feed_browser import Watch, until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

README = Path(settings.BASE_DIR) / "README.md"
JSDELIVR = "https://cdn.jsdelivr.net"


def _page(snippet: str) -> str:
    return (
        f'<!doctype html><html><head><meta charset="utf-8"></head><body>\n{snippet}\n</body></html>'
    )


def _code_blocks(rendered: str) -> list[str]:
    return [html.unescape(b) for b in re.findall(r"<pre><code>(.*?)</code></pre>", rendered, re.S)]


def _account_page_feed_snippets(agent_url: str) -> list[str]:
    host = agent_url.split("://", 1)[1]
    request = RequestFactory().get("/", HTTP_HOST=host)
    account = InstagramAccount.objects.get(slug="acme")
    rendered = render_to_string(
        "accounts/_account_feed_snippets.html", {"account": account, "request": request}
    )
    return _code_blocks(rendered)


def _readme_feed_snippets(agent_url: str) -> list[str]:
    text = README.read_text()
    section = text.split("## Show your feed on your site", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```html\n(.*?)```", section, re.S)
    return [b.replace("https://agent.example.com", agent_url) for b in blocks]


def _assert_shows_the_feed(page, watch: Watch, snippet: str, name: str) -> None:
    watch.goto(name, _page(snippet))
    posts = watch.agent.posts("acme")
    if "data-tokenagent-feed" in snippet:
        until(page, "document.querySelector('.tokenagent-feed--ready')")
        alts = page.eval_on_selector_all(".tokenagent-feed__image", "is => is.map(i => i.alt)")
        assert alts[0] == posts[0]["caption"]
        assert len(alts) == len(posts)
    else:
        until(page, f"document.querySelectorAll('#instafeed img').length === {len(posts)}")
        titles = page.eval_on_selector_all("#instafeed img", "is => is.map(i => i.title)")
        assert titles == [p.get("caption", "") for p in posts]
    watch.load_all_images()
    watch.assert_clean()


def test_the_account_pages_feed_snippets_show_the_feed_on_a_listed_site(
    page, live_agent, site, cdn
):
    blocks = _account_page_feed_snippets(live_agent.url)
    assert len(blocks) == 2  # the embed, then the adapter
    assert "feed/embed.js" in blocks[0] and "/feed/acme.js" in blocks[1]
    assert snippets.INSTAFEED_INTEGRITY in blocks[1]
    for i, block in enumerate(blocks):
        watch = Watch(page, live_agent, site, also=(JSDELIVR,))
        _assert_shows_the_feed(page, watch, block, f"account-feed-{i}.html")


def test_the_readmes_feed_snippets_show_the_feed_on_a_listed_site(page, live_agent, site, cdn):
    blocks = _readme_feed_snippets(live_agent.url)
    assert len(blocks) == 2
    for i, block in enumerate(blocks):
        watch = Watch(page, live_agent, site, also=(JSDELIVR,))
        _assert_shows_the_feed(page, watch, block, f"readme-feed-{i}.html")


def _signed_in(page, client, django_user_model, live_server):
    client.force_login(django_user_model.objects.create_user(username="o", is_staff=True))
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )


def test_the_preview_renders_the_embed_from_the_agent_with_the_cdn_unreachable(
    page, live_agent, live_server, client, django_user_model
):
    _signed_in(page, client, django_user_model, live_server)
    page.route(f"{JSDELIVR}/**", lambda route: route.abort())
    page.goto(f"{live_server.url}/accounts/acme/preview/")
    status = page.locator("#embed-status")
    status.filter(has_text="The embed rendered this feed from the agent.").wait_for(timeout=15000)
    posts = live_agent.posts("acme")
    alts = page.eval_on_selector_all("#embed-preview img", "is => is.map(i => i.alt)")
    assert len(alts) == len(posts) and alts[0] == posts[0]["caption"]
    srcs = page.eval_on_selector_all("#embed-preview img", "is => is.map(i => i.src)")
    assert srcs == live_agent.images("acme")
    said = "Instafeed.js did not load from the CDN"
    assert said in page.text_content("#adapter-status")
    assert page.evaluate("typeof window.pwned") == "undefined"


def test_the_preview_of_a_feed_only_account_renders_with_the_adapter_and_no_token(
    page, live_agent, live_server, client, django_user_model, cdn
):
    InstagramAccount.objects.filter(slug="acme").update(feed_only=True)
    acme = InstagramAccount.objects.get(slug="acme")
    acme.save()  # the receivers drop the served copies
    _signed_in(page, client, django_user_model, live_server)
    bodies = []
    page.on("response", lambda r: bodies.append(r))
    page.goto(f"{live_server.url}/accounts/acme/preview/")
    page.locator("#adapter-status").filter(has_text="rendered this feed from the agent").wait_for(
        timeout=15000
    )
    page.locator("#embed-status").filter(has_text="rendered this feed").wait_for(timeout=15000)
    posts = live_agent.posts("acme")
    images = page.eval_on_selector_all("#instafeed-adapter img", "is => is.map(i => i.src)")
    assert images == live_agent.images("acme")
    assert page.locator("#instafeed").count() == 0  # no token path for a feed-only account
    for response in bodies:
        try:
            body = response.body()
        except Exception:  # noqa: BLE001, S112 - redirects and opaque bodies
            continue
        for token in live_agent.tokens:
            assert token.encode() not in body, response.url
    assert len(posts) == len(images)
