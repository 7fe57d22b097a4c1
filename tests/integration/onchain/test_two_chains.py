"""One set of real nodes serves two settlement chains at once.

Two anvils with different chain IDs, the settlement contract, LilypadRequests and the example
client deployed on each (at the same addresses: only the chain ID tells the EIP-712 domains
apart). One mediator, one solver, one chain bridge (the job creator) and a provider configured
with both chains, plus an older provider that accepts only chain A (it lists both, but has a
deposit on A only, so its offers name A alone). Requests on both chains are
answered in their example contract, every balance moves by the deals on its own chain only, a
client job on chain B goes to the provider that accepts B although the chain-A-only offer is
older (the matcher's tie-break), and a deal signed on chain A is refused by chain B's contract.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from bridge_world import (
    ESCROW_WEI,
    REQUEST_WINDOW_S,
    await_closed,
    optimistic_policy,
    posted_deal_id,
    require_parts,
)

from lilypad_p2p.chain import (
    EXAMPLE_CLIENT,
    Chain,
    ContractClient,
    RequestsClient,
    RequestStatus,
    SettlementClient,
    SignatureRejected,
    deploy_contract,
    deploy_requests,
    deploy_settlement,
    open_rpc_chain,
)
from lilypad_p2p.control import ControlError
from lilypad_p2p.identity import Identity
from lilypad_p2p.localnet import LocalCluster, NodeProcess
from lilypad_p2p.store import DealStore
from lilypad_p2p.testing import chain_test_accounts, fund_on_anvil, running_anvil

pytestmark = [pytest.mark.net, pytest.mark.chain, pytest.mark.docker, pytest.mark.slow]

CHAIN_A, CHAIN_B = 31337, 31338
NODE_WALLET_WEI = 1000 * 10**18
NODE_DEPOSIT_WEI = 10 * 10**18
# Bounded waits for what the nodes report (the machine is shared; jobs run in Docker).
KNOWN_WITHIN_S = 90.0
SETTLED_WITHIN_S = 240.0
CLI_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Side:
    """One chain: its ID and URL, the settlement contract, the requests and example clients."""

    chain_id: int
    url: str
    chain: Chain
    settlement: str
    requests: RequestsClient
    example: ContractClient

    def balance(self, address: str) -> int:
        """Free plus locked deposit of `address` in this chain's settlement contract."""
        held = SettlementClient(self.chain, self.settlement).balance(address)
        return held.free + held.locked

    def ask(self, text: str, mediator: str) -> bytes:
        """Ask under an optimistic policy whose one mediator the bridge trusts."""
        policy = optimistic_policy([mediator], window_s=5)
        receipt = self.example.send("ask", "hash", json.dumps({"text": text}).encode(),
                                    self.chain.now() + REQUEST_WINDOW_S, policy.as_abi(),
                                    value=ESCROW_WEI)
        (requested,) = self.requests.requested_in(receipt)
        return requested.request_id


def _deploy(chain_id: int, url: str) -> Side:
    chain = open_rpc_chain(url)
    assert chain.chain_id == chain_id
    deployer, requester = chain_test_accounts(16)[0], chain_test_accounts(16)[15]
    fund_on_anvil(chain, [deployer, requester])
    settlement = deploy_settlement(chain, deployer, withdraw_notice_s=60)
    requests = deploy_requests(chain, deployer, settlement)
    example = deploy_contract(chain, requester, EXAMPLE_CLIENT, requests)
    return Side(chain_id, url, chain, settlement, RequestsClient(chain, requests),
                ContractClient(chain, EXAMPLE_CLIENT, example, requester))


@contextlib.contextmanager
def _two_chains() -> Iterator[tuple[Side, Side]]:
    with running_anvil(chain_id=CHAIN_A) as url_a, running_anvil(chain_id=CHAIN_B) as url_b:
        yield _deploy(CHAIN_A, url_a), _deploy(CHAIN_B, url_b)


