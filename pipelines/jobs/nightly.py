"""`vaepipe nightly`: what the cluster's schedule runs -- score a date's input with the promoted model, and on
request every earlier date that has input and no scores yet.

The config is a scoring config (configs/nightly.yaml) with what a schedule adds:

- a bare model name means its PROMOTED version, resolved once per run (every date a run scores gets the same);
- **the run's date** is the schedule's, not the clock's: `--date`, else the tick's time (`--scheduled-time`, or
  the name Kubernetes and KubeRay give a tick's job, `--scheduled-job`), else the config's `date`, else now --
  a time taken as a date in the config's `time_zone`, then moved back `lag_days` days;
- **a dated input**: `{date}` in `input` is the run's date (YYYY-MM-DD; `{date:%Y%m%d}` takes any strftime
  form), so `input: events-{date}` reads datasets/events-2026-11-25 on the 25th. The scores of every date go
  to one folder, `series` (default: the input with its date taken out, `events`), where the scores report
  finds their history;
- **catch-up** (`--since DATE`, or `catch_up_days` in the config): every date from the first to the run's date
  that has input (a complete prepared dataset) and no `_SUCCESS`, oldest first, each once; each date is
  reported scored, already complete, or missing input.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Callable, Iterable, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from pipelines.batch.run import BatchOutcome
from pipelines.errors import UserError
from pipelines.jobs.score import ScoreJobConfig

DATE_FIELD = "date"
# a catch-up that spans more dates than this is almost always a mistyped --since
MAX_CATCH_UP_DATES = 400
# A scheduled job's name ends in its tick's time in minutes since the Unix epoch: Kubernetes' CronJob names
# each Job <cronjob>-<minutes> and KubeRay's RayCronJob each RayJob the same (getRayJobName, KubeRay 1.7).
# Fewer than 8 digits is not such a time (it would be before 1990): a random name suffix, say.
_SCHEDULED_JOB_NAME = re.compile(r"^(?P<name>.+)-(?P<minutes>\d{8,10})$")


class NightlyError(UserError, ValueError):
    """A nightly run that cannot be dated or planned; the message says which flag or field to fix."""


class NightlyJobConfig(ScoreJobConfig):
    """`vaepipe nightly`'s config: a scoring config whose input may carry the date, and the schedule's
    time zone, lag and catch-up (see configs/nightly.yaml)."""

    input: str = Field(description="prepared dataset name or URI; `{date}` (or `{date:%Y%m%d}`) in it is the "
                                   "run's date, e.g. events-{date}")
    time_zone: str = Field("UTC", description="IANA time zone in which a scheduled time (or now) is a date; "
                                              "keep it the schedule's timeZone")
    lag_days: int = Field(0, ge=0, description="score the data of this many days before the scheduled (or "
                                               "today's) date: 1 when a run after midnight scores yesterday")
    catch_up_days: int = Field(0, ge=0, le=MAX_CATCH_UP_DATES - 1, description=(
        "also score the dates up to this many days before the run's date that have input and no _SUCCESS "
        "(0: the run's date only; --since DATE does the same from DATE)"))

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        zone_of(value)
        return value

    @field_validator("input")
    @classmethod
    def _valid_template(cls, value: str) -> str:
        render_input(value, date(2000, 1, 31))  # a bad field or format is an error now, not at 2 a.m.
        return value


def zone_of(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise NightlyError(f"time_zone {name!r} is not an IANA time zone (e.g. UTC, Europe/Berlin, "
                           "America/New_York)") from None


# --- dated inputs ---------------------------------------------------------------------------------------------


def is_dated(template: str) -> bool:
    """True when `template` names the run's date (`{date}` or `{date:<strftime>}`)."""
    return any(field == DATE_FIELD for _, field, _, _ in string.Formatter().parse(template))


