"""Production settings (DEBUG off), the way Heroku runs them.

Settings are read at import, so most cases start a fresh interpreter with exactly
the environment a dyno (or Heroku's build) would have, and nothing from the test
run or a developer's .env."""

import json
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from harness.processes import PrivateRedis
from tests.child_python import NO_DOTENV, child_env, json_result, run_python

BASE_DIR = Path(__file__).resolve().parents[2]

# What a dyno has: add-on URLs that nothing may contact while settings load (these
# hosts do not resolve), a generated SECRET_KEY, the owner's Meta app.
PRODUCTION = {
    "DEBUG": "False",
    "SECRET_KEY": "8f14e45fceea167a5a36dedd4bea2543c9f0f5a1e2d3c4b5a6978695a4b3c2d1e0f",
    "DATABASE_URL": "postgres://u:pw@db.invalid:5432/d8ab3",
    "REDIS_URL": "rediss://:pw@redis.invalid:25061",
    "INSTAGRAM_APP_ID": "1234567890123456",
    "INSTAGRAM_APP_SECRET": "0123456789abcdef0123456789abcdef",
    "OWNER_INSTAGRAM_USERNAMES": "acme_bakery",
    "ALLOWED_DOMAINS": "example.com www.example.com",
    "WEBHOOK_SECRET": "4c2a8fe7eaf24721cc7a9f0175115bd4",
    "DYNO": "web.1",
    "PORT": "5000",
}


def deploy_env(tmp_path, **environment) -> dict:
    defaults = {"HOME": str(tmp_path), "STATIC_ROOT": str(tmp_path / "static")}
    return child_env(tmp_path / "var", **{**defaults, **environment})


def run_in_child(tmp_path, code: str, *args, **environment) -> subprocess.CompletedProcess:
    return run_python(
        NO_DOTENV + textwrap.dedent(code),
        *args,
        env=deploy_env(tmp_path, **environment),
        timeout=120,
    )


def manage(tmp_path, *args, **environment) -> subprocess.CompletedProcess:
    code = """
    import sys
    from django.core.management import execute_from_command_line
    execute_from_command_line(["manage.py", *sys.argv[1:]])
    """
    return run_in_child(tmp_path, code, *args, **environment)


def load(tmp_path, *names, **environment) -> dict:
    code = """
    import json, sys
    import tokenagent.settings as s
    print(json.dumps({n: getattr(s, n, "<unset>") for n in sys.argv[1:]}, default=str))
    """
    result = run_in_child(tmp_path, code, *names, **environment)
    return json_result(result)


# --- manage.py check --deploy -----------------------------------------------------------


def test_check_deploy_is_clean_with_production_values(tmp_path):
    result = manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    ("override", "warning"),
    [
        ({"SECURE_HSTS_SECONDS": "0"}, "security.W004"),
        ({"SECURE_SSL_REDIRECT": "False"}, "security.W008"),
        ({"SESSION_COOKIE_SECURE": "False"}, "security.W012"),
        ({"CSRF_COOKIE_SECURE": "False"}, "security.W016"),
        ({"DEBUG": "True"}, "security.W018"),
    ],
)
def test_check_deploy_fails_when_a_protection_is_turned_off(tmp_path, override, warning):
    # The same command catches each regression the clean run above rules out.
    result = manage(
        tmp_path, "check", "--deploy", "--fail-level", "WARNING", **{**PRODUCTION, **override}
    )
    assert result.returncode != 0
    assert warning in result.stderr + result.stdout


