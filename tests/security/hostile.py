"""Shared pieces of the hostile-input suites: input strategies, a snapshot of
everything stored, and the checks every answer must pass (no 500, no unescaped
reflection, no header injection)."""

from __future__ import annotations

import os
import uuid
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.child_python import NO_DOTENV, child_env, json_result, run_python


def fuzz(max_examples: int) -> settings:
    """Hypothesis settings of the hostile-input suites: no deadline (a request can
    take a while), function-scoped fixtures shared across examples on purpose."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


_CACHES_PROBE = (
    NO_DOTENV
    + "import json\nimport tokenagent.settings as s\n"
    + 'print(json.dumps({"CACHES": s.CACHES}, default=str))\n'
)


def production_caches(tmp_path, **environment: str) -> dict:
    """The CACHES the real settings module builds for ``environment`` (no REDIS_URL:
    the file caches of a one-machine install, under ``tmp_path``), each Redis alias
    under a key prefix of this test's own."""
    env = child_env(
        tmp_path / "var",
        SECRET_KEY="a-production-like-secret-key-for-the-cache-probe-0123456789",
        **environment,
    )
    caches = json_result(run_python(_CACHES_PROBE, env=env))["CACHES"]
    for config in caches.values():
        if config["BACKEND"].endswith("RedisCache"):
            config["KEY_PREFIX"] = f"{config.get('KEY_PREFIX', '')}-test-{uuid.uuid4().hex}"
    return caches


def assert_a_flood_adds_no_redis_keys(settings, tmp_path, *, warm: str, flood) -> None:
    """On the real Redis (REDIS_URL; the test is skipped without it), under the
    production cache settings: once a GET of ``warm`` has stored its entry,
    ``flood()`` adds no key to any cache alias."""
    import pytest
    from django.test import Client

    if not os.environ.get("REDIS_URL", "").startswith("redis"):
        pytest.skip("REDIS_URL does not point at Redis")
    settings.CACHES = production_caches(tmp_path, REDIS_URL=os.environ["REDIS_URL"])
    Client().get(warm)
    before = cache_entries()
    assert before["default"] > 0
    flood()
    assert cache_entries() == before


def cache_entries() -> dict[str, int]:
    """How many entries each configured cache alias holds now."""
    from django.core.cache import caches

    counts = {}
    for alias in caches.settings:
        # Counted through each backend's internals, which django-stubs leaves out.
        cache: Any = caches[alias]
        backend = type(cache).__name__
        if backend == "FileBasedCache":
            counts[alias] = len(cache._list_cache_files())
        elif backend == "LocMemCache":
            counts[alias] = len(cache._cache)
        elif backend == "RedisCache":
            client = cache._cache.get_client(write=False)
            counts[alias] = sum(1 for _ in client.scan_iter(match=cache.make_key("*")))
        else:
            raise AssertionError(f"cannot count the entries of a {backend}")
    return counts


# Payloads a scanner or an attacker actually sends, mixed into generated text.
PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "';alert(1);//",
    "</script><script>alert(document.domain)</script>",
    "javascript:alert(1)",
    "${7*7}{{7*7}}",
    "../../../../etc/passwd",
    "%00",
    "\x00",
    "' OR '1'='1",
    "1; DROP TABLE accounts_accesstoken; --",
    "\u2028\u2029",
    "\ud7ff\ue000\uffff",
    "A" * 5000,
    "__proto__",
    "constructor",
    "IGAAfakeTokenLookingValue0123456789",
    "http://evil.example/#@allowed.example",
    "null",
]

# Characters that make a reflection dangerous in HTML, JavaScript or a header.
DANGEROUS = set("<>\"'&\r\n\u2028\u2029")

text = st.one_of(
    st.sampled_from(PAYLOADS),
    st.text(max_size=80),
    st.builds(
        lambda a, p, b: a + p + b,
        st.text(max_size=10),
        st.sampled_from(PAYLOADS),
        st.text(max_size=10),
    ),
)

# What a WSGI server can hand Django as a header value: ISO-8859-1, no CR/LF/NUL.
_header_chars = st.characters(max_codepoint=255, blacklist_characters="\r\n\x00")
header_text = st.one_of(
    st.sampled_from([p for p in PAYLOADS if all(ord(c) < 256 and c not in "\r\n\x00" for c in p)]),
    st.text(alphabet=_header_chars, max_size=120),
)

# Origin/Referer-shaped values: a real scheme followed by anything.
origin_text = st.one_of(
    header_text,
    st.builds(
        lambda scheme, rest: scheme + rest,
        st.sampled_from(["http://", "https://", "HTTPS://", "ftp://", "null", ""]),
        header_text,
    ),
)


