"""The consortium in deal terms: chosen from both offers, re-derived by the provider."""

import dataclasses

from eth_account import Account

from lilypad_p2p import wire
from lilypad_p2p.market import consortium_seed, select_consortium
from lilypad_p2p.roles._terms import build_deal, deal_mismatch
from lilypad_p2p.testing.offers import NOW_MS as NOW
from lilypad_p2p.testing.offers import make_job_offer, make_resource_offer

RUN_S = 60  # the hash module's max_run_time_s
CLIENT, PROVIDER = (Account.create().address for _ in range(2))
MEDIATORS = tuple(sorted((Account.create().address for _ in range(7)), key=str.lower))
SPEC = wire.ResourceSpec(milli_cpu=500, ram_mb=64, disk_mb=16)


def _offers() -> tuple[wire.JobOffer, wire.ResourceOffer]:
    job = make_job_offer(job_creator=CLIENT, spec=SPEC, trusted_mediators=MEDIATORS,
                         expires_at=NOW + 60_000, nonce=1)
    resource = make_resource_offer(provider=PROVIDER, collateral_wei=2 * 10**15,
                                   trusted_mediators=MEDIATORS[1:], nonce=2)
    return job, resource


def test_deal_takes_the_selected_consortium_and_fee_and_the_provider_agrees():
    job, resource = _offers()
    deal = build_deal(job, resource, salt=bytes(32), consortium_size=5, mediation_fee_wei=9)
    seed = consortium_seed(job.cid, resource.cid)
    assert deal.mediators == select_consortium(MEDIATORS[1:], seed, 5)  # trusted by both
    assert deal.threshold == 4 and deal.mediation_fee == 9
    assert deal_mismatch(deal, job, resource, NOW, RUN_S) is None


def test_provider_refuses_a_hand_picked_consortium_or_a_minority_threshold():
    job, resource = _offers()
    deal = build_deal(job, resource, salt=bytes(32), consortium_size=3)
    chosen = set(deal.mediators)
    others = [m for m in MEDIATORS[1:] if m not in chosen]
    picked = tuple(sorted([*deal.mediators[:2], others[0]], key=lambda m: int(m, 16)))
    reason = deal_mismatch(dataclasses.replace(deal, mediators=picked), job, resource, NOW, RUN_S)
    assert reason is not None and "mediators" in reason
    big = build_deal(job, resource, salt=bytes(32), consortium_size=4)
    reason = deal_mismatch(dataclasses.replace(big, threshold=2), job, resource, NOW, RUN_S)
    assert reason == "mediator threshold is not a strict majority"