def _prepare(base: Path, name: str, sides: list[Side], *, mediator: str | None,
             bridged: bool = False, deposit_on: tuple[int, ...] = (CHAIN_A, CHAIN_B)) -> Identity:
    """A node's keys and a config listing `sides` as [[chains]]; funded on each of them and
    with a deposit on those `deposit_on` names."""
    home = base / name
    identity = Identity.load_or_create(home / "keys")
    lines = [f'mediators = ["{mediator}"]' if mediator else "", "bridge_confirmations = 0"]
    for side in sides:
        lines += ["[[chains]]", f"chain_id = {side.chain_id}", f'rpc_url = "{side.url}"',
                  f'contract = "{side.settlement}"']
        if bridged:
            lines.append(f'requests = "{side.requests.address}"')
    (home / "config.toml").write_text("\n".join(lines) + "\n")
    for side in sides:
        fund_on_anvil(side.chain, [identity.eth_account()], NODE_WALLET_WEI)
        if side.chain_id in deposit_on:
            SettlementClient(side.chain, side.settlement, identity.eth_account()).deposit(
                NODE_DEPOSIT_WEI)
    return identity


def _cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lilypad_p2p.cli", *args], capture_output=True,
                          text=True, timeout=CLI_TIMEOUT_S, check=check)


def _wait_known(cluster: LocalCluster, client: NodeProcess, providers: list[str],
                mediator: str) -> None:
    def known() -> bool:
        with contextlib.suppress(ControlError, OSError):
            owners = {o["owner"] for o in client.call("offers", {"market": "cpu"})}
            return set(providers) <= owners and client.holds_records([*providers, mediator])
        return False

    cluster.wait_until(known, timeout_s=KNOWN_WITHIN_S,
                       what="the bridge to know both providers and the mediator")


def _deal_of_request(bridge: NodeProcess, side: Side, request_id: bytes) -> dict:
    deal_id = "0x" + posted_deal_id(side.requests, request_id).hex()
    (deal,) = [d for d in bridge.call("deals") if d["deal_id"] == deal_id]
    return deal


