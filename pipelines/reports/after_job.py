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


def attach_report(tracked, index_uri: Optional[str]) -> None:
    """Log a written report (its index.html and PNGs) to the job's MLflow run under `report/`; nothing when the
    job is not tracked or its report was not written. A failure is a warning (`runtime.tracking.after_the_job`)."""
    import tempfile

    from pipelines.reports.page import copy_report
    from pipelines.runtime.tracking import after_the_job

    if tracked is None or index_uri is None:
        return
    with tempfile.TemporaryDirectory(prefix="vaepipe-report-") as folder:
        local = copy_report(index_uri, folder)
        after_the_job("the report was not logged to MLflow", lambda: tracked.log_folder(str(local.parent), "report"))
