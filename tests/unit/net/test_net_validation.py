"""The validator's decision on real signed envelopes (no sockets)."""

import pytest
from libp2p.crypto.ed25519 import create_new_key_pair as create_ed25519_key_pair
from libp2p.peer.id import ID

from lilypad_p2p.identity import Identity
from lilypad_p2p.market import ReplayGuard
from lilypad_p2p.net import (
    NODES_TOPIC,
    Accepted,
    DropReason,
    JobsTopic,
    MarketTopic,
    Rejected,
    topic_for,
    validate_gossip,
)
from lilypad_p2p.net._validation import check_pulled
from lilypad_p2p.testing.offers import make_job_offer, make_resource_offer
from lilypad_p2p.wire import (
    ENVELOPE_MAX_AGE_MS,
    MAX_CLOCK_SKEW_MS,
    Cancel,
    NodeRecord,
    SignedEnvelope,
)

NOW = 1_800_000_000_000
CPU = str(MarketTopic("cpu"))
CPU_JOBS = str(JobsTopic("cpu"))


def offer(owner: Identity, *, created_at: int = NOW, expires_at: int | None = None, market="cpu"):
    return make_resource_offer(
        market=market, provider=owner.address, created_at=created_at, nonce=7,
        expires_at=created_at + 60_000 if expires_at is None else expires_at)


def node_record(owner: Identity) -> NodeRecord:
    return NodeRecord(
        address=owner.address,
        peer_id=str(owner.peer_id),
        roles=("provider",),
        sealing_public_key=owner.sealing_public_key,
        markets=("cpu",),
        listen_addrs=(),
        created_at=NOW,
        expires_at=NOW + 60_000,
        nonce=1,
    )


@pytest.fixture(scope="module")
def alice() -> Identity:
    return Identity.generate()


@pytest.fixture(scope="module")
def mallory() -> Identity:
    return Identity.generate()


def check(data, topics=(CPU,), source=None, *, guard=None, now=NOW):
    return validate_gossip(
        data, topics, source, now_ms=now, replay_guard=guard if guard is not None else ReplayGuard()
    )


def reason(verdict) -> DropReason:
    assert isinstance(verdict, Rejected), verdict
    return verdict.reason


def test_valid_offer_from_its_owner_is_accepted(alice):
    envelope = alice.sign_envelope(offer(alice), NOW)
    verdict = check(envelope.encode(), source=alice.peer_id)
    assert isinstance(verdict, Accepted)
    assert verdict.envelope == envelope


def test_node_record_belongs_on_the_nodes_topic(alice):
    envelope = alice.sign_envelope(node_record(alice), NOW)
    assert topic_for(envelope) == NODES_TOPIC
    assert isinstance(check(envelope.encode(), (str(NODES_TOPIC),), alice.peer_id), Accepted)
    assert reason(check(envelope.encode(), (CPU,), alice.peer_id)) is DropReason.WRONG_TOPIC


def test_oversized_is_refused_before_parsing(alice):
    assert reason(check(b"\x00" * 65_537, source=alice.peer_id)) is DropReason.OVERSIZED


@pytest.mark.parametrize("garbage", [b"", b"\x00garbage", b"\x81\xa1v\x01", bytes(range(256))])
def test_garbage_is_malformed(alice, garbage):
    assert reason(check(garbage, source=alice.peer_id)) is DropReason.MALFORMED


def test_forged_signature(alice):
    envelope = alice.sign_envelope(offer(alice), NOW)
    tampered = bytearray(envelope.signature)
    tampered[5] ^= 0x01
    forged = SignedEnvelope(
        signer=envelope.signer,
        published_at=envelope.published_at,
        body=envelope.body,
        signature=bytes(tampered),
    )
    assert reason(check(forged.encode(), source=alice.peer_id)) is DropReason.BAD_SIGNATURE


def test_envelope_signed_by_another_key_than_the_source(alice, mallory):
    envelope = alice.sign_envelope(offer(alice), NOW)
    verdict = check(envelope.encode(), source=mallory.peer_id)
    assert reason(verdict) is DropReason.SIGNER_NOT_SOURCE


def test_source_without_a_secp256k1_key(alice):
    ed25519_peer = ID.from_pubkey(create_ed25519_key_pair().public_key)
    envelope = alice.sign_envelope(offer(alice), NOW)
    assert reason(check(envelope.encode(), source=ed25519_peer)) is DropReason.SIGNER_NOT_SOURCE


