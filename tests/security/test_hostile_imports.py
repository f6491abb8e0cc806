"""Hostile files and arguments for the import commands (``import_instatokend``,
``import_token``, ``import_starting_token``): whatever the file holds, the command
ends with a clear error or a validated import, never a traceback; a refused
import stores nothing (all or nothing); no token is ever printed."""

import io
import json
import os
import tempfile
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.core.management import CommandError, call_command
from django.test import override_settings
from hypothesis import assume, given
from hypothesis import strategies as st

from accounts.models import InstagramAccount
from tests import instagram_fakes as fakes
from tests.security import hostile

GOOD = "IGAAvalidImportedToken0000000001"
FUZZ = hostile.fuzz(max_examples=80)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("agent_settings")]


def _me(request):
    """Instagram: only GOOD is a live token; anything else is refused with 190."""
    token = parse_qs(urlsplit(request.url).query).get("access_token", [""])[0]
    if token != GOOD:
        return (400, {}, json.dumps(fakes.graph_error(190)))
    return (200, {}, json.dumps(fakes.me()))


def _instagram():
    rsps = responses.RequestsMock(assert_all_requests_are_fired=False)
    rsps.add_callback(responses.GET, fakes.ME_URL, callback=_me)
    rsps.add(
        responses.GET,
        fakes.REFRESH_URL,
        json=fakes.graph_error(100, message="too young"),
        status=400,
    )
    return rsps


def _run(*args) -> tuple[str, str, CommandError | None]:
    out, err = io.StringIO(), io.StringIO()
    error = None
    try:
        call_command(*args, stdout=out, stderr=err)
    except CommandError as exc:  # the one clean way to fail
        error = exc
    return out.getvalue(), err.getvalue(), error


def _with_file(data: bytes, *args):
    fd, path = tempfile.mkstemp(suffix=".json")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        with _instagram():
            return _run("import_instatokend", path, *args)
    finally:
        os.unlink(path)


def _tokens_in(value) -> list[str]:
    if isinstance(value, dict):
        found = [v for k, v in value.items() if k == "token" and isinstance(v, str)]
        return found + [t for v in value.values() for t in _tokens_in(v)]
    if isinstance(value, list):
        return [t for v in value for t in _tokens_in(v)]
    return []


def _keys_in(value) -> list[str]:
    if isinstance(value, dict):
        return [str(k) for k in value] + [k for v in value.values() for k in _keys_in(v)]
    if isinstance(value, list):
        return [k for v in value for k in _keys_in(v)]
    return []


json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hostile.text
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile.text, inner, max_size=3),
    max_leaves=10,
)
config = st.dictionaries(
    st.one_of(st.sampled_from(["port", "refresh_freq", "acme", "shop"]), hostile.text),
    st.one_of(
        json_value,
        st.fixed_dictionaries({"token": st.one_of(hostile.text, st.just(GOOD))}),
    ),
    max_size=4,
)


@FUZZ
@given(data=st.binary(max_size=400))
def test_any_bytes_end_in_a_clear_error_and_store_nothing(data):
    before = hostile.snapshot()
    out, err, error = _with_file(data)
    assert error is not None
    assert hostile.snapshot() == before


@FUZZ
@given(value=config)
def test_any_config_is_all_or_nothing_and_never_prints_a_token(value):
    before = hostile.snapshot()
    out, err, error = _with_file(json.dumps(value).encode())
    shown = out + err + (str(error) if error else "")
    keys = _keys_in(value)
    for token in _tokens_in(value):
        # A refused account name is echoed; a token that is also a name is not a leak.
        if len(token.strip()) >= 8 and not any(token.strip() in k for k in keys):
            assert token.strip() not in shown, "a token was printed"
    names = [k for k in value if k not in ("port", "refresh_freq")]
    if error is not None:
        assert hostile.snapshot() == before, "a refused import stored something"
    else:
        # Accepted only when every account is GOOD under a valid name.
        assert names and all(value[n] == {"token": GOOD} for n in names)
        assert set(InstagramAccount.objects.values_list("slug", flat=True)) >= set(names)
        InstagramAccount.objects.all().delete()


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 100_000,
        b'{"a": ' * 50_000,
        b"\xff\xfe{\x00}",
        b'{"acme": {"token": "' + b"A" * 2_000_000 + b'"}}',
        b'{"acme": {"token": "IGAA\\u0000x"}}',
        b'{"acme": {"token": "' + GOOD.encode() + b'"}, "../../etc": {"token": "x"}}',
        b'{"<script>": {"token": "' + GOOD.encode() + b'"}}',
        b'{"acme": {"token": "' + GOOD.encode() + b'"}, "acme": {"token": "IGAAother"}}',
    ],
    ids=["deep-list", "deep-object", "not-utf8", "huge-token", "nul", "path-name", "markup", "dup"],
)
def test_pathological_files_end_in_a_clear_error_or_a_valid_import(data):
    before = hostile.snapshot()
    out, err, error = _with_file(data)
    if error is not None:
        assert hostile.snapshot() == before
    else:
        assert set(InstagramAccount.objects.values_list("slug", flat=True)) == {"acme"}


def test_a_directory_or_a_missing_file_is_a_clear_error():
    with tempfile.TemporaryDirectory() as d:
        for path in (d, os.path.join(d, "missing.json")):
            out, err, error = _run("import_instatokend", path)
            assert error is not None and "Cannot read" in str(error)


@FUZZ
@given(slug=hostile.text, token=hostile.text)
def test_import_token_refuses_bad_names_and_tokens_without_printing_them(slug, token):
    assume(token.strip() not in slug)  # a refused name is echoed; that is not the token
    before = hostile.snapshot()
    with _instagram():
        out, err, error = _run("import_token", slug, token)
    shown = out + err + (str(error) if error else "")
    if len(token.strip()) >= 8:
        assert token.strip() not in shown
    assert error is not None  # only GOOD is a live token
    assert hostile.snapshot() == before


@FUZZ
@given(token=hostile.text)
def test_a_bad_starting_token_never_blocks_a_deploy_and_is_never_printed(token):
    before = hostile.snapshot()
    with override_settings(STARTING_TOKEN=token), _instagram():
        out, err, error = _run("import_starting_token")
    assert error is None  # exit 0: the release phase goes on
    if len(token.strip()) >= 8:
        assert token.strip() not in out + err
    assert hostile.snapshot() == before


@pytest.mark.parametrize("text", ["[" * 100_000, '{"a": ' * 50_000])
def test_deeply_nested_json_is_a_config_error_not_a_crash(text):
    """Regression: json.loads raised RecursionError, which escaped as a traceback."""
    from accounts.services.imports import ImportConfigError, instatokend_config_parse

    with pytest.raises(ImportConfigError):
        instatokend_config_parse(text=text)
