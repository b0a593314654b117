"""Keeping secrets out of what vaepipe prints.

Two kinds of secret reach messages by accident: credentials written into a URL
(`http://user:password@host`, a `postgres://…` in an environment variable) and
the values of credential variables that a library quotes back in an error. The
CLI passes every `error:` line through `redact`, so a message built anywhere —
ours, pyarrow's, botocore's, Ray's — never shows either.
"""
from __future__ import annotations

import os
import re
from typing import Mapping

# scheme://userinfo@ — the userinfo (user, or user:password) is replaced, the rest of the URL kept
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s'\"]+)@")
# variables whose values are secrets whatever they look like
SECRET_VALUE_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "RAY_AUTH_TOKEN")
MASK = "***"
# shorter values are too likely to occur in ordinary text to be masked wherever they appear
_MIN_SECRET_LENGTH = 6


def has_url_credentials(text: str) -> bool:
    """True when `text` holds a URL with a user or password before its host."""
    return _URL_USERINFO.search(text) is not None


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    """`text` with URL userinfo and the values of secret variables replaced by ***."""
    environ = os.environ if environ is None else environ
    text = _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    for name in SECRET_VALUE_VARIABLES:
        value = environ.get(name)
        if value and len(value) >= _MIN_SECRET_LENGTH:
            text = text.replace(value, MASK)
    return text
