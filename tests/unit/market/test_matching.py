"""Matching: constraints both ways, packing, objective, and comparison with first-fit."""

import dataclasses
import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matching_cases import (
    CHAIN_A,
    CHAIN_B,
    CREATOR,
    LATER,
    MEDIATOR_A,
    MEDIATOR_B,
    MEDIATOR_C,
    NOW,
    OTHER_PROVIDER,
    PROVIDER,
    brute_force_best,
    check_valid,
    job,
    offer,
    spec,
)

from lilypad_p2p.market import (
    MatchPolicy,
    common_mediators,
    epoch_end_ms,
    epoch_of,
    first_fit,
    match,
    mismatch,
)
from lilypad_p2p.market._match_problem import build_problem
from lilypad_p2p.testing._markets import first_fit_trap, random_market
from lilypad_p2p.testing.offers import address_of


def matched(jobs, resources, now_ms=NOW, **kwargs):
    return set(match(jobs, resources, now_ms, epoch=1, **kwargs).matches)


# --- constraints, one at a time ------------------------------------------------------------


def test_a_fitting_pair_matches():
    j, r = job(), offer()
    assert mismatch(j, r, NOW) is None
    assert matched([j], [r]) == {(j.cid, r.cid)}


@pytest.mark.parametrize(
    ("job_kwargs", "offer_kwargs", "reason"),
    [
        ({"expires_at": NOW}, {}, "job offer not open"),
        ({}, {"expires_at": NOW}, "resource offer not open"),
        ({"created_at": NOW + 1, "expires_at": LATER}, {}, "job offer not open"),
        ({}, {"created_at": NOW + 1}, "resource offer not open"),
        ({"market": "gpu"}, {}, "different markets"),
        ({"chain_id": CHAIN_B}, {}, "chain not accepted"),
        ({}, {"chain_ids": (CHAIN_B,)}, "chain not accepted"),
        ({"target": OTHER_PROVIDER}, {}, "job targets another provider"),
        ({"module": "python"}, {"modules": ("hash", "wordcount")}, "module not offered"),
        ({"max_price": 4}, {"price": 5}, "price above the job's maximum"),
        # Spot checks on 10 % of jobs need collateral >= 10 x price to make cheating a loss.
        ({"check_rate_ppm": 100_000}, {"price": 5, "collateral": 49},
         "collateral below price / check rate"),
        ({"need": spec(milli_cpu=1001)}, {}, "spec does not fit"),
        ({"need": spec(ram_mb=1025)}, {}, "spec does not fit"),
        ({"need": spec(disk_mb=1001)}, {}, "spec does not fit"),
        ({"need": spec(gpus=1, vram=8)}, {}, "spec does not fit"),
        (
            {"need": spec(gpus=1, vram=16)},
            {"capacity": spec(gpus=2, vram=8)},
            "GPU VRAM too small",
        ),
        ({"mediators": [MEDIATOR_A]}, {"mediators": [MEDIATOR_B]}, "no common mediators"),
        ({"deadline": NOW + 14_999, "expires_at": NOW + 14_999}, {}, "deadline unreachable"),
    ],
)
def test_each_constraint_refuses_the_pair(job_kwargs, offer_kwargs, reason):
    j, r = job(**job_kwargs), offer(**offer_kwargs)
    assert mismatch(j, r, NOW) == reason
    assert matched([j], [r]) == set()
    assert first_fit([j], [r], NOW, epoch=1).matches == ()


def test_collateral_exactly_covering_the_check_rate_matches():
    j = job(check_rate_ppm=100_000)
    assert mismatch(j, offer(price=5, collateral=50), NOW) is None
    assert mismatch(job(check_rate_ppm=0), offer(price=5, collateral=0), NOW) is None


