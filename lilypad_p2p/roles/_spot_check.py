"""Spot checks off chain: the consortium re-runs privately; only a disagreement reaches the chain.

A job creator that spot-checks a result asks every member of the deal's consortium over
`/lilypad/mediation/3` before anything happens on chain (the mediators judge a deal that is
open or has its result recorded, not only a disputed one; `roles/_mediator.py`). Each signs its
EIP-712 Verdict as for a dispute (one verdict per deal, ever, so the same signatures serve a
later dispute). Then:

- k agree that the provider is right (PROVIDER_CORRECT, or NON_DETERMINISTIC, which pays the
  provider on chain too): the job creator signs the ordinary Acceptance and the deal settles
  like an unchecked one (`settleBatch`). It owes each signer an equal share of the deal's
  mediation fee (the division's remainder to the first signer, as `claimMediationFee` splits
  it) and `CheckFees` pays what it owes every mediator for many deals in one `payFees`.
- anything else (k say the provider is wrong, or no quorum): the ordinary on-chain dispute
  (`roles.mediate`), whose mediators answer with the verdicts they already signed.

Mediators trust the job creator to pay: an unpaid mediator loses one share, and is free to stop
answering that job creator's checks (not automated yet).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import trio

from lilypad_p2p.blocking import run_blocking
from lilypad_p2p.chain import ChainError
from lilypad_p2p.logs import event
from lilypad_p2p.market import EquivocationWatch, Quorum, VerdictOutcome
from lilypad_p2p.roles._dispute import (
    DisputeCase,
    MediatorContact,
    gather_verdicts,
    report_equivocations,
)
from lilypad_p2p.roles._settlement import DealChains
from lilypad_p2p.store import ClientDeal, DealStore

log = logging.getLogger("lilypad_p2p.client")

# Fees owed for agreeing checks are paid once this many deals owe them, or once the oldest has
# waited this long, whichever comes first (one payFees per chain).
FEE_BATCH_DEALS = 20
FEE_MAX_DELAY_S = 30.0
FEE_POLL_INTERVAL_S = 2.0
_AGREEING = (VerdictOutcome.PROVIDER_CORRECT, VerdictOutcome.NON_DETERMINISTIC)


def fee_shares(fee: int, signers: Sequence[str]) -> dict[str, int]:
    """Each signer's share of `fee`: equal, the remainder to the first (as the contract)."""
    if not signers:
        raise ValueError("a check that agreed has signers")
    share = fee // len(signers)
    shares = {signer: share for signer in signers}
    shares[signers[0]] += fee - share * len(signers)
    return shares


async def private_check(
    chains: DealChains,
    chain_id: int | None,
    case: DisputeCase,
    contact: Callable[[str], MediatorContact | None],
    *,
    answer_timeout_s: float,
    watch: EquivocationWatch,
) -> Quorum | None:
    """Ask the consortium without disputing; the quorum if k agree the provider is right,
    else None (the caller disputes on chain)."""
    chain = chains.require(chain_id)
    tally = await gather_verdicts(chain, case, contact, answer_timeout_s=answer_timeout_s)
    await report_equivocations(chain, chain.deal_id(case.deal), tally, watch)
    quorum = tally.quorum()
    deal_id = "0x" + chain.deal_id(case.deal).hex()
    if quorum is not None and quorum.outcome in _AGREEING:
        event(log, "check.agreed", deal_id=deal_id, outcome=quorum.outcome.name,
              signers=len(quorum.signers))
        return quorum
    event(log, "check.disagreed", logging.WARNING, deal_id=deal_id,
          outcome=quorum.outcome.name if quorum else None)
    return None


class CheckFees:
    """Pays the fees a job creator owes for agreeing checks, many deals per transaction.

    A deal owes when its detail holds `check_fees` ({mediator: wei}) without
    `check_fees_paid`; it is paid once the deal is final (the deal's driver no longer writes its
    detail then). The flag is written after the transaction: a crash in between pays the batch
    twice rather than never.
    """

    def __init__(self, chains: DealChains, *, batch_deals: int = FEE_BATCH_DEALS,
                 max_delay_s: float = FEE_MAX_DELAY_S) -> None:
        self._chains = chains
        self._batch_deals = batch_deals
        self._max_delay_s = max_delay_s
        self.transactions = 0

    async def run(self, store: DealStore, *, checking: bool = True) -> None:
        """Pay owed fees in batches; a client that does not spot-check (`checking` False) only
        pays what it still owed from before and then stops scanning its deals."""
        oldest: float | None = None
        # Those owing fees among every deal once (in a worker thread: at 500,000 deals a read
        # of seconds), then only those that change (fees come with a transition).
        found, mark = await run_blocking(store.client_keys_where, _owes_fees)
        owed_keys = set(found)
        while True:
            changed, mark = store.changed_since(mark)
            owed_keys.update(changed)
            owed = _owed(store, owed_keys)
            owed_keys = {stored.record.key for stored in owed}
            if not owed and not checking:
                return
            owing = [s.record.key for s in owed if s.record.phase.is_final]
            if not owing:
                oldest = None
            else:
                oldest = trio.current_time() if oldest is None else oldest
                if (len(owing) >= self._batch_deals
                        or trio.current_time() - oldest >= self._max_delay_s):
                    await self._pay(store, owing)
                    oldest = None
            await trio.sleep(FEE_POLL_INTERVAL_S)

    async def _pay(self, store: DealStore, owing: list[str]) -> None:
        by_chain: dict[int | None, list[str]] = {}
        for key in owing:
            stored = store.client_deal(key)
            assert stored is not None
            by_chain.setdefault(stored.chain_id, []).append(key)
        for chain_id, keys in by_chain.items():
            total: dict[str, int] = {}
            for key in keys:
                stored = store.client_deal(key)
                assert stored is not None
                for mediator, amount in stored.detail.check_fees.items():
                    total[mediator] = total.get(mediator, 0) + amount
            try:
                receipt = await self._chains.require(chain_id).client.pay_fees(total)
            except ChainError as exc:
                event(log, "check.fees_not_paid", logging.WARNING, error=repr(exc))
                continue
            for key in keys:
                stored = store.client_deal(key)
                assert stored is not None
                store.update(stored.record, replace(stored.detail, check_fees_paid=True))
            self.transactions += 1
            event(log, "check.fees_paid", deals=len(keys), mediators=len(total),
                  wei=sum(total.values()), gas=receipt.gas_used, chain_id=chain_id)


def _owes_fees(detail: dict[str, Any]) -> bool:
    """Whether a stored client detail records check fees not paid yet."""
    return bool(detail.get("check_fees")) and not detail.get("check_fees_paid")


def _owed(store: DealStore, keys: set[str]) -> list[ClientDeal]:
    """Of the deals `keys` names, those whose agreeing check's fees are not paid yet (paid
    once the deal is final)."""
    found = (store.client_deal(key) for key in sorted(keys))
    return [stored for stored in found
            if stored is not None and stored.detail.check_fees
            and not stored.detail.check_fees_paid]

