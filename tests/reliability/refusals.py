"""What every refusal of bad input must look like, checked the same way everywhere: exit status 2, one
`error:` line naming the problem (no traceback, no secret), no new `_SUCCESS`, and every object already
on storage unchanged (same keys, same ETags)."""
from __future__ import annotations

from pathlib import Path

from pipelines.cli.main import main
from pipelines.storage.objects import resolve, s3_client


def objects(root: str) -> dict[str, str]:
    """Key → ETag (S3) or key → (size, mtime) (local) of every object under `root`."""
    location = resolve(root)
    if not location.is_s3:
        base = Path(location.path)
        return {str(p.relative_to(base)): f"{p.stat().st_size}:{p.stat().st_mtime_ns}"
                for p in base.rglob("*") if p.is_file()} if base.is_dir() else {}
    pages = s3_client().get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=location.key)
    return {item["Key"]: item["ETag"] for page in pages for item in page.get("Contents", [])}


def assert_refused(root: str, argv: list[str], capsys, *fragments: str, absent: tuple[str, ...] = ()) -> str:
    """Run `vaepipe argv` in this process and check the refusal; returns the error line (the last line of
    stderr: a job that ran on Ray first has Ray's worker logs above it)."""
    before = objects(root)
    code = main(argv)
    err = capsys.readouterr().err
    after = objects(root)
    assert code == 2, err
    line = err.strip().splitlines()[-1] if err.strip() else ""
    assert line.startswith("error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    for fragment in absent:
        assert fragment not in err, f"{fragment!r} printed in {err!r}"
    assert {key: after.get(key) for key in before} == before, "an existing object was changed or deleted"
    assert not [key for key in set(after) - set(before) if key.endswith("_SUCCESS")], "something was committed"
    return line
