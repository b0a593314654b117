"""One module per `vaepipe` sub-command; each has `register(commands)` adding its parser.

A new command is a new module here plus one entry in `COMMANDS` (in the order `--help` lists them).
"""
from pipelines.commands import demo, embed, generate, nightly, prepare, report, score, storage, submit, train, tune

COMMANDS = [demo, storage, prepare, train, tune, score, generate, embed, nightly, report, submit]
