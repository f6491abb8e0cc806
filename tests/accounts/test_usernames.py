"""accounts/usernames.py: usernames as Instagram spells them, nothing else."""

import pytest

from accounts.usernames import username_normalise, username_or_none


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("acme_bakery", "acme_bakery"),
        (" @Acme.Bakery ", "acme.bakery"),
        ("@ acme", "acme"),
        ("ACME_2025", "acme_2025"),
        ("A" * 30, "a" * 30),
    ],
)
def test_usernames_lose_spaces_and_one_at_and_only_ascii_is_lower_cased(value, expected):
    assert username_normalise(value) == expected
    assert username_or_none(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "@",
        "@@acme",
        "\u212aate",  # KELVIN SIGN
        "\u0130nstagram",  # LATIN CAPITAL LETTER I WITH DOT ABOVE: lower() gives two chars
        "caf\u00e9",
        "\uff41\uff43\uff4d\uff45",  # fullwidth "acme"
        "acme bakery",
        "acme-bakery",
        "acme!",
        "acme\x00",
        "a" * 31,
    ],
)
def test_anything_instagram_would_not_spell_is_refused(value):
    with pytest.raises(ValueError, match="not an Instagram username"):
        username_normalise(value)
    assert username_or_none(value) is None
