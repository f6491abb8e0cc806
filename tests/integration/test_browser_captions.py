"""Captions are text, never markup, in every snippet the agent hands out.

Instafeed.js 2.1.0's default template puts the raw caption into ``title="..."``
and the result into ``innerHTML``: a caption is whatever the account's owner (or
whoever took over the account) typed. Here Chromium runs, on a page of another
origin, exactly the code the account page and the README tell a site to paste,
and the agent's own preview page, with the Graph API answering captions that
try to break out of the attribute, navigate the page and run script.

The captions come from a route this test controls (Playwright answers
graph.instagram.com); jsDelivr is answered with the npm file the snippets pin.
"""

import html
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.template.loader import render_to_string
from django.test import RequestFactory

from tests.factories import make_account
from tests.integration.browser_site import media_page, route_graph

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CAPTIONS = [
    'fresh bread x"><meta http-equiv="refresh" content="0;url=/navigated.html">',
    "\"><img src=x onerror=\"window.pwned='img'\"><script>window.pwned='script'</script>"
    " & <b>rye</b> 'quoted'",
    "x' onmouseover='window.pwned=1' y='",
]
POSTS = [
    {"caption": c, "media_url": f"https://scontent.cdninstagram.com/v/p{i}.jpg"}
    for i, c in enumerate(CAPTIONS)
]
README = Path(settings.BASE_DIR) / "README.md"


def _page(snippet: str) -> str:
    return (
        f'<!doctype html><html><head><meta charset="utf-8"></head><body>\n{snippet}\n</body></html>'
    )


def _assert_captions_are_text(page, url: str) -> None:
    page.wait_for_function(
        f"document.querySelectorAll('#instafeed img').length >= {len(CAPTIONS)}", timeout=15000
    )
    # A refresh injected by a caption would navigate within this.
    page.wait_for_timeout(1500)
    assert page.url == url
    assert page.evaluate("window.pwned") is None
    images = page.eval_on_selector_all(
        "#instafeed img", "imgs => imgs.map(i => [i.title, i.getAttribute('src')])"
    )
    assert [title for title, _ in images] == CAPTIONS
    assert [src for _, src in images] == [p["media_url"] for p in POSTS]
    assert page.eval_on_selector_all("#instafeed meta, #instafeed script", "e => e.length") == 0
    assert page.eval_on_selector_all("#instafeed *", "e => e.length") == 2 * len(CAPTIONS)


def _account_page_snippets(agent_url: str, account) -> list[str]:
    host = agent_url.split("://", 1)[1]
    request = RequestFactory().get("/", HTTP_HOST=host)
    rendered = render_to_string(
        "accounts/_account_snippets.html", {"account": account, "request": request}
    )
    blocks = [
        html.unescape(b) for b in re.findall(r"<pre><code>(.*?)</code></pre>", rendered, re.S)
    ]
    return [b for b in blocks if "new Instafeed" in b]


def _readme_snippets(agent_url: str) -> list[str]:
    text = README.read_text()
    section = text.split("## Use the token yourself", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```html\n(.*?)```", section, re.S)
    return [b.replace("https://agent.example.com", agent_url) for b in blocks if "Instafeed" in b]


def test_the_account_pages_snippets_render_captions_as_text(page, site, agent, cdn):
    account = make_account(slug="acme", username="acme_bakery", token="IGAAcaptionToken0000001")
    route_graph(page, media_page(POSTS))
    snippets = _account_page_snippets(agent, account)
    assert len(snippets) == 2  # the .js snippet and the JSON URL
    for i, snippet in enumerate(snippets):
        url = site.page(f"account-{i}.html", _page(snippet))
        page.goto(url)
        _assert_captions_are_text(page, url)


def test_the_readmes_snippets_render_captions_as_text(page, site, agent, cdn):
    make_account(slug="acme", username="acme_bakery", token="IGAAcaptionToken0000002")
    route_graph(page, media_page(POSTS))
    snippets = _readme_snippets(agent)
    assert len(snippets) >= 2
    for i, snippet in enumerate(snippets):
        url = site.page(f"readme-{i}.html", _page(snippet))
        page.goto(url)
        _assert_captions_are_text(page, url)


def test_the_preview_page_renders_captions_as_text(
    page, live_server, cdn, client, django_user_model
):
    make_account(slug="acme", username="acme_bakery", token="IGAAcaptionToken0000003")
    route_graph(page, media_page(POSTS))
    client.force_login(django_user_model.objects.create_user(username="o", is_staff=True))
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    url = f"{live_server.url}/accounts/acme/preview/"
    page.goto(url)
    page.locator("#preview-status").filter(has_text="rendered this feed").wait_for(timeout=15000)
    _assert_captions_are_text(page, url)
