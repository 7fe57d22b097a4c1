"""Which peers we have open deals with, from the deal store (for the network's budgets).

The network reads large job frames only from such peers and never trims their connections
(`net/_admission.py`); a libp2p peer ID and an Ethereum address share one secp256k1 key, so a
deal's job creator and provider name their peers.
"""

from __future__ import annotations

from collections.abc import Callable

from lilypad_p2p import wire
from lilypad_p2p.store import DealStore


def open_deal_peers(store: DealStore) -> Callable[[str], bool]:
    """`has_open_deal(peer_id)`: whether an unfinished deal in `store` names that peer."""

    def has_open_deal(peer_id: str) -> bool:
        try:
            address = wire.address_from_peer_id_text(peer_id).lower()
        except ValueError:  # a peer ID that is not a secp256k1 key names no deal party
            return False
        for stored in store.deals(open_only=True):
            deal = stored.detail.deal
            if deal is None:
                continue
            if address in (deal.job_creator.lower(), deal.provider.lower()):
                return True
        return False

    return has_open_deal
