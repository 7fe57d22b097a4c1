"""`lilypad-p2p market`: the open job offers, the going price, and why our offers lost work."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from lilypad_p2p._cli_common import HomeOption, JsonOption, _control, _fail, _json_shown


def _wei(value: int | None) -> str:
    return "-" if value is None else f"{value}"


def market(
    market_name: Annotated[str, typer.Option("--market", help="Market to show.")] = "cpu",
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a market as the running node sees it: open jobs, going price, why offers lost.

    Open job offers, the going price (prices of the jobs matched in the last 30 s) and, for
    each of our resource offers, why recent jobs went to other offers or to none (price,
    resources, module, mediators, chain, capacity...). Needs follow_markets = true on a node
    that is not a solver or relay.
    """
    view = _control(home, "market", {"market": market_name})
    if not view["following"]:
        # Its book then holds no job offers but its own, so an empty view would read as a
        # quiet market: a failure, with --json too, is what a script can tell apart.
        _fail(f"this node does not follow market {view['market']!r}: it hears no job offers "
              "(by default only solvers and relays do); set follow_markets = true in its "
              "config.toml (or LILYPAD_FOLLOW_MARKETS=true) and restart it")
    if _json_shown(view, as_json, sort_keys=True):
        return
    print_view(view)


def print_view(view: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    jobs = Table(title=f"open job offers in market {view['market']!r} ({len(view['open_jobs'])})")
    for column in ("id", "module", "max price (wei)", "chain", "needs", "record", "expires in"):
        jobs.add_column(column)
    for job in view["open_jobs"]:
        spec = job["spec"]
        record = (f"≥{job['min_completed_deals']} deals" if job["min_completed_deals"] else
                  "newcomers ok")
        jobs.add_row(job["id"][-12:], job["module"], str(job["max_price_wei"]),
                     str(job["chain_id"]), f"{spec['milli_cpu']}m CPU, {spec['ram_mb']} MB",
                     record, f"{job['expires_in_s']:.0f} s")
    console.print(jobs)
    prices = view["prices"]
    matches = "1 match" if prices["count"] == 1 else f"{prices['count']} matches"
    console.print(
        f"going price over the last {view['window_s']:.0f} s: {matches}, "
        f"last {_wei(prices['last'])} wei, p10 {_wei(prices['p10'])}, "
        f"median {_wei(prices['p50'])}, p90 {_wei(prices['p90'])}")
    if not view["own_offers"]:
        console.print("this node has no resource offer in this market")
        return
    for offer in view["own_offers"]:
        table = Table(title=f"our offer {offer['id'][-12:]} at {offer['price_wei']} wei/job: "
                            f"{offer['jobs_seen']} recent jobs")
        table.add_column("outcome")
        table.add_column("jobs", justify="right")
        table.add_column("for example")
        for category, count in offer["reasons"].items():
            table.add_row(category, str(count), offer["examples"].get(category, ""))
        console.print(table)
