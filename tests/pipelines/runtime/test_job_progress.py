"""Progress lines of long jobs without a terminal: rows done / total, rows/s and ETA, at a steady interval;
one line per epoch. (The lines from real jobs are checked in test_console_output.py.)"""
from __future__ import annotations

from pipelines.runtime.job_progress import LineSchedule, RowRate, duration
from pipelines.training.epoch_console import epoch_line


def test_a_progress_line_says_rows_done_of_the_total_the_rate_and_the_time_left():
    rate = RowRate(total=1_000_000, started=100.0)
    assert rate.line(250_000, now=110.0) == "250,000 / 1,000,000 rows (25 %)  25,000 rows/s  ETA 30s"
    assert rate.line(1_000_000, now=140.0) == "1,000,000 / 1,000,000 rows (100 %)  25,000 rows/s  in 40s"
    assert rate.bar(500_000, now=110.0).startswith("[###############...............] 500,000 / 1,000,000")


def test_a_line_is_due_every_ten_seconds_or_ten_percent_whichever_comes_first():
    schedule = LineSchedule(total=1000, started=0.0)
    due = [(rows, now) for rows, now in [(10, 1), (50, 2), (120, 3), (130, 5), (140, 13.5), (150, 14), (1000, 15)]
           if schedule.due(rows, now)]
    assert due == [(120, 3), (140, 13.5), (1000, 15)]
    assert not schedule.due(1000, 30)  # nothing new, nothing printed


def test_durations_read_as_a_person_writes_them():
    assert [duration(s) for s in (0.4, 59, 75, 3600 * 2 + 61)] == ["0s", "59s", "1m15s", "2h01m"]


def test_an_epoch_line_has_the_losses_the_rate_and_the_eta():
    metrics = {"epoch": 3, "beta": 1.0, "train_loss": 31.4791, "val_neg_elbo": 30.2734, "val_recon_nll": 29.0481,
               "val_kl": 1.2253, "samples_per_s": 734.4}
    assert epoch_line(metrics, 15, eta_s=24.2) == ("epoch 3/15  β 1  train loss 31.479  val -ELBO 30.273 (recon "
                                                   "29.048, KL 1.225)  734 samples/s  ETA 24s")
    assert epoch_line({**metrics, "epoch": 15}, 15, eta_s=0).endswith("samples/s")
    assert epoch_line({"epoch": 4, "diverged_because": "train_loss became NaN/inf"}, 15, None) == \
        "epoch 4/15: training diverged: train_loss became NaN/inf"


def test_a_local_jobs_batches_pass_through_with_the_same_progress_lines():
    import io

    from pipelines.runtime.job_progress import counted_batches

    lines: list[str] = []
    batches = [{"row_id": list(range(n))} for n in (300, 300, 400)]
    assert list(counted_batches(iter(batches), 1_000, lines.append, stream=io.StringIO())) == batches
    # a line every 10 % at least: each batch here is more than that
    assert [line.split(" rows")[0] for line in lines] == ["300 / 1,000", "600 / 1,000", "1,000 / 1,000"]
    assert lines[-1].startswith("1,000 / 1,000 rows (100 %)") and " in " in lines[-1]
