"""Names that become parts of storage paths (datasets, models, runs).

A name is validated before it is joined into a URI, so `..`, `/` or an empty
string can never reach outside the prefix a job owns.
"""
from __future__ import annotations

import re
from pipelines.errors import UserError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class InvalidName(UserError, ValueError):
    pass


def validate_name(name: str, what: str = "name") -> str:
    """Return `name` unchanged if it is safe as one path segment; raise otherwise."""
    if not isinstance(name, str) or not name:
        raise InvalidName(f"{what} must be a non-empty string")
    if "/" in name or "\\" in name:
        raise InvalidName(f"{what} {name!r} contains '/': use letters, digits, '.', '_' or '-'")
    if ".." in name:
        raise InvalidName(f"{what} {name!r} contains '..': use letters, digits, '.', '_' or '-'")
    if not _NAME.match(name):
        raise InvalidName(
            f"{what} {name!r} is not allowed: it must start with a letter or digit and use only "
            "letters, digits, '.', '_' or '-' (at most 128 characters)"
        )
    return name
