"""Jobs per provider in the simnet report: the figures, the plot, and the price levels."""

import dataclasses
from pathlib import Path

from simnet import load_scenario
from simnet._figures import work_section
from simnet._plan import plan_nodes, provider_prices
from simnet._report import write_plots

SCENARIOS = Path(__file__).parents[3] / "simnet" / "scenarios"


def test_work_counts_every_provider_even_idle_ones():
    providers = {"0xaa": "provider-1", "0xbb": "provider-2", "0xcc": "provider-10"}
    deals = [{"provider": "0xAA", "phase": "settled"}, {"provider": "0xaa", "phase": "resolved"},
             {"provider": "0xbb", "phase": "settled"}, {"provider": "0xbb", "phase": "cancelled"},
             {"provider": None, "phase": "cancelled"}, {"provider": "0xdd", "phase": "settled"}]
    work = work_section(deals, providers, {"provider-1": 1, "provider-2": 2, "provider-10": 1})
    assert work.jobs_per_provider == {"provider-1": 2, "provider-2": 1, "provider-10": 0}
    assert work.matched_per_provider == {"provider-1": 2, "provider-2": 2, "provider-10": 0}
    assert (work.providers, work.providers_with_work, work.jobs) == (3, 2, 3)
    assert (work.mean, work.max, work.max_over_mean) == (1.0, 2, 2.0)
    assert work.mean_jobs_by_price == {"1": 1.0, "2": 1.0}
    assert work_section([], {}, {}).max_over_mean is None


def test_price_levels_go_round_robin_over_providers():
    scenario = load_scenario(SCENARIOS / "baseline-prices.toml")
    prices = provider_prices(plan_nodes(scenario))
    assert len(prices) == 30
    assert [prices[f"provider-{i}"] // 10**15 for i in (1, 2, 3, 4)] == [1, 2, 3, 1]
    same = provider_prices(plan_nodes(load_scenario(SCENARIOS / "baseline.toml")))
    assert set(same.values()) == {10**15}


def test_the_report_plots_jobs_per_provider(tmp_path):
    work = work_section([{"provider": "0xaa", "phase": "settled"}],
                        {"0xaa": "provider-1", "0xbb": "provider-2"},
                        {"provider-1": 10**15, "provider-2": 2 * 10**15})
    report = {
        "latencies": {"per_deal": []}, "deals": {"by_final_state": {"settled": 1}},
        "gas": {"per_deal": {}}, "work": dataclasses.asdict(work),
        "nodes": {"provider-1": {"gossip_delivered": 1, "cpu_s": 1.0, "rss_max_mb": 9.0,
                                 "pss_max_mb": 4.0}},
    }
    written = write_plots(report, tmp_path)
    assert tmp_path / "jobs_per_provider.png" in written
    assert (tmp_path / "jobs_per_provider.png").stat().st_size > 1000
