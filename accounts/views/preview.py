"""The owner's preview: the account's feed as a site shows it, beside the code to
paste: the agent's own embed (from the agent itself, so it works offline, in the
sandbox too), and Instafeed.js (from the public CDN, with its integrity hash, as on
a user's site, when the CDN answers) through the adapter and, unless the account is
feed only, through the token snippet, with the snippets' own options (served as a
script, since the page's policy allows no inline code)."""

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts import snippets
from accounts.models import InstagramAccount
from accounts.permissions import owner_required
from accounts.selectors import serving

REAL_GRAPH_URL = "https://graph.instagram.com"
# The adapter's global on this page (the token snippet sets JS_CONSTANT_NAME).
FEED_JS_NAME = "TokenagentPreviewFeed"
# The options every token snippet passes (accounts/snippets.py), for preview.js.
TEXT_ONLY_JS = f"window.TokenagentTextOnly = {{\n{snippets.TEXT_ONLY_OPTIONS}\n}};\n"


@owner_required
def token_preview(request, slug: str):
    account = InstagramAccount.objects.filter(slug=slug).first()
    if account is None:
        raise Http404("No such account.")
    entry = serving.served_token(slug)
    graph_url = settings.INSTAGRAM_GRAPH_URL.rstrip("/")
    return render(
        request,
        "accounts/preview.html",
        {
            "account": account,
            "entry": entry,
            "usable": entry.ok,
            "js_name": settings.JS_CONSTANT_NAME,
            "feed_js_name": FEED_JS_NAME,
            "instafeed_src": snippets.INSTAFEED_CDN_URL,
            "instafeed_integrity": snippets.INSTAFEED_INTEGRITY,
            # Instafeed.js always calls graph.instagram.com; when the agent points at
            # another Graph server (the sandbox), the preview redirects its calls there.
            "graph_url": graph_url if graph_url != REAL_GRAPH_URL else "",
        },
    )


@owner_required
@require_GET
def instafeed_options_js(request: HttpRequest) -> HttpResponse:
    """``window.TokenagentTextOnly``: the Instafeed.js options of the snippets, verbatim."""
    return HttpResponse(TEXT_ONLY_JS, content_type="text/javascript; charset=utf-8")
