"""Model aliases: any number per model, each move recorded, moved by a conditional write so that of two
promotions that read the same state exactly one wins (on the real S3 server and on a local root)."""
from __future__ import annotations

import json
import threading

import pytest

from pipelines.cli.main import main
from pipelines.naming import InvalidName
from pipelines.storage.layout import PROMOTED_FILE, alias_uri, model_uri
from pipelines.storage.objects import StorageError, write_bytes
from pipelines.storage.registry import (PROMOTED, AliasConflict, AliasState, ModelNotFound, ModelRef, alias_history, list_aliases,
                                        list_models, move_alias, promote, read_alias, register_model, resolve_version)

CARD = {"spec": {"architecture": "mlp"}, "metrics": {"val_neg_elbo": 12.5, "epoch": 3},
        "dataset": {"name": "toy", "fingerprint": "f" * 32, "manifest": {}},
        "calibration": {"threshold": 1.0, "contamination": 0.01, "val_quantile_levels": [0.0, 1.0],
                        "val_quantiles": [0.0, 2.0]}}


@pytest.fixture(params=["s3", "local"])
def root(request, tmp_path) -> str:
    """A storage root with model `toy` at versions 1, 2 and 3: on the real S3 server, and on a local path."""
    location = request.getfixturevalue("s3_prefix") if request.param == "s3" else str(tmp_path / "store")
    for _ in range(3):
        register_model(location, "toy", b"weights", CARD)
    return location


def test_any_number_of_aliases_resolve_wherever_a_reference_is_taken(root):
    promote(root, ModelRef.parse("toy@2"), alias="champion", why="best so far")
    promote(root, ModelRef.parse("toy@3"), alias="challenger")
    promote(root, ModelRef.parse("toy@champion"))  # PROMOTED follows champion

    assert resolve_version(root, ModelRef.parse("toy@champion")) == 2
    assert resolve_version(root, ModelRef.parse("models/toy@challenger")) == 3
    assert resolve_version(root, ModelRef.parse("toy@PROMOTED")) == 2
    assert list_aliases(root, "toy") == {"PROMOTED": 2, "champion": 2, "challenger": 3}
    assert list_models(root) == ["toy"]


def test_every_move_is_recorded_with_who_when_from_to_and_why(root, monkeypatch):
    monkeypatch.setenv("VAEPIPE_PROMOTER", "ana@ci")
    promote(root, ModelRef.parse("toy@1"), alias="champion", why="first")
    promote(root, ModelRef.parse("toy@3"), alias="champion", why="beats v1 on May data")

    first, second = alias_history(root, "toy", "champion")
    assert (first.sequence, first.from_version, first.version, first.outcome, first.why) == (1, None, 1, "moved", "first")
    assert (second.sequence, second.from_version, second.version, second.why) == (2, 1, 3, "beats v1 on May data")
    assert second.by == "ana@ci" and second.at >= first.at  # same millisecond on a fast store: sequence orders


