"""Where everything lives under one storage root (docs/design.md, "Storage layout").

Every path a job writes and a report reads is built here, and the fixed file names are
spelled here once; nothing else joins path segments for outputs or takes a prefix apart.
Names are validated before they are joined, so `..` or `/` never reach outside a root.

    datasets/<name>/                       part-*.parquet, _manifest.json, _SUCCESS
    runs/<run>/                            Ray Train storage, JOB_FILE, DIVERGED_FILE
    runs/<run>/local-checkpoint-<epoch>/   a checkpoint of a run trained in one process (engine local)
    runs/<sweep>/                          Tune storage, train/<trial>/, SWEEP_TABLE, SWEEP_CSV, REGISTERED_FILE
    models/<name>/<version>/               WEIGHTS_FILE, CARD_FILE, _SUCCESS;   models/<name>/PROMOTED_FILE
    models/<name>/<version>/interpretations/<dataset>/<split | all>/   part-*.parquet, SUMMARY_FILE, _SUCCESS
    models/<name>/ALIASES_FOLDER/<alias>/  one create-only record per attempt to move the alias (its history)
    scores/<model>-v<version>/<dataset>/<date>/        part-*.parquet, SUMMARY_FILE, _SUCCESS
    samples/<model>-v<version>/<run>/                   part-*.parquet (+ GRID_FILE), _SUCCESS
    embeddings/<model>-v<version>/<dataset>/            part-*.parquet, _SUCCESS
    reports/<id>/                          REPORT_INDEX + PNGs, _SUCCESS
"""
from __future__ import annotations

import os
from urllib.parse import urlparse

from pipelines.naming import validate_name

DEFAULT_STORAGE_ROOT = "s3://vaepipe"
ENV_STORAGE = "VAEPIPE_STORAGE"
# set for one command by `vaepipe --allow-system-paths`
ENV_ALLOW_SYSTEM_PATHS = "VAEPIPE_ALLOW_SYSTEM_PATHS"

MANIFEST_FILE = "_manifest.json"
JOB_FILE = "vaepipe_job.json"            # a run's (or sweep's) config, so --resume needs only the id
DIVERGED_FILE = "_DIVERGED.json"         # left by workers that stopped because training diverged
SWEEP_TRIALS = "train"                   # the folder of a sweep's trial runs
SWEEP_TABLE = "trials.parquet"
SWEEP_CSV = "trials.csv"
SWEEP_FIGURE = "sweep.png"
REGISTERED_FILE = "vaepipe_registered.json"  # which model a finished sweep registered
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model.json"
PROMOTED_FILE = "PROMOTED"                # before aliases had a history: read when PROMOTED has no records
ALIASES_FOLDER = "aliases"
SUMMARY_FILE = "_summary.json"           # a scoring run's (or an interpretation's) summary figures
INTERPRETATIONS = "interpretations"      # a model version's folder of `vaepipe interpret` outputs
ALL_SPLITS = "all"                       # the split segment of an output over every row
GRID_FILE = "samples.png"
REPORT_INDEX = "index.html"

# Where an operating system keeps itself: a storage root (or output) there is almost always a typo
# (`file:///etc`) and would write job outputs among system files.
SYSTEM_DIRECTORIES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run",
                      "/sbin", "/sys", "/usr", "/var/lib", "/var/log", "/var/run", "/var/spool")


def storage_root(explicit: str | None = None) -> str:
    """The root URI jobs read and write: the explicit value, else $VAEPIPE_STORAGE, else s3://vaepipe.

    Checked before any job uses it: no `..` or credentials in it, no system directory."""
    given = explicit or os.environ.get(ENV_STORAGE) or DEFAULT_STORAGE_ROOT
    root = given.rstrip("/") or "/"  # "/" itself must stay "/", not become "" (the current directory)
    check_output_location(root)
    # a relative folder (`--storage store`) as an absolute path: listings return absolute paths, and a
    # model's card records where its dataset is, which must not depend on the directory a later job runs in
    return os.path.abspath(root) if not urlparse(root).scheme else root


