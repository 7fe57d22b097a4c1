"""What the simnet measures of a running market: each node's CPU and memory (psutil), its
gossip counters and offer coverage (its control interface), every account's holdings and the
contract's books (the chain)."""

from __future__ import annotations

import contextlib
import functools
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import psutil
from eth_typing import HexStr

from lilypad_p2p.chain import EventWatcher, SettlementClient, open_rpc_chain
from lilypad_p2p.control import ControlError
from lilypad_p2p.localnet import MarketWorld, NodeProcess, node_identity
from simnet._figures import gas_per_deal
from simnet._plan import NodePlan
from simnet._report import MemoryFigures, NodeFigures
from simnet._scrape import Scraper

# Reading a process's PSS walks its page tables (about 1.2 ms for a node, 100 times its RSS):
# at 50 nodes, every second, that was 6 % of a core taken from the nodes being measured.
PSS_EVERY_S = 10.0


@dataclass
class Samples:
    """psutil samples per node name (summing the processes a restarted node had)."""

    cpu_by_pid: dict[str, dict[int, float]] = field(default_factory=lambda: defaultdict(dict))
    rss_max_mb: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    # Proportional set size: each page shared by several processes (a library, or what forked
    # nodes share with their zygote) counts a share to each, so the nodes' PSS sums to what
    # they take of the machine; RSS counts such a page in full in every process.
    pss_max_mb: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    # The zygote's PSS (forked nodes), and the nodes' and the zygote's summed in one sample:
    # the network's memory, at its largest.
    zygote_pss_max_mb: float | None = None
    total_pss_max_mb: float = 0.0
    pss_due_at: float = 0.0

    def take(self, nodes: list[NodeProcess], zygote_pid: int | None,
             now: float | None = None) -> None:
        """CPU and RSS of every node; PSS too when `now` is None (a last sample) or at least
        `PSS_EVERY_S` after the last sample that read it."""
        with_pss = now is None or now >= self.pss_due_at
        if now is not None and with_pss:
            self.pss_due_at = now + PSS_EVERY_S
        total = 0.0
        for node in nodes:
            with contextlib.suppress(psutil.Error):
                process = psutil.Process(node.process.pid)
                times = process.cpu_times()
                self.cpu_by_pid[node.name][process.pid] = times.user + times.system
                if with_pss:
                    memory = process.memory_full_info()
                    pss = memory.pss / 2**20
                    self.pss_max_mb[node.name] = max(self.pss_max_mb[node.name], pss)
                    total += pss
                    rss = memory.rss / 2**20
                else:
                    rss = process.memory_info().rss / 2**20
                self.rss_max_mb[node.name] = max(self.rss_max_mb[node.name], rss)
        if not with_pss:
            return
        if zygote_pid is not None:
            with contextlib.suppress(psutil.Error):
                pss = psutil.Process(zygote_pid).memory_full_info().pss / 2**20
                self.zygote_pss_max_mb = max(self.zygote_pss_max_mb or 0.0, pss)
                total += pss
        self.total_pss_max_mb = max(self.total_pss_max_mb, total)

    def memory(self, node_count: int) -> MemoryFigures:
        return MemoryFigures(
            total_pss_max_mb=round(self.total_pss_max_mb, 1),
            per_node_mb=round(self.total_pss_max_mb / node_count, 1),
            zygote_pss_max_mb=None if self.zygote_pss_max_mb is None
            else round(self.zygote_pss_max_mb, 1))

    def cpu_s(self, name: str) -> float:
        return round(sum(self.cpu_by_pid[name].values()), 2)


@dataclass(frozen=True)
class ChainFigures:
    """The contract's books: its balance, what the accounts and fees sum to, gas per deal."""

    contract_balance: int
    accounted: int
    gas_per_deal: dict[str, int]
    events: dict[str, int]  # contract event name -> count


def holdings(world: MarketWorld, plans: list[NodePlan]) -> dict[str, int]:
    """Free + locked + mediator stake of every node's account (wei)."""
    reader = SettlementClient(open_rpc_chain(world.rpc_url), world.contract)
    out = {}
    for plan in plans:
        address = node_identity(world, plan.name).address
        balance = reader.balance(address)
        out[plan.name] = balance.free + balance.locked + reader.mediator(address)[0]
    return out


def node_figures(nodes: dict[str, NodeProcess], plans: list[NodePlan], samples: Samples,
                 scraper: Scraper | None, zygote_pid: int | None) -> dict[str, NodeFigures]:
    samples.take(list(nodes.values()), zygote_pid)
    providers = {nodes[p.name].status["address"] for p in plans
                 if p.role == "provider" and p.name in nodes}
    figures = {}
    for name, node in nodes.items():
        plan = next(p for p in plans if p.name == name)
        row = NodeFigures(role=plan.role,
                          cpu_s=samples.cpu_s(name),
                          rss_max_mb=round(samples.rss_max_mb[name], 1),
                          pss_max_mb=round(samples.pss_max_mb[name], 1))
        if scraper is not None:
            scraper.scrape(name)
            row.metrics = scraper.figures(name)
        with contextlib.suppress(ControlError, OSError):
            gossip = node.call("status")["gossip"]
            row.gossip_delivered = gossip["delivered"]
            row.gossip_dropped = sum(gossip["dropped"].values())
            row.gossip_graylisted_ignored = gossip["graylisted_messages_ignored"]
            if plan.follows_markets:
                owners = {o["owner"] for o in node.call("offers", {"market": "cpu"})}
                row.provider_offers_known = len(owners & providers) / len(providers)
        figures[name] = row
    return figures


def chain_figures(world: MarketWorld) -> ChainFigures:
    chain = open_rpc_chain(world.rpc_url)
    events = EventWatcher(chain, world.contract).poll()
    reader = SettlementClient(chain, world.contract)
    tx_deals: dict[str, set[str]] = defaultdict(set)
    for event in events:
        if event.deal_id is not None:
            tx_deals["0x" + event.tx_hash.hex()].add("0x" + event.deal_id.hex())
    tx_gas = {tx: int(chain.rpc(functools.partial(chain.w3.eth.get_transaction_receipt, HexStr(tx)))
                      ["gasUsed"]) for tx in tx_deals}
    addresses = {value for event in events for key, value in event.args.items()
                 if key in ("account", "mediator", "jobCreator", "provider", "presenter")}
    accounted = reader.burned()
    for address in addresses:
        balance = reader.balance(address)
        accounted += balance.free + balance.locked + reader.mediator(address)[0]
    for event in events:
        if event.name == "DealResolved":
            accounted += event.args["fee"]
        elif event.name == "MediationFeeClaimed":
            accounted -= event.args["amount"]
    return ChainFigures(contract_balance=chain.balance_of(world.contract), accounted=accounted,
                        gas_per_deal=gas_per_deal(tx_deals, tx_gas),
                        events=dict(Counter(e.name for e in events)))
