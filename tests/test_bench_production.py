"""The production benchmark's verdicts: a figure is called met only when its target holds
against the peers measured in the same run, and never when a peer's figure is missing."""

import pytest

from bench import production

PEERS = {
    "bare chain": {"gap_ms": 2.0, "steps_per_s": 400.0},
    "DBOS": {"gap_ms": 3.0, "steps_per_s": 300.0},
    "LangGraph": {"gap_ms": 4.0, "steps_per_s": 500.0},
}
# Each stack's own commit, taken just before its gap.
STUDIOX = {
    "commit_ms": 0.5,
    "gap_ms": 3.0,
    "steps_per_s": 300.0,
    "post_ms": 15.0,
    "starts_per_s": 200.0,
}
SLICED = {"commit_ms": 0.5, "gap_ms": 1.0, "steps_per_s": 750.0}


def verdicts(studiox: dict, sliced: dict, peers: dict) -> list[str]:
    return [row[-1] for row in production.rows(studiox, sliced, peers)]


def test_figures_on_their_targets_are_met():
    assert verdicts(STUDIOX, SLICED, PEERS) == ["met"] * 6


@pytest.mark.parametrize(
    ("figure", "studiox", "sliced"),
    [
        ("gap above 1.5× the bare chain", {"gap_ms": 3.01}, {}),
        ("time-slice gap above 2× one commit", {}, {"gap_ms": 1.01}),
        ("time-slice gap above 2× its own stack's commit", {}, {"commit_ms": 0.49}),
        ("time-slice rate below 1.5× the best peer", {}, {"steps_per_s": 749.0}),
        ("POST median above 15 ms", {"post_ms": 15.1}, {}),
        ("starts below 200/s", {"starts_per_s": 199.0}, {}),
    ],
)
def test_a_figure_past_its_target_is_not_met(figure, studiox, sliced):
    found = verdicts({**STUDIOX, **studiox}, {**SLICED, **sliced}, PEERS)
    assert found.count("NOT met") == 1, figure


def test_default_rate_must_reach_three_quarters_of_the_bare_chain():
    slower_dbos = {**PEERS, "DBOS": {"gap_ms": 3.0, "steps_per_s": 200.0}}
    assert verdicts({**STUDIOX, "steps_per_s": 299.0}, SLICED, slower_dbos)[1] == "NOT met"


def test_default_rate_must_also_reach_dbos():
    faster_dbos = {**PEERS, "DBOS": {"gap_ms": 3.0, "steps_per_s": 301.0}}
    assert verdicts(STUDIOX, SLICED, faster_dbos)[1] == "NOT met"


def test_a_failed_peer_leaves_its_targets_undecided():
    without_bare_chain = {**PEERS, "bare chain": None}
    found = verdicts(STUDIOX, SLICED, without_bare_chain)
    assert found[:2] == ["n/a", "n/a"]
    assert found[2:] == ["met"] * 4  # the others do not depend on the bare chain


def test_ratios_compare_with_the_bare_chain_the_best_peer_and_one_commit():
    gap_row = production.rows(STUDIOX, SLICED, PEERS)[0]
    by_column = dict(zip(production.HEADER, gap_row, strict=True))
    assert by_column["StudioX / bare chain"] == "1.50×"
    assert by_column["StudioX / best peer"] == "1.50×"  # the lowest gap is the bare chain's
    assert by_column["gap / 1 commit"] == "6.00×"
    sliced_gap_row = production.rows(STUDIOX, {**SLICED, "commit_ms": 0.25}, PEERS)[2]
    assert dict(zip(production.HEADER, sliced_gap_row, strict=True))["gap / 1 commit"] == "4.00×"


def test_the_measured_stack_ignores_the_callers_studiox_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("STUDIOX_TIME_SLICE_MS", "50")
    monkeypatch.setenv("STUDIOX_DEBUG", "true")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///elsewhere.sqlite3")
    env = production.studiox_environment(tmp_path)
    assert "STUDIOX_TIME_SLICE_MS" not in env
    assert "STUDIOX_DEBUG" not in env
    assert env["DATABASE_URL"].endswith("/studiox_benchprod")
    assert env["STUDIOX_BROKER_URL"].endswith("/12")
    assert env["STUDIOX_CHANNEL_LAYER_URL"].endswith("/13")


def test_rounds_combine_into_the_median_of_each_figure():
    first = {"gap_ms": 2.0, "steps_per_s": 400.0, "version": "celery 5"}
    second = {"gap_ms": 3.0, "steps_per_s": 500.0, "version": "celery 5"}
    assert production.combined([first, second]) == {
        "gap_ms": 2.5,
        "steps_per_s": 450.0,
        "version": "celery 5",
    }
    assert production.combined([None, second]) == second  # a failed round is left out
    assert production.combined([None, None]) is None
