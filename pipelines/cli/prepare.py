"""`vaepipe prepare`: a source into sharded Parquet + manifest."""
from __future__ import annotations

import argparse

from pipelines.cli.console import progress, result


def _csv_list(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


def _shape(text: str) -> tuple[int, int, int]:
    parts = text.replace("x", ",").split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"image shape must be C,H,W (e.g. 1,28,28), got {text!r}")
    return tuple(int(p) for p in parts)  # type: ignore[return-value]


def _split(text: str) -> dict[str, float]:
    try:
        pairs = [part.split("=", 1) for part in text.split(",") if part.strip()]
        return {key.strip(): float(value) for key, value in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError(f"--split takes train=F,val=F,test=F (e.g. train=0.9,val=0.1,test=0), "
                                         f"got {text!r}") from None


def _add_transforms(data: dict, given: list[str] | None) -> None:
    """--transform KIND (every numeric column) and --transform COLUMN=KIND (one column), repeatable, over the
    config file's fields."""
    for item in given or ():
        column, _, kind = item.rpartition("=")
        if column:
            data.setdefault("column_transforms", {})[column] = kind
        else:
            data["transform"] = kind


def prepare_config_from_args(args: argparse.Namespace):
    from pipelines.config import build_config, load_yaml
    from pipelines.jobs.prepare import PrepareConfig

    data = load_yaml(args.config) if args.config else {}
    flags = {
        "source": args.source, "name": args.name, "storage": args.storage, "rows_per_shard": args.rows_per_shard,
        "columns": _csv_list(args.columns), "categorical": _csv_list(args.categorical),
        "numeric": _csv_list(args.numeric), "id_column": args.id_column, "label_column": args.label_column,
        "image_shape": args.image_shape, "impute": args.impute, "overwrite": args.overwrite or None,
        "follow_symlinks": args.follow_symlinks or None, "rows": args.rows, "seed": args.seed, "split": args.split,
        "engine": args.engine, "delimiter": args.delimiter, "encoding": args.encoding,
        "decimal": args.decimal, "thousands": args.thousands, "missing": [part for part in args.missing.split(",") if part] if args.missing else None,
    }
    data.update({key: value for key, value in flags.items() if value is not None})
    _add_transforms(data, args.transform)
    if "name" not in data and "source" in data:
        data["name"] = data["source"].removeprefix("builtin:")
    return build_config(PrepareConfig, data, args.set or (), source=args.config or "command line")


def cmd_prepare(args: argparse.Namespace) -> int:
    from pipelines.storage.layout import dataset_uri, storage_root
    from pipelines.storage.embedded_server import apply_store_env

    apply_store_env()
    config = prepare_config_from_args(args)
    from pipelines.jobs.prepare import prepare_dataset  # pandas and pyarrow: after the config is accepted

    result(f"preparing dataset {config.name!r} from {config.source}")
    manifest = prepare_dataset(config, progress=progress)
    result(f"dataset {manifest.name}: {manifest.rows} rows ({manifest.split_rows}), {len(manifest.shards)} shards, "
          f"fingerprint {manifest.fingerprint}")
    result(f"  at {dataset_uri(storage_root(config.storage), config.name)}/")
    return 0


def register(commands) -> None:
    prepare = commands.add_parser(
        "prepare", help="turn a source into sharded Parquet + manifest on storage",
        description="Read a source, check it, split rows into train/val/test by a hash of their id (80/10/10 "
                    "unless --split: train fits the model, val picks its best checkpoint and calibrates the "
                    "anomaly threshold, test is what reports and generate's quality figures compare with), "
                    "compute preprocessing statistics on train, and write datasets/<name>/part-*.parquet + "
                    "_manifest.json. CSV/Parquet files are read in batches, in three passes (profile, "
                    "statistics, write), so a source larger than memory prepares in bounded memory; the whole "
                    "source is checked before anything is written. Column roles: numbers are numeric; text is "
                    "categorical (refused when it looks like an identifier or free text: more than 1,000 distinct "
                    "values, or more than half the rows distinct from 50 values on — name it with --id-column, --columns or "
                    "--categorical); booleans are categories of two levels; timestamps, dates and durations are "
                    "modelled as numbers and generated back as such. A folder or prefix is read whole: files "
                    "named '_…' or '.…' are skipped (_SUCCESS, .crc), any other file prepare does not read is "
                    "refused; Hive-style folders (year=2024/region=north/part-0.parquet) add their columns, as "
                    "pyarrow and Ray Data read them, except a folder whose values are dates (date=2026-12-01, "
                    "dt=20261201: the day the rows belong to, which a new day's input lacks) unless named with "
                    "--columns or --categorical. Image folders hold PNG, JPEG, BMP, WebP, TIFF, PPM or PGM "
                    "files; in class folders, the folder right under the root is the label (torchvision's "
                    "ImageFolder); 16-bit images are scaled to 8 bits.",
        epilog="Examples:\n  vaepipe prepare digits\n  vaepipe prepare mnist5k --rows-per-shard 1000\n"
               "  vaepipe prepare data/customers.csv --name customers --id-column customer_id --categorical plan,region\n"
               "  vaepipe prepare data/claims.csv --name claims --split train=0.9,val=0.1,test=0 --transform amount=quantile\n"
               "  vaepipe prepare export.csv.gz --name sales --delimiter ';' --decimal , --encoding cp1252   # a spreadsheet's\n"
               "  vaepipe prepare s3://raw/events/ --name events --id-column event_id --engine ray   # one task per file\n"
               "  vaepipe prepare s3://lake/sales/ --name sales   # sales/year=2024/month=05/part-0.parquet: year, month columns\n"
               "  vaepipe prepare photos/ --name photos --image-shape 3,32,32\n"
               "  vaepipe prepare shapes --rows 200000 --seed 1          # images with known factors, for "
               "`vaepipe interpret`\n"
               "  vaepipe prepare shapes --name shapes64 --image-shape 1,64,64\n"
               "  vaepipe prepare factor_table --rows 50000",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    prepare.add_argument("source", nargs="?", help="built-in sample (digits, mnist5k, breast_cancer, fair; generated: "
                                                   "shapes, factor_table), a CSV or Parquet file or prefix (local "
                                                   "path or s3://), or an image folder (local or an s3:// prefix)")
    prepare.add_argument("--name", help="dataset name (default: the built-in sample's name)")
    prepare.add_argument("--config", help="YAML file with the same fields (flags override it)")
    prepare.add_argument("--storage", help="storage root URI (default $VAEPIPE_STORAGE or s3://vaepipe)")
    prepare.add_argument("--rows-per-shard", type=int, help="rows per Parquet shard (default: about 8 shards)")
    prepare.add_argument("--columns", help="comma-separated feature columns to keep (tabular; default all)")
    prepare.add_argument("--categorical", help="comma-separated columns to treat as categorical (also text columns "
                                               "refused as identifier-like)")
    prepare.add_argument("--numeric", help="comma-separated columns that must be numeric")
    prepare.add_argument("--id-column", help="column with a unique row id (default: row number)")
    prepare.add_argument("--label-column", help="column kept as a label, not a feature")
    prepare.add_argument("--image-shape", type=_shape, help="C,H,W to convert and resize images to (C = 1 or 3)")
    prepare.add_argument("--split", type=_split, metavar="train=F,val=F,test=F",
                         help="share of rows in each split (default train=0.8,val=0.1,test=0.1; the shares sum to 1)")
    prepare.add_argument("--transform", action="append", metavar="[COLUMN=]KIND",
                         help="how numeric columns are modelled, KIND one of auto (default: log1p for skewed "
                              "non-negative columns), identity, log1p, quantile (any shape, outliers bounded; "
                              "the best for synthesis); COLUMN=KIND for one column (repeatable)")
    prepare.add_argument("--impute", choices=["error", "mean", "median", "drop", "keep"],
                         help="what a missing value (NaN/inf, an empty field) becomes: error (the default), the train "
                              "split's mean or median, drop (the row), or keep (a gap the model learns; generated "
                              "rows have gaps in the source's share, as SDV's do)")
    prepare.add_argument("--delimiter", help="CSV field separator, e.g. ';' (default: a comma; a tab for .tsv files)")
    prepare.add_argument("--encoding", help="CSV text encoding, e.g. latin-1 or cp1252 (default utf-8)")
    prepare.add_argument("--decimal", choices=[".", ","], help="CSV decimal mark (default '.'; ',' reads 0,5 as a half)")
    prepare.add_argument("--thousands", choices=[",", ".", " ", "'"],
                         help="CSV thousands separator: ',' reads 1,234.5 as 1234.5 (default none; with --decimal ',' "
                              "usually '.')")
    prepare.add_argument("--missing", help="comma-separated texts that mean a missing value (CSV fields, Parquet text), e.g. '?' (UCI's) or "
                                           "'?,-', taken as written (' ?' with its space); the empty field, NA, "
                                           "N/A, NaN, null and #N/A always do; --impute says what a gap becomes")
    prepare.add_argument("--follow-symlinks", action="store_true",
                         help="read symlinked files and folders of a local source (refused by default: a link can "
                              "pull in data from outside the folder)")
    prepare.add_argument("--rows", type=int, help="rows to generate (shapes, factor_table; default 10,000)")
    prepare.add_argument("--seed", type=int, help="seed of a generated sample (default 0; the same seed gives the "
                                                  "same rows)")
    prepare.add_argument("--engine", choices=["auto", "local", "ray"],
                         help="where CSV/Parquet files are read, checked and written, in batches (memory stays "
                              "bounded on both): local (one file after another in this process), ray (one Ray task "
                              "per file, on the cluster ray.address / RAY_ADDRESS names or a local Ray), or auto "
                              "(default: ray when attached to a Ray cluster, else local)")
    prepare.add_argument("--overwrite", action="store_true", help="replace a dataset that already exists")
    prepare.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field")
    prepare.set_defaults(handler=cmd_prepare)
