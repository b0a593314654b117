"""`vaepipe interpret`: what a model's latent dimensions mean, measured on a prepared dataset."""
from __future__ import annotations

import argparse

from pipelines.cli.batch_command import add_batch_flags, build_batch_config, run_batch_command


def summary_lines(outcome) -> str:
    """What a person reads after the job: the measures, then each active dim's best factor."""
    from pipelines.reports.training import interpretation_line

    summary = outcome.summary
    lines = [f"interpreted {outcome.model} on {outcome.rows} rows in {outcome.seconds:.1f} s: "
             + interpretation_line(summary)]
    factors = summary.get("factors") or {}
    for best in factors.get("best_factor_per_dim", []):
        if best["dim"] in summary["active_dims"]:
            lines.append(f"  z{best['dim']}: {best['factor']} (MI {best['mi_nats']:.2f} nats, "
                         f"{best['share_of_entropy']:.0%} of its entropy), KL {summary['kl_per_dim'][best['dim']]:.2f}")
    if not factors:
        lines.append("  (the dataset has no factor columns: prepare shapes or factor_table to score disentanglement)")
    return "\n".join(lines)


def cmd_interpret(args: argparse.Namespace) -> int:
    from pipelines.jobs.interpret import InterpretJobConfig, run_interpretation
    from pipelines.reports.interpretation import build_interpretation_report
    from pipelines.storage.embedded_server import apply_store_env

    apply_store_env()
    config = build_batch_config(InterpretJobConfig, {
        "model": args.model, "input": args.input, "split": args.split, "metric_rows": args.metric_rows,
        "seed": args.seed, "dci_importance": args.dci_importance}, args)
    return run_batch_command(run_interpretation, config, done=summary_lines, report=build_interpretation_report)


def register(commands) -> None:
    interpret = commands.add_parser(
        "interpret", help="active latent units and, on datasets with known factors, MIG, DCI and SAP",
        description="Encode every row of a prepared dataset with a registered model and measure its latent space: "
                    "the mean KL of each dimension and the active units (KL above 0.01 nats). When the dataset "
                    "records generative factors (the generated samples shapes and factor_table), also the mutual "
                    "information of each dimension with each factor, MIG, DCI disentanglement / completeness / "
                    "informativeness and SAP of the latent means (on --metric-rows rows). Written beside the model "
                    "version, which its card is read with: models/<name>/<version>/interpretations/<dataset>/"
                    "<split | all>/ (latent rows with their factors as Parquet parts, _summary.json, _SUCCESS), "
                    "plus a report with factor-labelled traversals and the factor × dimension MI heatmap.",
        epilog="Examples:\n  vaepipe prepare shapes --rows 20000 && vaepipe train configs/shapes.yaml\n"
               "  vaepipe interpret --model shapes@latest --input shapes\n"
               "  vaepipe interpret --model shapes@2 --input shapes --split test --metric-rows 5000 --overwrite\n"
               "  vaepipe interpret --model digits@PROMOTED --input digits     # no factors: active units only",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    interpret.add_argument("--model", required=True, help="NAME@VERSION, NAME@PROMOTED or NAME@latest")
    interpret.add_argument("--input", required=True, help="prepared dataset name or URI")
    interpret.add_argument("--split", choices=["train", "val", "test"], help="measure one split only (default: all)")
    interpret.add_argument("--metric-rows", type=int,
                           help="rows MIG, DCI and SAP are computed on, drawn at random (default 10000)")
    interpret.add_argument("--seed", type=int, help="seed of those rows and of DCI's train/test cut (default 0)")
    interpret.add_argument("--dci-importance", choices=["random_forest", "gradient_boosting"],
                           help="DCI's importance model (default random_forest; gradient_boosting is "
                                "disentanglement_lib's, minutes on 10,000 rows)")
    add_batch_flags(interpret)
    interpret.set_defaults(handler=cmd_interpret)
