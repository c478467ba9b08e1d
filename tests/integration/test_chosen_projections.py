"""IKLEDGER_PROJECTIONS: the read models a receiver keeps current, the others left alone."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import projections
from projections import ProjectionRunner, UnknownProjection, chosen, search_events
from receiver.cli import cli
from receiver.config import Config, ConfigError
from store import SQLiteStore
from tests.integration.test_overview_read_models import _hand_fixture
from tests.projections_helpers import log, pdb  # noqa: F401


def test_projections_setting_is_a_list_of_names_kept_once():
    env = {"IKLEDGER_PROJECTIONS": " timeline ,event_types,timeline,"}
    assert Config.from_env(env).projections == ("timeline", "event_types")
    assert Config.from_env({}).projections is None


def test_projections_setting_without_a_name_is_refused():
    with pytest.raises(ConfigError, match="IKLEDGER_PROJECTIONS"):
        Config.from_env({"IKLEDGER_PROJECTIONS": " , "})


def test_unknown_projection_name_is_refused_naming_the_known_ones():
    with pytest.raises(UnknownProjection, match="'serch'.*known: timeline, event_types, search"):
        chosen(("timeline", "serch"))


def test_chosen_keeps_the_default_order_and_none_means_every_one():
    assert [p.name for p in chosen(("search", "timeline"))] == ["timeline", "search"]
    assert chosen(None) == projections.DEFAULT_PROJECTIONS


def test_runner_of_chosen_projections_leaves_search_unbuilt(log, pdb):  # noqa: F811
    log.append_many(_hand_fixture())
    done = ProjectionRunner(pdb, chosen(("timeline", "event_types"))).catch_up()
    assert set(done) == {"timeline", "event_types"}
    assert search_events(pdb, "o1") == []  # never built: no answer, not an error
    ProjectionRunner(pdb).catch_up()
    assert [e["id"] for e in search_events(pdb, "o1")] == ["o1"]


def test_cli_rebuild_rebuilds_only_the_chosen_projections(db_path):
    with SQLiteStore(db_path) as store:
        store.append_many(_hand_fixture())
    result = CliRunner().invoke(
        cli,
        ["rebuild", "--db", str(db_path)],
        env={"IKLEDGER_PROJECTIONS": "timeline"},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    with (
        SQLiteStore(db_path) as store,
        projections.open_projections(store, db_path.with_suffix(".projections.db")) as views,
    ):
        built = {row["name"] for row in projections.projection_status(views)}
    assert "search" not in built and "timeline" in built