def test_boundaries_that_still_match():
    exact_fit = spec(milli_cpu=1000, ram_mb=1024, disk_mb=1000, gpus=2, vram=8)
    j = job(need=exact_fit, max_price=5, deadline=NOW + 15_000, expires_at=NOW + 15_000)
    r = offer(capacity=exact_fit, price=5, created_at=NOW)
    assert mismatch(j, r, NOW) is None
    assert matched([j], [r]) == {(j.cid, r.cid)}


def test_a_targeted_job_goes_only_to_its_provider():
    j = job(target=OTHER_PROVIDER)
    cheap_other, dear_target = offer(price=1), offer(price=9, provider=OTHER_PROVIDER, nonce=1)
    assert matched([j], [cheap_other, dear_target]) == {(j.cid, dear_target.cid)}


def test_a_job_goes_only_to_offers_accepting_its_chain():
    on_a, on_b = job(chain_id=CHAIN_A), job(chain_id=CHAIN_B, nonce=1)
    only_a = offer(chain_ids=(CHAIN_A,), price=1)
    only_b = offer(chain_ids=(CHAIN_B,), provider=OTHER_PROVIDER, price=9, nonce=1)
    assert matched([on_a, on_b], [only_a, only_b]) == {
        (on_a.cid, only_a.cid), (on_b.cid, only_b.cid)}
    # One market for both chains: an offer on both serves jobs paying on either.
    both = offer(chain_ids=(CHAIN_A, CHAIN_B), nonce=2,
                 capacity=spec(milli_cpu=2000, ram_mb=2048, disk_mb=2000))
    assert matched([on_a, on_b], [both]) == {(on_a.cid, both.cid), (on_b.cid, both.cid)}
    assert matched([on_b], [only_a]) == set()


def test_consortium_rules():
    # Neither side names a mediator: no consortium, no deal (unless the minimum is 0).
    assert common_mediators(job(mediators=()), offer(mediators=())) == ()
    assert mismatch(job(mediators=()), offer(mediators=()), NOW) == "no common mediators"
    zero = MatchPolicy(min_common_mediators=0)
    assert mismatch(job(mediators=()), offer(mediators=()), NOW, zero) is None
    # One side lists mediators: the other side delegates, the list is the consortium.
    assert common_mediators(job(), offer(mediators=())) == (MEDIATOR_A,)
    assert common_mediators(job(mediators=()), offer(mediators=[MEDIATOR_B])) == (MEDIATOR_B,)
    # Both list: the intersection.
    both = common_mediators(
        job(mediators=[MEDIATOR_A, MEDIATOR_B]), offer(mediators=[MEDIATOR_B, MEDIATOR_C])
    )
    assert both == (MEDIATOR_B,)
    # A party cannot mediate its own deal.
    assert common_mediators(job(mediators=()), offer(mediators=[CREATOR])) == ()
    assert mismatch(job(mediators=()), offer(mediators=[CREATOR]), NOW) == "no common mediators"
    assert mismatch(job(mediators=[PROVIDER]), offer(mediators=()), NOW) == "no common mediators"
    # A larger minimum consortium.
    two = MatchPolicy(min_common_mediators=2)
    j = job(mediators=[MEDIATOR_A, MEDIATOR_B])
    assert mismatch(j, offer(mediators=[MEDIATOR_A, MEDIATOR_C]), NOW, two) is not None
    assert mismatch(j, offer(mediators=[MEDIATOR_A, MEDIATOR_B]), NOW, two) is None


def test_execution_estimate_is_a_policy():
    j = job(deadline=NOW + 5_000, expires_at=NOW + 5_000)
    assert mismatch(j, offer(), NOW) == "deadline unreachable"
    assert mismatch(j, offer(), NOW, MatchPolicy(execution_estimate_ms=5_000)) is None


def test_jobs_share_an_offer_up_to_its_capacity():
    r = offer(capacity=spec(milli_cpu=4000, ram_mb=4096, disk_mb=4000, gpus=2, vram=8))
    jobs = [job(nonce=i, need=spec(gpus=1, vram=8)) for i in range(4)]
    result = match(jobs, [r], NOW, epoch=1)
    assert result.placed == 2  # two GPUs
    check_valid(result, jobs, [r], NOW)


