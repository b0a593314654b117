"""Hostile and careless inputs of issue 15, one test per class of attack found by trying to break vaepipe:
each is refused with exit status 2 and one `error:` line naming the file, column, key or field, nothing
committed and nothing existing changed (`refusals.assert_refused`), and no secret printed. The tests that
need a trained model or a Ray job are marked slow; the others run before Ray would start."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import uuid
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipelines.cli.main import main
from pipelines.datasets.catalog import load_manifest, shard_uris
from pipelines.datasets.manifest import fingerprint_of
from pipelines.jobs.prepare import PrepareConfig, prepare_dataset
from pipelines.storage.layout import MANIFEST_FILE, dataset_uri
from pipelines.storage.commit import SUCCESS, OutputCommit, is_complete, read_success
from pipelines.storage.registry import list_versions
from pipelines.storage.objects import StorageError, conditional_put, exists, read_json, resolve, write_bytes, write_json
from tests.reliability.refusals import assert_refused, objects

pytestmark = [pytest.mark.reliability("bad input"), pytest.mark.timeout(300)]


def small_table(rows: int = 60, **extra_columns) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=rows), "b": rng.integers(0, 5, size=rows).astype(float),
                         "kind": rng.choice(["x", "y"], size=rows), **extra_columns})


def csv(tmp_path: Path, frame: pd.DataFrame, name: str = "table.csv") -> str:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


# --- 1. user columns named like the system's own ----------------------------------------------------

def system_column_names(root: str, tmp_path: Path) -> list[str]:
    """Every column prepare adds to a shard beside the user's features, read off a real shard."""
    source = csv(tmp_path, small_table(label=[0, 1] * 30), "plain.csv")
    assert main(["prepare", source, "--name", "plain", "--label-column", "label", "--storage", root]) == 0
    uri = dataset_uri(root, "plain")
    manifest = load_manifest(uri)
    location = resolve(uri)
    shard_columns = pq.read_schema(resolve(shard_uris(uri, manifest)[0]).path,
                                   filesystem=location.filesystem).names
    return sorted(set(shard_columns) - set(manifest.feature_columns))


def test_user_columns_named_like_system_columns_are_refused_never_overwritten(s3_prefix, tmp_path, capsys):
    """Property: every name the system adds to a shard (read off a real shard, so a column added later is
    covered too), used as a user feature column or as the label's name, is refused at prepare, naming it."""
    added = system_column_names(s3_prefix, tmp_path)
    capsys.readouterr()
    assert {"row_id", "split", "label"} <= set(added), added
    for name in added:
        if name == "label":
            continue  # the label's name is the user's own choice: a feature may not take it (below)
        source = csv(tmp_path, small_table(**{name: ["train"] * 60}), f"feature-{name}.csv")
        assert_refused(s3_prefix, ["prepare", source, "--name", f"f-{name}", "--storage", s3_prefix], capsys,
                       f"column {name!r}", "rename it")
        source = csv(tmp_path, small_table(**{name: [0, 1] * 30}), f"label-{name}.csv")
        assert_refused(s3_prefix, ["prepare", source, "--name", f"l-{name}", "--label-column", name, "--storage",
                                   s3_prefix], capsys, f"label column is named {name!r}")


@pytest.mark.parametrize("header, fragment", [("a,a,b", "['a'] appear more than once"),
                                              ("a,,b", "column 2 has no name")],
                         ids=["repeated-header", "empty-header"])
def test_columns_without_a_name_of_their_own_are_refused(s3_prefix, tmp_path, capsys, header, fragment):
    path = tmp_path / "t.csv"
    path.write_text(header + "\n" + "\n".join("1,2,3" for _ in range(20)) + "\n")
    assert_refused(s3_prefix, ["prepare", str(path), "--name", "t", "--storage", s3_prefix], capsys,
                   str(path), fragment)


def test_one_column_as_both_id_and_label_is_refused(s3_prefix, tmp_path, capsys):
    source = csv(tmp_path, small_table(key=range(60)))
    assert_refused(s3_prefix, ["prepare", source, "--name", "t", "--id-column", "key", "--label-column", "key",
                               "--storage", s3_prefix], capsys, "'key' is given as both the id column and the label")


# --- 3. planted objects in an output prefix; 4. keys that escape --------------------------------------

@pytest.mark.slow
def test_planted_objects_in_a_report_prefix_are_not_committed_and_copy_out_works(digits_zero_model, tmp_path,
                                                                               capsys):
    model = digits_zero_model
    report = f"{model['storage']}/reports/{model['name']}-v{model['model'].split('@')[1]}"
    write_bytes(f"{report}/sub/index.html", b"<script>planted</script>")
    write_bytes(f"{report}/planted.html", b"<script>planted</script>")
    local = tmp_path / "copy"
    assert main(["report", "model", model["model"], "--storage", model["storage"], "--local-dir", str(local)]) == 0
    keys = [part["key"] for part in read_success(report)["parts"]]
    assert "index.html" in keys and not any("sub" in key or "planted" in key for key in keys), keys
    copied = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
    assert copied == sorted(f"{report.rsplit('/', 1)[1]}/{key}" for key in keys)