def render_input(template: str, day: date) -> str:
    """The input of `day`: each `{date}` as YYYY-MM-DD, each `{date:<strftime>}` in that form; `{{` is `{`."""
    fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    unknown = sorted({field or "{}" for field in fields} - {DATE_FIELD})
    if unknown:
        raise NightlyError(f"input {template!r} has template field(s) {unknown}; the only one is {{date}} (or "
                           "{date:%Y%m%d}); write a literal brace as {{ or }}")
    try:
        return template.format(date=day)
    except (ValueError, IndexError) as err:
        raise NightlyError(f"input {template!r} is not a valid template ({err})") from None


def default_series(template: str) -> str:
    """The scores folder of a dated input: its last path segment with the date fields taken out and the
    separators they leave trimmed (`events-{date}` and `s3://b/raw/events/{date}` → `events`)."""
    without = "".join(literal for literal, _, _, _ in string.Formatter().parse(template)).replace("\\", "/")
    segments = [s for s in without.split("/") if s.strip("-_.")]
    name = re.sub(r"([-_.])[-_.]+", r"\1", segments[-1]).strip("-_.") if segments else ""
    if not name:
        raise NightlyError(f"input {template!r} leaves no name once its date is taken out: set `series` (the "
                           "folder its scores go to under scores/<model>/)")
    return name


# --- the run's date -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunDate:
    day: date
    source: str  # where the date came from, for the first progress line


