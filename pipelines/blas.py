"""BLAS threads for the small linear algebra vaepipe does outside torch (scikit-learn's Gaussian mixtures and
linear probes on latents of a few dozen dimensions).

NumPy's OpenBLAS starts a thread per core. On matrices this small a second thread only hands work back and
forth, and when the cores are busy (Ray workers beside the driver, a test suite, a notebook's kernel) each hand-off
waits for a scheduler slot: measured on 2 busy cores, a 10-component mixture on 5,000 16-d rows took 5.6-7.2 s
with two threads and 0.4-0.6 s with one; the digits linear probe 0.7-1.0 s against 0.1-0.2 s.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the block with NumPy/SciPy's BLAS on one thread (restored after)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield
