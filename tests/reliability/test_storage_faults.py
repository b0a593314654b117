"""Object storage faults injected by a loopback proxy in front of the real S3 server: transient
resets and 503 SlowDown are retried away (pipelines/storage.py configures both clients' retries);
an outage longer than the retry budget fails the job with a clear message and no `_SUCCESS`."""
from __future__ import annotations

import os
import subprocess
import sys
from urllib.parse import urlparse

import pytest

from pipelines.storage import objects as storage
from pipelines.datasets.catalog import load_manifest, verify_shards
from pipelines.jobs.prepare import PrepareConfig, prepare_dataset
from pipelines.storage.layout import dataset_uri
from pipelines.storage.commit import is_complete
from tests.reliability.fault_proxy import FaultProxy

pytestmark = [pytest.mark.reliability("storage fault"), pytest.mark.timeout(180)]

DIGITS_ROWS = 1797


def proxy_for(s3_store, **faults) -> FaultProxy:
    return FaultProxy(urlparse(s3_store.endpoint).port, **faults)


def route_storage_through(proxy: FaultProxy, monkeypatch) -> None:
    """This process's S3 clients talk to the proxy (settings are the cache key: new clients, not stale ones)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
    storage.clear_caches()


def test_reads_writes_and_lists_survive_resets_and_slowdowns(s3_store, s3_prefix, monkeypatch, record_property):
    payloads = {f"{s3_prefix}/obj-{i}.bin": os.urandom(size)
                for i, size in enumerate([10, 1_000, 100_000, 600_000, 50, 7_000])}
    # every retry backs off ~0.5-1 s (the AWS standard strategy): a few faults show it, many only cost time
    with proxy_for(s3_store, reset_rate=0.15, slowdown_rate=0.1) as proxy:
        route_storage_through(proxy, monkeypatch)
        for uri, data in payloads.items():
            storage.write_bytes(uri, data)
        assert storage.conditional_put(f"{s3_prefix}/_marker", b"1")
        listed = {entry.uri for entry in storage.list_files(s3_prefix)}
        read_back = {uri: storage.read_bytes(uri) for uri in payloads}
    record_property("faults_injected", proxy.counts.injected)
    assert proxy.counts.resets > 0 and proxy.counts.slowdowns > 0, proxy.counts
    assert listed == set(payloads)
    assert read_back == payloads


def test_prepare_through_resets_and_slowdowns_is_complete_and_exact(s3_store, s3_prefix, monkeypatch,
                                                                    record_property):
    config = PrepareConfig(name="digits", source="digits", storage=s3_prefix, rows_per_shard=600)
    with proxy_for(s3_store, reset_rate=0.1, slowdown_rate=0.07, delay_s=0.01) as proxy:
        route_storage_through(proxy, monkeypatch)
        prepare_dataset(config)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_store.endpoint)  # check on the store itself, not through the proxy
    storage.clear_caches()
    uri = dataset_uri(s3_prefix, "digits")
    manifest = load_manifest(uri)
    verify_shards(uri, manifest, checksums=True)
    record_property("faults_injected", proxy.counts.injected)
    record_property("rows_lost", DIGITS_ROWS - sum(shard.rows for shard in manifest.shards))
    assert proxy.counts.resets > 0 and proxy.counts.slowdowns > 0, proxy.counts
    assert manifest.rows == sum(shard.rows for shard in manifest.shards) == DIGITS_ROWS


def test_outage_beyond_the_retry_budget_fails_prepare_clearly_and_a_rerun_is_exact(s3_store, s3_prefix,
                                                                                   record_property):
    # the outage starts once the job holds its lease and is writing shards
    with proxy_for(s3_store, outage_after=10) as proxy:
        env = {**os.environ, "AWS_ENDPOINT_URL": proxy.endpoint, storage.ENV_MAX_ATTEMPTS: "2",
               "PYTHONPATH": os.getcwd()}
        job = subprocess.run([sys.executable, "-m", "pipelines.cli", "prepare", "digits", "--storage", s3_prefix,
                              "--rows-per-shard", "256"], env=env, capture_output=True, text=True, timeout=120)
    record_property("faults_injected", proxy.counts.injected)
    uri = dataset_uri(s3_prefix, "digits")
    assert job.returncode == 2, job.stderr
    error = job.stderr.strip().splitlines()[-1]
    assert error.startswith("error: cannot ") and proxy.endpoint in error, job.stderr
    assert "Traceback" not in job.stderr
    assert s3_store.secret_key not in job.stdout + job.stderr
    assert proxy.counts.outage_resets > 0
    assert not is_complete(uri)

    manifest = prepare_dataset(PrepareConfig(name="digits", source="digits", storage=s3_prefix, rows_per_shard=256))
    verify_shards(uri, manifest, checksums=True)
    record_property("rows_lost", DIGITS_ROWS - manifest.rows)
    assert manifest.rows == DIGITS_ROWS