def test_planted_objects_in_a_dataset_prefix_are_not_committed(s3_prefix, capsys):
    uri = dataset_uri(s3_prefix, "digits")
    write_bytes(f"{uri}/sub/part-planted.parquet", b"not a part")
    write_bytes(f"{uri}/part-planted.parquet", b"not a part either")
    assert main(["prepare", "digits", "--storage", s3_prefix]) == 0
    manifest = load_manifest(uri)
    committed = [part["key"] for part in read_success(uri)["parts"]]
    assert committed == sorted(shard.key for shard in manifest.shards)
    assert not exists(f"{uri}/part-planted.parquet")  # a stray file beside the parts is cleared
    assert exists(f"{uri}/sub/part-planted.parquet")  # a sub-folder is not the job's to judge: left alone


@pytest.mark.parametrize("key", ["../../escaped.html", "/tmp/escaped.html", "sub/../../escaped.html", "..",
                                 "a/b.html"])
def test_a_manifest_key_that_escapes_its_prefix_is_refused_by_every_reader(s3_prefix, tmp_path, capsys, key):
    """copy-out (`report --local-dir`, the demo) and every reader go through the same validated manifest."""
    from pipelines.reports.page import copy_report

    prefix = f"{s3_prefix}/reports/planted"
    write_bytes(f"{prefix}/index.html", b"<p>ok</p>")
    conditional_put(f"{prefix}/{SUCCESS}", json.dumps(
        {"job": "report", "attempt_id": "x", "rows": None,
         "parts": [{"key": "index.html", "size": 9}, {"key": key, "size": 9}]}).encode())
    target = tmp_path / "out" / "inner"
    target.mkdir(parents=True)
    with pytest.raises(StorageError, match="part key"):
        copy_report(f"{prefix}/index.html", str(target))
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == []
    scores = f"{s3_prefix}/scores/m-v1/d/2026-01-01"
    conditional_put(f"{scores}/{SUCCESS}", json.dumps(
        {"job": "score", "attempt_id": "x", "rows": 1, "parts": [{"key": key, "size": 1, "rows": 1}]}).encode())
    assert_refused(s3_prefix, ["report", "scores", scores, "--storage", s3_prefix], capsys,
                   f"{scores}/_SUCCESS is not a valid _SUCCESS manifest", "part key")


def test_a_part_listed_twice_in_a_manifest_is_refused(s3_prefix):
    prefix = f"{s3_prefix}/scores/m-v1/d/2026-01-02"
    conditional_put(f"{prefix}/{SUCCESS}", json.dumps(
        {"job": "score", "attempt_id": "x", "rows": 2,
         "parts": [{"key": "part-a.parquet", "size": 1, "rows": 1}] * 2}).encode())
    with pytest.raises(StorageError, match="listed twice"):
        read_success(prefix)


# --- 5. decompression bombs and other parser failures ---------------------------------------------------

def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width × height greyscale pixels, with a tiny (truncated) image stream: PIL
    measures the declared size when it opens the file, so a bomb need not be built to test the defence."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


@pytest.mark.parametrize("width, height", [(20000, 20000), (10000, 10000)],
                         ids=["over-twice-the-limit", "between-limit-and-twice"])
def test_a_decompression_bomb_image_is_refused_by_prepare(s3_prefix, tmp_path, capsys, width, height):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(4):
        Image.new("L", (8, 8), color=i * 40).save(folder / f"ok-{i}.png")
    (folder / "bomb.png").write_bytes(png_header_only(width, height))
    assert_refused(s3_prefix, ["prepare", str(folder), "--name", "bombed", "--storage", s3_prefix], capsys,
                   "bomb.png", "decompress")


@pytest.mark.parametrize("content, name", [(b"PAR1garbage-not-parquetPAR1", "broken.parquet"),
                                           (b"a,b\n\xff\xfe,1\n", "latin.csv"),
                                           (b"a,b\n1,2\n", "not-gzip.csv.gz"),
                                           (b"\x1f\x8b\x08\x00cut", "truncated.csv.gz"),
                                           (b"\x89PNG\r\n\x1a\nxx", "truncated.png")])
def test_a_file_no_parser_can_read_is_named(s3_prefix, tmp_path, capsys, content, name):
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / name).write_bytes(content)
    if name.endswith(".png"):
        Image.new("L", (8, 8)).save(folder / "fine.png")
    assert_refused(s3_prefix, ["prepare", str(folder), "--name", "unreadable", "--storage", s3_prefix], capsys,
                   name, "cannot read")


