"""docs/SECURITY.md: every row of the threat table names tests, and every named
test exists (a renamed or deleted test must not leave the page pointing at
nothing)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "SECURITY.md"
REF = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def _rows() -> list[str]:
    return [line for line in DOC.read_text().splitlines() if re.match(r"\| \d+ \|", line)]


def test_the_threat_table_covers_the_attackers_the_issue_names():
    text = DOC.read_text().lower()
    rows = _rows()
    assert len(rows) >= 10
    for who in (
        "visitor of an embedding site",
        "another website",
        "stranger at `/login/`",
        "leaked database dump",
        "forged meta callback",
        "forged or replayed oauth callback",
    ):
        assert who in text, who


def test_every_row_names_at_least_one_test():
    for row in _rows():
        assert REF.search(row), f"no test named in: {row[:80]}"


def test_every_named_test_exists():
    refs = {m.groups() for m in REF.finditer(DOC.read_text())}
    assert refs
    for path, name in sorted(refs):
        source = ROOT / path
        assert source.is_file(), path
        assert re.search(rf"^def {name}\(", source.read_text(), re.M), f"{path}::{name}"


def test_no_figure_is_left_as_a_placeholder():
    assert not re.search(r"\b[A-Z]+-FIGURES\b", DOC.read_text())