def test_reserved_capacity_shrinks_an_offer():
    r = offer(capacity=spec(milli_cpu=3000, ram_mb=3072, disk_mb=3000))
    jobs = [job(nonce=i) for i in range(3)]
    assert len(matched(jobs, [r])) == 3
    assert len(matched(jobs, [r], reserved={r.cid: (spec(),)})) == 2
    assert len(matched(jobs, [r], reserved={r.cid: (spec(), spec(), spec(), spec())})) == 0


def test_objective_prefers_surplus_then_older_jobs():
    cheap, dear = offer(price=2, nonce=1), offer(price=4, nonce=2)
    j = job(max_price=10)
    assert matched([j], [dear, cheap]) == {(j.cid, cheap.cid)}
    # Equal surplus: the older job wins the one slot.
    old, new = job(nonce=1, created_at=NOW - 2000), job(nonce=2, created_at=NOW - 1000)
    assert matched([new, old], [cheap]) == {(old.cid, cheap.cid)}
    # Higher surplus beats age.
    rich = job(nonce=3, created_at=NOW - 500, max_price=20)
    assert matched([old, rich], [cheap]) == {(rich.cid, cheap.cid)}
    # Same price: not simply the older offer (tests/unit/market/test_matching_spread.py).


def test_duplicates_and_order_do_not_matter():
    jobs, resources = random_market(7, 30, 10, NOW)
    once = match(jobs, resources, NOW, epoch=1)
    again = match(jobs[::-1] + jobs[:5], resources[::-1] + resources, NOW, epoch=1)
    assert once == again


def test_epochs():
    assert epoch_of(0) == 0 and epoch_of(499) == 0 and epoch_of(500) == 1
    assert epoch_end_ms(0) == 500 and epoch_of(epoch_end_ms(7) - 1) == 7
    assert epoch_of(1000, epoch_ms=100) == 10


# --- first-fit is beaten -------------------------------------------------------------------


@pytest.mark.parametrize("pairs", [1, 2, 5, 20])
def test_first_fit_trap(pairs):
    jobs, resources = first_fit_trap(pairs, NOW)
    ours, theirs = match(jobs, resources, NOW, epoch=1), first_fit(jobs, resources, NOW, epoch=1)
    check_valid(ours, jobs, resources, NOW)
    check_valid(theirs, jobs, resources, NOW)
    assert ours.placed == 2 * pairs
    assert theirs.placed == pairs + pairs // 2 < ours.placed


# --- properties over generated markets ----------------------------------------------------

market_sizes = st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 40), st.integers(0, 15))


@given(market_sizes)
def test_every_match_is_valid_and_at_least_first_fit(sizes):
    seed, n_jobs, n_resources = sizes
    jobs, resources = random_market(seed, n_jobs, n_resources, NOW)
    ours, theirs = match(jobs, resources, NOW, epoch=3), first_fit(jobs, resources, NOW, epoch=3)
    check_valid(ours, jobs, resources, NOW)
    check_valid(theirs, jobs, resources, NOW)
    assert (ours.placed, ours.surplus_wei) >= (theirs.placed, theirs.surplus_wei)


@given(market_sizes, st.randoms(use_true_random=False))
def test_input_order_never_matters(sizes, rng):
    seed, n_jobs, n_resources = sizes
    jobs, resources = random_market(seed, n_jobs, n_resources, NOW)
    shuffled_jobs, shuffled_resources = list(jobs), list(resources)
    rng.shuffle(shuffled_jobs)
    rng.shuffle(shuffled_resources)
    assert match(jobs, resources, NOW, epoch=3) == match(
        shuffled_jobs, shuffled_resources, NOW, epoch=3
    )