# --- 6. storage that cannot be written -------------------------------------------------------------------

@pytest.fixture
def read_only_dir(tmp_path):
    """A real read-only filesystem (a tmpfs mounted ro); where mounting is not allowed, the write calls
    fail with EROFS instead — the one fault that cannot be produced otherwise there."""
    mount = tmp_path / "ro"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode == 0:
        yield mount
        subprocess.run(["umount", str(mount)], check=False)
        return
    import errno

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("os.link", refuse)
        patch.setattr("tempfile.mkstemp", refuse)
        patch.setattr("tempfile.TemporaryFile", refuse)
        yield mount


def test_a_read_only_storage_root_is_named(read_only_dir, capsys):
    assert_refused(str(read_only_dir), ["prepare", "digits", "--storage", str(read_only_dir)], capsys,
                   str(read_only_dir), "Read-only file system")


def test_a_storage_root_that_is_a_file_is_named(tmp_path, capsys):
    root = tmp_path / "not-a-folder"
    root.write_text("x")
    assert_refused(str(tmp_path), ["prepare", "digits", "--storage", str(root)], capsys, str(root))


# --- 7. secrets in URLs --------------------------------------------------------------------------------------

def test_credentials_in_the_endpoint_url_are_refused_and_never_printed(s3_prefix, capsys, monkeypatch):
    from pipelines.storage.objects import clear_caches

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://USERNAME:SUPERSECRET@127.0.0.1:9")
    clear_caches()
    code = main(["prepare", "digits", "--storage", s3_prefix])
    err = capsys.readouterr().err
    monkeypatch.undo()
    clear_caches()
    assert code == 2 and err.startswith("error: AWS_ENDPOINT_URL holds credentials"), err
    assert "SUPERSECRET" not in err and "USERNAME" not in err


@pytest.mark.parametrize("uri", ["s3://user:pass@vaepipe/x", "s3://vaepipe/../etc", "s3://vaepipe/a//b",
                                 "s3://vaepipe/./x", "file:///tmp/a/../b"])
def test_storage_uris_with_credentials_or_dot_segments_are_refused(s3_prefix, capsys, uri):
    err = assert_refused(s3_prefix, ["prepare", "digits", "--storage", uri], capsys, "storage URI", absent=("pass",))
    assert ("credentials" in err) or ("segment" in err)


def test_every_error_line_is_redacted():
    """The last defence: whatever a library quoted into an error (an endpoint with userinfo, a secret
    variable's value), the CLI's `error:` line does not show it."""
    from pipelines.redaction import redact

    environ = {"AWS_SECRET_ACCESS_KEY": "abcdef123456"}
    text = "cannot reach http://joe:pw@host:9000/x with abcdef123456; postgres://u@db/x ok"
    assert redact(text, environ) == "cannot reach http://***@host:9000/x with ***; postgres://***@db/x ok"


# --- 8. hand-edited manifests -------------------------------------------------------------------------------

def edited_dataset(root: str, name: str, edit, refingerprint: bool = False) -> str:
    """digits prepared under `name`, its manifest then edited by `edit(dict)` (optionally with its fingerprint
    recomputed, as a careful hand would); the dataset's URI."""
    assert prepare_dataset(PrepareConfig(name=name, source="digits", storage=root, rows_per_shard=256))
    uri = dataset_uri(root, name)
    manifest = read_json(f"{uri}/{MANIFEST_FILE}")
    edit(manifest)
    if refingerprint:
        manifest["fingerprint"] = fingerprint_of(manifest)
    write_json(f"{uri}/{MANIFEST_FILE}", manifest)
    return uri


def rename_train_split(manifest: dict) -> None:
    manifest["split_rows"]["training"] = manifest["split_rows"].pop("train")


def lower_row_counts(manifest: dict) -> None:
    manifest["rows"] -= 100
    manifest["split_rows"]["train"] -= 100
    manifest["shards"][0]["rows"] -= 100


def list_a_shard_twice(manifest: dict) -> None:
    manifest["shards"].append(manifest["shards"][0])
    manifest["rows"] += manifest["shards"][0]["rows"]
    manifest["split_rows"]["train"] += manifest["shards"][0]["rows"]


def move_rows_between_splits(manifest: dict) -> None:
    manifest["split_rows"]["train"] -= 50
    manifest["split_rows"]["val"] += 50


@pytest.mark.parametrize("edit, refingerprint, fragments", [
    (rename_train_split, False, ("split_rows",)),
    (rename_train_split, True, ("split_rows", "must count exactly the splits")),
    (lower_row_counts, False, ("does not match its own fingerprint",)),
    (lower_row_counts, True, ("holds 256 rows but the manifest (shards) says 156",)),
    (list_a_shard_twice, True, ("is listed more than once",)),
    (move_rows_between_splits, True, ("rows per split but the manifest (split_rows)",)),
], ids=["split-renamed", "split-renamed-refingerprinted", "rows-lowered", "rows-lowered-refingerprinted",
        "shard-twice", "rows-moved-between-splits"])
