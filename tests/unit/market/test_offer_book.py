import pytest
from eth_keys.datatypes import PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from lilypad_p2p.market import AddOutcome, OfferBook
from lilypad_p2p.testing.offers import make_job_offer, make_resource_offer
from lilypad_p2p.wire import (
    MAX_LIFETIME_MS,
    Cancel,
    JobOffer,
    MatchProposal,
    ResourceOffer,
    content_id,
    sign_envelope,
)

KEYS = [PrivateKey(bytes([index + 1]) * 32) for index in range(8)]
ALICE, BOB, CAROL = KEYS[0], KEYS[1], KEYS[2]
T0 = 1_700_000_000_000


def address(key):
    return key.public_key.to_checksum_address()


def resource(key=ALICE, *, market="cpu", created_at=T0, lifetime=60_000, nonce=0):
    body = make_resource_offer(market=market, provider=address(key), created_at=created_at,
                               lifetime_ms=lifetime, nonce=nonce)
    return sign_envelope(body, key, created_at)


def job(key=BOB, *, market="cpu", created_at=T0, lifetime=60_000, nonce=0):
    body = make_job_offer(market=market, job_creator=address(key), created_at=created_at,
                          lifetime_ms=lifetime, deadline=created_at + lifetime, nonce=nonce)
    return sign_envelope(body, key, created_at)


def cancel(envelope, key=None, *, created_at=None, market=None):
    body = envelope.body
    key = key or next(k for k in KEYS if address(k) == body.owner_address)
    created_at = created_at if created_at is not None else body.created_at + 1
    cancel_body = Cancel(
        market=market or body.market,
        offer_cid=body.cid,
        owner=address(key),
        created_at=created_at,
        nonce=1,
    )
    return sign_envelope(cancel_body, key, created_at)


def test_add_then_list_by_market_and_kind():
    book = OfferBook()
    offer, wanted, gpu = resource(), job(), resource(CAROL, market="gpu")
    assert book.add(offer, T0) is AddOutcome.ADDED
    assert book.add(wanted, T0) is AddOutcome.ADDED
    assert book.add(gpu, T0) is AddOutcome.ADDED
    assert book.markets() == ["cpu", "gpu"]
    assert book.offers("cpu") == sorted([offer, wanted], key=lambda e: e.offer_id)
    assert book.offers("cpu", ResourceOffer) == [offer]
    assert book.offers("cpu", JobOffer) == [wanted]
    assert book.offers("nowhere") == []
    assert offer.offer_id in book and len(book) == 3
    assert book.get(offer.offer_id) == offer


def test_offers_are_listed_oldest_first_then_by_id():
    book = OfferBook()
    envelopes = [resource(created_at=T0 + delta, nonce=n) for n, delta in enumerate((5, 0, 5, 3))]
    for envelope in envelopes:
        book.add(envelope, T0 + 5)
    expected = sorted(envelopes, key=lambda e: (e.body.created_at, e.offer_id))
    assert book.offers("cpu") == expected


def test_republished_body_is_already_known_and_keeps_the_freshest_envelope():
    book = OfferBook()
    first = resource()
    again = sign_envelope(first.body, ALICE, T0 + 30_000)
    assert again.envelope_id != first.envelope_id
    book.add(first, T0)
    assert book.add(again, T0 + 30_000) is AddOutcome.ALREADY_KNOWN
    assert book.get(first.offer_id) is again
    assert book.add(first, T0 + 30_001) is AddOutcome.ALREADY_KNOWN  # an older copy
    assert book.get(first.offer_id) is again
    assert book.offers("cpu") == [again] and len(book) == 1


def test_expired_offer_is_not_added():
    assert OfferBook().add(resource(lifetime=10), T0 + 10) is AddOutcome.EXPIRED


def test_expire_drops_offers_at_their_expiry():
    book = OfferBook()
    short, long = resource(lifetime=10), resource(lifetime=20, nonce=1)
    book.add(short, T0)
    book.add(long, T0)
    assert book.expire(T0 + 9) == []
    assert book.expire(T0 + 10) == [short.offer_id]
    assert book.expire(T0 + 20) == [long.offer_id]
    assert book.markets() == [] and len(book) == 0
    assert book.statistics().expired == 2


