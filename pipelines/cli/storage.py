"""`vaepipe storage up|down|status`: the embedded S3 store."""
from __future__ import annotations

import argparse

from pipelines.cli.console import result



def cmd_storage(args: argparse.Namespace) -> int:
    from pipelines.storage.embedded_server import EmbeddedStore

    store = EmbeddedStore()
    if args.action == "up":
        info = store.up()
        result(f"embedded S3 store running at {info.endpoint} (data in {store.root / 'data'})")
        result(f"credentials for other tools: source {store.root / 'env'}")
    elif args.action == "down":
        store.down()
        result(f"embedded S3 store stopped; data kept in {store.root / 'data'}")
    else:
        info = store.status()
        result(f"embedded S3 store: {'running at ' + info.endpoint if info else 'not running'} ({store.root})")
        return 0 if info else 3
    return 0


def register(commands) -> None:
    storage = commands.add_parser("storage", help="start, stop or check the embedded S3 store (SeaweedFS)",
                                  description="Run a local S3-compatible server on 127.0.0.1 for laptops and tests. "
                                              "Data lives under .vaepipe/store (or $VAEPIPE_HOME/store) and survives "
                                              "down/up; credentials are generated once and written to its env file.")
    storage.add_argument("action", choices=["up", "down", "status"])
    storage.set_defaults(handler=cmd_storage)
