"""The owner's preview page, the snippet partial and the ALLOWED_DOMAINS warning."""

import base64
import hashlib
import html
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.template import Context, Template
from django.test import RequestFactory

from accounts import snippets
from accounts.models import InstagramAccount
from accounts.selectors import serving
from tests.factories import make_account

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]


def test_preview_needs_an_owner(client, django_user_model):
    make_account(slug="acme")
    response = client.get("/accounts/acme/preview/")
    assert response.status_code == 302
    assert "/login/" in response["Location"]
    client.force_login(django_user_model.objects.create_user(username="visitor"))
    assert client.get("/accounts/acme/preview/").status_code == 403


def test_preview_unknown_account_is_404(staff_client):
    assert staff_client.get("/accounts/nobody/preview/").status_code == 404


def test_preview_loads_instafeed_from_the_cdn_with_integrity_through_the_snippet(staff_client):
    make_account(slug="acme", username="acme_bakery")
    response = staff_client.get("/accounts/acme/preview/")
    assert response.status_code == 200
    html = response.content.decode()
    cdn = f'<script src="{snippets.INSTAFEED_CDN_URL}" integrity="{snippets.INSTAFEED_INTEGRITY}"'
    assert cdn in html
    assert '<script src="/token/acme.js"></script>' in html
    assert 'data-js-name="InstagramToken"' in html
    assert 'id="instafeed"' in html
    # the code to paste, with the agent's real host
    assert "&lt;script src=&quot;http://testserver/token/acme.js&quot;&gt;" in html.replace(
        '"', "&quot;"
    )
    assert "http://testserver/token/acme.json" in html
    assert "accessToken: function (done)" in html
    assert "graph-redirect.js" not in html  # a real Graph URL needs no redirect
    assert "Any website can load your Instagram tokens" in html
    assert serving.served_token("acme").token() not in html


def test_preview_of_an_unusable_account_says_why(staff_client):
    make_account(slug="broken", status=InstagramAccount.Status.NEEDS_RECONNECT)
    html = staff_client.get("/accounts/broken/preview/").content.decode()
    assert "token is unusable (needs_reconnect)" in html


def test_preview_redirects_instafeed_to_another_graph_server(staff_client, settings):
    settings.INSTAGRAM_GRAPH_URL = "http://127.0.0.1:8000/sandbox/"
    make_account(slug="acme")
    html = staff_client.get("/accounts/acme/preview/").content.decode()
    assert 'graph-redirect.js" data-graph-url="http://127.0.0.1:8000/sandbox"' in html


def test_integrity_hash_matches_the_published_file():
    """The hard-coded hash is that of npm's instafeed.js 2.1.0 dist file, which
    the CDN serves byte for byte (installed by scripts/install-test-tools)."""
    path = Path(django_settings.BASE_DIR) / "node_modules/instafeed.js/dist/instafeed.min.js"
    if not path.exists():
        pytest.skip("node_modules is not installed (scripts/install-test-tools)")
    digest = base64.b64encode(hashlib.sha384(path.read_bytes()).digest()).decode()
    assert snippets.INSTAFEED_INTEGRITY == f"sha384-{digest}"
    assert "v2.1.0" in path.read_text()[:200]


def _render(template: str, **context) -> str:
    request = RequestFactory().get("/", secure=True, HTTP_HOST="agent.example.com")
    return Template(template).render(Context({"request": request, **context}))


def test_snippet_partial_uses_the_agents_real_host_and_the_js_name(settings):
    settings.ALLOWED_HOSTS = ["agent.example.com"]
    settings.JS_CONSTANT_NAME = "IgToken"
    account = make_account(slug="acme", username="acme_bakery")
    html = _render('{% include "accounts/_account_snippets.html" %}', account=account)
    assert "&lt;script src=&quot;https://agent.example.com/token/acme.js&quot;&gt;" in html.replace(
        '"', "&quot;"
    )
    assert "accessToken: IgToken" in html
    assert 'fetch("https://agent.example.com/token/acme.json")' in html
    assert snippets.INSTAFEED_INTEGRITY in html
    assert "/accounts/acme/preview/" in html


def test_cors_warning_is_red_while_unset_and_gone_once_set(settings):
    settings.ALLOWED_DOMAINS = ""
    html = _render("{% load token_serving %}{% cors_warning %}")
    assert 'class="warning cors-warning"' in html
    assert "ALLOWED_DOMAINS" in html
    assert "example.com www.example.com" in html
    settings.ALLOWED_DOMAINS = "shop.example"
    assert "cors-warning" not in _render("{% load token_serving %}{% cors_warning %}")
    settings.ALLOWED_DOMAINS = "shop.example https://bad.example/path"
    html = _render("{% load token_serving %}{% cors_warning %}")
    assert "match nothing" in html
    assert "https://bad.example/path" in html


def test_every_snippet_passes_the_options_that_render_captions_as_text(settings):
    """The account page's two snippets and the README's pass accounts/snippets.py's
    TEXT_ONLY_OPTIONS verbatim (the browser test
    tests/integration/test_browser_captions.py runs them)."""
    settings.ALLOWED_HOSTS = ["agent.example.com"]
    account = make_account(slug="acme", username="acme_bakery")
    partial = html.unescape(
        _render('{% include "accounts/_account_snippets.html" %}', account=account)
    )
    options = snippets.TEXT_ONLY_OPTIONS
    assert "transform: function (item)" in options and "{{caption}}" in options
    assert partial.count(options) == 2
    readme = (Path(django_settings.BASE_DIR) / "README.md").read_text()
    assert readme.count(options) == 2


def test_the_preview_runs_the_snippets_options_as_the_agent_serves_them(staff_client):
    """preview.js holds no copy of TEXT_ONLY_OPTIONS: the page loads them, verbatim,
    from the agent just before it (tests/integration/test_browser_captions.py runs it)."""
    make_account(slug="acme", username="acme_bakery")
    served = staff_client.get("/preview/instafeed-options.js")
    assert served.status_code == 200
    assert served["Content-Type"].startswith("text/javascript")
    assert served.content.decode().count(snippets.TEXT_ONLY_OPTIONS) == 1
    page = staff_client.get("/accounts/acme/preview/").content.decode()
    assert page.index("/preview/instafeed-options.js") < page.index("accounts/preview.js")
    preview_js = Path(django_settings.BASE_DIR) / "accounts/static/accounts/preview.js"
    source = preview_js.read_text()
    assert "transform:" not in source and "window.TokenagentTextOnly" in source


def test_the_served_options_need_an_owner(client):
    assert client.get("/preview/instafeed-options.js").status_code == 302


def test_account_snippets_list_every_url_of_the_account(settings):
    settings.ALLOWED_HOSTS = ["agent.example.com"]
    account = make_account(slug="acme", username="acme_bakery")
    partial = _render('{% include "accounts/_account_snippets.html" %}', account=account)
    for url in ("acme.json</code>", "acme</code>", "acme.js</code>", "acme.txt</code>"):
        assert f"<code>https://agent.example.com/token/{url}" in partial, url
    assert "the same JSON (instatokend" in partial
    assert 'referrerpolicy="strict-origin-when-cross-origin"' in html.unescape(partial)
