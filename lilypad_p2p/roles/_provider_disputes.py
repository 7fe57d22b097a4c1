"""The provider's side of mediation: resolve a dispute the job creator does not.

Whichever party first holds k matching verdicts calls `resolve`. A job creator that disputes
and then never gathers verdicts (or drops them because they say it was wrong) would otherwise
let the mediation window run out, and `claimTimeout` would split the price: outputs for half
price. So a
provider that finds one of its deals disputed on chain asks the consortium itself: it holds
everything a mediation request needs (the deal, the inputs spooled sealed to its own key, its
signed commitment) and streams the inputs to each mediator re-sealed to it. Mediators answer a
repeated request with the verdict they already signed.

    disputes = ProviderDisputes(identity, chains, contact); await nursery.start(disputes.run)
    ProviderRole(..., disputes=disputes)   # calls disputes.defend_soon(stored) when it sees one

Each deal is defended on its own chain (`ProviderDeal.chain_id`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from lilypad_p2p.chain import DealStatus
from lilypad_p2p.deal_detail import required
from lilypad_p2p.identity import Identity
from lilypad_p2p.logs import event
from lilypad_p2p.market import EquivocationWatch
from lilypad_p2p.roles._dispute import (
    MEDIATOR_ANSWER_TIMEOUT_S,
    DisputeCase,
    MediatorContact,
    gather_verdicts,
    report_equivocations,
    resolve,
)
from lilypad_p2p.roles._settlement import DealChains
from lilypad_p2p.roles._transfer import SpooledInputs, inputs_context, inputs_spool
from lilypad_p2p.store import ProviderDeal

log = logging.getLogger("lilypad_p2p.provider")

# Disputed deals waiting to be defended (a full queue drops one: the next tick offers it again).
DEFEND_QUEUE = 64


class ProviderDisputes:
    def __init__(
        self,
        identity: Identity,
        chains: DealChains,
        contact: Callable[[str], MediatorContact | None],
        *,
        answer_timeout_s: float = MEDIATOR_ANSWER_TIMEOUT_S,
    ) -> None:
        self._identity = identity
        self._chains = chains
        self._contact = contact
        self._answer_timeout_s = answer_timeout_s
        self._send: trio.MemorySendChannel[ProviderDeal] | None = None
        self._defending: set[bytes] = set()
        self.resolved: list[bytes] = []  # deals this provider resolved itself
        self._watch = EquivocationWatch()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        send, receive = trio.open_memory_channel[ProviderDeal](DEFEND_QUEUE)
        self._send = send
        async with trio.open_nursery() as nursery:
            task_status.started()
            async with receive:
                async for stored in receive:
                    nursery.start_soon(self._defend, stored)

    def defend_soon(self, stored: ProviderDeal) -> None:
        """Defend `stored` (a provider's deal) if it is disputed on chain."""
        chain = self._chains.require(stored.chain_id)
        deal_id = chain.deal_id(stored.detail.deal)
        if self._send is None or deal_id in self._defending:
            return
        try:
            self._send.send_nowait(stored)
        except trio.WouldBlock:
            return
        self._defending.add(deal_id)

    async def _defend(self, stored: ProviderDeal) -> None:
        detail = stored.detail
        chain = self._chains.require(stored.chain_id)
        deal = detail.deal
        deal_id = chain.deal_id(deal)
        try:
            if await chain.status(deal) is not DealStatus.DISPUTED:
                return
            inputs = SpooledInputs(inputs_spool(detail.inputs_spool),
                                   self._identity.sealing_private_key(), inputs_context(deal_id))
            case = DisputeCase(deal, detail.module, inputs,
                               required(detail.result_hash, "result hash"),
                               required(detail.commitment_signature, "commitment"),
                               required(detail.job_offer, "job offer"),
                               required(detail.inputs_nonce, "inputs nonce"))
            tally = await gather_verdicts(chain, case, self._contact,
                                          answer_timeout_s=self._answer_timeout_s)
            await report_equivocations(chain, deal_id, tally, self._watch)
            quorum = tally.quorum()
            if quorum is None:
                event(log, "dispute.no_quorum", logging.WARNING, deal_id="0x" + deal_id.hex())
                return
            if await resolve(chain, deal, quorum):
                self.resolved.append(deal_id)
            event(log, "dispute.defended", deal_id="0x" + deal_id.hex(),
                  outcome=quorum.outcome.name, dissent=[v.mediator for v in tally.dissent()])
        except Exception as exc:  # a failed defence is retried when the provider next looks
            event(log, "dispute.defence_failed", logging.WARNING, deal_id="0x" + deal_id.hex(),
                  error=repr(exc))
        finally:
            self._defending.discard(deal_id)
