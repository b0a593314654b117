"""Render the reliability suite's outcome as the Markdown table in README.md ("Reliability").

    python -m tests.reliability.report                 # runs `pytest -m reliability`, prints the table
    python -m tests.reliability.report --junit r.xml   # renders a JUnit XML from an earlier run
    python -m tests.reliability.report --junit r-fast.xml r-slow.xml   # both of `make test JUNIT=r`'s phases
    python -m tests.reliability.report -- -m "reliability and not slow"   # other pytest arguments

Each test's kind comes from its marker (`@pytest.mark.reliability("bad input")`, copied into the JUnit
properties by tests/conftest.py); tests record `faults_injected` and `rows_lost` with `record_property`.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from itertools import chain
from pathlib import Path

KIND_ORDER = ["storage fault", "process fault", "concurrency", "security", "bad input"]


def run_suite(pytest_args: list[str], junit: Path) -> None:
    command = [sys.executable, "-m", "pytest", "-m", "reliability", "-q", "-p", "no:cacheprovider",
               f"--junitxml={junit}", "-o", "junit_family=xunit1", *pytest_args]
    subprocess.run(command, check=False)


def describe(name: str) -> str:
    """`test_images_of_another_shape_are_refused_by_score[wrong-size]` → "images of another shape are
    refused by score (wrong-size)"."""
    match = re.match(r"test_(.*?)(?:\[(.*)\])?$", name)
    words, param = match.group(1).replace("_", " "), match.group(2)
    return f"{words} ({param})" if param else words


def rows(*junits: Path) -> list[dict]:
    cases = []
    for case in chain.from_iterable(ET.parse(junit).getroot().iter("testcase") for junit in junits):
        properties = {p.get("name"): p.get("value") for p in case.iter("property")}
        if "kind" not in properties:
            continue
        failed = case.find("failure") is not None or case.find("error") is not None
        outcome = "failed" if failed else "skipped" if case.find("skipped") is not None else "passed"
        cases.append({"kind": properties["kind"], "what": describe(case.get("name")), "outcome": outcome,
                      "module": case.get("classname", "").rsplit(".", 1)[-1],
                      "faults": properties.get("faults_injected", "–"), "rows_lost": properties.get("rows_lost", "–"),
                      "seconds": float(case.get("time", 0))})
    order = {kind: i for i, kind in enumerate(KIND_ORDER)}
    return sorted(cases, key=lambda c: (order.get(c["kind"], len(order)), c["module"], c["what"]))


def render(cases: list[dict]) -> str:
    kinds = Counter(c["kind"] for c in cases)
    outcomes = Counter(c["outcome"] for c in cases)
    lost = sum(int(c["rows_lost"]) for c in cases if c["rows_lost"] != "–")
    injected = sum(int(c["faults"]) for c in cases if c["faults"] != "–")
    lines = [
        f"{len(cases)} tests ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items(), key=lambda kv: KIND_ORDER.index(kv[0]) if kv[0] in KIND_ORDER else 99))}): "
        f"{', '.join(f'{n} {o}' for o, n in sorted(outcomes.items()))}; {injected} faults injected; rows lost: {lost}.",
        "",
        "| kind | fault injected / input tried | test module | outcome | faults injected | rows lost |",
        "|---|---|---|---|---|---|",
    ]
    for c in cases:
        lines.append(f"| {c['kind']} | {c['what']} | {c['module']} | {c['outcome']} | {c['faults']} | {c['rows_lost']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--junit", type=Path, nargs="+",
                        help="render these JUnit XML files (one run's phases) instead of running the suite")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)
    junits = args.junit
    if junits is None:
        junits = [Path(tempfile.mkdtemp(prefix="reliability-")) / "junit.xml"]
        run_suite(args.pytest_args, junits[0])
    cases = rows(*junits)
    print(render(cases))
    return 0 if cases and all(c["outcome"] != "failed" for c in cases) else 1


if __name__ == "__main__":
    sys.exit(main())