@given(market_sizes)
def test_fast_pair_filter_agrees_with_mismatch(sizes):
    seed, n_jobs, n_resources = sizes
    jobs, resources = random_market(seed, n_jobs, n_resources, NOW)
    problem = build_problem(jobs, resources, NOW, MatchPolicy(), {}, {}, {})
    fast = {
        (problem.job_ids[j], problem.resource_ids[r])
        for j, options in enumerate(problem.options)
        for r in options
    }
    reference = {(j.cid, r.cid) for j in jobs for r in resources if mismatch(j, r, NOW) is None}
    assert fast == reference


def _on_random_chains(offers, rng):
    """The offers again, each on a random chain (jobs) or set of chains (resource offers)."""
    chains = (CHAIN_A, CHAIN_B, CHAIN_B + 1)
    moved = []
    for o in offers:
        if hasattr(o, "chain_ids"):
            moved.append(dataclasses.replace(o, chain_ids=tuple(sorted(
                rng.sample(chains, rng.randint(1, len(chains)))))))
        else:
            moved.append(dataclasses.replace(o, chain_id=rng.choice(chains)))
    return moved


@given(market_sizes, st.randoms(use_true_random=False))
def test_several_chains_share_a_market_but_never_a_deal(sizes, rng):
    seed, n_jobs, n_resources = sizes
    jobs, resources = random_market(seed, n_jobs, n_resources, NOW)
    jobs, resources = _on_random_chains(jobs, rng), _on_random_chains(resources, rng)
    problem = build_problem(jobs, resources, NOW, MatchPolicy(), {}, {}, {})
    fast = {
        (problem.job_ids[j], problem.resource_ids[r])
        for j, options in enumerate(problem.options)
        for r in options
    }
    assert fast == {(j.cid, r.cid) for j in jobs for r in resources
                    if mismatch(j, r, NOW) is None}
    result = match(jobs, resources, NOW, epoch=3)
    check_valid(result, jobs, resources, NOW)
    by_id = {o.cid: o for o in (*jobs, *resources)}
    for job_cid, resource_cid in result.matches:
        assert by_id[job_cid].chain_id in by_id[resource_cid].chain_ids


@settings(max_examples=60)
@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.integers(1, 3))
def test_small_markets_are_solved_exactly(seed, n_jobs, n_resources):
    jobs, resources = random_market(seed, n_jobs, n_resources, NOW)
    ours = match(jobs, resources, NOW, epoch=1)
    assert ours.proven_optimal
    assert (ours.placed, ours.surplus_wei) == brute_force_best(jobs, resources, NOW)


def best_key_by_brute_force(problem):
    """The objective's smallest key (module docstring of `_matching.py`) over every assignment
    of each job to one of its options or none: (-placed, -surplus, matched jobs, their ranks)."""
    best = None
    for choice in itertools.product(*[[None, *options] for options in problem.options]):
        room = [list(capacity) for capacity in problem.capacity]
        for j, r in enumerate(choice):
            if r is not None:
                room[r] = [left - need for left, need in zip(room[r], problem.need[j], strict=True)]
        if any(left < 0 for offer_room in room for left in offer_room):
            continue
        matched = [j for j, r in enumerate(choice) if r is not None]
        key = (-len(matched), -sum(problem.max_prices[j] - problem.prices[choice[j]]
                                    for j in matched),
               tuple(matched), tuple(problem.options[j].index(choice[j]) for j in matched))
        best = key if best is None or key < best else best
    return best


def key_of(matching, problem):
    offer_of = dict(matching.matches)
    matched = [j for j, job_id in enumerate(problem.job_ids) if job_id in offer_of]
    chosen = {j: problem.resource_ids.index(offer_of[problem.job_ids[j]]) for j in matched}
    return (-len(matched), -matching.surplus_wei, tuple(matched),
            tuple(problem.options[j].index(chosen[j]) for j in matched))


