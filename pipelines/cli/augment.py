"""`vaepipe augment`: a labelled dataset plus generated rows per class, as a new prepared dataset."""
from __future__ import annotations

import argparse

from pipelines.cli.batch_command import add_batch_flags, build_batch_config
from pipelines.cli.console import progress, result


def cmd_augment(args: argparse.Namespace) -> int:
    from pipelines.jobs.augment import AugmentJobConfig, run_augmentation
    from pipelines.storage.commit import AlreadyComplete
    from pipelines.storage.embedded_server import apply_store_env

    apply_store_env()
    config = build_batch_config(AugmentJobConfig, {
        "model": args.model, "input": args.input, "name": args.name, "balance": args.balance or None,
        "per_class": args.per_class, "ratio": args.ratio, "seed": args.seed, "sampler": args.sampler,
        "temperature": args.temperature, "pseudo_label": args.pseudo_label, "output": args.output}, args)
    try:
        outcome = run_augmentation(config, progress=progress)
    except AlreadyComplete as complete:
        result(f"already complete: {complete}")
        return 0
    pseudo = config.pseudo_label is not None
    counts = ", ".join(f"{level}: {n['real']}" + (f" + {n['pseudo_labelled']}" if pseudo else "")
                       + f" + {n['synthetic']}" for level, n in outcome.train_rows.items())
    result(f"augmented dataset {config.name}: {outcome.rows} rows in {outcome.seconds:.1f} s; labelled train rows "
           f"per class, real + {'pseudo-labelled + ' if pseudo else ''}generated: {counts}")
    result(f"  at {outcome.dataset_uri}/" + (f" (generated rows also at {outcome.samples_uri}/)" if outcome.samples_uri
                                             else ""))
    return 0


def register(commands) -> None:
    augment = commands.add_parser(
        "augment", help="a labelled dataset plus rows a conditional model generated per class, as a new dataset",
        description="Count the labelled train rows of each class of a prepared dataset, generate rows for the "
                    "classes with a model trained with model.condition_on=[<label column>] (`vaepipe generate`, "
                    "deterministic per --seed), and write the real and generated rows as a new prepared dataset "
                    "datasets/<name>/ (Parquet shards, _manifest.json, _SUCCESS). Real rows keep their split; "
                    "generated rows are train rows, so val and test stay real. Every row has is_synthetic; the "
                    "manifest's `augmentation` lists each class's real and generated train rows. train, score, "
                    "embed and your own classifiers read it like any other dataset. With --pseudo-label P, the "
                    "input's unlabelled train rows also get the level the model's classifier q(y|x) gives a "
                    "probability of at least P (self-training; label_from_model marks them; they count as "
                    "labelled for the top-up).",
        epilog="Examples:\n"
               "  vaepipe train configs/digits.yaml --set name=digits-cvae --set 'model.condition_on=[label]'\n"
               "  vaepipe augment --model digits-cvae@1 --input digits --name digits-balanced --balance\n"
               "  vaepipe augment --model cancer-cvae@1 --input cancer --name cancer-plus --per-class 300\n"
               "  vaepipe augment --model digits-cvae@1 --input digits --name digits-x2 --ratio 1 --seed 3\n"
               "  vaepipe augment --model digits-m2@1 --input digits-few --name digits-self --per-class 200 "
               "--pseudo-label 0.9",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    augment.add_argument("--model", required=True, help="a conditional model: NAME@VERSION, NAME@PROMOTED, NAME@latest")
    augment.add_argument("--input", required=True, help="the labelled prepared dataset (name or URI)")
    augment.add_argument("--name", required=True, help="the new dataset's name (datasets/<name>/)")
    target = augment.add_mutually_exclusive_group(required=True)
    target.add_argument("--balance", action="store_true", help="top every class up to the largest class")
    target.add_argument("--per-class", type=int, metavar="N", help="top every class up to N labelled train rows")
    target.add_argument("--ratio", type=float, metavar="R", help="add R generated rows per labelled train row")
    augment.add_argument("--seed", type=int, help="random seed of the generated rows (default 0)")
    augment.add_argument("--sampler", choices=["auto", "prior", "gmm", "interpolate"],
                         help="as for vaepipe generate; auto (default): interpolate, between real rows of the class")
    augment.add_argument("--temperature", type=float, help="as for vaepipe generate (default 1.0)")
    augment.add_argument("--pseudo-label", type=float, metavar="P",
                         help="also label the unlabelled train rows the model's classifier q(y|x) is at least P sure "
                              "of (0 < P <= 1; e.g. 0.9; default: leave them unlabelled)")
    augment.add_argument("--output", help="where the generated rows are committed (default samples)")
    add_batch_flags(augment)
    augment.set_defaults(handler=cmd_augment)
