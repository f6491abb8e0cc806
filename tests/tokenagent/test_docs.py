"""docs/instagram.md is the Instagram contract the code cites by section: every
section a comment names exists, the numbering stays the one the comments use,
each section links Meta's page, and nothing cites a document the repository
does not hold (instagram-api.md)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "instagram.md"
SKIP_DIRS = {"node_modules", "var", "staticfiles", "__pycache__"}
TEXT_SUFFIXES = {".py", ".md", ".html", ".js", ".txt", ".toml"}

# The numbering the code's comments use; a section may be renamed in words, not renumbered.
SECTIONS = {
    1: "Authorization window",
    2: "Code exchange",
    3: "Long-lived token",
    4: "Refresh",
    5: "Profile",
    6: "Media",
    7: "Errors",
    8: "Rate limits",
    9: "Who can log in",
    10: "Deauthorize and data-deletion callbacks",
    11: "What a token service must do",
}

_NAME = r"(?:docs/instagram|instagram-api)\.md"
_NUMBERS = r"(?P<numbers>\d+(?:\s*(?:-|–|,|and)\s*\d+)*)"
# "docs/instagram.md §4", "§§2-5, 10", "instagram-api.md, sections 3 and 4", and
# "section 7 of instagram-api.md".
_AFTER = re.compile(_NAME + r",?\s*(?:§§?\s*|sections?\s+)" + _NUMBERS)
_BEFORE = re.compile(r"(?:§§?\s*|sections?\s+)" + _NUMBERS + r"\s+of\s+(?:the\s+)?" + _NAME)


def _numbers(text: str) -> set[int]:
    found: set[int] = set()
    for part in re.split(r"\s*(?:,|and)\s*", text):
        low, _, high = part.replace("–", "-").partition("-")
        found.update(range(int(low), int(high or low) + 1))
    return found


def references(text: str) -> set[int]:
    """The section numbers ``text`` cites in docs/instagram.md (or its old name)."""
    cited: set[int] = set()
    for pattern in (_AFTER, _BEFORE):
        for match in pattern.finditer(text):
            cited |= _numbers(match.group("numbers"))
    return cited


def repository_files(suffixes: set[str]) -> list[Path]:
    files = []
    for path in ROOT.rglob("*"):
        parts = path.relative_to(ROOT).parts
        if any(p.startswith(".") or p in SKIP_DIRS for p in parts[:-1]):
            continue
        if path.suffix in suffixes and path.is_file():
            files.append(path)
    return files


def doc_sections() -> dict[int, str]:
    return {
        int(m.group(1)): m.group(2)
        for m in re.finditer(r"^## (\d+)\. (.+)$", DOC.read_text(), re.MULTILINE)
    }


def test_reference_parsing_reads_every_form_the_comments_use():
    assert references("see docs/instagram.md §4.") == {4}
    assert references("(instagram-api.md §§2-5, 10)") == {2, 3, 4, 5, 10}
    assert references("instagram-api.md section 4 and PRODUCT.md") == {4}
    assert references("# instagram-api.md, sections 3 and 4") == {3, 4}
    assert references("(section 7 of instagram-api.md)") == {7}
    assert references("The only code that speaks HTTP to Instagram (instagram-api.md).") == set()


def test_the_sections_keep_the_numbers_the_code_cites():
    sections = doc_sections()
    assert list(sections) == list(SECTIONS)
    for number, title in SECTIONS.items():
        assert sections[number].startswith(title), (number, sections[number])


def test_every_cited_section_exists():
    sections = doc_sections()
    missing = {}
    for path in repository_files(TEXT_SUFFIXES):
        cited = references(path.read_text(errors="replace"))
        if cited - set(sections):
            missing[str(path.relative_to(ROOT))] = sorted(cited - set(sections))
    assert not missing


def test_the_code_cites_sections_of_the_agents_own_document():
    # Until the comments say docs/instagram.md this lists them (the lead repoints them).
    stale = sorted(
        str(path.relative_to(ROOT))
        for path in repository_files({".py"})
        if path != Path(__file__).resolve()
        and "instagram-api.md" in path.read_text(errors="replace")
    )
    assert stale == []


def test_every_section_but_the_summary_links_metas_reference():
    text = DOC.read_text()
    bodies = re.split(r"^## \d+\. .+$", text, flags=re.MULTILINE)[1:]
    assert len(bodies) == len(SECTIONS)
    for number, body in zip(SECTIONS, bodies, strict=True):
        if number == 11:
            continue
        assert "https://developers.facebook.com/docs/" in body, number
