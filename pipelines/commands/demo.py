"""`vaepipe demo`: what `make demo` runs."""
from __future__ import annotations

import argparse

from pipelines.commands.output import progress


def cmd_demo(args: argparse.Namespace) -> int:
    from pipelines.demo import run_demo

    return run_demo(progress=progress)


def register(commands) -> None:
    demo = commands.add_parser("demo", help="run the whole pipeline on the digits sample (what `make demo` runs)",
                               description="Start the embedded store, prepare the digits sample into it and run "
                                           "every pipeline stage, printing where each output lives.")
    demo.set_defaults(handler=cmd_demo)