def test_owner_cancel_removes_and_blocks_replays_until_expiry():
    book = OfferBook()
    offer = resource(lifetime=60_000)
    book.add(offer, T0)
    assert book.cancel(cancel(offer), T0 + 1) is True
    assert offer.offer_id not in book
    assert book.add(offer, T0 + 2) is AddOutcome.CANCELLED
    assert book.add(sign_envelope(offer.body, ALICE, T0 + 30_000), T0 + 30_000) is (
        AddOutcome.CANCELLED
    )
    book.expire(T0 + 60_000)
    assert not book.is_cancelled(offer.offer_id, address(ALICE))
    assert book.statistics().tombstones == 0


def test_only_the_owner_can_cancel():
    book = OfferBook()
    offer = resource(ALICE)
    book.add(offer, T0)
    assert book.cancel(cancel(offer, key=BOB), T0 + 1) is False
    assert offer.offer_id in book
    assert book.statistics().cancels_not_by_owner == 1


def test_cancel_in_another_market_does_not_remove():
    book = OfferBook()
    offer = resource(ALICE)
    book.add(offer, T0)
    assert book.cancel(cancel(offer, market="gpu"), T0 + 1) is False
    assert offer.offer_id in book


def test_cancel_before_offer_applies_when_the_owner_matches():
    book = OfferBook()
    offer = resource(ALICE)
    early_cancel = cancel(offer, created_at=T0)
    assert book.cancel(early_cancel, T0) is False
    assert book.add(offer, T0) is AddOutcome.CANCELLED
    # A stranger's early "cancel" of someone else's offer does nothing.
    other = resource(CAROL)
    book.cancel(cancel(other, key=BOB, created_at=T0), T0)
    assert book.add(other, T0) is AddOutcome.ADDED


def test_early_cancel_is_forgotten_after_the_longest_lifetime():
    book = OfferBook()
    offer = resource(ALICE)
    book.cancel(cancel(offer, created_at=T0), T0)
    book.expire(T0 + MAX_LIFETIME_MS - 1)
    assert book.is_cancelled(offer.offer_id, address(ALICE))
    book.expire(T0 + MAX_LIFETIME_MS)
    assert not book.is_cancelled(offer.offer_id, address(ALICE))


def test_add_and_cancel_refuse_other_message_types():
    book = OfferBook()
    proposal = MatchProposal(
        market="cpu",
        epoch=1,
        solver=address(ALICE),
        matches=((content_id(b"j"), content_id(b"r")),),
        created_at=T0,
        expires_at=T0 + 1,
        nonce=0,
    )
    with pytest.raises(TypeError):
        book.add(sign_envelope(proposal, ALICE, T0), T0)
    with pytest.raises(TypeError):
        book.cancel(resource(), T0)


def test_owner_limit_evicts_that_owners_soonest_expiring_offer():
    book = OfferBook(max_offers_per_owner=2)
    soon, later = resource(lifetime=1_000), resource(lifetime=5_000, nonce=1)
    book.add(soon, T0)
    book.add(later, T0)
    newest = resource(lifetime=3_000, nonce=2)
    assert book.add(newest, T0) is AddOutcome.ADDED
    assert soon.offer_id not in book and {later.offer_id, newest.offer_id} <= {
        e.offer_id for e in book.offers("cpu")
    }
    assert book.add(resource(lifetime=500, nonce=3), T0) is AddOutcome.OWNER_LIMIT
    assert book.add(job(BOB), T0) is AddOutcome.ADDED  # each owner has its own limit
    stats = book.statistics()
    assert (stats.evicted, stats.refused_owner_limit) == (1, 1)


def test_full_market_evicts_from_the_biggest_holder_first():
    book = OfferBook(max_offers_per_market=4)
    flood = [resource(CAROL, lifetime=MAX_LIFETIME_MS, nonce=n) for n in range(3)]
    honest = resource(ALICE, lifetime=1_000)
    for envelope in [*flood, honest]:
        assert book.add(envelope, T0) is AddOutcome.ADDED
    newcomer = resource(BOB, lifetime=2_000)
    assert book.add(newcomer, T0) is AddOutcome.ADDED
    held = {e.offer_id for e in book.offers("cpu")}
    assert honest.offer_id in held and newcomer.offer_id in held
    assert sum(e.offer_id in held for e in flood) == 2
    # The flooder's own newcomer is the soonest-expiring of the biggest holder's: refused.
    assert book.add(resource(CAROL, lifetime=10, nonce=9), T0) is AddOutcome.BOOK_FULL
    assert len(book) == 4


