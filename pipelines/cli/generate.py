"""`vaepipe generate`: synthetic rows from a registered model."""
from __future__ import annotations

import argparse

from pipelines.cli.batch_command import add_batch_flags, build_batch_config, run_batch_command
from pipelines.cli.console import result


def cmd_generate(args: argparse.Namespace) -> int:
    from pipelines.jobs.generate import GenerateJobConfig, copy_samples_out, run_generation, samples_prefix
    from pipelines.reports.samples import build_samples_report
    from pipelines.storage.embedded_server import apply_store_env

    apply_store_env()
    config = build_batch_config(GenerateJobConfig, {
        "model": args.model, "num_samples": args.num_samples, "temperature": args.temperature, "seed": args.seed,
        "from_embeddings": args.from_embeddings, "radius": args.radius,
        "run": args.run, "output": args.output, "sampler": args.sampler, "with_ids": args.with_ids or None,
        "condition": _conditions(args.condition), "per_class": args.per_class,
        "conditions_file": args.conditions}, args)
    status = run_batch_command(run_generation, config, report=build_samples_report, done=lambda outcome: (
        f"generated {outcome.rows} rows with {outcome.model} in {outcome.seconds:.1f} s"))
    if status == 0 and args.local_dir:
        result(f"  copied to {copy_samples_out(samples_prefix(config), args.local_dir, args.local_format)}")
    return status


def _conditions(pairs: list[str] | None) -> dict | None:
    """--condition label=3 --condition city=Oslo → {"label": "3", "city": "Oslo"}."""
    if not pairs:
        return None
    from pipelines.datasets.conditions import ConditionError

    bad = [pair for pair in pairs if "=" not in pair or not pair.split("=", 1)[0]]
    if bad:
        raise ConditionError(f"--condition {bad[0]!r}: write it as COLUMN=LEVEL, e.g. --condition label=3")
    return dict(pair.split("=", 1) for pair in pairs)


def register(commands) -> None:
    generate = commands.add_parser(
        "generate", help="sample new rows from a model, in the dataset's original schema",
        description="Draw z (from a Gaussian mixture fitted to the training rows' latents for tables, from the "
                    "N(0, I) prior for images; --sampler), decode, and map back to the training dataset's schema: "
                    "tables have exactly the source's columns, in its order, with its dtypes, value ranges and "
                    "categorical levels; images are uint8 arrays plus a PNG grid (samples.png). The same --seed "
                    "gives the same rows. Writes samples/<model>-v<version>/<run>/ (Parquet parts, "
                    "_summary.json, _SUCCESS). For tables the summary and the report score the rows against the "
                    "dataset's test split as SDMetrics' QualityReport does (column shapes, column-pair trends, "
                    "overall) and give DCR: the share of rows closer to a training row than to a test row "
                    "(near 0.5: no sign of copied rows).",
        epilog="Examples:\n  vaepipe generate --model fair@latest --num-samples 100000 --seed 7\n"
               "  vaepipe generate --model fair@latest --num-samples 5000 --local-dir out --local-format csv\n"
               "  vaepipe generate --model models/digits@3 --num-samples 64 --temperature 0.8\n"
               "  vaepipe generate --model digits@PROMOTED --num-samples 1000000 --actors 4 --run big\n"
               "  vaepipe generate --model digits-cvae@1 --per-class 10      # a conditional model: 10 of each digit\n"
               "  vaepipe generate --model digits-cvae@1 --num-samples 500 --condition label=3\n"
               "  vaepipe embed --model digits@3 --input digits && \\\n"
               "    vaepipe generate --model digits@3 --from-embeddings embeddings/digits-v3/digits --radius 0.5",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    generate.add_argument("--model", required=True, help="NAME@VERSION, NAME@PROMOTED or NAME@latest")
    generate.add_argument("--num-samples", type=int, help="rows to generate (required unless --from-embeddings)")
    generate.add_argument("--from-embeddings", metavar="PREFIX",
                          help="decode the latent means written by `vaepipe embed` with this model (a folder under "
                               "the storage root, e.g. embeddings/digits-v3/digits, or a URI): one row per "
                               "embedded row, keeping its row_id")
    generate.add_argument("--radius", type=float,
                          help="with --from-embeddings: decode z = mu + radius * N(0, I) noise instead of mu "
                               "(rows near each embedded row; default 0)")
    generate.add_argument("--temperature", type=float, help="prior scale (default 1.0; 0.8 for typical rows)")
    generate.add_argument("--seed", type=int, help="random seed (default 0)")
    generate.add_argument("--sampler", choices=["auto", "prior", "gmm", "interpolate"],
                          help="where z comes from: gmm (a 10-component Gaussian mixture fitted to the posterior "
                               "means of up to 20,000 training rows), prior (N(0, I)), interpolate (between one of "
                               "those rows' means and one of its 5 nearest neighbours' of the same level: SMOTE in "
                               "latent space), auto (default: gmm for tables, prior for images)")
    generate.add_argument("--condition", action="append", metavar="COLUMN=LEVEL",
                          help="a conditional model (trained with model.condition_on): every row at this level; "
                               "repeat for each condition")
    generate.add_argument("--per-class", type=int, metavar="N",
                          help="a conditional model with one condition: N rows of every level (instead of "
                               "--num-samples)")
    generate.add_argument("--conditions", metavar="FILE",
                          help="a conditional model: a local CSV with a column per condition and an optional "
                               "num_rows column (default 1): the rows to generate, like SDV's "
                               "sample_from_conditions (instead of --num-samples)")
    generate.add_argument("--with-ids", action="store_true",
                          help="add a sample_id column numbering the rows (default: the source's columns only)")
    generate.add_argument("--run", help="output folder name (default <sampler>-seed<S>-n<N>-t<T>)")
    generate.add_argument("--output", help="output root folder or URI (default samples)")
    generate.add_argument("--local-dir", metavar="DIR",
                          help="also copy the committed rows to DIR/<run>.parquet (or .csv) on this machine")
    generate.add_argument("--local-format", choices=["parquet", "csv"], default="parquet",
                          help="file format of --local-dir (default parquet; csv for tables only)")
    add_batch_flags(generate)
    generate.set_defaults(handler=cmd_generate)
