"""Which nodes receive their markets' gossip: clients, solvers, chain bridges and relays, and
anyone who asks; and which of them also receive the job offers: solvers and relays."""

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from lilypad_p2p import cli_market
from lilypad_p2p.cli import app
from lilypad_p2p.config import load_config
from lilypad_p2p.errors import ConfigError


@pytest.mark.parametrize(("roles", "follows", "follows_jobs"), [
    ('["provider"]', False, False), ('["mediator"]', False, False),
    ('["provider", "mediator"]', False, False),
    ('["relay"]', True, True),
    ('["client"]', True, False), ('["solver"]', True, True),
    ('["provider", "solver"]', True, True), ('["client", "solver"]', True, True),
    ('["chain-bridge"]', True, False),
])
def test_clients_and_solvers_follow_their_markets(tmp_path, roles, follows, follows_jobs):
    (tmp_path / "config.toml").write_text(f"roles = {roles}\n")
    config = load_config(home=tmp_path, flags={})
    assert config.follows_markets is follows
    assert config.follows_jobs is follows_jobs
    posts_jobs = "client" in roles or "chain-bridge" in roles
    assert config.publishes_jobs_only is (posts_jobs and not follows_jobs)


def test_a_provider_follows_when_it_asks(tmp_path, monkeypatch):
    (tmp_path / "config.toml").write_text('roles = ["provider"]\nfollow_markets = true\n')
    config = load_config(home=tmp_path, flags={})
    assert config.follows_markets and config.follows_jobs
    (tmp_path / "config.toml").write_text('roles = ["provider"]\n')
    monkeypatch.setenv("LILYPAD_FOLLOW_MARKETS", "yes")
    assert load_config(home=tmp_path, flags={}).follows_markets
    monkeypatch.setenv("LILYPAD_FOLLOW_MARKETS", "sometimes")
    with pytest.raises(ConfigError, match="LILYPAD_FOLLOW_MARKETS"):
        load_config(home=tmp_path, flags={})


def _view(following: bool) -> dict[str, Any]:
    return {"market": "cpu", "following": following, "open_jobs": [], "own_offers": [],
            "window_s": 30.0, "recent_matches": 0,
            "prices": {"count": 0, "last": None, "p10": None, "p50": None, "p90": None}}


@pytest.mark.parametrize("flags", [[], ["--json"]])
def test_the_market_view_of_a_node_that_does_not_follow_fails_saying_how_to(monkeypatch,
                                                                          flags):
    # Its empty view would read as a quiet market, to a person and to a script alike.
    monkeypatch.setattr(cli_market, "_control", lambda home, method, params: _view(False))
    result = CliRunner().invoke(app, ["market", *flags])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "error: this node does not follow market 'cpu': it hears no job offers (by default "
        "only solvers and relays do); set follow_markets = true in its config.toml (or "
        "LILYPAD_FOLLOW_MARKETS=true) and restart it"]


def test_the_market_view_of_a_following_node_is_shown(monkeypatch):
    monkeypatch.setattr(cli_market, "_control", lambda home, method, params: _view(True))
    result = CliRunner().invoke(app, ["market"])
    assert result.exit_code == 0 and "going price over the last 30 s: 0 matches" in result.output
    result = CliRunner().invoke(app, ["market", "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["following"] is True
