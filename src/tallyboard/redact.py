"""Credentials out of everything tallyboard prints or logs: URLs, DSNs and settings.

Every message that shows a store URL, a command line or a setting goes through `redact`
(free text: each URL's password and each ``password=…``-like pair become ``***``) or,
for invalid settings, `settings_problems`. The user name and host stay, so a message
still says which server was meant::

    postgresql://app:s3cret@db/tally   ->  postgresql://app:***@db/tally
    redis://:s3cret@cache:6379/0       ->  redis://:***@cache:6379/0
    host=db password='s 3' user=app    ->  host=db password=*** user=app
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

HIDDEN = "***"

# Words that name a secret, in a setting's name or a URL query / DSN key.
_SECRET_WORDS = ("password", "passwd", "pwd", "pass", "secret", "token", "key")

_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<authority>[^\s/?#'\"<>]*)")
_PAIR = re.compile(
    r"(?P<name>\b[A-Za-z_]*(?:password|passwd|pwd|pass|secret|token|api_?key)[A-Za-z_]*)"
    r"(?P<eq>\s*=\s*)(?P<value>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s&;,'\"]+)",
    re.IGNORECASE)


def _authority(match: re.Match[str]) -> str:
    userinfo, at, host = match["authority"].rpartition("@")
    if not at:
        return match[0]
    user, colon, _ = userinfo.partition(":")
    return f"{match['scheme']}{user}{':' + HIDDEN if colon else ''}@{host}"


def redact(text: str) -> str:
    """`text` with the password of every URL in it and every secret ``name=value`` pair
    (URL query parameters, libpq keyword DSNs) replaced by ``***``."""
    text = _URL.sub(_authority, text)
    return _PAIR.sub(lambda m: f"{m['name']}{m['eq']}{HIDDEN}", text)


def is_secret(name: str) -> bool:
    """Whether a setting called `name` holds a credential (its value is never shown)."""
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def settings_problems(errors: Iterable[Any]) -> str:
    """Pydantic's `errors()` of invalid settings as lines ``where: what (got value)``.

    The value is shown only for a known, non-secret, scalar setting, and then redacted:
    an API key, a token, an unknown key (perhaps a misspelt secret) or a whole table
    (which would hold the others) never appears."""
    lines = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        where = ".".join(loc) or "settings"
        line = f"  {where}: {error.get('msg', 'invalid')}"
        value = error.get("input")
        shown = (error.get("type") != "extra_forbidden" and loc
                 and not any(is_secret(part) for part in loc)
                 and isinstance(value, str | int | float | bool))
        if shown:
            line += f" (got {redact(repr(value))})"
        lines.append(line)
    return "\n".join(lines)