def test_a_hand_edited_manifest_is_refused_before_training(s3_prefix, capsys, edit, refingerprint, fragments):
    name = f"edited-{uuid.uuid4().hex[:6]}"
    uri = edited_dataset(s3_prefix, name, edit, refingerprint)
    assert_refused(s3_prefix, ["train", "configs/digits.yaml", "--storage", s3_prefix, "--set", f"dataset={name}"],
                   capsys, f"{uri}", *fragments)


# --- 9. weak spots: symlinks, system paths, resume ------------------------------------------------------------

def test_a_symlink_out_of_an_image_folder_is_refused_unless_allowed(s3_prefix, tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    Image.new("L", (8, 8), color=200).save(outside / "secret.png")
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(4):
        Image.new("L", (8, 8), color=i * 40).save(folder / f"{i}.png")
    (folder / "linked.png").symlink_to(outside / "secret.png")
    assert_refused(s3_prefix, ["prepare", str(folder), "--name", "linked", "--storage", s3_prefix], capsys,
                   "linked.png", "symlink", "--follow-symlinks")
    assert main(["prepare", str(folder), "--name", "linked", "--follow-symlinks", "--storage", s3_prefix]) == 0
    assert load_manifest(dataset_uri(s3_prefix, "linked")).rows == 5


def test_a_symlinked_folder_in_a_table_prefix_is_refused(s3_prefix, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    small_table().to_csv(elsewhere / "more.csv", index=False)
    prefix = tmp_path / "tables"
    prefix.mkdir()
    small_table().to_csv(prefix / "a.csv", index=False)
    (prefix / "more").symlink_to(elsewhere, target_is_directory=True)
    assert_refused(s3_prefix, ["prepare", str(prefix), "--name", "tables", "--storage", s3_prefix], capsys,
                   str(prefix / "more"), "symlink")


@pytest.mark.parametrize("root", ["file:///etc", "/usr/local/vaepipe", "/", "/proc/self"])
def test_a_storage_root_in_a_system_directory_needs_the_flag(tmp_path, capsys, root):
    assert_refused(str(tmp_path), ["prepare", "digits", "--storage", root], capsys, "system directory",
                   "--allow-system-paths")
    assert not Path("/etc/datasets").exists() and not Path("/usr/local/vaepipe").exists()


def test_resume_with_another_latent_size_is_refused_before_ray(s3_prefix, capsys, monkeypatch):
    from pipelines.config import load_config
    from pipelines.jobs.train import save_job_config
    from pipelines.training.config import TrainJobConfig

    run_id = "digits-20260101-000000-abcdef"
    save_job_config(f"{s3_prefix}/runs/{run_id}", load_config(TrainJobConfig, "configs/digits.yaml",
                                                              [f"storage={s3_prefix}"]))

    def no_ray(config):
        raise AssertionError("Ray was started for a resume that cannot work")

    monkeypatch.setattr("pipelines.runtime.ray_session.ray_session", no_ray)
    assert_refused(s3_prefix, ["train", "--resume", run_id, "--storage", s3_prefix, "--set", "model.latent_dim=32"],
                   capsys, "model.latent_dim", "16", "32")


# --- 2. a training run that diverges --------------------------------------------------------------------------

@pytest.mark.slow
# one case per engine: a worker's divergence travels back out of Ray Train, the local loop's raises in this process
@pytest.mark.parametrize(("lr", "engine"), [("1000", "local"), ("1e30", "ray")], ids=["exploding", "nan"])
def test_a_diverged_training_run_is_not_registered(digits_zero_model, ray_cluster, capsys, lr, engine):
    storage = digits_zero_model["storage"]
    before = list_versions(storage, "diverged")
    assert_refused(storage, ["train", "configs/digits.yaml", "--storage", storage, "--set", "name=diverged",
                                   "--set", "dataset=digits", "--set", f"train.lr={lr}", "--set", "train.epochs=4",
                                   "--set", "scaling.num_workers=1", "--set", "train.kl_warmup_epochs=0",
                                   "--engine", engine],
                         capsys, "diverged at epoch", "Lower train.lr")
    assert list_versions(storage, "diverged") == before == []
    assert "registered" not in capsys.readouterr().out


# --- 9. the store dies in the middle of a Ray job ------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(400)
def test_when_the_store_dies_mid_score_the_error_names_the_cause(digits_zero_model, s3_store):
    """The outage starts at the first part upload of a Ray write task; the job (its own local Ray, whose
    workers talk to the store through the proxy too) fails with exit 2 and an error about the write, not
    about releasing the lease, and nothing is committed."""
    from urllib.parse import urlparse

    from tests.reliability.fault_proxy import FaultProxy

    model = digits_zero_model
    env = {key: value for key, value in os.environ.items() if key not in ("RAY_ADDRESS", "RAY_GCS_SERVER_PORT")}
    # the first upload of a scores part (its request line names the output's date folder and the part)
    with FaultProxy(urlparse(s3_store.endpoint).port, outage_from=b"/2026-10-17/part-", lifetime_s=300) as proxy:
        env.update(AWS_ENDPOINT_URL=proxy.endpoint, VAEPIPE_S3_MAX_ATTEMPTS="2", PYTHONPATH=os.getcwd())
        job = subprocess.run([sys.executable, "-m", "pipelines.cli", "score", "--model", model["model"], "--input",
                              model["dataset"], "--storage", model["storage"], "--date", "2026-10-17",
                              "--set", "ray.num_cpus=4", "--engine", "ray"], env=env, capture_output=True, text=True,
                             timeout=360)
    last = job.stderr.strip().splitlines()[-1] if job.stderr.strip() else ""
    assert job.returncode == 2, job.stderr[-3000:]
    assert last.startswith("error: cannot write") and "scores/" in last and "_LEASE" not in last, last
    assert proxy.counts.outage_resets > 0
    prefix = f"{model['storage']}/scores/{model['name']}-v{model['model'].split('@')[1]}/digits/2026-10-17"
    assert not is_complete(prefix)
    assert s3_store.secret_key not in job.stdout + job.stderr


def test_an_error_inside_a_commit_block_is_not_replaced_by_the_lease_cleanup(s3_prefix, monkeypatch):
    from pipelines.storage.objects import ENV_MAX_ATTEMPTS, clear_caches

    with pytest.raises(ZeroDivisionError):
        with pytest.warns(UserWarning, match="could not release the lease"):
            with OutputCommit(f"{s3_prefix}/out", job="score"):
                monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # the store is gone
                monkeypatch.setenv(ENV_MAX_ATTEMPTS, "1")  # and retrying the release would only take longer
                clear_caches()
                1 / 0
    monkeypatch.undo()
    clear_caches()
    left = objects(f"{s3_prefix}/out")
    assert resolve(f"{s3_prefix}/out/_LEASE").key in left  # it expires on its own
    assert not any(key.endswith("_SUCCESS") for key in left)


# --- 10. a Ray cluster that does not answer --------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("named_by, listening", [("RAY_ADDRESS", False), ("ray.address", False),
                                                 ("RAY_ADDRESS", True)],
                         ids=["nothing-RAY_ADDRESS", "nothing-ray.address", "not-a-gcs-RAY_ADDRESS"])
