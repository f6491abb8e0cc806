"""The agent's own URLs (tokenagent/urls.py mounts them at the root, beside the admin
and the sandbox), grouped by audience.

Names are namespaced (``accounts:token-json``); paths and names are stable."""

from django.urls import path

from accounts.views import feed, health, meta, oauth, owner, preview, public, refresh

app_name = "accounts"

# Public token URLs: users' sites depend on them. ``/token/<account>`` is the JSON
# (instatokend's URL), ``.txt`` the plain token; ``/token.json``, ``/token.js`` and
# ``/token`` (plain text) serve the default account (Token Agent's URLs). Every
# token URL answers OPTIONS. ``/healthz`` is for uptime monitors (exempt from the
# HTTPS redirect in settings).
public_urlpatterns = [
    path("token.json", public.token_json, name="default-token-json"),
    path("token.js", public.token_js, name="default-token-js"),
    path("token", public.token_plain, name="default-token-plain"),
    path("token/<slug:slug>.json", public.token_json, name="token-json"),
    path("token/<slug:slug>.js", public.token_js, name="token-js"),
    path("token/<slug:slug>.txt", public.token_plain, name="token-plain"),
    path("token/<slug:slug>", public.token_json, name="token-instatokend"),
    path("healthz", health.healthz, name="healthz"),
]

# Public feed URLs (accounts/views/feed.py; docs/embed.md): the feed as JSON and in
# Graph's /me/media shape, the Instafeed.js adapter, the embed and the mirrored
# pictures. ``/feed.json``, ``/feed.js`` and ``/feed/media`` serve the default
# account. The fixed names come first: the slugs they would shadow (``embed``,
# ``img``) are reserved (services/accounts.py RESERVED_SLUGS). Every one answers OPTIONS.
feed_urlpatterns = [
    path("feed.json", feed.feed_json, name="default-feed-json"),
    path("feed.js", feed.feed_adapter_js, name="default-feed-js"),
    path("feed/media", feed.feed_media, name="default-feed-media"),
    path("feed/embed.js", feed.feed_embed_js, name="feed-embed-js"),
    path("feed/embed.css", feed.feed_embed_css, name="feed-embed-css"),
    path("feed/img/<str:name>", feed.feed_image, name="feed-image"),
    path("feed/<slug:slug>.json", feed.feed_json, name="feed-json"),
    path("feed/<slug:slug>.js", feed.feed_adapter_js, name="feed-js"),
    path("feed/<slug:slug>/media", feed.feed_media, name="feed-media"),
]

# Callbacks and hooks from other machines: Meta's deauthorize and data-deletion
# callbacks (and the deletion status page), the signed refresh hook for external
# schedulers.
callback_urlpatterns = [
    path("instagram/deauthorize/", meta.deauthorize, name="meta-deauthorize"),
    path("instagram/data-deletion/", meta.data_deletion, name="meta-data-deletion"),
    path(
        # Codes are token_urlsafe(): a slug. Anything else is a 404 before any query.
        "instagram/data-deletion/<slug:code>/",
        meta.data_deletion_status,
        name="meta-data-deletion-status",
    ),
    path("hooks/refresh/", refresh.refresh_hook, name="refresh-hook"),
]

# Instagram Login: sign-in, the one redirect URI registered with Meta, sign-out.
oauth_urlpatterns = [
    path("login/", oauth.login, name="login"),
    path("oauth/instagram/callback/", oauth.oauth_callback, name="oauth-callback"),
    path("logout/", oauth.logout, name="logout"),
]

# The owner's pages (behind sign-in) and the client's invite pages.
owner_urlpatterns = [
    path("", owner.home, name="home"),
    path("connect/", owner.connect_start, name="connect"),
    path("accounts/<slug:slug>/", owner.account_detail, name="account"),
    path("accounts/<slug:slug>/preview/", preview.token_preview, name="token-preview"),
    path(
        "preview/instafeed-options.js",
        preview.instafeed_options_js,
        name="preview-instafeed-options",
    ),
    path("accounts/<slug:slug>/refresh/", refresh.refresh_now, name="account-refresh"),
    path("accounts/<slug:slug>/disconnect/", owner.account_disconnect, name="account-disconnect"),
    path("accounts/<slug:slug>/rename/", owner.account_rename, name="account-rename"),
    path("accounts/<slug:slug>/default/", owner.account_make_default, name="account-default"),
    path("accounts/<slug:slug>/reveal/", owner.account_reveal_token, name="account-reveal"),
    path("accounts/<slug:slug>/feed-only/", owner.account_feed_only, name="account-feed-only"),
    path("invites/", owner.invites, name="invites"),
    path("invites/<int:pk>/revoke/", owner.invite_revoke, name="invite-revoke"),
    path("invite/thanks/", owner.invite_thanks, name="invite-thanks"),
    path("invite/<str:token>/", owner.invite_landing, name="invite"),
    path("import/", owner.token_import, name="token-import"),
    path("setup/", owner.setup, name="setup"),
]

urlpatterns = (
    public_urlpatterns
    + feed_urlpatterns
    + callback_urlpatterns
    + oauth_urlpatterns
    + owner_urlpatterns
)
