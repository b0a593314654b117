"""What every report test checks: a committed report whose files exist, whose PNGs decode and whose
HTML references only files that are there."""
from __future__ import annotations

import re
from pathlib import Path

from PIL import Image

from pipelines.storage.commit import read_success
from pipelines.reports.page import copy_report
from pipelines.storage.layout import REPORT_INDEX as INDEX


def check_report(index_uri: str, local_dir: Path, figures: set[str]) -> Path:
    """Copy the report at `index_uri` to `local_dir`, check it, and return the local index.html."""
    prefix = index_uri.rsplit("/", 1)[0]
    listed = {part["key"] for part in read_success(prefix)["parts"]}
    assert INDEX in listed and figures <= listed, (figures - listed, listed)
    index = copy_report(index_uri, str(local_dir))
    for name in listed:
        assert (index.parent / name).stat().st_size > 0, name
        if name.endswith(".png"):
            with Image.open(index.parent / name) as picture:
                picture.verify()
    page = index.read_text()
    referenced = set(re.findall(r'(?:src|href)="([^"]+)"', page)) - {"data:,"}
    assert referenced == {name for name in listed if name.endswith(".png")}, referenced
    assert not any("://" in ref or ref.startswith("/") for ref in referenced)
    return index