def test_a_ray_address_where_no_gcs_answers_is_refused_by_name_not_waited_on(digits_zero_model, named_by, listening):
    """Ray's own `ray.init` to an address where nothing listens retried for over 10 minutes here, and to one where
    something else listens (the dashboard's port, a common mix-up) for over 2.5 minutes, then raised from inside
    Ray or not at all; the job names the address and where it came from, and writes nothing."""
    import socket

    from pipelines.runtime.ports import free_ports

    model = digits_zero_model
    listener = socket.socket()
    if listening:
        listener.bind(("", 0))
        listener.listen()
        port = listener.getsockname()[1]
    else:
        (port,) = free_ports(1)  # nothing listens on it
    address = f"127.0.0.1:{port}"
    env = {key: value for key, value in os.environ.items() if key not in ("RAY_ADDRESS", "RAY_GCS_SERVER_PORT")}
    env["PYTHONPATH"] = os.getcwd()
    command = [sys.executable, "-m", "pipelines.cli", "score", "--model", model["model"], "--input",
               model["dataset"], "--storage", model["storage"], "--date", "2026-10-18", "--engine", "ray"]
    if named_by == "RAY_ADDRESS":
        env["RAY_ADDRESS"] = address
    else:
        command += ["--set", f"ray.address={address}"]
    with listener:
        job = subprocess.run(command, env=env, capture_output=True, text=True, timeout=100)
    assert job.returncode == 2, job.stderr[-3000:]
    assert job.stderr.strip().splitlines() == [
        f"error: {address} (given by {named_by}) answers, but not as a Ray cluster's GCS: a job attaches to the GCS "
        "address, host:6379 unless the head was started with another --port (not the dashboard's host:8265, which "
        "`ray job submit` takes)" if listening else
        f"error: no Ray cluster answers at {address} (given by {named_by}) within 5 s: start it, or unset "
        f"{named_by} to run on a local Ray"], job.stderr[-3000:]
    prefix = f"{model['storage']}/scores/{model['name']}-v{model['model'].split('@')[1]}/digits/2026-10-18"
    # the output's lease was taken and given back: at most pyarrow's directory marker is left
    assert [key for key in objects(prefix) if not key.endswith("/")] == []


# --- 11. columns the model cannot represent faithfully ---------------------------------------------------------

