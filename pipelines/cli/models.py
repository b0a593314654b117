"""`vaepipe models list|show NAME`: what the registry holds — versions, their metrics, aliases and their history."""
from __future__ import annotations

import argparse

from pipelines.cli.console import result


def _version_rows(root: str, name: str) -> list[str]:
    from pipelines.storage.layout import CARD_FILE, model_version_uri
    from pipelines.storage.registry import list_aliases, list_versions, read_card

    aliases = list_aliases(root, name)
    rows = [f"{'version':>7}  {'registered':<25} {'val -ELBO':>10} {'best epoch':>10}  {'dataset':<16} aliases"]
    for version in list_versions(root, name):
        card = read_card(f"{model_version_uri(root, name, version)}/{CARD_FILE}")
        metrics = card.get("metrics") or {}
        named = ", ".join(alias for alias, at in sorted(aliases.items()) if at == version)
        neg_elbo = metrics.get("val_neg_elbo")
        rows.append(f"{version:>7}  {str(card.get('registered_at', '')):<25} "
                    f"{f'{neg_elbo:.3f}' if isinstance(neg_elbo, (int, float)) else '-':>10} "
                    f"{str(metrics.get('epoch', '-')):>10}  {card['dataset']['name']:<16} {named}")
    return rows


def _history_rows(root: str, name: str) -> list[str]:
    from pipelines.storage.layout import ALIASES_FOLDER, model_uri
    from pipelines.storage.objects import list_files
    from pipelines.storage.registry import alias_history

    prefix = f"{model_uri(root, name)}/{ALIASES_FOLDER}"
    aliases = sorted({entry.uri[len(prefix) + 1:].split("/")[0] for entry in list_files(prefix, include_hidden=True)})
    rows = []
    for alias in aliases:
        for record in alias_history(root, name, alias):
            moved = f"{record.from_version if record.from_version is not None else '-'} → {record.version}"
            outcome = "moved" if record.outcome == "moved" else f"refused (lost to #{record.lost_to})"
            rows.append(f"  {alias}#{record.sequence}  {record.at}  {moved:<9} {outcome:<24} by {record.by}"
                        f"{f'  — {record.why}' if record.why else ''}")
    return rows


def cmd_models(args: argparse.Namespace) -> int:
    from pipelines.storage.embedded_server import apply_store_env
    from pipelines.storage.layout import storage_root
    from pipelines.naming import validate_name
    from pipelines.storage.registry import ModelNotFound, list_aliases, list_models, list_versions

    apply_store_env()
    root = storage_root(args.storage)
    if args.action == "list":
        names = list_models(root)
        if not names:
            result(f"no models under {root}/models; train one with `vaepipe train`")
            return 0
        for name in names:
            versions = list_versions(root, name)
            aliases = ", ".join(f"{alias}→{version}" for alias, version in sorted(list_aliases(root, name).items()))
            result(f"{name}: {len(versions)} version(s)"
                   f"{f', latest {versions[-1]}' if versions else ''}{f'; {aliases}' if aliases else ''}")
        return 0
    if not args.name:
        raise ModelNotFound("`vaepipe models show` needs a model name, e.g. `vaepipe models show digits`")
    name = validate_name(args.name, "model name")
    if not list_versions(root, name):
        raise ModelNotFound(f"no registered versions of model {name!r} under {root}/models "
                            f"(models: {', '.join(list_models(root)) or 'none'})")
    for line in _version_rows(root, name):
        result(line)
    history = _history_rows(root, name)
    result("alias history:" if history else "alias history: none (`vaepipe promote NAME@V --alias A` sets one)")
    for line in history:
        result(line)
    return 0


def register(commands) -> None:
    models = commands.add_parser(
        "models", help="list the registry's models, or show one: versions, metrics, aliases and their history",
        description="`list`: every model with its number of versions and its aliases. `show NAME`: each version "
                    "(when registered, validation -ELBO, best epoch, dataset, the aliases on it) and every "
                    "attempt to move an alias (who, when, from → to, moved or refused, why).",
        epilog="Examples:\n  vaepipe models list\n  vaepipe models show digits\n"
               "  vaepipe models show digits --storage s3://my-bucket/vaepipe",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    models.add_argument("action", choices=["list", "show"])
    models.add_argument("name", nargs="?", help="the model to show (show)")
    models.add_argument("--storage", help="storage root URI (default $VAEPIPE_STORAGE or s3://vaepipe)")
    models.set_defaults(handler=cmd_models)
