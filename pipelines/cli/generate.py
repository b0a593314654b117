"""`vaepipe generate`: synthetic rows from a registered model."""
from __future__ import annotations

import argparse

from pipelines.cli.batch_command import add_batch_flags, build_batch_config, run_batch_command


def cmd_generate(args: argparse.Namespace) -> int:
    from pipelines.jobs.generate import GenerateJobConfig, run_generation
    from pipelines.reports.samples import build_samples_report
    from pipelines.storage.embedded_server import apply_store_env

    apply_store_env()
    config = build_batch_config(GenerateJobConfig, {
        "model": args.model, "num_samples": args.num_samples, "temperature": args.temperature, "seed": args.seed,
        "run": args.run, "output": args.output}, args)
    return run_batch_command(run_generation, config, report=build_samples_report, done=lambda outcome: (
        f"generated {outcome.rows} rows with {outcome.model} in {outcome.seconds:.1f} s"))


def register(commands) -> None:
    generate = commands.add_parser(
        "generate", help="sample new rows from a model's prior, in the dataset's original schema",
        description="Draw z from the prior (scaled by --temperature), decode, and map back to the training "
                    "dataset's schema: tables keep their column names, dtypes, value ranges and categorical "
                    "levels; images are uint8 arrays plus a PNG grid (samples.png). The same --seed gives the "
                    "same rows. Writes samples/<model>-v<version>/<run>/ (Parquet parts, _SUCCESS).",
        epilog="Examples:\n  vaepipe generate --model fair@latest --num-samples 100000 --seed 7\n"
               "  vaepipe generate --model models/digits@3 --num-samples 64 --temperature 0.8\n"
               "  vaepipe generate --model digits@PROMOTED --num-samples 1000000 --actors 4 --run big",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    generate.add_argument("--model", required=True, help="NAME@VERSION, NAME@PROMOTED or NAME@latest")
    generate.add_argument("--num-samples", type=int, required=True, help="rows to generate")
    generate.add_argument("--temperature", type=float, help="prior scale (default 1.0; 0.8 for typical rows)")
    generate.add_argument("--seed", type=int, help="random seed (default 0)")
    generate.add_argument("--run", help="output folder name (default seed<S>-n<N>-t<T>)")
    generate.add_argument("--output", help="output root folder or URI (default samples)")
    add_batch_flags(generate)
    generate.set_defaults(handler=cmd_generate)
