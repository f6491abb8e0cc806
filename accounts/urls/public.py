"""Public token URLs (stable: users' sites depend on them) and the owner's preview.

``/token/<account>`` is plain text; ``/token.json``, ``/token.js`` and ``/token``
serve the default account (Token Agent's URLs). Every token URL answers OPTIONS."""

from django.urls import path

from accounts.views import preview, public

urlpatterns = [
    path("token.json", public.token_json, name="default-token-json"),
    path("token.js", public.token_js, name="default-token-js"),
    path("token", public.token_plain, name="default-token-plain"),
    path("token/<slug:slug>.json", public.token_json, name="token-json"),
    path("token/<slug:slug>.js", public.token_js, name="token-js"),
    path("token/<slug:slug>", public.token_plain, name="token-plain"),
    path("accounts/<slug:slug>/preview/", preview.token_preview, name="token-preview"),
]