def check_output_location(uri: str) -> None:
    """Refuse to write under the filesystem root or a system directory unless allowed
    (`vaepipe --allow-system-paths ...`), and an S3 URI that is not plain (see `objects.resolve`)."""
    from pipelines.storage.objects import StorageError, check_uri_is_plain, resolve

    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        check_uri_is_plain(uri, parsed)
        return
    location = resolve(uri)
    if os.environ.get(ENV_ALLOW_SYSTEM_PATHS) == "1":
        return
    path = os.path.realpath(location.path)
    if path == "/" or any(path == d or path.startswith(d + "/") for d in SYSTEM_DIRECTORIES):
        raise StorageError(f"refusing to write under {path}: it is a system directory (or the filesystem root); "
                           "choose a storage root of your own (--storage /data/vaepipe or s3://bucket/prefix), or "
                           "pass `vaepipe --allow-system-paths ...` if you really mean it")


def is_uri(reference: str) -> bool:
    """A full location (s3://…, file://…, /abs/path) rather than a name under the storage root."""
    return "://" in reference or reference.startswith("/")


# --- datasets, runs, models ---------------------------------------------------------------------

def dataset_uri(root: str, name: str) -> str:
    return f"{root.rstrip('/')}/datasets/{validate_name(name, 'dataset name')}"


def resolve_dataset(root: str, name_or_uri: str) -> str:
    """A prepared dataset given by name (under <root>/datasets/) or by its full URI."""
    return name_or_uri.rstrip("/") if is_uri(name_or_uri) else dataset_uri(root, name_or_uri)


def runs_uri(root: str) -> str:
    return f"{root.rstrip('/')}/runs"


def run_uri(root: str, run_id: str) -> str:
    return f"{runs_uri(root)}/{validate_name(run_id, 'run id')}"


LOCAL_CHECKPOINT_PREFIX = "local-checkpoint-"


def local_checkpoint_uri(run: str, epoch: int) -> str:
    """Where a run trained in one process (engine local) keeps the checkpoint of `epoch` (1-based)."""
    return f"{run}/{LOCAL_CHECKPOINT_PREFIX}{int(epoch):06d}"


def local_checkpoint_epoch(folder: str) -> int | None:
    """The epoch of a folder name `local_checkpoint_uri` built, or None for any other folder."""
    digits = folder.removeprefix(LOCAL_CHECKPOINT_PREFIX)
    return int(digits) if folder.startswith(LOCAL_CHECKPOINT_PREFIX) and digits.isdigit() else None


def sweep_trials_uri(sweep_uri: str) -> str:
    """Where a sweep's trials keep their Train runs (one folder per trial id)."""
    return f"{sweep_uri}/{SWEEP_TRIALS}"


def model_uri(root: str, name: str) -> str:
    return f"{models_uri(root)}/{validate_name(name, 'model name')}"


def model_version_uri(root: str, name: str, version: int) -> str:
    return f"{model_uri(root, name)}/{int(version)}"


def parse_model_version_uri(uri: str) -> tuple[str, str, int] | None:
    """(storage root, model name, version) of a URI `model_version_uri` built (`<root>/models/<name>/<version>`),
    or None for anything else (a reference such as `digits@3`)."""
    parts = uri.rstrip("/").rsplit("/", 3)
    if len(parts) != 4 or parts[1] != "models" or not parts[3].isdigit() or not is_uri(uri):
        return None
    return parts[0], validate_name(parts[2], "model name"), int(parts[3])


def interpretation_uri(root: str, name: str, version: int, dataset: str, split: str | None) -> str:
    """models/<name>/<version>/interpretations/<dataset>/<split or all>: an interpretation is committed beside
    the model version it measures (the version's own commit never touches its sub-folders)."""
    return (f"{model_version_uri(root, name, version)}/{INTERPRETATIONS}/{validate_name(dataset, 'dataset name')}/"
            f"{validate_name(split or ALL_SPLITS, 'split')}")