@pytest.mark.reliability("concurrency")
def test_two_promotions_that_read_the_same_state_exactly_one_wins_and_the_loser_names_it(root, monkeypatch):
    promote(root, ModelRef.parse("toy@1"), alias="champion")
    seen = read_alias(root, "toy", "champion")  # both promoters read this, then both write
    start, outcomes = threading.Barrier(2), {}

    def promoter(version: int) -> None:
        start.wait()
        try:
            outcomes[version] = move_alias(root, "toy", "champion", version, f"wants v{version}", seen,
                                           by=f"promoter-{version}")
        except AliasConflict as err:
            outcomes[version] = err

    threads = [threading.Thread(target=promoter, args=(version,)) for version in (2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    winners = [v for v, outcome in outcomes.items() if not isinstance(outcome, AliasConflict)]
    losers = [v for v, outcome in outcomes.items() if isinstance(outcome, AliasConflict)]
    assert len(winners) == 1 and len(losers) == 1
    winner, loser = winners[0], losers[0]
    message = str(outcomes[loser])
    assert f"moved to version {winner} by promoter-{winner}" in message
    assert f"this promotion to version {loser} was refused" in message
    assert resolve_version(root, ModelRef.parse("toy@champion")) == winner

    history = alias_history(root, "toy", "champion")
    assert [(r.outcome, r.version, r.by) for r in history] == [
        ("moved", 1, history[0].by), ("moved", winner, f"promoter-{winner}"), ("refused", loser, f"promoter-{loser}")]
    assert history[2].lost_to == history[1].sequence and history[2].from_version == 1


@pytest.mark.reliability("concurrency")
def test_of_eight_racing_promotions_one_moves_the_alias_and_seven_are_refused(s3_prefix):
    for _ in range(2):
        register_model(s3_prefix, "race", b"weights", CARD)
    seen = read_alias(s3_prefix, "race", "champion")
    start, conflicts = threading.Barrier(8), []

    def promoter(index: int) -> None:
        start.wait()
        try:
            move_alias(s3_prefix, "race", "champion", 1 + index % 2, "race", seen, by=f"p{index}")
        except AliasConflict:
            conflicts.append(index)

    threads = [threading.Thread(target=promoter, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    history = alias_history(s3_prefix, "race", "champion")
    assert len(conflicts) == 7
    assert [r.outcome for r in history].count("moved") == 1 and len(history) == 8
    assert read_alias(s3_prefix, "race", "champion").version == history[0].version


def test_a_move_after_a_refusal_still_moves_the_alias(root):
    promote(root, ModelRef.parse("toy@1"), alias="champion")
    stale = read_alias(root, "toy", "champion")
    promote(root, ModelRef.parse("toy@2"), alias="champion")
    with pytest.raises(AliasConflict):
        move_alias(root, "toy", "champion", 3, "stale", stale)
    # the refusal took the next record's number; a promoter who read the state before it is not refused by it
    current = read_alias(root, "toy", "champion")
    assert current.version == 2 and current.sequence == 3
    read_before_the_refusal = AliasState("champion", version=2, sequence=2)
    move_alias(root, "toy", "champion", 3, "fresh", read_before_the_refusal)
    assert resolve_version(root, ModelRef.parse("toy@champion")) == 3


def test_promoted_written_by_an_older_vaepipe_still_resolves_and_is_kept_in_step(tmp_path):
    root = str(tmp_path / "store")
    for _ in range(2):
        register_model(root, "toy", b"weights", CARD)
    write_bytes(f"{model_uri(root, 'toy')}/{PROMOTED_FILE}", b"1\n")  # what vaepipe wrote before aliases

    assert resolve_version(root, ModelRef.parse("toy@PROMOTED")) == 1
    promote(root, ModelRef.parse("toy@2"))
    (record,) = alias_history(root, "toy", PROMOTED)
    assert (record.from_version, record.version) == (1, 2)
    assert (tmp_path / "store/models/toy/PROMOTED").read_text() == "2\n"  # an older image's nightly reads this


@pytest.mark.parametrize("alias", ["latest", "v3", "V12", "3x", "a/b", "", "-x", "x" * 65])
def test_aliases_that_would_read_as_versions_or_paths_are_refused(tmp_path, alias):
    root = str(tmp_path / "store")
    register_model(root, "toy", b"weights", CARD)
    with pytest.raises(InvalidName):
        promote(root, ModelRef.parse("toy@1"), alias=alias)


def test_a_reference_to_an_alias_that_points_nowhere_says_how_to_set_it(tmp_path):
    root = str(tmp_path / "store")
    register_model(root, "toy", b"weights", CARD)
    with pytest.raises(ModelNotFound, match=r"no version with alias 'champion'.*vaepipe promote toy@<version> "
                                            r"--alias champion"):
        resolve_version(root, ModelRef.parse("toy@champion"))
    with pytest.raises(ModelNotFound, match="after '@' comes a version number"):
        ModelRef.parse("toy@v2")


@pytest.mark.reliability("hostile input")
def test_a_hand_edited_alias_record_is_named(tmp_path):
    root = str(tmp_path / "store")
    register_model(root, "toy", b"weights", CARD)
    promote(root, ModelRef.parse("toy@1"), alias="champion")
    record = tmp_path / "store/models/toy/aliases/champion/00000001.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "version": "one"}))
    with pytest.raises(StorageError, match=r"00000001\.json is not a valid alias record: version"):
        resolve_version(root, ModelRef.parse("toy@champion"))
    assert alias_uri(root, "toy", "champion").endswith("models/toy/aliases/champion")


def test_promote_and_models_commands_show_versions_metrics_aliases_and_history(tmp_path, capsys):
    root = str(tmp_path / "store")
    for _ in range(2):
        register_model(root, "toy", b"weights", CARD)

    assert main(["promote", "toy@2", "--alias", "champion", "--why", "better recall", "--storage", root]) == 0
    assert "toy@champion → toy@2 (was no version)" in capsys.readouterr().out
    assert main(["promote", "toy@champion", "--storage", root]) == 0
    assert "toy@PROMOTED → toy@2 (was no version); nightly scoring uses it" in capsys.readouterr().out

    assert main(["models", "list", "--storage", root]) == 0
    assert "toy: 2 version(s), latest 2; PROMOTED→2, champion→2" in capsys.readouterr().out
    assert main(["models", "show", "toy", "--storage", root]) == 0
    shown = capsys.readouterr().out
    version_two = next(line for line in shown.splitlines() if line.strip().startswith("2 "))
    assert "12.500" in version_two and "PROMOTED, champion" in version_two
    assert "champion#1" in shown and "- → 2" in shown and "moved" in shown and "better recall" in shown

    assert main(["promote", "toy@1", "--alias", "latest", "--storage", root]) == 2
    assert "error: alias 'latest' is not allowed" in capsys.readouterr().err
