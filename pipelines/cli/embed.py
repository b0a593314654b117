"""`vaepipe embed`: latent features for every row of a prepared dataset."""
from __future__ import annotations

import argparse

from pipelines.cli.batch_command import add_batch_flags, build_batch_config, run_batch_command


def cmd_embed(args: argparse.Namespace) -> int:
    from pipelines.jobs.embed import EmbedJobConfig, run_embedding
    from pipelines.storage.embedded_server import apply_store_env

    apply_store_env()
    config = build_batch_config(EmbedJobConfig, {
        "model": args.model, "input": args.input, "split": args.split, "output": args.output,
        "passthrough": [c.strip() for c in args.passthrough.split(",") if c.strip()] if args.passthrough
        else None}, args)
    return run_batch_command(run_embedding, config, done=lambda outcome: (
        f"embedded {outcome.rows} rows with {outcome.model} in {outcome.seconds:.1f} s"))


def register(commands) -> None:
    embed = commands.add_parser(
        "embed", help="latent mean and log-variance per row, as features for downstream models",
        description="Encode every row of a prepared dataset with a registered model and write row_id, "
                    "mu_0..mu_{d-1}, logvar_0..logvar_{d-1} (+ label, passthrough columns) to "
                    "embeddings/<model>-v<version>/<dataset>/ (Parquet parts, _SUCCESS).",
        epilog="Examples:\n  vaepipe embed --model digits@latest --input digits\n"
               "  vaepipe embed --model models/fair@2 --input fair --split train --passthrough age --overwrite",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    embed.add_argument("--model", required=True, help="NAME@VERSION, NAME@PROMOTED or NAME@latest")
    embed.add_argument("--input", required=True, help="prepared dataset name or URI")
    embed.add_argument("--split", choices=["train", "val", "test"], help="embed one split only (default: all)")
    embed.add_argument("--passthrough", help="comma-separated input columns to copy to the output")
    embed.add_argument("--output", help="output root folder or URI (default embeddings)")
    add_batch_flags(embed)
    embed.set_defaults(handler=cmd_embed)