def _columns_case(kind: str, rows: int) -> pd.DataFrame:
    """A table of `rows` with one column of `kind` beside the small table's plain ones."""
    rng = np.random.default_rng(1)
    column = {
        "email": [f"user{i}@example.com" for i in range(rows)],  # an identifier: every value differs
        "free_text": [f"note {i} " + "x" * (i % 7) for i in range(rows)],
        "date_text": pd.date_range("2024-01-01", periods=rows, freq="h").strftime("%Y-%m-%d %H:%M"),
        # a Parquet time64 column (pandas holds datetime.time), "13:45:00" in a CSV
        "time_of_day": pd.date_range("2024-01-01", periods=rows, freq="37s").time,
        "huge": rng.normal(size=rows) * 1e200,  # its cubes overflow float64: statistics would be inf
        "nested": [[i, i + 1] for i in range(rows)],
        "bytes": [bytes([i % 256]) * 3 for i in range(rows)],
    }[kind]
    return small_table(rows, **{kind: column})


UNREPRESENTABLE = [("email", 80, "80 distinct text values in 80 rows"),
                   ("free_text", 1500, "more than 1,000 distinct text values"),
                   ("date_text", 1500, "read as dates or times"),
                   ("time_of_day", 1500, "times of day"),
                   ("huge", 60, "beyond ±1e+90"),
                   ("nested", 60, "holds nested values"),
                   ("bytes", 60, "holds bytes")]


@pytest.mark.parametrize("kind, rows, fragment, fmt", [
    (*case, fmt) for case in UNREPRESENTABLE for fmt in ("csv", "parquet")
    if fmt == "parquet" or case[0] not in ("nested", "bytes")])  # CSV holds only text
def test_a_column_the_model_cannot_represent_is_refused_by_name(s3_prefix, tmp_path, capsys, kind, rows, fragment,
                                                                  fmt):
    """Identifiers, free text and dates written as text (one model input per distinct value, generated rows
    copying real identifiers), values whose statistics overflow float64 (were std inf, generated as NaN or the
    mean), nested values and bytes (were modelled as the text of a Python list): refused by prepare naming the
    column, with what to do — in a CSV and in a Parquet file."""
    frame = _columns_case(kind, rows)
    path = tmp_path / f"t.{fmt}"
    frame.to_csv(path, index=False) if fmt == "csv" else frame.to_parquet(path)
    assert_refused(s3_prefix, ["prepare", str(path), "--name", f"{kind}-{fmt}", "--storage", s3_prefix], capsys,
                   f"column {kind!r}", fragment, "--columns")


def test_a_refused_text_column_prepares_when_declared_or_left_out(s3_prefix, tmp_path, capsys):
    """Each way out the error names works: the column declared categorical, named as the id, or left out."""
    path = csv(tmp_path, _columns_case("email", 80))
    for name, flags in (("declared", ["--categorical", "email"]), ("as-id", ["--id-column", "email"]),
                        ("left-out", ["--columns", "a,b,kind"])):
        assert main(["prepare", path, "--name", name, "--storage", s3_prefix, *flags]) == 0, capsys.readouterr().err
        manifest = load_manifest(dataset_uri(s3_prefix, name))
        assert ("email" in manifest.feature_columns) == (name == "declared")


# --- 12. a value far beyond anything the model was trained on -------------------------------------------------

def test_a_row_far_beyond_the_training_range_is_scored_as_an_anomaly_not_nan(tmp_path, capsys):
    """A nightly table with 1e45 in a column trained on ordinary values: its float32 feature was inf, its
    scores NaN, and NaN is above no threshold — the most anomalous row was written `is_anomaly: false`, exit 0."""
    root = str(tmp_path / "store")
    config = str(Path(__file__).resolve().parents[2] / "configs" / "fair.yaml")
    frame = small_table(200)
    assert main(["prepare", csv(tmp_path, frame, "day0.csv"), "--name", "day0", "--storage", root]) == 0
    assert main(["train", config, "--storage", root, "--engine", "local", "--set", "name=m", "--set", "dataset=day0",
                 "--set", "train.epochs=3"]) == 0
    frame.loc[7, "a"] = 1e45
    assert main(["prepare", csv(tmp_path, frame, "day1.csv"), "--name", "day1", "--storage", root]) == 0
    capsys.readouterr()
    assert main(["score", "--model", "m", "--input", "day1", "--storage", root, "--engine", "local"]) == 0, \
        capsys.readouterr().err
    scores = pd.concat(pd.read_parquet(path) for path in (tmp_path / "store" / "scores").rglob("part-*.parquet"))
    assert np.isfinite(scores[["neg_elbo", "recon_nll", "kl", "anomaly_score"]].to_numpy()).all()
    far = scores[scores.row_id == "7"].iloc[0]
    assert far.is_anomaly and far.anomaly_score > 1000 * scores[scores.row_id != "7"].anomaly_score.max()


