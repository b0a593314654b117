"""Fixtures of the pipelines tests. Group new ones by topic under a comment header like below."""

from __future__ import annotations

import pytest

from pipelines.storage.objects import clear_caches
from tests.restricted_identity import AWS_VARIABLES, Identity, RestrictedStore, running_restricted_store

# --- least privilege: a store that enforces the shipped policy -------------------------------


@pytest.fixture(scope="session")
def restricted_store(tmp_path_factory) -> RestrictedStore:
    """An S3 server on 127.0.0.1 with an admin and a jobs identity whose rights are the shipped
    policy template rendered for ``s3://<bucket>/vaepipe``. The environment is left alone:
    use `act_as` (in this process) or `RestrictedStore.process_env` (a subprocess)."""
    with running_restricted_store(tmp_path_factory.mktemp("restricted-store")) as store:
        yield store
    clear_caches()


@pytest.fixture
def act_as(restricted_store, monkeypatch):
    """``act_as(identity)``: AWS_* of this process point at the restricted store as `identity`
    until the test ends."""

    def switch(identity: Identity) -> None:
        for name in AWS_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        for name, value in restricted_store.aws_env(identity).items():
            monkeypatch.setenv(name, value)
        clear_caches()

    yield switch
    clear_caches()
