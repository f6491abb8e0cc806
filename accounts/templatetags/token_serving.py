"""Template helpers for the token snippets: ``{% load token_serving %}``.

``{% agent_origin %}`` the agent's own scheme://host as the visitor's browser sees it,
``{% js_constant_name %}``, ``{% instafeed_src %}`` / ``{% instafeed_integrity %}``,
``{% instafeed_text_options %}`` (the Instafeed.js options that render captions as
text, ``accounts.snippets.TEXT_ONLY_OPTIONS``), and ``{% cors_warning %}``: the red
warning while ALLOWED_DOMAINS is unset (for the dashboard and the setup page)."""

from django import template
from django.conf import settings

from accounts import cors, snippets

register = template.Library()


@register.simple_tag(takes_context=True)
def agent_origin(context) -> str:
    request = context["request"]
    return f"{request.scheme}://{request.get_host()}"


@register.simple_tag
def js_constant_name() -> str:
    return settings.JS_CONSTANT_NAME


@register.simple_tag
def instafeed_src() -> str:
    return snippets.INSTAFEED_CDN_URL


@register.simple_tag
def instafeed_integrity() -> str:
    return snippets.INSTAFEED_INTEGRITY


@register.simple_tag
def instafeed_text_options() -> str:
    return snippets.TEXT_ONLY_OPTIONS


@register.inclusion_tag("accounts/_cors_warning.html")
def cors_warning() -> dict:
    allow = cors.global_allow_list()
    return {
        "unrestricted": not allow.restricted,
        "invalid": allow.invalid,
    }
