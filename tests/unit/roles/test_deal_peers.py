"""Which peers have open deals with us, read from a real deal store (roles/_deal_peers.py)."""

from lilypad_p2p import wire
from lilypad_p2p.chain import Deal
from lilypad_p2p.deal_detail import ProviderDetail
from lilypad_p2p.identity import Identity, address_from_peer_id
from lilypad_p2p.market import DealRecord, Phase, Side
from lilypad_p2p.roles._deal_peers import open_deal_peers
from lilypad_p2p.store import DealStore


def _deal(client: Identity, provider: Identity) -> Deal:
    return Deal(
        job_creator=client.address, provider=provider.address, payment=1, collateral=1,
        mediation_fee=0, mediators=(Identity.generate().address,), threshold=1,
        result_deadline=10**9,
        acceptance_window=60, mediation_window=60, job_spec_hash=bytes(32),
        module_hash=bytes(32), salt=bytes(32),
    )


def test_open_deals_name_their_peers_and_finished_ones_do_not(tmp_path):
    me, client, stranger, old = (Identity.generate() for _ in range(4))
    store = DealStore.open(tmp_path / "deals.sqlite")
    try:
        for key, who, phase in (("a" * 64, client, Phase.OPEN), ("b" * 64, old, Phase.SETTLED)):
            store.insert(
                DealRecord(key=key, side=Side.PROVIDER, phase=phase, phase_since_ms=0,
                           created_ms=0, expires_ms=10**12),
                ProviderDetail(deal=_deal(who, me), job_creator_signature=b"",
                               provider_signature=b"", module="hash",
                               spec=wire.ResourceSpec(milli_cpu=1, ram_mb=1, disk_mb=1),
                               job_offer_cid="bafy"),
            )
        has_open_deal = open_deal_peers(store)
        assert address_from_peer_id(client.peer_id).lower() == client.address.lower()
        assert has_open_deal(str(client.peer_id))
        assert not has_open_deal(str(stranger.peer_id))
        assert not has_open_deal("not a peer ID")
        assert not has_open_deal(str(old.peer_id))
    finally:
        store.close()