@settings(max_examples=80)
@given(st.integers(0, 2**32 - 1), st.integers(1, 5), st.integers(1, 4), st.booleans())
def test_the_exact_search_finds_the_best_key_ties_included(seed, n_jobs, n_offers, one_price):
    """Every term of the objective, tie-breaks included, against every assignment; with one
    price for all offers every full assignment ties on matches and surplus."""
    rng = random.Random(seed)
    if one_price:
        resources = [offer(nonce=i, provider=address_of(0x100 + i),
                           capacity=spec(milli_cpu=1000 * rng.randint(1, 3)))
                     for i in range(n_offers)]
        jobs = [job(nonce=k, need=spec(milli_cpu=rng.choice([500, 1000])))
                for k in range(n_jobs)]
    else:
        jobs, resources = random_market(seed, n_jobs, n_offers, NOW)
    problem = build_problem(jobs, resources, NOW, MatchPolicy(), {}, {}, {})
    ours = match(jobs, resources, NOW, epoch=1)
    assert ours.proven_optimal
    assert key_of(ours, problem) == best_key_by_brute_force(problem)


def test_ties_between_equally_priced_offers_do_not_eat_the_node_budget():
    """30 equally priced offers of 3 providers with room for one job each, 8 jobs: every full
    assignment ties on matches and surplus, and the jobs' first choices collide (the batch is
    spread over the providers, not over their offers). The search must still prove its answer
    within a thousand nodes rather than walk the ties."""
    resources = [offer(nonce=i, provider=address_of(0x100 + i % 3)) for i in range(30)]
    jobs = [job(nonce=k) for k in range(3, 11)]  # nonces whose draws collide on 2 offers
    problem = build_problem(jobs, resources, NOW, MatchPolicy(), {}, {}, {})
    assert len({options[0] for options in problem.options}) < len(jobs) - 1  # choices collide
    ours = match(jobs, resources, NOW, epoch=1, policy=MatchPolicy(exact_node_budget=1000))
    assert ours.proven_optimal and ours.placed == 8
    assert ours.matches == match(jobs, resources, NOW, epoch=1).matches

def kuhn_maximum(jobs, resources):
    """Textbook maximum bipartite matching size, for the unit-capacity case."""
    owner: dict[str, object] = {}

    def augment(j, seen):
        for r in resources:
            if r.cid in seen or mismatch(j, r, NOW) is not None:
                continue
            seen.add(r.cid)
            if r.cid not in owner or augment(owner[r.cid], seen):
                owner[r.cid] = j
                return True
        return False

    return sum(augment(j, set()) for j in jobs)


@settings(max_examples=60)
@given(st.integers(0, 2**32 - 1), st.integers(13, 40), st.integers(5, 30))
def test_unit_capacities_reach_a_maximum_matching(seed, n_jobs, n_resources):
    """Every offer fits at most one job: the augmenting paths must find a maximum matching
    (beyond the exact search's size, so this is the heuristic alone)."""
    rng = random.Random(seed)
    resources = [
        offer(nonce=i, provider=PROVIDER, modules=rng.sample(["hash", "python", "random"], 2))
        for i in range(n_resources)
    ]
    jobs = [
        job(
            nonce=i,
            module=rng.choice(["hash", "python", "random"]),
            need=spec(milli_cpu=rng.choice([600, 800, 1000])),
            max_price=rng.choice([4, 5, 9]),
        )
        for i in range(n_jobs)
    ]
    ours = match(jobs, resources, NOW, epoch=1)
    check_valid(ours, jobs, resources, NOW)
    assert not ours.proven_optimal
    assert ours.placed == kuhn_maximum(jobs, resources)


def test_beats_first_fit_on_some_random_markets():
    wins = 0
    for seed in range(20):
        jobs, resources = random_market(seed, 60, 20, NOW)
        ours, theirs = (
            match(jobs, resources, NOW, epoch=1),
            first_fit(jobs, resources, NOW, epoch=1),
        )
        assert ours.placed >= theirs.placed
        wins += ours.placed > theirs.placed
    assert wins > 0
