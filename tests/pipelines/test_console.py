"""`vaepipe --quiet / --verbose / --log-format json`: what a person (or a log collector) reads (no Ray)."""
from __future__ import annotations

import json

from pipelines.cli import console
from pipelines.cli.main import main
from pipelines.storage.registry import register_model
from tests.pipelines.storage.test_registry_aliases import CARD


def _store(tmp_path) -> str:
    root = str(tmp_path / "store")
    register_model(root, "toy", b"weights", CARD)
    return root


def test_progress_is_indented_and_results_are_not(capsys):
    console.configure()
    console.progress("reading digits")
    console.result("dataset digits: 1797 rows")
    assert capsys.readouterr().out == "  reading digits\ndataset digits: 1797 rows\n"


def test_quiet_keeps_results_and_warnings_and_drops_progress(capsys):
    console.configure("quiet")
    console.progress("reading digits")
    console.result("dataset digits: 1797 rows")
    console.LOGGER.warning("the report could not be written")
    assert capsys.readouterr().out == "dataset digits: 1797 rows\nwarning: the report could not be written\n"
    console.configure()


def test_json_log_format_writes_one_object_per_line(tmp_path, capsys):
    root = _store(tmp_path)

    assert main(["--log-format", "json", "promote", "toy@1", "--alias", "champion", "--storage", root]) == 0
    assert main(["--log-format", "json", "promote", "toy@1", "--alias", "v1", "--storage", root]) == 2

    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["level"], r["kind"]) for r in records] == [("INFO", "result"), ("ERROR", "error")]
    assert records[0]["message"].startswith("toy@champion → toy@1") and records[0]["logger"] == "vaepipe"
    assert records[1]["message"].startswith("alias 'v1' is not allowed")
    console.configure()


def test_quiet_and_verbose_exclude_each_other(capsys):
    try:
        main(["--quiet", "--verbose", "models", "list"])
    except SystemExit as exit_:
        assert exit_.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