def test_https_behind_herokus_router(tmp_path):
    out = load(
        tmp_path,
        "SECURE_PROXY_SSL_HEADER",
        "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        **PRODUCTION,
    )
    # The router terminates TLS and says so in X-Forwarded-Proto.
    assert out["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert out["SECURE_SSL_REDIRECT"] is True
    assert out["SECURE_HSTS_SECONDS"] >= 31536000
    assert out["SESSION_COOKIE_SECURE"] is True and out["CSRF_COOKIE_SECURE"] is True


# --- Proxy headers ----------------------------------------------------------------------------

OFF_HEROKU = {k: v for k, v in PRODUCTION.items() if k != "DYNO"}

# How a request that says X-Forwarded-Proto: https looks to the agent.
FORWARDED_HTTPS = """
import json
import django
django.setup()
from django.test import RequestFactory
from accounts.oauth import oauth_redirect_uri
request = RequestFactory().get("/login/", HTTP_HOST="agent.example.com",
                               HTTP_X_FORWARDED_PROTO="https")
print(json.dumps({"secure": request.is_secure(),
                  "redirect_uri": oauth_redirect_uri(request=request)}))
"""


@pytest.mark.parametrize(
    ("environment", "trusted"),
    [
        (PRODUCTION, True),  # a dyno: Heroku's router sets the header
        (OFF_HEROKU, False),  # a direct deployment: only the client could have set it
        ({**OFF_HEROKU, "TRUST_PROXY_HEADERS": "True"}, True),  # a proxy declared
        ({**OFF_HEROKU, "TRUST_PROXY_HEADERS": ""}, False),  # blank = the default
        ({**PRODUCTION, "TRUST_PROXY_HEADERS": "False"}, False),  # declared absent
    ],
    ids=["heroku", "direct", "declared", "blank", "heroku-declared-off"],
)
def test_proxy_headers_are_trusted_only_where_a_proxy_is_declared(tmp_path, environment, trusted):
    out = load(tmp_path, "SECURE_PROXY_SSL_HEADER", "RATELIMIT_PROXY_COUNT", **environment)
    if trusted:
        assert out == {
            "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
            "RATELIMIT_PROXY_COUNT": 1,
        }
    else:
        assert out == {"SECURE_PROXY_SSL_HEADER": None, "RATELIMIT_PROXY_COUNT": 0}
    # What it means for the OAuth redirect URI, which Meta compares character for
    # character: a client cannot talk a direct deployment into an https one.
    seen = json_result(
        run_in_child(tmp_path, FORWARDED_HTTPS, **environment, ALLOWED_HOSTS="agent.example.com")
    )
    scheme = "https" if trusted else "http"
    assert seen == {
        "secure": trusted,
        "redirect_uri": f"{scheme}://agent.example.com/oauth/instagram/callback/",
    }


def test_an_explicit_proxy_count_still_wins(tmp_path):
    out = load(tmp_path, "RATELIMIT_PROXY_COUNT", RATELIMIT_PROXY_COUNT="2", **OFF_HEROKU)
    assert out == {"RATELIMIT_PROXY_COUNT": 2}


# Requests through Django's test client in a production-configured child.
CLIENT = """
import json, sys
import django
django.setup()
from django.test import Client
client = Client()
out = {}
for spec in json.loads(sys.argv[1]):
    r = client.get(spec["path"], **spec.get("headers", {}))
    out[spec["name"]] = {
        "status": r.status_code,
        "location": r.get("Location"),
        "csp": r.get("Content-Security-Policy"),
        "hsts": r.get("Strict-Transport-Security"),
        "type": r.get("Content-Type"),
    }
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def built_static(tmp_path_factory):
    """What Heroku's build leaves behind: collected, hashed static files."""
    tmp_path = tmp_path_factory.mktemp("build")
    result = manage(tmp_path, "collectstatic", "--noinput", **PRODUCTION)
    assert result.returncode == 0, result.stderr
    return tmp_path / "static"


def requests_in_production(tmp_path, static_root, specs, **environment) -> dict:
    """GETs through Django's test client in a child configured for production: no
    Redis, an empty SQLite database, the build's static files."""
    environment = {
        **PRODUCTION,
        "REDIS_URL": "",
        "DATABASE_URL": "",
        "STATIC_ROOT": str(static_root),
        **environment,
    }
    environment = {k: v for k, v in environment.items() if v != ""}
    result = run_in_child(tmp_path, CLIENT, json.dumps(specs), **environment)
    return json_result(result)


HTTPS = {"HTTP_X_FORWARDED_PROTO": "https"}


def test_plain_http_is_redirected_and_https_gets_hsts(tmp_path, built_static):
    out = requests_in_production(
        tmp_path,
        built_static,
        [
            {"name": "http", "path": "/", "headers": {"HTTP_HOST": "agent.herokuapp.com"}},
            {
                "name": "https",
                "path": "/",
                "headers": {"HTTP_HOST": "agent.herokuapp.com", **HTTPS},
            },
        ],
    )
    assert out["http"]["status"] == 301
    assert out["http"]["location"] == "https://agent.herokuapp.com/"
    assert out["https"]["status"] == 200
    assert "max-age=31536000" in out["https"]["hsts"]


# --- ALLOWED_HOSTS ---------------------------------------------------------------------------


def test_allowed_hosts_default_off_heroku_is_loopback_only(tmp_path):
    environment = {k: v for k, v in PRODUCTION.items() if k != "DYNO"}
    out = load(tmp_path, "ALLOWED_HOSTS", **environment)
    assert out["ALLOWED_HOSTS"] == ["localhost", "127.0.0.1", "[::1]"]


def test_allowed_hosts_default_on_heroku_adds_the_apps_herokuapp_name(tmp_path):
    out = load(tmp_path, "ALLOWED_HOSTS", **PRODUCTION)
    assert ".herokuapp.com" in out["ALLOWED_HOSTS"]
    # A blank config var (an empty deploy-form field) is the same as none.
    assert load(tmp_path, "ALLOWED_HOSTS", ALLOWED_HOSTS="", **PRODUCTION) == out


def test_allowed_hosts_from_the_environment_replaces_the_default(tmp_path):
    out = load(
        tmp_path, "ALLOWED_HOSTS", ALLOWED_HOSTS="agent.example.com,a.herokuapp.com", **PRODUCTION
    )
    assert out["ALLOWED_HOSTS"] == ["agent.example.com", "a.herokuapp.com"]


def test_foreign_hosts_are_refused(tmp_path, built_static):
    specs = [
        {"name": "ours", "path": "/", "headers": {"HTTP_HOST": "my-agent.herokuapp.com", **HTTPS}},
        {"name": "foreign", "path": "/", "headers": {"HTTP_HOST": "evil.example", **HTTPS}},
    ]
    on_heroku = requests_in_production(tmp_path, built_static, specs)
    assert on_heroku["ours"]["status"] == 200
    assert on_heroku["foreign"]["status"] == 400
    # Off Heroku nobody vouches for herokuapp.com names.
    elsewhere = requests_in_production(tmp_path, built_static, specs, DYNO="")
    assert elsewhere["ours"]["status"] == 400


# --- The sandbox ---------------------------------------------------------------------------


@pytest.mark.parametrize("app_id", ["", "1234567890123456"])
def test_the_sandbox_cannot_be_reached_with_debug_off(tmp_path, built_static, app_id):
    # Even with no Instagram app configured, a production configuration mounts no
    # fake Instagram and keeps talking to the real hosts.
    out = requests_in_production(
        tmp_path,
        built_static,
        [
            {"name": "authorize", "path": "/sandbox/oauth/authorize", "headers": HTTPS},
            {"name": "me", "path": "/sandbox/me", "headers": HTTPS},
        ],
        INSTAGRAM_APP_ID=app_id,
        ALLOWED_HOSTS="testserver",
    )
    assert out["authorize"]["status"] == 404
    assert out["me"]["status"] == 404
    settings = load(
        tmp_path,
        "SANDBOX_ENABLED",
        "INSTAGRAM_GRAPH_URL",
        INSTAGRAM_APP_ID=app_id,
        **{k: v for k, v in PRODUCTION.items() if k != "INSTAGRAM_APP_ID"},
    )
    assert settings == {
        "SANDBOX_ENABLED": False,
        "INSTAGRAM_GRAPH_URL": "https://graph.instagram.com",
    }


def test_in_sandbox_mode_its_first_test_user_may_sign_in(tmp_path):
    # `make run` on a fresh machine: DEBUG, no Meta app, no owners configured.
    from accounts.sandbox.views import PRESET_USERS

    sandbox = load(tmp_path, "OWNER_INSTAGRAM_USERNAMES", "SANDBOX_ENABLED", DEBUG="1")
    assert sandbox == {"OWNER_INSTAGRAM_USERNAMES": [PRESET_USERS[0]], "SANDBOX_ENABLED": True}
    chosen = load(tmp_path, "OWNER_INSTAGRAM_USERNAMES", DEBUG="1", OWNER_INSTAGRAM_USERNAMES="me")
    assert chosen == {"OWNER_INSTAGRAM_USERNAMES": ["me"]}
    real_app = load(tmp_path, "OWNER_INSTAGRAM_USERNAMES", DEBUG="1", INSTAGRAM_APP_ID="1")
    assert real_app == {"OWNER_INSTAGRAM_USERNAMES": []}
    production = {k: v for k, v in PRODUCTION.items() if k not in ("OWNER_INSTAGRAM_USERNAMES",)}
    production["INSTAGRAM_APP_ID"] = ""
    assert load(tmp_path, "OWNER_INSTAGRAM_USERNAMES", **production) == {
        "OWNER_INSTAGRAM_USERNAMES": []
    }


# --- Static files ------------------------------------------------------------------------------


def test_collectstatic_at_build_time_needs_no_database_or_redis(tmp_path):
    # Heroku's build runs collectstatic with the config vars set but no add-on
    # reachable (the hosts here do not even resolve).
    result = manage(tmp_path, "collectstatic", "--noinput", **PRODUCTION)
    assert result.returncode == 0, result.stderr
    static = tmp_path / "static"
    manifest = json.loads((static / "staticfiles.json").read_text())
    hashed = manifest["paths"]["accounts/agent.css"]
    assert hashed != "accounts/agent.css"  # content hash in the name: cacheable forever
    assert (static / hashed).is_file()
    assert (static / f"{hashed}.gz").is_file()  # compressed for WhiteNoise


def test_whitenoise_serves_hashed_static_files_with_debug_off(tmp_path):
    assert manage(tmp_path, "collectstatic", "--noinput", **PRODUCTION).returncode == 0
    manifest = json.loads((tmp_path / "static" / "staticfiles.json").read_text())
    hashed = manifest["paths"]["accounts/agent.css"]
    code = """
    import json, sys
    import django
    django.setup()
    from django.test import Client
    from django.templatetags.static import static
    r = Client().get("/static/" + sys.argv[1], HTTP_X_FORWARDED_PROTO="https",
                     HTTP_ACCEPT_ENCODING="gzip", HTTP_HOST="a.herokuapp.com")
    print(json.dumps({"status": r.status_code, "cache": r.get("Cache-Control"),
                      "encoding": r.get("Content-Encoding"), "url": static("accounts/agent.css")}))
    """
    environment = {**PRODUCTION}
    del environment["REDIS_URL"], environment["DATABASE_URL"]
    result = run_in_child(tmp_path, code, hashed, **environment)
    out = json_result(result)
    assert out["status"] == 200
    assert out["encoding"] == "gzip"
    assert "immutable" in out["cache"]
    assert out["url"] == f"/static/{hashed}"


# --- The icon ---------------------------------------------------------------------------------

FAVICON = BASE_DIR / "accounts" / "static" / "accounts" / "favicon.ico"


def test_the_favicon_is_a_real_icon():
    data = FAVICON.read_bytes()
    # ICONDIR: reserved 0, type 1 (icon), then one 16-byte entry per image.
    reserved, kind, count = int.from_bytes(data[0:2], "little"), data[2], data[4]
    assert (reserved, kind) == (0, 1) and count >= 1
    sizes = {data[6 + 16 * i] or 256 for i in range(count)}
    assert {16, 32} <= sizes
    assert len(data) < 10_000


def test_favicon_ico_answers_with_the_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    assert b"".join(response.streaming_content) == FAVICON.read_bytes()
    assert "max-age=86400" in response["Cache-Control"]


@pytest.mark.django_db
def test_owner_pages_link_the_icon(staff_client):
    from django.templatetags.static import static

    page = staff_client.get("/").content.decode()
    assert f'<link rel="icon" href="{static("accounts/favicon.ico")}"' in page


def test_the_icon_is_served_with_debug_off(tmp_path, built_static):
    manifest = json.loads((built_static / "staticfiles.json").read_text())
    hashed = manifest["paths"]["accounts/favicon.ico"]
    host = {"HTTP_HOST": "agent.herokuapp.com", **HTTPS}
    out = requests_in_production(
        tmp_path,
        built_static,
        [
            {"name": "root", "path": "/favicon.ico", "headers": host},
            {"name": "static", "path": f"/static/{hashed}", "headers": host},
        ],
    )
    assert out["root"]["status"] == 200 and out["root"]["type"] == "image/x-icon"
    assert out["static"]["status"] == 200


# --- Redis over TLS (Heroku Key-Value Store) -----------------------------------------------


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    """A redis-server that speaks TLS only, with a self-signed certificate and a
    password: what a Heroku Key-Value Store hands out as a rediss:// URL."""
    if not shutil.which("redis-server") or not shutil.which("openssl"):
        pytest.skip("redis-server and openssl are needed for the TLS Redis tests")
    server = PrivateRedis(
        tmp_path_factory.mktemp("tls-redis"),
        start_timeout=10,
        password="kv-pass",
        tls=True,
        common_name="ec2-1-2-3-4.compute-1.amazonaws.com",
    ).start()
    yield server.url
    server.stop()


@pytest.mark.redis
def test_a_plain_client_refuses_the_self_signed_certificate(tls_redis):
    # Why the settings must turn verification off: without it nothing connects.
    import redis

    client = redis.Redis.from_url(tls_redis, socket_timeout=5)
    with pytest.raises(redis.exceptions.ConnectionError, match="certificate verify failed"):
        client.ping()


@pytest.mark.redis
def test_rediss_url_works_for_the_cache_and_the_celery_broker(tmp_path, tls_redis):
    code = """
    import json
    import django
    django.setup()
    from django.core.cache import cache
    from tokenagent.celery import app
    cache.set("tls-check", "cached over TLS", 30)
    out = {"cache": cache.get("tls-check")}
    with app.connection_for_write() as conn:
        queue = conn.SimpleQueue("tokenagent-tls-check")
        queue.put({"hello": "broker over TLS"})
        out["broker"] = queue.get(timeout=10).payload
        queue.clear()
        queue.close()
    print(json.dumps(out))
    """
    environment = {**PRODUCTION, "REDIS_URL": tls_redis}
    del environment["DATABASE_URL"]
    result = run_in_child(tmp_path, code, **environment)
    out = json_result(result)
    assert out == {"cache": "cached over TLS", "broker": {"hello": "broker over TLS"}}


# --- Content-Security-Policy ---------------------------------------------------------------


def parse_csp(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


@pytest.mark.django_db
def test_owner_pages_carry_a_content_security_policy(staff_client):
    from tests.factories import make_account

    make_account(slug="acme")
    for path in ("/", "/accounts/acme/preview/"):
        response = staff_client.get(path)
        assert response.status_code == 200, path
        csp = parse_csp(response["Content-Security-Policy"])
        assert csp["default-src"] == ["'self'"]
        assert csp["object-src"] == ["'none'"]
        assert csp["frame-ancestors"] == ["'none'"]
        assert csp["base-uri"] == ["'none'"]
        # No inline scripts or styles anywhere: nothing to inject into.
        for directive in ("script-src", "style-src"):
            assert not {"'unsafe-inline'", "'unsafe-eval'", "*", "https:"} & set(csp[directive])


@pytest.mark.django_db
def test_the_preview_may_load_exactly_its_instafeed_and_call_the_graph_api(staff_client):
    from accounts import snippets
    from tests.factories import make_account

    make_account(slug="acme")
    csp = parse_csp(staff_client.get("/accounts/acme/preview/")["Content-Security-Policy"])
    # The one CDN script the preview (and the README's snippet) loads is allowed;
    # the rest of jsDelivr is not.
    cdn = [s for s in csp["script-src"] if s.startswith("https://")]
    assert cdn and all(snippets.INSTAFEED_CDN_URL.startswith(s) for s in cdn)
    assert all(s.startswith("https://cdn.jsdelivr.net/npm/instafeed.js@") for s in cdn)
    assert "https://graph.instagram.com" in csp["connect-src"]
    assert "https://*.cdninstagram.com" in csp["img-src"]


@pytest.mark.django_db
def test_token_urls_carry_no_policy_and_still_serve(client):
    from tests.factories import make_account

    make_account(slug="acme", token="IGAAcspCheckToken000000000001")
    for path in ("/token/acme.js", "/token/acme.json", "/token/acme", "/token.js"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "Content-Security-Policy" not in response, path


def test_the_sandbox_plays_a_foreign_site_outside_the_agents_policy(client):
    # Its consent page has inline styles, as a third-party page may; the agent's
    # policy is for the agent's own pages (and the sandbox never runs in production).
    response = client.get(
        "/sandbox/oauth/authorize",
        {
            "client_id": "sandbox-app",
            "redirect_uri": "http://testserver/oauth/instagram/callback/",
            "response_type": "code",
            "scope": "instagram_business_basic",
            "state": "s",
        },
    )
    assert response.status_code == 200
    assert "Content-Security-Policy" not in response


def test_another_graph_server_is_allowed_for_the_preview(tmp_path):
    # A standalone sandbox (or any Graph-compatible server) on another origin.
    out = load(
        tmp_path,
        "CONTENT_SECURITY_POLICY",
        INSTAGRAM_GRAPH_URL="http://127.0.0.1:9123/sandbox",
        INSTAGRAM_AUTHORIZE_URL="http://127.0.0.1:9123/sandbox/oauth/authorize",
        **PRODUCTION,
    )
    directives = out["CONTENT_SECURITY_POLICY"]["DIRECTIVES"]
    assert "http://127.0.0.1:9123" in directives["connect-src"]
    assert "http://127.0.0.1:9123" in directives["img-src"]
    assert "http://127.0.0.1:9123" in directives["form-action"]
    real = load(tmp_path, "CONTENT_SECURITY_POLICY", **PRODUCTION)["CONTENT_SECURITY_POLICY"]
    assert real["DIRECTIVES"]["connect-src"] == ["'self'", "https://graph.instagram.com"]
    assert real["DIRECTIVES"]["form-action"] == ["'self'", "https://www.instagram.com"]


# --- Logs -----------------------------------------------------------------------------------

TOKEN = "IGAAlogCheckLongLivedToken0123456789abcdef"


def test_logs_go_to_stdout_one_line_per_event_without_tokens(tmp_path):
    code = f"""
    import logging
    import django
    django.setup()
    log = logging.getLogger("accounts.services.refresh")
    log.info("refreshed acme")
    try:
        raise RuntimeError("GET https://graph.instagram.com/refresh_access_token"
                           "?grant_type=ig_refresh_token&access_token={TOKEN} failed\\nsecond line")
    except RuntimeError:
        log.exception("refresh failed for %s", "acme")
    log.warning("multi\\nline message with {TOKEN}")
    """
    environment = {**PRODUCTION}
    del environment["REDIS_URL"], environment["DATABASE_URL"]
    result = run_in_child(tmp_path, code, **environment)
    assert result.returncode == 0, result.stderr
    assert TOKEN not in result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3, lines
    assert "INFO accounts.services.refresh refreshed acme" in lines[0]
    assert "ERROR" in lines[1] and "Traceback" in lines[1] and "RuntimeError" in lines[1]
    assert "access_token=[redacted]" in lines[1]
    assert "WARNING" in lines[2] and "[redacted]" in lines[2]
    assert result.stderr == ""


def test_logs_under_debug_keep_tracebacks_readable_but_still_redact(tmp_path):
    code = f"""
    import logging
    import django
    django.setup()
    try:
        raise RuntimeError("boom access_token={TOKEN}")
    except RuntimeError:
        logging.getLogger("accounts").exception("failed")
    """
    result = run_in_child(tmp_path, code, DEBUG="True", SECRET_KEY=PRODUCTION["SECRET_KEY"])
    assert result.returncode == 0, result.stderr
    assert TOKEN not in result.stdout
    assert "Traceback (most recent call last):\n" in result.stdout


def test_web_server_logs_are_redacted_and_one_line(tmp_path):
    # Granian (tokenagent/web.py) logs outside Django's LOGGING: its own events, and
    # request lines if someone turns its access log on, with a format showing the
    # query string, where the OAuth callback carries its one-hour code.
    code = f"""
    import time
    from granian.log import LogLevels, configure_logging, log_request_builder, logger
    from tokenagent.web import LOGGING
    configure_logging(LogLevels.info, LOGGING)
    log = log_request_builder('"%(method)s %(path)s?%(query_string)s" %(status)d')
    log(time.time(), time.perf_counter(), {{
        "addr_remote": "10.1.2.3", "path": "/oauth/instagram/callback/",
        "qs": "code=AQDsecretAuthCode123&state=s1", "method": "GET",
        "scheme": "http", "protocol": "HTTP/1.1"}}, 302)
    logger.error("worker failed\\nsecond line with access_token={TOKEN}")
    """
    result = run_in_child(tmp_path, code, **PRODUCTION)
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    assert "AQDsecretAuthCode123" not in out and TOKEN not in out
    access = [line for line in result.stdout.splitlines() if "callback" in line]
    assert len(access) == 1 and "code=[redacted]" in access[0]
    errors = [line for line in result.stdout.splitlines() if "worker failed" in line]
    assert len(errors) == 1 and "second line" in errors[0] and "ERROR _granian" in errors[0]


# --- The policy in a real browser -----------------------------------------------------------

INSTAFEED_FILE = BASE_DIR / "node_modules" / "instafeed.js" / "dist" / "instafeed.min.js"
# The smallest valid PNG (1x1, transparent).
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push(e.effectiveDirective + " " + e.blockedURI);
});
"""


@pytest.mark.browser
@pytest.mark.slow
def test_the_preview_runs_instafeed_under_the_policy_and_nothing_else_runs(
    page, live_server, transactional_db, django_user_model, client
):
    from accounts import snippets
    from tests.factories import make_account

    if not INSTAFEED_FILE.is_file():
        pytest.skip("instafeed.js is not installed (npm ci)")
    make_account(slug="acme", token="IGAAbrowserCspToken0000000001")
    client.force_login(django_user_model.objects.create_user(username="o", is_staff=True))
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    # The closed network stands in for jsDelivr, the Graph API and Instagram's CDN.
    page.route(
        snippets.INSTAFEED_CDN_URL,
        lambda route: route.fulfill(
            body=INSTAFEED_FILE.read_bytes(),
            content_type="application/javascript",
            headers={"Access-Control-Allow-Origin": "*"},
        ),
    )
    picture = "https://scontent-ams2-1.cdninstagram.com/v/t51.2885-15/picture.jpg"
    media = {
        "data": [
            {
                "id": "17900000000000001",
                "media_type": "IMAGE",
                "media_url": picture,
                "permalink": "https://www.instagram.com/p/Cabc/",
                "caption": "fresh bread",
                "timestamp": "2026-11-01T08:00:00+0000",
                "username": "acme_bakery",
            }
        ],
        "paging": {},
    }
    page.route(
        "https://graph.instagram.com/**",
        lambda route: route.fulfill(json=media, headers={"Access-Control-Allow-Origin": "*"}),
    )
    page.route("https://scontent-ams2-1.cdninstagram.com/**",
               lambda route: route.fulfill(body=PNG, content_type="image/png"))  # fmt: skip
    page.route("https://evil.example/**",
               lambda route: route.fulfill(body="window.__pwned = true;",
                                          content_type="application/javascript"))  # fmt: skip
    page.add_init_script(RECORD_VIOLATIONS)

    response = page.goto(f"{live_server.url}/accounts/acme/preview/")
    assert response.status == 200
    assert response.headers.get("content-security-policy")
    status = page.locator("#preview-status")
    status.filter(has_text="rendered this feed").wait_for(timeout=15000)
    loaded = page.eval_on_selector("#instafeed img", "img => img.complete && img.naturalWidth > 0")
    assert loaded
    assert page.evaluate("window.__csp") == []

    # What the policy is for: an injected script, inline or from elsewhere, does not run.
    page.evaluate(
        """() => {
        const s = document.createElement("script");
        s.src = "https://evil.example/x.js";
        document.body.appendChild(s);
        const i = document.createElement("script");
        i.textContent = "window.__inline = true;";
        document.body.appendChild(i);
    }"""
    )
    page.wait_for_function("window.__csp.length >= 2", timeout=5000)
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("window.__inline") is None
    blocked = page.evaluate("window.__csp")
    assert any(v.startswith("script-src-elem https://evil.example/x.js") for v in blocked)
    assert any(v.startswith("script-src-elem inline") for v in blocked)