def test_one_set_of_nodes_serves_two_chains(tmp_path: Path) -> None:
    require_parts()
    with _two_chains() as (side_a, side_b), LocalCluster(tmp_path).running() as cluster:
        sides = [side_a, side_b]
        assert side_a.settlement == side_b.settlement  # the chain ID alone separates domains
        mediator = _prepare(tmp_path, "mediator", sides, mediator=None, deposit_on=()).address
        # Configured with both chains but a deposit on A only: its offers accept A only.
        only_a = _prepare(tmp_path, "only-a", sides, mediator=mediator,
                          deposit_on=(CHAIN_A,)).address
        both = _prepare(tmp_path, "both", sides, mediator=mediator).address
        _prepare(tmp_path, "solver", sides, mediator=mediator, deposit_on=())
        bridge_address = _prepare(tmp_path, "bridge", sides, mediator=mediator,
                                  bridged=True).address
        # The account commands take one of the node's [[chains]] by its ID.
        for chain_id in (CHAIN_A, CHAIN_B):
            shown = json.loads(_cli("balance", "--json", "--chain-id", str(chain_id),
                                    "--home", str(tmp_path / "both")).stdout)
            assert (shown["address"], shown["free_wei"]) == (both, NODE_DEPOSIT_WEI)
        unknown = _cli("balance", "--chain-id", "99", "--home", str(tmp_path / "both"),
                       check=False)
        assert unknown.returncode != 0 and (
            f"--chain-id 99: config.toml's [[chains]] list chain {CHAIN_A}, {CHAIN_B}: give one "
            "of those, or add an entry for chain 99") in unknown.stderr, unknown.stderr
        # A chain whose RPC reports another chain ID stops the node with a clear error.
        wrong = tmp_path / "wrong"
        wrong.mkdir()
        (wrong / "config.toml").write_text(
            f'[[chains]]\nchain_id = {CHAIN_A}\nrpc_url = "{side_b.url}"\n'
            f'contract = "{side_b.settlement}"\n')
        refused = cluster.start_node("wrong", roles=["provider"])
        assert refused.process.wait(CLI_TIMEOUT_S) == 2
        assert f"chain_id {CHAIN_A}: {side_b.url} reports chain ID {CHAIN_B}" in \
            refused.log_path.read_text()
        # The chain-A-only provider comes first: its offer is the older, so a matcher blind
        # to chains would prefer it for every job.
        boot = cluster.start_node("only-a", roles=["provider"])
        boot.wait_ready()
        for name, roles in (("both", ["provider"]), ("mediator", ["mediator"]),
                            ("solver", ["solver"]), ("bridge", ["chain-bridge"])):
            cluster.start_node(name, roles=roles, bootstrap=[boot.dial_addr]).wait_ready()
        bridge = cluster.nodes[-1]
        _wait_known(cluster, bridge, [only_a, both], mediator)

        status = bridge.call("status")["chains"]
        assert [(c["chain_id"], c["connected"]) for c in status] == [(CHAIN_A, True),
                                                                     (CHAIN_B, True)]
        shown = _cli("status", "--home", str(bridge.home)).stdout
        assert f"chain: {CHAIN_A} (default) {side_a.settlement}" in shown
        assert f"chain: {CHAIN_B} {side_b.settlement} @ {side_b.url}: head" in shown
        offered = {o["owner"]: o["chain_ids"] for o in bridge.call("offers", {"market": "cpu"})}
        assert offered == {only_a: [CHAIN_A], both: [CHAIN_A, CHAIN_B]}
        for side in sides:  # the mediator registered itself on each of its chains
            assert SettlementClient(side.chain, side.settlement).is_registered_mediator(mediator)
        parties = (bridge_address, only_a, both)
        before = {side.chain_id: {a: side.balance(a) for a in parties} for side in sides}

        # On-chain requests on both chains, served by the one bridge.
        asked = {side.chain_id: side.ask(f"asked on chain {side.chain_id}", mediator)
                 for side in sides}
        for side in sides:
            request_id = asked[side.chain_id]
            assert await_closed(side.requests, request_id, bridge) is RequestStatus.DELIVERED
            answer = side.example.read("answers", request_id).strip()
            assert answer == hashlib.sha256(f"asked on chain {side.chain_id}".encode()).hexdigest()
        deal_a = _deal_of_request(bridge, side_a, asked[CHAIN_A])
        deal_b = _deal_of_request(bridge, side_b, asked[CHAIN_B])
        assert (deal_a["chain_id"], deal_b["chain_id"]) == (CHAIN_A, CHAIN_B)
        assert deal_b["provider"] == both  # the only provider accepting chain B

        # A client job on chain B (the market level): matched only with the provider that
        # accepts chain B, although the chain-A-only offer is older.
        key = bridge.call("submit", {"module": "hash", "params": {"text": "job on B"},
                                     "chain_id": CHAIN_B})["key"]
        cluster.wait_until(
            lambda: bridge.call("deal", {"key": key})["phase"] == "settled",
            timeout_s=SETTLED_WITHIN_S, what="the chain-B job to settle")
        job_b = bridge.call("deal", {"key": key})
        assert (job_b["chain_id"], job_b["provider"]) == (CHAIN_B, both)

        # Money stays on each deal's own chain: every balance moved by exactly the payments
        # of the deals on that chain.
        settled = [d for d in bridge.call("deals") if d["phase"] == "settled"]
        for side in sides:
            deals = [d for d in settled if d["chain_id"] == side.chain_id]
            paid = {a: sum(d["payment_wei"] for d in deals if d["provider"] == a)
                    for a in (only_a, both)}
            now = {a: side.balance(a) for a in parties}
            assert before[side.chain_id][bridge_address] - now[bridge_address] == sum(
                d["payment_wei"] for d in deals)
            for provider in (only_a, both):
                assert now[provider] - before[side.chain_id][provider] == paid[provider]

        # The chain-A deal, replayed with both signatures (its provider's store holds them: the
        # provider opened it) on chain B, reverts there.
        provider_home = {only_a: "only-a", both: "both"}[deal_a["provider"]]
        store = DealStore.open(tmp_path / provider_home / "node.sqlite")
        try:
            stored = store.provider_deal(deal_a["deal_id"].removeprefix("0x"))
        finally:
            store.close()
        assert stored is not None and stored.chain_id == CHAIN_A
        replayer = SettlementClient(side_b.chain, side_b.settlement, chain_test_accounts(16)[15])
        with pytest.raises(SignatureRejected) as rejected:
            replayer.open_deal(stored.detail.deal, stored.detail.job_creator_signature,
                               stored.detail.provider_signature)
        assert rejected.value.error == "WrongSigner"