# --- 13. a CSV in another dialect than the one read, a file by another name -------------------------------------

@pytest.mark.parametrize("name, write, fragments", [
    ("semicolons.csv", lambda f, p: f.to_csv(p, sep=";", index=False), ["looks separated by ';'", "--delimiter ';'"]),
    ("pipes.csv", lambda f, p: f.to_csv(p, sep="|", index=False), ["looks separated by '|'", "--delimiter '|'"]),
    ("windows.csv", lambda f, p: f.assign(kind=["Zürich", "Málaga"] * 30).to_csv(p, index=False, encoding="cp1252"),
     ["invalid UTF8", "--encoding"]),
    ("export.txt", lambda f, p: f.to_csv(p, index=False), ["not a file prepare reads by its name", ".csv"]),
    ("uci.csv", lambda f, p: f.assign(a=f["a"].where(f.index % 9 > 0)).to_csv(p, index=False, na_rep="?"),
     ["numbers but for '?'", "--missing '?'"]),
    ("uci-few.csv", lambda f, p: f.assign(a=f["a"].where(f.index % 30 > 0)).to_csv(p, index=False, na_rep="?"),
     ["non-numeric value '?'", "--missing '?'"]),
    ("grouped.csv", lambda f, p: f.assign(a=(f["a"] * 1e6).map("{:,.2f}".format)).to_csv(p, index=False),
     ["thousands separators", "--thousands ','"]),
], ids=["semicolons", "pipes", "cp1252", "unknown-suffix", "question-marks", "a-few-question-marks", "thousands"])
def test_a_csv_in_another_dialect_is_refused_naming_the_flag_that_reads_it(s3_prefix, tmp_path, capsys, name, write,
                                                                            fragments):
    """A semicolon CSV read as one column named 'a;b;kind' (each whole line one text value: refused as an
    identifier, or with few lines modelled as one category), a Windows code page, a file whose name says
    nothing (was read as Parquet: 'Parquet magic bytes not found'): refused, naming the flag or the names."""
    write(small_table(), tmp_path / name)
    assert_refused(s3_prefix, ["prepare", str(tmp_path / name), "--name", "t", "--storage", s3_prefix], capsys,
                   name, *fragments)


def test_numbers_with_a_decimal_comma_are_named_as_such(s3_prefix, tmp_path, capsys):
    path = tmp_path / "t.csv"
    small_table(200).to_csv(path, sep=";", decimal=",", index=False)
    assert_refused(s3_prefix, ["prepare", str(path), "--name", "t", "--delimiter", ";", "--storage", s3_prefix],
                   capsys, "column 'a'", "decimal comma", "--decimal ','")
    # a decimal comma in a comma-separated file cannot be told from the next field
    assert_refused(s3_prefix, ["prepare", str(path), "--name", "t", "--decimal", ",", "--storage", s3_prefix],
                   capsys, "decimal ',' needs another delimiter")


# --- 14. files a folder holds that prepare would leave out, misread or mislabel ---------------------------------

def _grey_png(path: Path, value: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (8, 8), color=value).save(path)


def _unread_in_images(folder: Path) -> str:
    for i in range(4):
        _grey_png(folder / f"{i}.png", 40 * i)
    Image.new("L", (8, 8)).save(folder / "frames.gif")
    return "frames.gif"


def _unread_in_tables(folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    small_table().to_csv(folder / "2024.csv", index=False)
    small_table().to_json(folder / "2025.json")
    return "2025.json"


def _loose_image(folder: Path) -> str:
    for label in ("cat", "dog"):
        _grey_png(folder / label / "0.png")
    _grey_png(folder / "stray.png")
    return "stray.png"


def _float_pixels(folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)).save(folder / "depth.tif")
    return "depth.tif"


def _partition_missing(folder: Path) -> str:
    for year in (2024, 2025):
        (folder / f"year={year}").mkdir(parents=True)
        small_table().to_csv(folder / f"year={year}" / "part-0.csv", index=False)
    small_table().to_csv(folder / "late.csv", index=False)
    return "late.csv"


def _partition_and_column(folder: Path) -> str:
    (folder / "kind=x").mkdir(parents=True)
    small_table().to_csv(folder / "kind=x" / "part-0.csv", index=False)
    return "'kind'"


@pytest.mark.parametrize("make, fragments", [
    (_unread_in_images, ["is not one of the files prepare reads", "'_' or '.'"]),
    (_unread_in_tables, ["is not one of the files prepare reads", ".csv"]),
    (_loose_image, ["beside the class folders", "class folder"]),
    (_float_pixels, ["32-bit floats", "8 or 16 bits"]),
    (_partition_missing, ["partition folders ['year']", "in []"]),
    (_partition_and_column, ["both in the file and in its partition folder"]),
], ids=["a-gif-among-images", "json-among-csvs", "an-image-beside-class-folders", "float-pixels",
        "a-file-outside-the-partition-folders", "a-column-also-a-partition-folder"])