def test_expired(alice):
    body = offer(alice, created_at=NOW - 60_000, expires_at=NOW - 1)
    envelope = alice.sign_envelope(body, NOW - 30_000)
    assert reason(check(envelope.encode(), source=alice.peer_id)) is DropReason.EXPIRED


def test_future_dated(alice):
    later = NOW + MAX_CLOCK_SKEW_MS + 1_000
    envelope = alice.sign_envelope(offer(alice, created_at=later), later)
    assert reason(check(envelope.encode(), source=alice.peer_id)) is DropReason.FUTURE_DATED


def test_stale(alice):
    old = NOW - ENVELOPE_MAX_AGE_MS - 1_000
    envelope = alice.sign_envelope(offer(alice, created_at=old, expires_at=NOW + 60_000), old)
    assert reason(check(envelope.encode(), source=alice.peer_id)) is DropReason.STALE


@pytest.mark.parametrize(
    "topics",
    [
        (str(NODES_TOPIC),),
        (str(MarketTopic("gpu")),),
        (CPU, str(MarketTopic("gpu"))),
        (),
        ("/lilypad/1/market/CPU",),
        ("/other/topic",),
    ],
)
def test_wrong_topic(alice, topics):
    envelope = alice.sign_envelope(offer(alice), NOW)
    assert reason(check(envelope.encode(), topics, alice.peer_id)) is DropReason.WRONG_TOPIC


def test_replay_is_refused_and_a_rejected_copy_does_not_poison_the_guard(alice):
    guard = ReplayGuard()
    data = alice.sign_envelope(offer(alice), NOW).encode()
    wrong_topic = check(data, (str(NODES_TOPIC),), alice.peer_id, guard=guard)
    assert reason(wrong_topic) is DropReason.WRONG_TOPIC
    assert isinstance(check(data, source=alice.peer_id, guard=guard), Accepted)
    replay = check(data, source=alice.peer_id, guard=guard, now=NOW + 5_000)
    assert reason(replay) is DropReason.REPLAYED


def job(owner: Identity):
    return make_job_offer(job_creator=owner.address, created_at=NOW, nonce=3)


def test_job_offers_travel_on_the_jobs_topic_only(alice):
    envelope = alice.sign_envelope(job(alice), NOW)
    assert topic_for(envelope) == JobsTopic("cpu")
    assert isinstance(check(envelope.encode(), (CPU_JOBS,), alice.peer_id), Accepted)
    assert reason(check(envelope.encode(), (CPU,), alice.peer_id)) is DropReason.WRONG_TOPIC
    resource = alice.sign_envelope(offer(alice), NOW)
    assert reason(check(resource.encode(), (CPU_JOBS,), alice.peer_id)) is DropReason.WRONG_TOPIC


def test_a_cancel_travels_where_its_offer_went(alice):
    cancel = Cancel(market="cpu", offer_cid=job(alice).cid, owner=alice.address,
                    created_at=NOW, nonce=5)
    envelope = alice.sign_envelope(cancel, NOW)
    assert topic_for(envelope) == MarketTopic("cpu")
    assert topic_for(envelope, cancels_job_offer=True) == JobsTopic("cpu")
    for topic in (CPU, CPU_JOBS):
        assert isinstance(check(envelope.encode(), (topic,), alice.peer_id), Accepted)
    gpu = str(JobsTopic("gpu"))
    assert reason(check(envelope.encode(), (gpu,), alice.peer_id)) is DropReason.WRONG_TOPIC


def test_a_pull_keeps_job_offers_only_for_who_follows_them_without_blaming_the_server(alice):
    data = alice.sign_envelope(job(alice), NOW).encode()
    follower = check_pulled(data, markets={"cpu"}, job_markets={"cpu"}, now_ms=NOW)
    assert isinstance(follower, Accepted)
    assert check_pulled(data, markets={"cpu"}, job_markets=(), now_ms=NOW) is None
    elsewhere = check_pulled(data, markets={"gpu"}, job_markets={"gpu"}, now_ms=NOW)
    assert reason(elsewhere) is DropReason.WRONG_TOPIC
    record = alice.sign_envelope(node_record(alice), NOW).encode()
    assert isinstance(check_pulled(record, markets=(), job_markets=(), now_ms=NOW), Accepted)
    old = NOW - ENVELOPE_MAX_AGE_MS - 1_000
    stale = alice.sign_envelope(offer(alice, created_at=old, expires_at=NOW + 60_000), old).encode()
    assert check_pulled(stale, markets={"cpu"}, job_markets=(), now_ms=NOW) is None
    assert reason(check_pulled(b"\x00", markets={"cpu"}, job_markets=(), now_ms=NOW)) is \
        DropReason.MALFORMED
