"""`vaepipe --help` and `vaepipe <verb> --help` answer without importing torch or Ray (issue 19: help in ≤ 1 s
needs the help path free of both; what is imported is checked, not how long it took)."""
from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import contextlib, io, json, sys
from pipelines.cli.main import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        main(sys.argv[1:])
    except SystemExit as end:
        code = end.code
print(json.dumps({"code": code, "help": out.getvalue()[:200],
                  "heavy": sorted(name for name in sys.modules if name.split(".")[0] in ("torch", "ray"))}))
"""


def help_run(*args: str) -> dict:
    run = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_help_imports_neither_torch_nor_ray():
    result = help_run("--help")
    assert result["code"] == 0 and result["help"].startswith("usage: vaepipe")
    assert result["heavy"] == []


def test_every_verbs_help_imports_neither_torch_nor_ray():
    import argparse

    from pipelines.cli.main import build_parser

    (verbs,) = [action.choices for action in build_parser()._actions
                if isinstance(action, argparse._SubParsersAction)]
    assert "ray" in verbs and "score" in verbs
    for verb in verbs:  # one process each: a verb's help must not lean on another's imports
        result = help_run(verb, "--help")
        assert result["code"] == 0 and result["help"].startswith(f"usage: vaepipe {verb}"), (verb, result)
        assert result["heavy"] == [], verb
