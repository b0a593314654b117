"""`vaepipe --help` and `vaepipe <verb> --help` answer without importing torch or Ray (issue 19: help in ≤ 1 s
needs the help path free of both; what is imported is checked, not how long it took), and so does a job refused
for its config: the error comes before the job's modules load."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

from pipelines.cli.main import build_parser

# One process does what every invocation does first (imports `pipelines.cli.main`, builds the parser, which
# imports every verb's module), then forks a child per command line: each command starts from that state alone,
# not from another's imports, for one start instead of one per verb (a fresh interpreter each: 8 CPU-s in all).
PROBE = """
import contextlib, io, json, os, sys
from pipelines.cli.main import build_parser, main
build_parser()
for argv in json.loads(sys.argv[1]):
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read)
        out, err = io.StringIO(), io.StringIO()
        code = None
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as end:
                code = end.code
        heavy = sorted(name for name in sys.modules if name.split(".")[0] in ("torch", "ray"))
        os.write(write, json.dumps({"argv": argv, "code": code, "out": out.getvalue()[:200],
                                    "err": err.getvalue()[-400:], "heavy": heavy}).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        print(answer.read(), flush=True)
    os.waitpid(child, 0)
"""


def runs(*argvs: list[str]) -> list[dict]:
    run = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argvs)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    answers = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert [answer["argv"] for answer in answers] == list(argvs), run.stdout[-2000:]
    return answers


def verbs() -> list[str]:
    (choices,) = [action.choices for action in build_parser()._actions
                  if isinstance(action, argparse._SubParsersAction)]
    return list(choices)


def test_help_and_every_verbs_help_import_neither_torch_nor_ray():
    names = verbs()
    assert "ray" in names and "score" in names
    top, *each = runs(["--help"], *([verb, "--help"] for verb in names))
    assert top["code"] == 0 and top["out"].startswith("usage: vaepipe") and top["heavy"] == []
    for verb, answer in zip(names, each):
        assert answer["code"] == 0 and answer["out"].startswith(f"usage: vaepipe {verb}"), answer
        assert answer["heavy"] == [], verb


def test_a_job_refused_for_its_config_imports_neither_torch_nor_ray(tmp_path):
    missing, invalid = tmp_path / "missing.yaml", tmp_path / "invalid.yaml"
    invalid.write_text("dataset: digits\nno_such_field: 1\n")
    cases = [(verb, config) for verb in ("train", "tune", "nightly") for config in (missing, invalid)]
    for (verb, config), answer in zip(cases, runs(*([verb, str(config)] for verb, config in cases))):
        assert answer["code"] == 2, answer
        assert answer["err"].startswith("error: ") and str(config) in answer["err"], answer
        assert answer["heavy"] == [], answer
