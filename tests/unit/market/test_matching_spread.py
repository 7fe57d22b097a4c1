"""Matching spreads equally good work over providers, and stays a function of the solver's view."""

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st
from matching_cases import NOW, addr, check_valid, job, offer, spec

from lilypad_p2p.market import MatchHolds, epoch_end_ms, match, proposals_for, vet_proposal

PROVIDERS = [addr(100 + n) for n in range(30)]
BIG = spec(milli_cpu=8000, ram_mb=8192, disk_mb=8000)  # room for 8 jobs at once


def identical_offers(price_of=lambda n: 5):
    # The oldest offer first: under "ties by age" it would win every job.
    return [
        offer(provider=p, nonce=n, capacity=BIG, price=price_of(n), created_at=NOW - 10_000 + n)
        for n, p in enumerate(PROVIDERS)
    ]


def jobs_per_provider(pairs, resources):
    provider_of = {r.cid: r.provider for r in resources}
    return Counter(provider_of[resource_id] for _, resource_id in pairs)


def fair(counts: Counter, providers: int) -> bool:
    mean = sum(counts.values()) / providers
    return len(counts) == providers and max(counts.values()) <= 3 * mean


def test_one_batch_of_jobs_spreads_over_identical_offers():
    resources = identical_offers()
    jobs = [job(nonce=n) for n in range(200)]
    matching = match(jobs, resources, NOW, epoch=1)
    check_valid(matching, jobs, resources, NOW)
    assert matching.placed == 200
    counts = jobs_per_provider(matching.matches, resources)
    assert fair(counts, len(PROVIDERS)), counts
    assert max(counts.values()) - min(counts.values()) <= 1, counts  # 6 or 7 each


@given(st.sampled_from([(3, 6), (3, 7), (10, 20), (12, 12)]), st.integers(0, 10**6))
@settings(max_examples=40, deadline=None)
def test_jobs_posted_together_are_shared_evenly_by_identical_offers(sizes, first_nonce):
    """A client's burst, matched in one epoch (small enough for the exact search): the jobs'
    own draws would leave one of three providers without work about a quarter of the time."""
    n_providers, n_jobs = sizes
    resources = identical_offers()[:n_providers]
    jobs = [job(nonce=first_nonce + n) for n in range(n_jobs)]
    matching = match(jobs, resources, NOW, epoch=1)
    assert matching.placed == n_jobs
    counts = jobs_per_provider(matching.matches, resources)
    assert len(counts) == n_providers
    assert max(counts.values()) - min(counts.values()) <= 1, counts


def play_epochs(resources, jobs_per_epoch: int, epochs: int) -> Counter:
    """Jobs arrive a few per epoch, as on the simnet; each solver epoch hears the last ones'
    proposals through `MatchHolds`, as the solver role does."""
    holds = MatchHolds()
    by_id = {r.cid: r for r in resources}
    pairs: list[tuple[str, str]] = []
    epoch0 = NOW // 500
    for step in range(epochs):
        epoch = epoch0 + step
        now = epoch_end_ms(epoch) - 1
        jobs = [
            job(nonce=step * jobs_per_epoch + n, created_at=now - 100)
            for n in range(jobs_per_epoch)
        ]
        by_id.update((j.cid, j) for j in jobs)
        held = holds.held("cpu", epoch, {j.cid for j in jobs})
        matching = match(
            jobs, resources, now, epoch=epoch,
            reserved=held.reserved, recent_matches=held.recent_matches,
        )
        for proposal in proposals_for(matching, market="cpu", solver=addr(7)):
            kept = vet_proposal(proposal, by_id.get)
            assert kept is not None
            holds.record(proposal, kept)
        pairs.extend(matching.matches)
    return jobs_per_provider(pairs, resources)


def test_jobs_one_per_epoch_spread_over_identical_offers():
    counts = play_epochs(identical_offers(), jobs_per_epoch=1, epochs=200)
    assert sum(counts.values()) == 200
    assert fair(counts, len(PROVIDERS)), counts


def test_jobs_a_few_per_epoch_spread_over_identical_offers():
    counts = play_epochs(identical_offers(), jobs_per_epoch=2, epochs=100)
    assert sum(counts.values()) == 200
    assert fair(counts, len(PROVIDERS)), counts


def test_cheaper_offers_still_get_the_work():
    # Ten cheap providers with room for every job: the dearer twenty earn nothing, as they should.
    counts = play_epochs(identical_offers(lambda n: 4 if n < 10 else 5), 1, 60)
    assert set(counts) == set(PROVIDERS[:10])
    assert fair(counts, 10), counts


def test_a_recently_loaded_provider_ranks_after_an_idle_one():
    busy, idle = (offer(provider=p, nonce=n, capacity=BIG) for n, p in enumerate(PROVIDERS[:2]))
    j = job()
    assert match([j], [busy, idle], NOW, epoch=1, recent_matches={busy.cid: 1}).matches == (
        (j.cid, idle.cid),
    )
    assert match([j], [busy, idle], NOW, epoch=1, recent_matches={idle.cid: 1}).matches == (
        (j.cid, busy.cid),
    )


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 40),
    st.integers(1, 12),
    st.lists(st.integers(0, 29), max_size=20),
    st.randoms(use_true_random=False),
)
def test_solvers_with_the_same_view_agree(n_jobs, n_offers, loaded, rng):
    resources = identical_offers()[:n_offers]
    jobs = [job(nonce=n, need=spec(milli_cpu=1000 * (1 + n % 3))) for n in range(n_jobs)]
    recent = Counter(resources[i % n_offers].cid for i in loaded)
    one = match(jobs, resources, NOW, epoch=1, recent_matches=dict(recent))
    shuffled_jobs, shuffled_resources = list(jobs), list(resources)
    rng.shuffle(shuffled_jobs)
    rng.shuffle(shuffled_resources)
    other = match(
        shuffled_jobs + shuffled_jobs[:3], shuffled_resources, NOW, epoch=1,
        recent_matches=dict(reversed(list(recent.items()))),
    )
    assert one == other
    assert [p.matching_id for p in proposals_for(one, market="cpu", solver=addr(7))] == [
        p.matching_id for p in proposals_for(other, market="cpu", solver=addr(8))
    ]
