"""Which nodes receive their markets' gossip: clients, solvers, chain bridges and relays, and
anyone who asks; and which of them also receive the job offers: solvers and relays."""

import pytest

from lilypad_p2p.cli_market import print_view
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


def test_the_market_view_of_a_node_that_does_not_follow_says_how_to(capsys):
    print_view({"market": "cpu", "following": False, "open_jobs": [], "own_offers": [],
                "window_s": 30.0, "recent_matches": 0, "prices": {}})
    out = capsys.readouterr().out
    assert "does not receive market 'cpu'" in out and "follow_markets = true" in out
