"""The invariants a run must keep, checked from what it collected: every deal ended, funds
conserved, no honest party lost money, and what each fault the scenario injected must show
(cheaters slashed, the spammer scored out, each side of a partition trading, natted providers
served)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lilypad_p2p.localnet import node_identity
from lilypad_p2p.net import GRAYLIST_THRESHOLD
from simnet._faulty import FAILING_MODULE, faulty_invariants
from simnet._figures import FINAL, deal_latencies
from simnet._measure import ChainFigures
from simnet._plan import NodePlan
from simnet._report import Check, NetworkFigures, NodeFigures

if TYPE_CHECKING:
    from simnet._run import Run

# Deal transition times are the client node's clock, the cut's times the simnet's.
CLOCK_SLACK_S = 1.0
# After a heal, every node must hold every provider's offer within this (offers are re-published
# every 60 s, and reconnecting peers sync them, so one republish round plus gossip at most).
CONVERGE_TIMEOUT_S = 90.0


def partition_checks(run: Run, network: NetworkFigures,
                     check: Callable[[str, bool, str], None]) -> None:
    """Each side kept trading during the cut (every job one side's client posted to its own
    side's provider settled), and after the heal every node learnt every offer."""
    window = run.partition_window or (math.inf, math.inf)
    inside: dict[str, Counter[str]] = {"a": Counter(), "b": Counter()}
    across: list[float | None] = []  # seconds into the workload each cross-cut deal opened
    for client, key in run.submitted:
        posted_at, target = run.posted[key]
        if not window[0] <= posted_at < window[1] or target is None:
            continue
        side, deal = run.group_of[client], run.client_deals.get(key, {})
        if run.group_of[target] == side:
            inside[side][deal.get("phase", "unseen")] += 1
            continue
        waited = deal_latencies(deal)["offer_to_deal"] if deal else None
        across.append(None if waited is None else posted_at + waited)
    early = [round(t, 1) for t in across if t is not None and t < window[1] - CLOCK_SLACK_S]
    check("partition_held", bool(across) and not early,
          f"{len(across)} jobs posted across the cut during it; deals opened before the heal "
          f"at {window[1]:.1f} s: {early}; opened after it at "
          f"{sorted(round(t, 1) for t in across if t is not None)}")
    check("each_side_traded_during_partition",
          all(c and set(c) == {"settled"} for c in inside.values()),
          f"jobs posted to their own side during the cut, by final state: "
          f"{ {side: dict(c) for side, c in inside.items()} }")
    converged = network.converged_after_heal_s
    check("offers_converged_after_heal", converged is not None,
          f"every node held every provider's offer (the late joiners' too) {converged} s "
          f"after the heal" if converged is not None
          else f"not within {CONVERGE_TIMEOUT_S} s of the heal")


def ruling(deal: dict[str, Any]) -> str | None:
    """What the mediators said of a deal's result: an on-chain mediation's outcome, or an
    off-chain spot check's that agreed (`check_outcome`); None when nobody judged it."""
    return deal.get("outcome") or deal.get("check_outcome")


def non_deterministic_check(deals: list[dict[str, Any]], check_rate: float) -> tuple[bool, str]:
    """Whether the `random` jobs were judged NON_DETERMINISTIC (so their providers were not
    slashed), and what was seen. A random job nobody judged shows nothing: at least one must
    have been, and with every result checked (check_rate 1) every one."""
    random_deals = [d for d in deals if d.get("module") == "random"]
    rulings = Counter(str(ruling(d)) for d in random_deals if ruling(d))
    unjudged = sum(1 for d in random_deals if not ruling(d))
    ok = (bool(rulings) and set(rulings) == {"NON_DETERMINISTIC"}
          and not (check_rate >= 1 and unjudged))
    return ok, (f"random-job rulings: {dict(rulings)}, not judged: {unjudged} of "
                f"{len(random_deals)}")


def scored_out(scores: dict[str, float | None]) -> bool:
    """Every honest node connected to the spammer scores it below the graylist threshold."""
    return all(score < GRAYLIST_THRESHOLD for score in scores.values() if score is not None)


def invariants(run: Run, before: dict[str, int], after: dict[str, int],
               chain: ChainFigures, spam: dict[str, dict[str, float | None]],
               nodes: dict[str, NodeFigures], network: NetworkFigures) -> list[Check]:
    scenario = run.scenario
    deals = list(run.client_deals.values())
    addresses = {node_identity(run.world, p.name).address.lower(): p for p in run.plans}
    checks: list[Check] = []

    def check(name: str, ok: bool, detail: str) -> None:
        checks.append(Check(name, bool(ok), detail))

    def provider_of(deal: dict[str, Any]) -> NodePlan | None:
        return addresses.get(str(deal.get("provider") or "").lower())

    def taken_by_spammer(deal: dict[str, Any]) -> bool:
        plan = provider_of(deal)
        return plan is not None and plan.spammer and deal["phase"] in {"settled", "timed_out"}

    unfinished = [d["key"] for d in deals if d["phase"] not in FINAL]
    missing = len(run.submitted) - len(deals)
    check("every_deal_ended", not unfinished and not missing,
          f"{len(unfinished)} unfinished, {missing} never seen")
    if scenario.network.nat_share:
        nat = network.nat_at_start
        assert nat is not None
        natted = {p.name for p in run.plans if p.group.startswith("nat")}
        served = Counter(run.client_deals.get(key, {}).get("phase", "unseen")
                         for _, key in run.submitted if run.posted[key][1] in natted)
        check("natted_providers_private_and_relayed", all(nat.relayed.values()),
              f"private with a reservation after {nat.ready_after_s} s: {nat.relayed}")
        check("natted_providers_served_jobs", bool(served) and set(served) == {"settled"},
              f"jobs sent to natted providers, by final state: {dict(served)}")
    if scenario.network.partitioned:
        partition_checks(run, network, check)
    elif not scenario.faults.churn_share:
        # A spammer is also a provider: a job matched to it before the honest nodes scored it
        # out cannot run once they cut it off, and ends timed out, the job creator refunded and
        # paid the collateral (no_honest_party_lost_money checks that). Every other job settles.
        spammers_took = Counter(d["phase"] for d in deals if taken_by_spammer(d))
        bad = Counter(d["phase"] for d in deals
                      if d["phase"] not in {"settled", "resolved"} and not taken_by_spammer(d))
        check("every_job_settled_or_resolved", not bad,
              f"other final phases: {dict(bad)}; the spammers' deals: {dict(spammers_took)}")
    check("funds_conserved", chain.contract_balance == chain.accounted,
          f"contract holds {chain.contract_balance}, accounts sum to {chain.accounted}")

    losers = [p.name for p in run.plans if p.role in ("provider", "mediator", "solver")
              and not p.cheater and after[p.name] < before[p.name]]
    fee = 10**14  # NodeConfig.mediation_fee_wei, the default every client here uses
    for client in (p for p in run.plans if p.role == "client"):
        own = [run.client_deals[key] for name, key in run.submitted
               if name == client.name and key in run.client_deals]
        spent_bound = sum(d["payment_wei"] or 0 for d in own) + fee * len(own)
        if before[client.name] - after[client.name] > spent_bound:
            losers.append(client.name)
    check("no_honest_party_lost_money", not losers, f"lost money: {losers}")
    wrongly = [d["key"] for d in deals if d.get("outcome") == "PROVIDER_WRONG"
               and (provider_of(d) is None or not provider_of(d).cheater)]  # type: ignore[union-attr]
    check("no_honest_provider_slashed", not wrongly, f"honest deals ruled wrong: {wrongly}")
    if scenario.faults.cheater_share:
        cheats = [d for d in deals if (p := provider_of(d)) is not None and p.cheater]
        unslashed = [d["key"] for d in cheats if d.get("outcome") != "PROVIDER_WRONG"]
        richer = [p.name for p in run.plans if p.cheater and after[p.name] > before[p.name]]
        idle = sorted({p.name for p in run.plans if p.cheater}
                      - {p.name for d in cheats if (p := provider_of(d)) is not None})
        check("every_cheater_slashed", bool(cheats) and not unslashed and not richer
              and not idle,
              f"{len(cheats)} cheating deals, not ruled wrong: {unslashed}, "
              f"cheaters who gained: {richer}, cheaters given no job: {idle}")
    if scenario.faults.spammers:
        spammers = {p.name for p in run.plans if p.spammer}
        honest_drops = sum(row.gossip_dropped for name, row in nodes.items()
                           if name not in spammers)
        ignored = sum(row.gossip_graylisted_ignored for name, row in nodes.items()
                      if name not in spammers)
        detail = "; ".join(
            f"{name}: connected to {sum(v is not None for v in row.values())} honest nodes, "
            f"max score there {max((v for v in row.values() if v is not None), default=None)}"
            for name, row in spam.items())
        check("spammer_scored_out",
              honest_drops > 0 and all(scored_out(row) for row in spam.values()),
              f"{detail}; honest nodes dropped {honest_drops} invalid messages, then ignored "
              f"{ignored} from graylisted peers (graylist below {GRAYLIST_THRESHOLD})")
    if "random" in scenario.workload.modules and scenario.faults.check_rate:
        check("non_deterministic_jobs_not_slashed",
              *non_deterministic_check(deals, scenario.faults.check_rate))
    if FAILING_MODULE in run.module_ids:
        faulty_invariants(run.plans, deals, before, after, provider_of,
                          run.module_ids[FAILING_MODULE], check)
    return checks

