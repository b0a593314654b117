"""How `vaepipe nightly` dates a run (the schedule's tick, not the clock, in the config's time zone) and
names its input (a date template) -- no Ray, no storage."""
from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from pipelines.cli.main import main
from pipelines.config import ConfigError
from pipelines.jobs.nightly import (
    NightlyError,
    NightlyJobConfig,
    catch_up_dates,
    default_series,
    nightly_config,
    render_input,
    run_date,
    scheduled_time_of_job,
    scoring_config,
)

ROOT = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 11, 25, 23, 30, tzinfo=timezone.utc)


def config(**fields) -> NightlyJobConfig:
    return NightlyJobConfig(model="fair@PROMOTED", input=fields.pop("input", "events-{date}"), **fields)


# --- dated inputs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("template,expected", [
    ("events-{date}", "events-2026-11-05"),
    ("events-{date:%Y%m%d}", "events-20261105"),
    ("s3://raw/events/{date:%Y/%m/%d}/prepared", "s3://raw/events/2026/11/05/prepared"),
    ("digits", "digits"),
    ("literal-{{braces}}-{date}", "literal-{braces}-2026-11-05"),
])
def test_the_input_template_names_the_runs_date(template, expected):
    assert render_input(template, date(2026, 11, 5)) == expected


@pytest.mark.parametrize("template", ["events-{day}", "events-{}", "events-{date", "events-{0}"])
def test_an_input_template_with_another_field_is_refused_when_the_config_loads(template):
    with pytest.raises(ValueError, match="input"):
        config(input=template)


@pytest.mark.parametrize("template,series", [
    ("events-{date}", "events"),
    ("events_{date:%Y%m%d}_v2", "events_v2"),
    ("s3://bucket/raw/events/{date}", "events"),
    ("s3://bucket/raw/events/{date:%Y}/{date:%m}/{date:%d}", "events"),
])
def test_a_dated_inputs_scores_share_the_series_named_by_the_input_without_its_date(template, series):
    assert default_series(template) == series


def test_a_template_that_is_only_a_date_needs_an_explicit_series():
    with pytest.raises(NightlyError, match="set `series`"):
        default_series("{date}")


def test_each_dates_scoring_config_reads_that_dates_input_into_the_series():
    scoring = scoring_config(config(), date(2026, 11, 5))
    assert (scoring.input, scoring.series, scoring.date) == ("events-2026-11-05", "events", "2026-11-05")
    assert scoring_config(config(input="digits"), date(2026, 11, 5)).series is None  # the dataset's own name
    assert scoring_config(config(series="clicks"), date(2026, 11, 5), model="fair@3").series == "clicks"


# --- the run's date -------------------------------------------------------------------------------------------


def test_the_scheduled_time_is_a_date_in_the_configs_time_zone():
    tick = "2026-11-25T02:00:00Z"
    assert run_date(config(), scheduled_time=tick, now=NOW).day == date(2026, 11, 25)
    # 02:00 UTC is still the evening before in New York
    assert run_date(config(time_zone="America/New_York"), scheduled_time=tick).day == date(2026, 11, 24)
    assert run_date(config(time_zone="Asia/Tokyo"), scheduled_time="2026-11-25T16:00:00+00:00").day == date(2026, 11, 26)


def test_lag_days_move_a_scheduled_or_current_date_back_but_not_an_explicit_one():
    lagged = config(lag_days=1)
    assert run_date(lagged, scheduled_time="2026-11-25T02:00:00Z").day == date(2026, 11, 24)
    assert run_date(lagged, now=NOW).day == date(2026, 11, 24)
    assert run_date(lagged, day="2026-11-25").day == date(2026, 11, 25)


def test_without_a_schedule_the_date_is_now_in_the_time_zone():
    assert run_date(config(), now=NOW).day == date(2026, 11, 25)
    assert run_date(config(time_zone="Europe/Berlin"), now=NOW).day == date(2026, 11, 26)


def test_a_scheduled_jobs_name_carries_its_ticks_minutes_since_the_epoch():
    # Kubernetes names a CronJob's Jobs, and KubeRay a RayCronJob's RayJobs, <name>-<Unix minutes>
    minutes = int(datetime(2026, 11, 25, 2, 0, tzinfo=timezone.utc).timestamp()) // 60
    assert scheduled_time_of_job(f"vaepipe-nightly-{minutes}") == datetime(2026, 11, 25, 2, 0, tzinfo=timezone.utc)
    dated = run_date(config(time_zone="America/New_York"), scheduled_job=f"vaepipe-nightly-{minutes}", now=NOW)
    assert dated.day == date(2026, 11, 24) and "vaepipe-nightly-" in dated.source


@pytest.mark.parametrize("name", ["nightly-now", "vaepipe-nightly-x7k2p", "vaepipe-nightly-12345"])
def test_a_job_name_without_a_tick_means_now(name):
    assert scheduled_time_of_job(name) is None
    dated = run_date(config(), scheduled_job=name, now=NOW)
    assert dated.day == date(2026, 11, 25) and "by hand" in dated.source


@pytest.mark.parametrize("tick", ["2026-11-25", "2026-11-25T02:00:00", "tomorrow"])
def test_a_scheduled_time_needs_a_zone(tick):
    with pytest.raises(NightlyError, match="RFC 3339"):
        run_date(config(), scheduled_time=tick)


def test_an_unknown_time_zone_is_refused_when_the_config_loads():
    with pytest.raises(ValueError, match="not an IANA time zone"):
        config(time_zone="Mars/Olympus")


# --- catch-up dates ---------------------------------------------------------------------------------------------


def test_catch_up_covers_every_date_oldest_first():
    assert catch_up_dates(date(2026, 2, 27), date(2026, 3, 2)) == [
        date(2026, 2, 27), date(2026, 2, 28), date(2026, 3, 1), date(2026, 3, 2)]


def test_a_catch_up_that_starts_after_the_run_or_spans_years_is_refused():
    with pytest.raises(NightlyError, match="after the run's date"):
        catch_up_dates(date(2026, 3, 2), date(2026, 3, 1))
    with pytest.raises(NightlyError, match="choose a later --since"):
        catch_up_dates(date(2020, 1, 1), date(2026, 3, 1))


# --- the shipped config and the command line ---------------------------------------------------------------------


def test_the_shipped_nightly_config_loads_with_the_promoted_model():
    loaded = nightly_config(str(ROOT / "configs" / "nightly.yaml"))
    assert loaded.model == "digits@PROMOTED" and loaded.time_zone == "Etc/UTC"
    assert loaded.lease.expiry_seconds == 3 * loaded.lease.heartbeat_seconds


def test_a_bad_date_flag_is_one_error_line(capsys, tmp_path):
    path = tmp_path / "nightly.yaml"
    path.write_text("model: fair\ninput: events-{date}\n")
    assert main(["nightly", str(path), "--scheduled-time", "yesterday", "--storage", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --scheduled-time 'yesterday' is not an RFC 3339 time")


def test_a_catch_up_of_an_undated_input_is_refused_before_anything_runs(capsys, tmp_path):
    path = tmp_path / "nightly.yaml"
    path.write_text("model: fair\ninput: fair\n")
    assert main(["nightly", str(path), "--date", "2026-11-25", "--since", "2026-11-20",
                 "--storage", str(tmp_path)]) == 2
    assert "has no {date}: a catch-up would score the same data" in capsys.readouterr().err


def test_an_unknown_config_key_names_it():
    with pytest.raises(ConfigError, match="catch_up: unknown field"):
        nightly_config(str(ROOT / "configs" / "nightly.yaml"), ["catch_up=3"])
