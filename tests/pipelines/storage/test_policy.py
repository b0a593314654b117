"""The policy template rendered for a storage root (what it grants is checked in tests/infra and,
enforced by a real evaluator, in test_least_privilege.py)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.storage.policy import PolicyError, render_bucket_policy, split_storage_uri

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("uri, expected", [
    ("s3://my-bucket/vaepipe", ("my-bucket", "vaepipe/")),
    ("s3://my-bucket/teams/ml/vaepipe/", ("my-bucket", "teams/ml/vaepipe/")),
    ("s3://my-bucket", ("my-bucket", "")),
])
def test_a_storage_root_splits_into_bucket_and_key_prefix(uri, expected):
    assert split_storage_uri(uri) == expected


def test_every_placeholder_is_filled_with_the_bucket_and_prefix():
    text = json.dumps(render_bucket_policy("s3://my-bucket/teams/vaepipe"))
    assert "{bucket}" not in text and "{root}" not in text
    assert "arn:aws:s3:::my-bucket/teams/vaepipe/scores/*" in text and '"teams/vaepipe/runs/*"' in text


@pytest.mark.parametrize("uri, fragment", [
    ("/data/vaepipe", "not an S3 storage root"),
    ("s3://My_Bucket/x", "bucket name 'My_Bucket'"),
    ("s3://my-bucket/team*/vaepipe", "segment 'team*'"),
    ("s3://my-bucket/${aws:username}", "segment '${aws:username}'"),
    ("s3://my-bucket/a/../b", "segment '..'"),
    ("s3://my-bucket/a?x=1", "'?'"),
])
def test_a_uri_that_would_widen_or_break_the_policy_is_refused_naming_it(uri, fragment):
    with pytest.raises(PolicyError, match=re.escape(fragment)):
        render_bucket_policy(uri)


def test_the_script_runs_from_a_checkout_without_vaepipe_on_the_path(tmp_path):
    script = REPO / "pipelines" / "storage" / "policy.py"
    printed = subprocess.run([sys.executable, "-I", str(script), "s3://my-bucket/vaepipe", "--prepare"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout) == render_bucket_policy("s3://my-bucket/vaepipe", prepare=True)
    refused = subprocess.run([sys.executable, "-I", str(script), "s3://my-bucket/a*"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and refused.stderr.startswith("error: storage prefix segment 'a*'")
