"""How Instagram spells a username, and the one way this agent compares them.

Pure (no Django): ``tokenagent/settings.py`` parses ``OWNER_INSTAGRAM_USERNAMES``
with it at start, and the owner rule (``accounts/permissions.py``) applies it to
what ``/me`` says. Instagram usernames are 1 to 30 ASCII letters, digits, ``.``
and ``_``, compared case-insensitively; only ASCII is case-folded, so that, say,
U+212A KELVIN SIGN (which ``str.lower()`` turns into ``k``) matches nothing.
"""

import re

MAX_LENGTH = 30
_SPELLING = re.compile(rf"[a-z0-9._]{{1,{MAX_LENGTH}}}")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def username_normalise(value: str) -> str:
    """``value`` without surrounding spaces and one leading ``@``, ASCII letters
    lower-cased. Raises :class:`ValueError` when the result is not an Instagram
    username."""
    name = str(value).strip()
    if name.startswith("@"):
        name = name[1:].strip()
    name = name.translate(_ASCII_LOWER)
    if not _SPELLING.fullmatch(name):
        raise ValueError("not an Instagram username (1 to 30 of a-z, 0-9, '.' and '_')")
    return name


def username_or_none(value: str) -> str | None:
    """:func:`username_normalise`, or None for anything Instagram would not spell."""
    try:
        return username_normalise(value)
    except ValueError:
        return None
