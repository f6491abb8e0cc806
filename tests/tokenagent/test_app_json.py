"""app.json, the manifest Heroku reads when the Deploy button creates an app.

The schema below encodes the rules of Heroku's app.json reference
(https://devcenter.heroku.com/articles/app-json-schema, summarised in
deploy-conventions.md §1): the known top-level keys and their types, env entries as
strings or {description, value, required, generator} objects with string values and
"secret" as the only generator, add-ons as "service:plan", formation quantities as
integers with known dyno sizes. Heroku only reads the file when an app is created,
so a mistake here shows up first in a stranger's failed deploy."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
from django.urls import Resolver404, resolve

from tests.child_python import child_env, json_result, run_python

BASE_DIR = Path(__file__).resolve().parents[2]
APP_JSON = json.loads((BASE_DIR / "app.json").read_text())

_URL = {"type": "string", "pattern": r"^https?://[^\s/]+\S*$"}
_ENV_OBJECT = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "description": {"type": "string", "minLength": 1},
        "value": {"type": "string"},
        "required": {"type": "boolean"},
        "generator": {"enum": ["secret"]},
    },
}
_ADDON_SLUG = r"[a-z0-9][a-z0-9-]*"
_DYNO_SIZES = [
    "eco",
    "basic",
    "standard-1x",
    "standard-2x",
    "performance-m",
    "performance-l",
    "performance-l-ram",
    "performance-xl",
    "performance-2xl",
    "private-s",
    "private-m",
    "private-l",
    "shield-s",
    "shield-m",
    "shield-l",
]
HEROKU_APP_JSON_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        # 30 characters: the cap of Heroku's own app.json validator.
        "name": {"type": "string", "minLength": 1, "maxLength": 30},
        "description": {"type": "string", "minLength": 1},
        "keywords": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "website": _URL,
        "repository": _URL,
        "logo": _URL,
        # A path in the new app, or a full URL.
        "success_url": {"type": "string", "pattern": r"^(/\S*|https?://\S+)$"},
        "scripts": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "postdeploy": {"type": "string"},
                "pr-predestroy": {"type": "string"},
                "test-setup": {"type": "string"},
                "test": {"type": "string"},
            },
        },
        "env": {
            "type": "object",
            "propertyNames": {"pattern": r"^[A-Z][A-Z0-9_]*$"},
            "additionalProperties": {"oneOf": [{"type": "string"}, _ENV_OBJECT]},
        },
        "formation": {
            "type": "object",
            "propertyNames": {"pattern": r"^[a-z0-9_-]+$"},
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": ["quantity"],
                "properties": {
                    "quantity": {"type": "integer", "minimum": 0},
                    "size": {"enum": _DYNO_SIZES},
                },
            },
        },
        "addons": {
            "type": "array",
            "items": {
                "oneOf": [
                    {"type": "string", "pattern": rf"^{_ADDON_SLUG}(:[a-z0-9][a-z0-9-]*)?$"},
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["plan"],
                        "properties": {
                            "plan": {
                                "type": "string",
                                "pattern": rf"^{_ADDON_SLUG}(:[a-z0-9][a-z0-9-]*)?$",
                            },
                            "as": {"type": "string", "pattern": r"^[A-Z][A-Z0-9_]*$"},
                            "options": {"type": "object"},
                        },
                    },
                ]
            },
        },
        "buildpacks": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["url"],
                "properties": {"url": {"type": "string", "minLength": 1}},
            },
        },
        "environments": {"type": "object"},
        "stack": {"type": "string", "pattern": r"^(heroku-\d+|container)$"},
        "image": {"type": "string"},
    },
}


def env_entries() -> dict[str, dict]:
    """Every env entry in object form (a plain string is a fixed value)."""
    return {
        name: entry if isinstance(entry, dict) else {"value": entry}
        for name, entry in APP_JSON["env"].items()
    }


# --- Heroku's schema --------------------------------------------------------------------


def test_app_json_follows_herokus_schema():
    jsonschema.validate(APP_JSON, HEROKU_APP_JSON_SCHEMA)


@pytest.mark.parametrize(
    "broken",
    [
        {"name": "x" * 31},
        {"env": {"SECRET_KEY": {"generator": "random"}}},
        {"env": {"DEBUG": {"value": False}}},
        {"env": {"WEB_CONCURRENCY": {"value": 2}}},
        {"env": {"X": {"required": "false"}}},
        {"addons": ["heroku-postgresql essential-0"]},
        {"addons": ["Heroku-Redis:Mini"]},
        {"formation": {"web": {"size": "basic"}}},
        {"formation": {"web": {"quantity": "1"}}},
        {"formation": {"web": {"quantity": 1, "size": "hobby"}}},
        {"buildpacks": ["heroku/python"]},
        {"success_url": "setup/"},
        {"repositry": "https://github.com/a/b"},
    ],
)
def test_the_schema_rejects_what_heroku_rejects(broken):
    # The schema is only worth something if it can fail.
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**APP_JSON, **broken}, HEROKU_APP_JSON_SCHEMA)


# --- What tokenagent needs from it ---------------------------------------------------------


def test_name_description_and_keywords():
    assert APP_JSON["name"] == "tokenagent"
    assert "Instagram" in APP_JSON["description"]
    assert {"instagram", "instafeed", "django", "celery"} <= set(APP_JSON["keywords"])


def test_secrets_are_generated_never_defaulted():
    entries = env_entries()
    for name in ("SECRET_KEY", "WEBHOOK_SECRET"):
        assert entries[name]["generator"] == "secret", name
        assert "value" not in entries[name], name
    # Nothing else ships a secret value in a public file.
    for name, entry in entries.items():
        if re.search(r"SECRET|TOKEN|KEY|PASSWORD", name):
            assert not entry.get("value"), name


@pytest.mark.parametrize(
    "name",
    ["INSTAGRAM_APP_ID", "INSTAGRAM_APP_SECRET", "OWNER_INSTAGRAM_USERNAMES", "ALLOWED_DOMAINS"],
)
def test_what_the_owner_must_provide_is_required_and_explained(name):
    entry = env_entries()[name]
    # `required` defaults to true on Heroku; be explicit anyway.
    assert entry.get("required", True) is True
    assert "value" not in entry and "generator" not in entry
    assert len(entry["description"]) > 20


PRODUCT_SETTINGS = [
    # PRODUCT.md's settings, except those the add-ons set (DATABASE_URL, REDIS_URL)
    # and the required/generated ones above.
    "DEBUG",
    "ALLOWED_HOSTS",
    "JS_CONSTANT_NAME",
    "REFRESH_FREQUENCY",
    "HIDE_HELP_PAGES",
    "STARTING_TOKEN",
    "TOKEN_ENCRYPTION_KEY",
    "ALERT_EMAIL",
    "ALERT_WEBHOOK_URL",
    "EMAIL_URL",
    "INSTAGRAM_AUTHORIZE_URL",
    "INSTAGRAM_API_URL",
    "INSTAGRAM_GRAPH_URL",
    "FEED_SYNC_SECONDS",
    "FEED_MAX_POSTS",
]


@pytest.mark.parametrize("name", PRODUCT_SETTINGS)
def test_the_other_product_settings_are_offered_as_optional(name):
    entry = env_entries()[name]
    assert entry["required"] is False
    assert entry["description"]


def test_every_described_entry_says_what_it_is_for():
    for name, entry in env_entries().items():
        assert entry.get("description"), name


def test_postgres_alone_on_its_cheapest_current_plan():
    # Essential-0 replaced mini/hobby-dev. No Redis: the one-dyno formation keeps its
    # cache in Postgres (tests/tokenagent/test_formations.py checks the README's table).
    assert APP_JSON["addons"] == ["heroku-postgresql:essential-0"]


def test_one_web_dyno_that_never_sleeps_runs_everything():
    # The web line runs the worker with beat beside the web server (scripts/dyno.py);
    # one dyno of it, so one beat. Eco dynos sleep, and beat with them.
    assert APP_JSON["formation"] == {"web": {"quantity": 1, "size": "basic"}}
    assert env_entries()["EMBEDDED_WORKER"]["value"] == "True"


def test_formation_names_the_procfiles_processes():
    procfile = (BASE_DIR / "Procfile").read_text()
    processes = {line.split(":", 1)[0] for line in procfile.splitlines() if ":" in line}
    assert set(APP_JSON["formation"]) <= processes
    assert "release" in processes


def test_the_python_buildpack_only():
    # package.json (for the browser tests) would otherwise make Heroku detect Node.js.
    assert APP_JSON["buildpacks"] == [{"url": "heroku/python"}]


def test_success_url_is_a_page_of_the_agent():
    success = APP_JSON["success_url"]
    assert success.startswith("/")
    try:
        resolve(urlsplit(success).path, urlconf="tokenagent.urls")
    except Resolver404:
        pytest.fail(f"success_url {success} is not a URL of the agent")


@pytest.mark.parametrize("key", ["repository", "website", "logo"])
def test_links_when_present_are_real_and_placeholder_free(key):
    # The public repository is not known while this is written; the keys are
    # optional in Heroku's schema, so they are left out rather than guessed.
    value = APP_JSON.get(key)
    if value is None:
        return
    assert value.startswith("https://")
    assert not re.search(r"OWNER|REPO|example\.(com|org)|your[-_]", value, re.IGNORECASE)
    if key == "logo":
        assert re.search(r"\.(svg|png|jpe?g)$", value)
        raw = re.match(r"https://raw\.githubusercontent\.com/[^/]+/[^/]+/[^/]+/(.+)$", value)
        if raw:
            assert (BASE_DIR / raw.group(1)).is_file()


# --- app.json against the settings module --------------------------------------------------

# Imported in a fresh interpreter with exactly the given environment; prints the
# settings read back. A developer's .env must not leak in.
PROBE = r"""
import json, sys
import environ
environ.Env.read_env = classmethod(lambda cls, *a, **kw: None)
import tokenagent.settings as s
print(json.dumps({n: getattr(s, n, "<missing>") for n in sys.argv[1:]}, default=str))
"""
BASE_ENV = {
    "SECRET_KEY": "app-json-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
    "INSTAGRAM_APP_ID": "1234567890123456",
    "INSTAGRAM_APP_SECRET": "app-secret",
}


def load_settings(tmp_path, names, **environment) -> dict:
    env = child_env(tmp_path / "var", **{**BASE_ENV, **environment})
    return json_result(run_python(PROBE, *names, env=env))


# Settings whose module attribute is named differently from the variable.
SETTING_FOR = {"EMAIL_URL": "EMAIL_CONFIG"}


def django_entries() -> dict[str, dict]:
    return env_entries()


def test_every_variable_app_json_names_is_a_setting(tmp_path):
    names = [SETTING_FOR.get(n, n) for n in django_entries()]
    out = load_settings(tmp_path, names)
    assert [n for n in names if out[n] == "<missing>"] == []


def test_the_values_app_json_offers_are_the_settings_defaults(tmp_path):
    # The deploy form shows these; they must not quietly differ from a run without them.
    offered = {n: e["value"] for n, e in django_entries().items() if "value" in e}
    assert offered
    names = [SETTING_FOR.get(n, n) for n in offered]
    defaults = load_settings(tmp_path, names)
    with_values = load_settings(tmp_path, names, **offered)
    assert with_values == defaults


def test_optional_fields_left_blank_behave_as_unset(tmp_path):
    # A field left empty in the deploy form may arrive as an empty config var.
    optional = {n: e for n, e in django_entries().items() if e.get("required") is False}
    blank = {n: "" for n, e in optional.items() if "value" not in e}
    assert {"ALLOWED_HOSTS", "EMAIL_URL", "STARTING_TOKEN", "ALERT_EMAIL"} <= set(blank)
    names = [SETTING_FOR.get(n, n) for n in blank]
    assert load_settings(tmp_path, names, **blank) == load_settings(tmp_path, names)


def test_the_web_process_adds_no_second_access_log():
    # Heroku's router logs every request; the agent's web process does not repeat
    # it (bench/load). Heroku's Python buildpack switches an access log on only for
    # gunicorn (GUNICORN_CMD_ARGS="--access-logfile -"); the web process is Granian
    # (tokenagent/web.py), whose access log stays off, and app.json sets nothing
    # for gunicorn any more.
    from tokenagent import web as web_server

    procfile = (BASE_DIR / "Procfile").read_text()
    web = next(line for line in procfile.splitlines() if line.startswith("web:"))
    # scripts/dyno.py runs the server beside the worker (the one-dyno formation).
    assert web == "web: python scripts/dyno.py python -m tokenagent.web tokenagent.wsgi:application"
    assert web_server.server_options({})["log_access"] is False
    assert not {n for n in env_entries() if n.startswith(("GUNICORN", "GRANIAN"))}


# --- README ---------------------------------------------------------------------------------


def test_readme_has_the_deploy_button():
    readme = (BASE_DIR / "README.md").read_text()
    assert "https://www.herokucdn.com/deploy/button.svg" in readme
    assert re.search(r"https://heroku\.com/deploy\?template=https://github\.com/\S+", readme)


# --- What Heroku's Python buildpack will accept -----------------------------------------------


def tracked_files() -> set[str]:
    if not (BASE_DIR / ".git").exists() or not shutil.which("git"):
        pytest.skip("not a git checkout")
    result = subprocess.run(
        ["git", "ls-files"], cwd=BASE_DIR, capture_output=True, text=True, check=True
    )
    return set(result.stdout.splitlines())


def test_the_repository_is_one_the_python_buildpack_builds():
    files = tracked_files()
    # Exactly one package manager file (several is a build error since v325).
    managers = {"requirements.txt", "Pipfile.lock", "poetry.lock", "uv.lock"}
    assert files & managers == {"requirements.txt"}
    # A committed virtualenv is a build error since v324; runtime.txt would
    # override .python-version.
    assert not {f for f in files if f.split("/")[0] in {".venv", "venv"}}
    assert "runtime.txt" not in files
    assert ".python-version" in files


def test_python_version_is_a_supported_major_version():
    version = (BASE_DIR / ".python-version").read_text().strip()
    # A major version gets patch updates at each build; 3.11-3.14 are supported.
    assert version in {"3.11", "3.12", "3.13", "3.14"}
    assert f"{sys.version_info.major}.{sys.version_info.minor}" == version
