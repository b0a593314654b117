"""The report a job writes when it ends: one call at the end of train, tune, score and generate."""
from __future__ import annotations

import warnings
from typing import Callable, Optional

from pipelines.reports.page import Report, where_to_open, write_report


def report_after_job(build: Callable[..., Report], root: str, *args, progress: Callable[[str], None] = print
                     ) -> Optional[str]:
    """Build and write `build(root, *args)`; returns the URI of its index.html, or None when it failed.

    A failure is a warning, not the job's failure: the job's own output is committed by now, and the
    report is only a view of it that `vaepipe report ...` can build again once the cause is fixed.
    """
    try:
        report = build(root, *args)
        index = write_report(root, report)
    except Exception as err:  # noqa: BLE001 -- any failure here must leave the finished job standing
        warnings.warn(f"the job finished, but its report could not be written ({type(err).__name__}: {err}); "
                      f"try again with `vaepipe report ...`", stacklevel=2)
        return None
    progress(where_to_open(index, report.command))
    return index