def parse_interpretation_uri(prefix: str) -> tuple[str, int, str, str]:
    """(model name, version, dataset, split or "all") of a prefix built by `interpretation_uri`."""
    name, version, folder, dataset, split = prefix.rstrip("/").split("/")[-5:]
    if folder != INTERPRETATIONS or not version.isdigit():
        from pipelines.naming import InvalidName

        raise InvalidName(f"{prefix} is not an interpretation (models/<name>/<version>/{INTERPRETATIONS}/<dataset>/"
                         "<split>)")
    return validate_name(name, "model name"), int(version), dataset, split


def models_uri(root: str) -> str:
    return f"{root.rstrip('/')}/models"


def alias_uri(root: str, name: str, alias: str) -> str:
    """The folder of one alias's records (`alias` is checked by `registry.validate_alias`)."""
    return f"{model_uri(root, name)}/{ALIASES_FOLDER}/{validate_name(alias, 'alias')}"


def alias_record_name(sequence: int) -> str:
    """The record of an alias's `sequence`-th attempt: zero-padded, so names sort as numbers."""
    return f"{int(sequence):08d}.json"


def model_slug(name: str, version: int) -> str:
    """A model version as one path segment (`@` is avoided: URI parsers read it as user@host)."""
    return f"{validate_name(name, 'model name')}-v{int(version)}"


# --- batch outputs -------------------------------------------------------------------------------

def output_root(root: str, output: str) -> str:
    """Where a job's outputs go: `output` as a URI, or a folder under the storage root (whose every
    segment must be a plain name: `..` would leave the root)."""
    if is_uri(output):
        return output.rstrip("/")
    segments = output.strip("/").split("/")
    for segment in segments:
        validate_name(segment, f"output folder {output!r}: segment")
    return f"{root}/{'/'.join(segments)}"


def scores_uri(outputs: str, model: str, dataset: str, date: str) -> str:
    """outputs/<model slug>/<dataset>/<date> (`outputs` from `output_root`)."""
    return scores_date_uri(f"{outputs}/{model}/{validate_name(dataset, 'dataset name')}", date)


def scores_series_uri(prefix: str) -> str:
    """The folder of every date's scores of one model and input (the parent of a `scores_uri`)."""
    return prefix.rstrip("/").rsplit("/", 1)[0]


def scores_date_uri(series: str, date: str) -> str:
    """One date's scores in a `scores_series_uri` folder."""
    return f"{series}/{validate_name(date, 'date')}"


def samples_uri(outputs: str, model: str, run: str) -> str:
    return f"{outputs}/{model}/{validate_name(run, 'samples run')}"


def embeddings_uri(outputs: str, model: str, dataset: str) -> str:
    return f"{outputs}/{model}/{validate_name(dataset, 'dataset name')}"


def parse_scores_uri(prefix: str) -> tuple[str, str, str]:
    """(model slug, dataset, date) of a prefix built by `scores_uri`."""
    model, dataset, date = prefix.rstrip("/").split("/")[-3:]
    return model, dataset, date


def parse_samples_uri(prefix: str) -> tuple[str, str]:
    """(model slug, run) of a prefix built by `samples_uri`."""
    model, run = prefix.rstrip("/").split("/")[-2:]
    return model, run


# --- reports ---------------------------------------------------------------------------------------

def report_uri(root: str, report_id: str) -> str:
    return f"{root.rstrip('/')}/reports/{validate_name(report_id, 'report id')}"


def training_report_id(name: str, version: int) -> str:
    return model_slug(name, version)


def scores_report_id(prefix: str) -> str:
    return "scores-" + "-".join(parse_scores_uri(prefix))


def samples_report_id(prefix: str) -> str:
    return "samples-" + "-".join(parse_samples_uri(prefix))


def interpretation_report_id(prefix: str) -> str:
    name, version, dataset, split = parse_interpretation_uri(prefix)
    return f"interpret-{model_slug(name, version)}-{dataset}-{split}"
