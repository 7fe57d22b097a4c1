"""Deal terms: built from offers, re-checked by the provider, carried on the wire."""

import pytest
from eth_account import Account

from lilypad_p2p import wire
from lilypad_p2p.roles._terms import (
    NoMediators,
    build_deal,
    deal_from_wire,
    deal_mismatch,
    required_deal_time_s,
)
from lilypad_p2p.testing.offers import NOW_MS as NOW
from lilypad_p2p.testing.offers import make_job_offer, make_resource_offer
from lilypad_p2p.wire import deal_to_wire

RUN_S = 60  # the hash module's max_run_time_s
CLIENT, PROVIDER, MEDIATOR, OTHER = (Account.create().address for _ in range(4))
SPEC = wire.ResourceSpec(milli_cpu=500, ram_mb=64, disk_mb=16)


def _job(**changes) -> wire.JobOffer:
    return make_job_offer(**{"job_creator": CLIENT, "spec": SPEC, "trusted_mediators": (MEDIATOR,),
                             "expires_at": NOW + 60_000, "nonce": 1, **changes})


def _resource(**changes) -> wire.ResourceOffer:
    return make_resource_offer(**{"provider": PROVIDER, "modules": ("hash", "wordcount"),
                                  "collateral_wei": 2 * 10**15, "trusted_mediators": (),
                                  "nonce": 2, **changes})


def test_built_deal_passes_the_providers_check_and_round_trips():
    deal = build_deal(_job(), _resource(), salt=bytes(32))
    assert deal.payment == 10**15 and deal.collateral == 2 * 10**15
    assert deal.mediators == (MEDIATOR,) and deal.threshold == 1
    assert deal_mismatch(deal, _job(), _resource(), NOW, RUN_S) is None
    assert deal_from_wire(wire.decode(wire.encode(deal_to_wire(deal)))) == deal


def test_provider_refuses_terms_the_offers_do_not_say():
    import dataclasses

    deal = build_deal(_job(), _resource(), salt=bytes(32))
    cheaper = dataclasses.replace(deal, payment=deal.payment - 1)
    assert "payment" in deal_mismatch(cheaper, _job(), _resource(), NOW, RUN_S)
    assert deal_mismatch(deal, _job(max_price_wei=1), _resource(), NOW, RUN_S) is not None
    assert deal_mismatch(deal, _job(module="wordcount"), _resource(), NOW, RUN_S) is not None


def test_provider_refuses_a_deadline_that_could_cut_the_modules_run_short():
    needed_s = required_deal_time_s(RUN_S)
    assert needed_s > RUN_S
    enough = _job(deadline=NOW + needed_s * 1000, expires_at=NOW + 1000)
    deal = build_deal(enough, _resource(), salt=bytes(32))
    assert deal_mismatch(deal, enough, _resource(), NOW, RUN_S) is None
    # One second short of the module's run time and the time to start and answer.
    short = _job(deadline=NOW + (needed_s - 1) * 1000, expires_at=NOW + 1000)
    reason = deal_mismatch(build_deal(short, _resource(), salt=bytes(32)), short, _resource(),
                           NOW, RUN_S)
    assert reason is not None and "result deadline too close" in reason
    assert f"may run {RUN_S} s" in reason
    # The same deal is fine for a module that runs 1 s less at most.
    assert deal_mismatch(build_deal(short, _resource(), salt=bytes(32)), short, _resource(),
                         NOW, RUN_S - 1) is None


def test_no_common_mediator_is_a_clear_error():
    with pytest.raises(NoMediators):
        build_deal(_job(trusted_mediators=()), _resource(), salt=bytes(32))
    provider_trusts_other = _resource(trusted_mediators=(OTHER,))
    with pytest.raises(NoMediators):
        build_deal(_job(), provider_trusts_other, salt=bytes(32))


def test_bad_wire_deal_is_malformed():
    raw = deal_to_wire(build_deal(_job(), _resource(), salt=bytes(32)))
    with pytest.raises(wire.MalformedMessage):
        deal_from_wire({**raw, "payment": "1"})
    with pytest.raises(wire.MalformedMessage):
        deal_from_wire({**raw, "salt": b"short"})