def test_a_file_prepare_would_leave_out_misread_or_mislabel_is_refused_by_name(s3_prefix, tmp_path, capsys, make,
                                                                                fragments):
    """Each exited 0 before: a .bmp/.gif/.json beside the files read was skipped unseen (5 of 15 images
    prepared), an image beside class folders was labelled with the root folder's name, a file outside the
    partition folders had no value for their column (and every partition column was dropped)."""
    name = make(tmp_path / "src")
    assert_refused(s3_prefix, ["prepare", str(tmp_path / "src"), "--name", "t", "--storage", s3_prefix], capsys,
                   name, *fragments)


def test_a_file_under_an_s3_prefix_prepare_would_not_read_is_named_and_hidden_ones_are_skipped(s3_prefix, capsys):
    for name in ("part-0.csv", "_SUCCESS", ".part-0.csv.crc", "_delta_log/0.json"):
        write_bytes(f"{s3_prefix}/raw/{name}", small_table().to_csv(index=False).encode())
    assert main(["prepare", f"{s3_prefix}/raw", "--name", "kept", "--storage", s3_prefix]) == 0
    write_bytes(f"{s3_prefix}/raw/part-1.csv.xz", b"\xfd7zXZ\x00")
    assert_refused(s3_prefix, ["prepare", f"{s3_prefix}/raw", "--name", "t", "--storage", s3_prefix], capsys,
                   f"{s3_prefix}/raw/part-1.csv.xz", "is not one of the files prepare reads")


# --- 15. a config file that says one thing twice ----------------------------------------------------------------

@pytest.mark.parametrize("verb, text, key, line", [
    ("train", "name: twice\ndataset: digits\ntrain:\n  epochs: 3\nmodel:\n  latent_dim: 4\ntrain:\n  lr: 0.01\n",
     "train", 7),
    ("train", "name: twice\ndataset: digits\ntrain:\n  epochs: 3\n  lr: 0.1\n  epochs: 30\n", "epochs", 6),
    ("prepare", "source: digits\nname: twice\nsplit: {train: 0.8, val: 0.1, test: 0.1, val: 0.2}\n", "val", 3),
], ids=["a-second-section", "a-field-twice", "a-flow-mapping"])
def test_a_key_given_twice_in_a_config_is_refused_naming_it_and_its_line(s3_prefix, tmp_path, capsys, verb, text,
                                                                         key, line):
    """PyYAML keeps the last of two equal keys silently: a second `train:` block at the end of a config
    dropped `epochs: 3` (the job trained the default budget), a field given twice kept the other value."""
    path = tmp_path / "twice.yaml"
    path.write_text(text)
    assert_refused(s3_prefix, [verb, str(path), "--storage", s3_prefix] if verb == "train" else
                   [verb, "--config", str(path), "--storage", s3_prefix], capsys,
                   f"{path} is not valid YAML: line {line}, column ", f"key {key!r} appears twice")


# --- 16. missing values the model never learned -------------------------------------------------------------------

def test_a_gap_where_the_model_learned_none_is_refused_naming_the_column_and_the_flags(tmp_path, capsys):
    """A day prepared with --impute keep, scored by a model trained on complete rows: the error names the column
    and both ways out, exit 2, nothing committed; a model trained with keep scores the same day."""
    root = str(tmp_path / "store")
    config = str(Path(__file__).resolve().parents[2] / "configs" / "fair.yaml")
    frame = small_table(200)
    assert main(["prepare", csv(tmp_path, frame, "day0.csv"), "--name", "day0", "--storage", root]) == 0
    train = ["train", config, "--storage", root, "--engine", "local", "--set", "train.epochs=2"]
    assert main([*train, "--set", "name=complete", "--set", "dataset=day0"]) == 0
    holed = frame.assign(a=frame["a"].where(frame.index % 5 > 0))
    assert main(["prepare", csv(tmp_path, holed, "day1.csv"), "--name", "day1", "--storage", root,
                 "--impute", "keep"]) == 0
    capsys.readouterr()
    assert main(["score", "--model", "complete", "--input", "day1", "--storage", root, "--engine", "local"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "column 'a' has NaN/inf" in err and "--impute keep" in err, err
    assert not (tmp_path / "store" / "scores").exists() or not list((tmp_path / "store" / "scores").rglob("*.parquet"))
    assert main([*train, "--set", "name=holed", "--set", "dataset=day1"]) == 0
    assert main(["score", "--model", "holed", "--input", "day1", "--storage", root, "--engine", "local"]) == 0
    scores = pd.concat(pd.read_parquet(path) for path in (tmp_path / "store" / "scores").rglob("part-*.parquet"))
    assert len(scores) == 200 and np.isfinite(scores["anomaly_score"]).all()