def parse_scheduled_time(text: str) -> datetime:
    """An RFC 3339 time (`2026-11-25T02:00:00Z`, the form of KubeRay's ray.io/cronjob-scheduled-timestamp)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise NightlyError(f"--scheduled-time {text!r} is not an RFC 3339 time with a zone, e.g. "
                           "2026-11-25T02:00:00Z")
    return moment


def scheduled_time_of_job(name: str) -> Optional[datetime]:
    """The tick a scheduled job's name carries (`vaepipe-nightly-29926200` → 2026-11-25T02:00Z), or None
    for a name without one (a job created by hand)."""
    match = _SCHEDULED_JOB_NAME.match(name.strip())
    if match is None:
        return None
    return datetime.fromtimestamp(int(match["minutes"]) * 60, tz=timezone.utc)


def run_date(config: NightlyJobConfig, day: Optional[str] = None, scheduled_time: Optional[str] = None,
             scheduled_job: Optional[str] = None, now: Optional[datetime] = None) -> RunDate:
    """The date this run scores: `day` (the data's date itself), else the scheduled time, else the config's
    `date`, else `now` -- a time read as a date in `config.time_zone`, then `lag_days` earlier."""
    if day:
        return RunDate(parse_day(day, "--date"), "--date")
    if config.date:
        return RunDate(parse_day(config.date, "date"), "the config's date")
    zone = zone_of(config.time_zone)
    lag = f", less {config.lag_days} day(s) lag" if config.lag_days else ""
    moment, source = None, ""
    if scheduled_time:
        moment = parse_scheduled_time(scheduled_time)
        source = f"scheduled {moment.isoformat()}"
    elif scheduled_job:
        moment = scheduled_time_of_job(scheduled_job)
        source = (f"scheduled {moment.isoformat()} (job {scheduled_job})" if moment
                  else f"now: job {scheduled_job} carries no scheduled time (a run started by hand)")
    if moment is None:
        moment = now or datetime.now(timezone.utc)
        source = source or "now"
    return RunDate(moment.astimezone(zone).date() - timedelta(days=config.lag_days),
                   f"{source} in {config.time_zone}{lag}")


def parse_day(text: str, what: str) -> date:
    try:
        return date.fromisoformat(str(text))
    except ValueError:
        raise NightlyError(f"{what} {text!r} is not a date YYYY-MM-DD") from None


def catch_up_dates(first: date, last: date) -> list[date]:
    """Every date from `first` to `last`, oldest first."""
    if first > last:
        raise NightlyError(f"--since {first} is after the run's date {last}: nothing to catch up")
    count = (last - first).days + 1
    if count > MAX_CATCH_UP_DATES:
        raise NightlyError(f"a catch-up from {first} to {last} spans {count} dates, more than "
                           f"{MAX_CATCH_UP_DATES} in one run: choose a later --since")
    return [first + timedelta(days=i) for i in range(count)]


# --- one date's scoring config ---------------------------------------------------------------------------------


def nightly_config(path: str, overrides: Iterable[str] = ()) -> NightlyJobConfig:
    """The config file with `--set` overrides; a bare model name means its PROMOTED version."""
    from pipelines.config import load_config
    from pipelines.storage.registry import PROMOTED

    config = load_config(NightlyJobConfig, path, overrides)
    return config.model_copy(update={"model": config.model if "@" in config.model else f"{config.model}@{PROMOTED}"})


def scoring_config(config: NightlyJobConfig, day: date, model: Optional[str] = None) -> ScoreJobConfig:
    """The `vaepipe score` config of one date: the input of that date, its scores in the run's series."""
    fields = {name: getattr(config, name) for name in ScoreJobConfig.model_fields}
    dated = is_dated(config.input)
    fields.update(input=render_input(config.input, day), date=day.isoformat(), model=model or config.model,
                  series=config.series or (default_series(config.input) if dated else None))
    return ScoreJobConfig.model_validate(fields)


# --- catch-up --------------------------------------------------------------------------------------------------

SCORED, COMPLETE, MISSING_INPUT, FAILED = "scored", "already complete", "missing input", "failed"


@dataclass
class DateResult:
    """What a catch-up did with one date."""

    day: date
    input: str
    status: str = ""
    output: str = ""
    outcome: Optional[BatchOutcome] = None
    error: str = ""


def run_catch_up(config: NightlyJobConfig, dates: list[date], progress: Callable[[str], None] = print,
                 after_scoring: Callable[[BatchOutcome], None] = lambda _: None) -> list[DateResult]:
    """Score each of `dates` (oldest first) that has input and no `_SUCCESS` (every one with input under
    `overwrite`), one Ray session for all; `after_scoring` runs after each commit (the CLI's report).

    One date's failure (bad input, a lease held by another run) is recorded and the next date is tried."""
    from pipelines.batch.model_actors import resolve_model
    from pipelines.datasets.catalog import load_manifest
    from pipelines.jobs.score import run_scoring
    from pipelines.runtime.ray_session import ray_session
    from pipelines.storage.commit import AlreadyComplete, is_complete
    from pipelines.storage.layout import output_root, resolve_dataset, scores_uri, storage_root
    from pipelines.storage.objects import check_access

    if not is_dated(config.input) and len(dates) > 1:
        raise NightlyError(f"input {config.input!r} has no {{date}}: a catch-up would score the same data for "
                           "every date; give the input a date template (input: events-{date}) or drop --since "
                           "/ catch_up_days")
    root = storage_root(config.storage)
    check_access(root)
    model = resolve_model(root, config.model)  # once: every date gets the same version
    outputs = output_root(root, config.output)
    results, to_score = [], []
    for day in dates:
        score_config = scoring_config(config, day, model.reference)
        result = DateResult(day, resolve_dataset(root, score_config.input))
        results.append(result)
        if not is_complete(result.input):
            result.status = MISSING_INPUT
            continue
        series = score_config.series or load_manifest(result.input).name
        result.output = scores_uri(outputs, model.slug, series, day.isoformat())
        if is_complete(result.output) and not config.overwrite:
            result.status = COMPLETE
        else:
            to_score.append((result, score_config))
    progress(f"catch-up {dates[0]} … {dates[-1]} with {model.reference}: {len(to_score)} date(s) to score, "
             f"{sum(r.status == COMPLETE for r in results)} already complete, "
             f"{sum(r.status == MISSING_INPUT for r in results)} missing input")
    if not to_score:
        return results
    with ray_session(config.ray, trains=False):
        for result, score_config in to_score:
            try:
                result.outcome = run_scoring(score_config, progress)
            except AlreadyComplete:
                result.status = COMPLETE  # another run committed it since we looked
                continue
            except UserError as err:
                result.status, result.error = FAILED, " ".join(str(err).split())
                progress(f"{result.day}: failed: {result.error}")
                continue
            result.status = SCORED
            after_scoring(result.outcome)
    return results
