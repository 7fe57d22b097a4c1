"""Hypothesis strategies and keys for the wire tests (valid messages of every schema)."""

from __future__ import annotations

from eth_keys.datatypes import PrivateKey
from hypothesis import strategies as st
from libp2p.crypto.secp256k1 import create_new_key_pair
from libp2p.peer.id import ID

from lilypad_p2p.wire import (
    MARKET_NAME,
    MAX_CHAIN_ID,
    MAX_CHAINS,
    MAX_LIFETIME_MS,
    MODULE_ID,
    ROLES,
    Cancel,
    JobOffer,
    MatchProposal,
    NodeRecord,
    ResourceOffer,
    ResourceSpec,
    content_id,
)

KEYS = [PrivateKey(bytes([index + 1]) * 32) for index in range(5)]
ADDRESSES = [key.public_key.to_checksum_address() for key in KEYS]
KEY_BY_ADDRESS = dict(zip(ADDRESSES, KEYS, strict=True))
PEER_IDS = {
    address: str(ID.from_pubkey(create_new_key_pair(key.to_bytes()).public_key))
    for address, key in KEY_BY_ADDRESS.items()
}
TIMESTAMP_LIMIT = 1 << 53

addresses = st.sampled_from(ADDRESSES)
markets = st.from_regex(MARKET_NAME, fullmatch=True)
module_ids = st.from_regex(MODULE_ID, fullmatch=True)
wei = st.one_of(st.integers(0, 2**64 - 1), st.integers(2**64, 2**256 - 1))
nonces = st.integers(0, 2**64 - 1)
cids = st.binary(max_size=64).map(content_id)


def _sorted_set(
    elements: st.SearchStrategy, max_size: int, key=None, min_size: int = 0
) -> st.SearchStrategy:
    return st.lists(elements, unique=True, min_size=min_size, max_size=max_size).map(
        lambda items: tuple(sorted(items, key=key))
    )


chain_ids = st.integers(1, MAX_CHAIN_ID)


@st.composite
def lifetimes(draw: st.DrawFn) -> tuple[int, int]:
    created_at = draw(st.integers(0, TIMESTAMP_LIMIT - MAX_LIFETIME_MS - 1))
    return created_at, created_at + draw(st.integers(1, MAX_LIFETIME_MS))


@st.composite
def specs(draw: st.DrawFn) -> ResourceSpec:
    gpu_count = draw(st.integers(0, 255))
    return ResourceSpec(
        milli_cpu=draw(st.integers(0, (1 << 24) - 1)),
        ram_mb=draw(st.integers(0, (1 << 28) - 1)),
        disk_mb=draw(st.integers(0, (1 << 32) - 1)),
        gpu_count=gpu_count,
        gpu_vram_mb=draw(st.integers(0, (1 << 24) - 1)) if gpu_count else 0,
    )


@st.composite
def node_records(draw: st.DrawFn, owner: str | None = None) -> NodeRecord:
    address = owner or draw(addresses)
    created_at, expires_at = draw(lifetimes())
    listen = st.from_regex(r"/ip4/[0-9.]{7,15}/tcp/[0-9]{1,5}", fullmatch=True)
    return NodeRecord(
        address=address,
        peer_id=PEER_IDS[address],
        roles=draw(_sorted_set(st.sampled_from(ROLES), len(ROLES))),
        sealing_public_key=draw(st.binary(min_size=32, max_size=32)),
        markets=draw(_sorted_set(markets, 16)),
        mediator_available=draw(st.booleans()),
        listen_addrs=tuple(draw(st.lists(listen, unique=True, max_size=4))),
        created_at=created_at,
        expires_at=expires_at,
        nonce=draw(nonces),
    )


@st.composite
def resource_offers(draw: st.DrawFn, owner: str | None = None) -> ResourceOffer:
    created_at, expires_at = draw(lifetimes())
    return ResourceOffer(
        market=draw(markets),
        provider=owner or draw(addresses),
        spec=draw(specs()),
        modules=draw(_sorted_set(module_ids, 8)),
        price_per_job_wei=draw(wei),
        collateral_wei=draw(wei),
        trusted_mediators=draw(_sorted_set(addresses, 5, key=str.lower)),
        chain_ids=draw(_sorted_set(chain_ids, MAX_CHAINS, min_size=1)),
        created_at=created_at,
        expires_at=expires_at,
        nonce=draw(nonces),
    )


@st.composite
def job_offers(draw: st.DrawFn, owner: str | None = None) -> JobOffer:
    created_at, expires_at = draw(lifetimes())
    return JobOffer(
        market=draw(markets),
        job_creator=owner or draw(addresses),
        module=draw(module_ids),
        spec=draw(specs()),
        max_price_wei=draw(wei),
        trusted_mediators=draw(_sorted_set(addresses, 5, key=str.lower)),
        chain_id=draw(chain_ids),
        deadline=draw(st.integers(expires_at, TIMESTAMP_LIMIT - 1)),
        target_provider=draw(st.none() | addresses),
        created_at=created_at,
        expires_at=expires_at,
        inputs_commitment=draw(st.binary(min_size=32, max_size=32)),
        nonce=draw(nonces),
    )


@st.composite
def match_proposals(draw: st.DrawFn, owner: str | None = None) -> MatchProposal:
    created_at, expires_at = draw(lifetimes())
    jobs = draw(st.lists(cids, unique=True, min_size=1, max_size=8))
    matches = tuple(sorted((job, draw(cids)) for job in jobs))
    return MatchProposal(
        market=draw(markets),
        epoch=draw(st.integers(0, (1 << 53) - 1)),
        solver=owner or draw(addresses),
        matches=matches,
        created_at=created_at,
        expires_at=expires_at,
        nonce=draw(nonces),
    )


@st.composite
def cancels(draw: st.DrawFn, owner: str | None = None) -> Cancel:
    return Cancel(
        market=draw(markets),
        offer_cid=draw(cids),
        owner=owner or draw(addresses),
        # Leave room after created_at for a publication time, as lifetimes() does for offers.
        created_at=draw(st.integers(0, TIMESTAMP_LIMIT - MAX_LIFETIME_MS - 1)),
        nonce=draw(nonces),
    )


SCHEMA_STRATEGIES = {
    NodeRecord: node_records,
    ResourceOffer: resource_offers,
    JobOffer: job_offers,
    MatchProposal: match_proposals,
    Cancel: cancels,
}


def messages(owner: str | None = None) -> st.SearchStrategy:
    return st.one_of(*(strategy(owner) for strategy in SCHEMA_STRATEGIES.values()))


# Arbitrary msgpack-packable structures, including what the canonical format forbids.
msgpack_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=40),
)
msgpack_values = st.recursive(
    msgpack_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(st.text(max_size=12) | st.binary(max_size=4), children, max_size=6),
    ),
    max_leaves=30,
)
