"""Reports a person opens in a browser: reports/<id>/index.html with PNG plots beside it, on the job's storage.

One module per kind of report — `training` (a registered model), `sweep`, `scores`, `samples` — each
with a `build_*_report(root, ...) -> Report`; `page` renders and commits a `Report`, `plotting` holds
the figure helpers they share, `data` reads a prepared dataset's rows without Ray, and `after_job`
is the one-line hook the jobs call when they finish.
"""
