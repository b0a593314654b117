"""Torch threads for training in this process (`training.budget.in_process_threads`): one for small steps, where
a second thread was no faster on free cores and five to six times slower on busy ones; torch's own count for larger
steps; a configured count always; the caller's count back afterwards."""
import numpy as np
import pandas as pd
import pytest
import torch

from pipelines.training.budget import SMALL_STEP_ROWS, in_process_threads, torch_threads
from pipelines.training.config import TrainJobConfig
from pipelines.training.in_process import describe_in_process
from pipelines.training.tabular_synthesis import SynthesisConfig, fit


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # a caller with two, as torch gives this project's 2-core machine
    yield
    torch.set_num_threads(before)


def test_small_steps_train_on_one_thread_larger_on_torchs_and_a_configured_count_wins(two_threads):
    assert in_process_threads(32) == in_process_threads(SMALL_STEP_ROWS) == 1
    assert in_process_threads(SMALL_STEP_ROWS + 1) == in_process_threads(512) == 2
    assert in_process_threads(None) == 2  # step size unknown
    assert in_process_threads(32, configured=3) == in_process_threads(512, configured=3) == 3


def test_the_in_process_fit_of_a_small_table_trains_on_one_thread_and_gives_the_callers_count_back(two_threads):
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"x": rng.normal(size=300), "y": rng.normal(size=300)})
    seen = []
    fit(table, config=SynthesisConfig(steps=20, evaluations=2),  # 300 rows: steps of 32
        progress=lambda entry: seen.append(torch.get_num_threads()))
    assert seen == [1, 1]
    assert torch.get_num_threads() == 2


def test_the_callers_count_comes_back_also_when_training_fails(two_threads):
    with pytest.raises(RuntimeError, match="diverged"):
        with torch_threads(1):
            assert torch.get_num_threads() == 1
            raise RuntimeError("diverged")
    assert torch.get_num_threads() == 2


def test_a_local_training_job_says_how_many_threads_it_trains_on(two_threads):
    def job(batch_size, **scaling):
        return TrainJobConfig(name="m", dataset="d", train={"batch_size": batch_size}, scaling=scaling)

    assert describe_in_process(job(32)) == "1 process × 1 torch thread(s)"
    assert describe_in_process(job(512)) == "1 process × 2 torch thread(s)"
    assert describe_in_process(job(32, torch_threads=2)) == "1 process × 2 torch thread(s)"
