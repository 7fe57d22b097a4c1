"""CheckFees: many agreeing checks' fee shares in one payment per chain, once their deals are
final, never twice; a client that stopped checking pays what it still owed and stops."""

import dataclasses
import functools

import pytest
import trio

from lilypad_p2p import store as deal_store
from lilypad_p2p.deal_detail import ClientDetail
from lilypad_p2p.market import Event, Phase, new_client_deal
from lilypad_p2p.roles._spot_check import CheckFees
from lilypad_p2p.store import DealStore


@dataclasses.dataclass
class _Receipt:
    gas_used: int = 71_000


class _Client:
    def __init__(self) -> None:
        self.payments: list[dict[str, int]] = []

    async def pay_fees(self, fees):
        self.payments.append(dict(fees))
        return _Receipt()


class _Chains:
    """The one method of DealChains CheckFees uses: a chain by ID, with its client."""

    def __init__(self) -> None:
        self.client = _Client()

    def require(self, chain_id):
        return self


def _owe(store: DealStore, key: str, fees: dict[str, int], phase: Phase) -> None:
    record = dataclasses.replace(new_client_deal(key, now_ms=0, expires_ms=1), phase=phase)
    detail = ClientDetail(job_offer=b"", module="hash", submitted_ms=0, check_fees=fees)
    store.insert(record, detail, chain_id=1)


@pytest.fixture
def store(tmp_path):
    opened = DealStore.open(tmp_path / "deals.sqlite")
    yield opened
    opened.close()


async def test_final_deals_are_paid_in_one_batch_and_only_once(store, autojump):
    _owe(store, "a", {"0xm1": 4, "0xm2": 3}, Phase.SETTLED)
    _owe(store, "b", {"0xm1": 5, "0xm3": 5}, Phase.SETTLED)
    _owe(store, "c", {"0xm1": 7}, Phase.ACCEPTED)  # not final yet: waits
    chains = _Chains()
    fees = CheckFees(chains, batch_deals=2, max_delay_s=3600)  # type: ignore[arg-type]
    with trio.move_on_after(5):
        await fees.run(store, checking=True)
    assert chains.client.payments == [{"0xm1": 9, "0xm2": 3, "0xm3": 5}]
    paid = {key: store.client_deal(key).detail.check_fees_paid for key in "abc"}
    assert paid == {"a": True, "b": True, "c": False}


async def test_a_client_that_stopped_checking_pays_its_debts_then_stops(store, autojump):
    _owe(store, "a", {"0xm1": 4}, Phase.SETTLED)
    chains = _Chains()
    fees = CheckFees(chains, batch_deals=20, max_delay_s=30)  # type: ignore[arg-type]
    with trio.fail_after(120):  # returns by itself once nothing is owed
        await fees.run(store, checking=False)
    assert chains.client.payments == [{"0xm1": 4}]
    assert fees.transactions == 1


async def test_a_long_history_is_read_once_then_only_deals_that_change(
    store, autojump, monkeypatch
):
    for n in range(50):  # paid long ago
        record = dataclasses.replace(new_client_deal(f"old{n}", now_ms=0, expires_ms=1),
                                     phase=Phase.SETTLED)
        store.insert(record, ClientDetail(job_offer=b"", module="hash", submitted_ms=0,
                                          check_fees={"0xm1": 1}, check_fees_paid=True))
    _owe(store, "c", {"0xm1": 7}, Phase.ACCEPTED)  # owes once final
    reads: list[object] = []  # every deal detail the store decodes
    decode = deal_store.decode_detail
    monkeypatch.setattr(deal_store, "decode_detail",
                        lambda side, blob: reads.append(side) or decode(side, blob))
    chains = _Chains()
    fees = CheckFees(chains, batch_deals=20, max_delay_s=0)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(functools.partial(fees.run, store, checking=True))
        await trio.sleep(10)  # five polls
        # The history is read as stored maps, not as deals: only the one still owing is, once
        # a poll.
        assert len(reads) <= 6
        before = len(reads)
        accepted = store.client_deal("c")
        store.update(dataclasses.replace(accepted.record, phase=Phase.SETTLED),
                     accepted.detail, Event.SETTLED)
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    assert chains.client.payments == [{"0xm1": 7}]
    assert len(reads) - before < 20
