"""`one_blas_thread`: NumPy's BLAS on one thread inside the block, as many as before after it."""
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from pipelines.blas import one_blas_thread


def _blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_the_block_runs_on_one_blas_thread_and_the_count_comes_back():
    np.ones((64, 64)) @ np.ones((64, 64))  # NumPy's BLAS is loaded
    with threadpool_limits(limits=2, user_api="blas"):  # as on this project's 2-core machine, on any host
        before = _blas_threads()
        assert before and max(before) == 2
        with one_blas_thread():
            assert set(_blas_threads()) == {1}
        assert _blas_threads() == before