def is_dangerous(value: str) -> bool:
    """Input worth checking for reflection: it carries markup or quote characters
    and is long enough that finding it in a body is not a coincidence."""
    return len(value) >= 4 and any(c in DANGEROUS for c in value)


_STATIC_HEADERS = {
    "content-security-policy",
    "content-security-policy-report-only",
    "permissions-policy",
    "referrer-policy",
    "cross-origin-opener-policy",
}


def assert_not_reflected(response, *values: str) -> None:
    """No dangerous input appears verbatim in the body or any header."""
    body = (
        response.content.decode("utf-8", errors="replace") if hasattr(response, "content") else ""
    )
    # Policy headers are fixed by settings, not built from the request: a short input
    # such as "'non" is found in CSP's "'none'" by coincidence, not reflection.
    headers = "\n".join(
        f"{k}: {v}" for k, v in response.items() if k.lower() not in _STATIC_HEADERS
    )
    for value in values:
        if value and is_dangerous(value):
            assert value not in body, f"input reflected unescaped in the body: {value!r}"
            assert value not in headers, f"input reflected in a header: {value!r}"


def assert_no_server_error(response, *, allow_503: bool = False) -> None:
    """No 5xx; ``allow_503`` where 503 is a documented answer (an unusable token,
    a broker outage), never for a fault."""
    status = response.status_code
    assert status < 500 or (allow_503 and status == 503), f"server error {status}"


def assert_cors_only_for_listed(response, origin: str, *, listed: str | None) -> None:
    """With a list (``listed`` its one site), only that site is ever granted, a hostile
    Origin never is; unrestricted, an origin is echoed only in its normalised
    scheme://host[:port] form."""
    acao = response.get("Access-Control-Allow-Origin")
    if listed:
        assert acao in (None, listed)
        if acao:
            assert origin.strip().lower().rstrip("/") == listed
    elif acao not in (None, "*"):
        assert acao.startswith(("http://", "https://"))
        assert not (set(acao) & DANGEROUS)


# The request headers a client controls, and whether ALLOWED_DOMAINS lists one site:
# what ``get_as_client`` sends.
client_headers = st.fixed_dictionaries(
    {
        "origin": origin_text,
        "referer": origin_text,
        "inm": header_text,
        "forwarded": header_text,
        "restricted": st.booleans(),
    }
)


def get_as_client(url: str, headers: dict):
    """GET ``url`` with ``client_headers``' Origin (sent as Accept too), Referer,
    If-None-Match and X-Forwarded-For, ALLOWED_DOMAINS one site when restricted;
    returns (response, that site or "")."""
    from django.test import Client, override_settings

    allowed = "https://shop.example.com" if headers["restricted"] else ""
    with override_settings(ALLOWED_DOMAINS=allowed):
        response = Client().get(
            url,
            HTTP_ORIGIN=headers["origin"],
            HTTP_REFERER=headers["referer"],
            HTTP_IF_NONE_MATCH=headers["inm"],
            HTTP_X_FORWARDED_FOR=headers["forwarded"],
            HTTP_ACCEPT=headers["origin"],
        )
    return response, allowed


def header_values(headers: dict) -> list[str]:
    """The values ``get_as_client`` sent, to look for reflections of."""
    return [headers["origin"], headers["referer"], headers["inm"], headers["forwarded"]]


def assert_headers_clean(response) -> None:
    for key, value in response.items():
        assert "\r" not in value and "\n" not in value, key


def snapshot() -> dict:
    """Everything an unauthorised request must leave untouched."""
    from django.contrib.auth import get_user_model

    from accounts.models import (
        AccessToken,
        DataDeletionRequest,
        InstagramAccount,
        Invite,
        OAuthState,
        RefreshAttempt,
    )

    return {
        "accounts": sorted(
            InstagramAccount.objects.values_list(
                "pk",
                "slug",
                "ig_user_id",
                "username",
                "status",
                "is_default",
                "allowed_domains",
                "user_id",
            )
        ),
        "tokens": sorted(
            AccessToken.objects.values_list("account_id", "ciphertext", "version", "expires_at")
        ),
        "attempts": RefreshAttempt.objects.count(),
        "users": sorted(get_user_model().objects.values_list("pk", "username", "is_staff")),
        "states_used": OAuthState.objects.filter(used_at__isnull=False).count(),
        "invites": sorted(Invite.objects.values_list("pk", "used_at", "account_id")),
        "deletions": DataDeletionRequest.objects.count(),
    }
