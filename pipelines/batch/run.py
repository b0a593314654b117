"""The one run of every batch verb: resolve the model, take the output's lease, compute the verb's work as
recorded Parquet parts — on Ray or in this process (`runtime.engine`) — let the verb add its files and
figures, commit `_SUCCESS`, report.

A verb supplies a `BatchPlan` — where, how many rows, the model work to run (`ModelWork`: the same actor
class and input for both engines) and what `_SUCCESS` should record — and gets a `BatchOutcome` back. The
lease is taken before Ray starts, so an output that is already complete is reported without starting Ray.
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from pipelines.batch.config import BatchJobConfig
from pipelines.batch.model_actors import ModelWork, RegisteredModel, resolve_model


@dataclass
class BatchPlan:
    prefix: str                                   # the output's URI
    rows: int                                     # rows the output must hold
    description: str                              # the job's first progress line
    work: ModelWork                               # what the model computes, on either engine
    metadata: dict = field(default_factory=dict)  # the verb's own fields of `_SUCCESS`
    # after the parts are written, before the commit: extra files (`commit.write`), figures for `_SUCCESS`
    finish: Optional[Callable[[Any], dict]] = None


@dataclass
class BatchOutcome:
    output_uri: str
    model: str
    rows: int
    seconds: float
    summary: dict = field(default_factory=dict)
    engine: str = "ray"                           # where it ran (`runtime.engine`): ray or local
    tracked: Optional[Any] = None                 # the job's MLflow run (`runtime.tracking.TrackedRun`), if tracked


def open_model(config: BatchJobConfig) -> tuple[str, RegisteredModel]:
    """(storage root, the registered version the config names), after one cheap access check."""
    from pipelines.storage.layout import storage_root
    from pipelines.storage.objects import check_access

    root = storage_root(config.storage)
    check_access(root)
    return root, resolve_model(root, config.model)


def run_batch(job: str, config: BatchJobConfig, model: RegisteredModel, plan: BatchPlan,
              progress: Callable[[str], None] = print) -> BatchOutcome:
    """Write and commit `plan`'s output; `AlreadyComplete` when it exists (and not `config.overwrite`)."""
    from pipelines.batch.model_actors import check_local_device, check_pool_fits, run_in_process, run_on_ray
    from pipelines.batch.parts import write_local_parts, write_parts
    from pipelines.runtime.engine import choose_engine
    from pipelines.runtime.job_progress import counted_batches, row_progress
    from pipelines.runtime.ray_session import ray_session
    from pipelines.runtime.tracking import after_the_job, tracked_run, tracking_for
    from pipelines.storage.commit import OutputCommit
    from pipelines.storage.layout import storage_root

    started = time.monotonic()
    tracking = tracking_for(config.tracking, model.name)  # before anything starts: MLflow missing is one line
    progress(plan.description)
    choice = choose_engine(config.engine, plan.rows, config.ray.address)
    progress(choice.line)
    root = storage_root(config.storage)
    on_ray = choice.engine == "ray"
    if not on_ray:
        check_local_device(config.compute)  # before the lease: nothing taken, nothing to clean up
    # a retry that finds the lease of an attempt killed on any host waits out its expiry and takes it over
    lease = dict(heartbeat_seconds=config.lease.heartbeat_seconds, lease_seconds=config.lease.expiry_seconds,
                 wait_for_expiry=True, progress=progress)
    with OutputCommit(plan.prefix, job=job, overwrite=config.overwrite, **lease) as commit, \
            tracked_run(tracking, f"{job} {model.reference}", {"job": job, **config.model_dump(mode="json")},
                        {"vaepipe.output": plan.prefix}, say=progress) as run, \
            (ray_session(config.ray, trains=False) if on_ray else nullcontext()):
        if on_ray:
            check_pool_fits(config.compute)
            with row_progress(plan.rows, progress):
                write_parts(run_on_ray(plan.work, model, root, config.compute), commit)
        else:
            write_local_parts(counted_batches(run_in_process(plan.work, model, root, config.compute), plan.rows,
                                              progress), commit)
        figures = plan.finish(commit) if plan.finish else {}
        # the commit refuses parts that do not hold exactly plan.rows rows
        seconds = time.monotonic() - started
        commit.commit(expected_rows=plan.rows, metadata={
            "model": model.reference, **plan.metadata, **figures, "rows_out": plan.rows, "engine": choice.engine,
            "seconds": round(seconds, 3)})
        if run is not None:
            after_the_job("MLflow did not get the job's figures", lambda: run.log_metrics(
                {"rows": plan.rows, "seconds": seconds, **figures.get("summary", {})}))
    return BatchOutcome(plan.prefix, model.reference, plan.rows, time.monotonic() - started,
                        figures.get("summary", {}), choice.engine, run)