def test_a_flood_from_many_keys_keeps_memory_bounded():
    book = OfferBook(max_offers_per_market=16, max_offers_per_owner=4, max_markets=2)
    for index, key in enumerate(KEYS):
        for nonce in range(10):
            book.add(resource(key, nonce=nonce, lifetime=1_000 + index * 10 + nonce), T0)
    assert len(book) == 16
    assert book.add(resource(market="gpu"), T0) is AddOutcome.ADDED
    assert book.add(resource(market="disk"), T0) is AddOutcome.TOO_MANY_MARKETS
    assert book.markets() == ["cpu", "gpu"]


def test_tombstones_are_bounded():
    book = OfferBook(max_tombstones=3)
    offers = [resource(lifetime=1_000 * (n + 1), nonce=n) for n in range(5)]
    for envelope in offers:
        book.add(envelope, T0)
        book.cancel(cancel(envelope), T0 + 1)
    assert book.statistics().tombstones == 3
    # The ones due to be forgotten soonest went first.
    assert not book.is_cancelled(offers[0].offer_id, address(ALICE))
    assert book.is_cancelled(offers[4].offer_id, address(ALICE))


def test_same_history_gives_same_book():
    """Two nodes fed the same envelopes hold identical books (eviction is deterministic)."""
    envelopes = [resource(key, nonce=n, lifetime=500 + n) for key in KEYS[:4] for n in range(5)]
    books = [OfferBook(max_offers_per_market=7, max_offers_per_owner=3) for _ in range(2)]
    for book in books:
        for envelope in envelopes:
            book.add(envelope, T0)
    assert books[0].offers("cpu") == books[1].offers("cpu")


def test_statistics_count_outcomes():
    book = OfferBook()
    offer = resource()
    book.add(offer, T0)
    book.add(offer, T0)
    book.add(resource(lifetime=1, nonce=5), T0 + 1)
    book.add(job(), T0)
    stats = book.statistics()
    assert (stats.offers, stats.resource_offers, stats.job_offers, stats.markets) == (2, 1, 1, 1)
    assert (stats.added, stats.already_known, stats.refused_expired) == (2, 1, 1)


def test_expiry_heap_stays_bounded_under_churn():
    book = OfferBook(max_offers_per_owner=1)
    for nonce in range(2_000):
        book.add(resource(nonce=nonce, lifetime=1_000 + nonce), T0)
    assert len(book) == 1
    assert len(book._expiry_heap) <= 2 * len(book) + 65


_POOL = [
    maker(key, nonce=nonce, lifetime=1_000 * (1 + (nonce * 7 + index) % 9))
    for index, key in enumerate(KEYS[:4])
    for nonce in range(4)
    for maker in (resource, job)
]
_CANCELS = [cancel(envelope) for envelope in _POOL]


@given(
    st.lists(
        st.tuples(st.sampled_from(["add", "cancel", "expire"]), st.integers(0, len(_POOL) - 1)),
        max_size=60,
    )
)
def test_random_histories_keep_the_invariants(operations):
    limits = {"max_offers_per_market": 6, "max_offers_per_owner": 2, "max_tombstones": 5}
    book = OfferBook(**limits)
    now = T0
    for operation, index in operations:
        if operation == "add":
            book.add(_POOL[index], now)
        elif operation == "cancel":
            book.cancel(_CANCELS[index], now)
        else:
            now += 500
            book.expire(now)
        held = book.offers("cpu")
        assert len(held) == len(book) <= limits["max_offers_per_market"]
        owners = [envelope.body.owner_address for envelope in held]
        assert all(owners.count(owner) <= limits["max_offers_per_owner"] for owner in owners)
        assert book.statistics().tombstones <= limits["max_tombstones"]
        for envelope in held:
            assert not book.is_cancelled(envelope.offer_id, envelope.body.owner_address)
    book.expire(now + MAX_LIFETIME_MS + 1)  # cancels are created 1 ms after their offer
    assert len(book) == 0 and book.markets() == [] and book.statistics().tombstones == 0
