"""The consortium of a deal and the spot-check economics. Pure: no I/O, no clock.

Consortium choice (DESIGN §7). The candidates are the mediators both parties trust
(`common_mediators`, parties removed). Each candidate gets a rank

    rank(m) = sha256(CONSORTIUM_DOMAIN || seed || address bytes of m)
    seed    = sha256(CONSORTIUM_DOMAIN || job offer CID || 0x00 || resource offer CID)

and the n lowest ranks form the consortium, written in the deal in ascending address order
(the order the contract requires). Anyone holding both offers recomputes it, so the provider
re-derives it before countersigning (`roles/_terms.deal_mismatch`). Neither party picks the
seed alone: a solver-matched job offer is published before its job creator knows which
resource offer it will meet, and vice versa. A targeted job's creator knows the resource offer
in advance and could grind its offer's nonce, but only among mediators the provider trusts too.

Threshold. k defaults to floor(2n/3) + 1 (capped at n), as `chain.default_threshold`. A deal
may carry any k in (n/2, n]: a strict majority, so two conflicting verdicts can never both
reach k signatures.

Spot checks. A client with check rate p sends each verified job to mediation with probability
p. A provider that cheats on every job is caught after a geometric number of jobs, 1/p on
average, having been paid for about 1/p jobs it did not run; when caught it loses the deal's
collateral. Cheating does not pay when collateral >= price / p, i.e. the collateral multiple
(collateral / price) must be at least 1/p (Lilypad litepaper). `required_collateral` computes
that bound; the client refuses offers below it. Rates are integer parts per million (no
floats on the wire or in deal terms).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from lilypad_p2p.wire import PPM

CONSORTIUM_DOMAIN = b"lilypad-p2p/consortium/1"
# Mediators a client asks for per deal when it does not say (fewer if fewer are trusted).
DEFAULT_CONSORTIUM_SIZE = 3
MAX_CONSORTIUM_SIZE = 32  # the contract's MAX_MEDIATORS


def consortium_seed(job_offer_cid: str, resource_offer_cid: str) -> bytes:
    """The seed ranking mediators for the deal of this pair of offers."""
    if not job_offer_cid or not resource_offer_cid:
        raise ValueError("both offer CIDs are needed")
    body = job_offer_cid.encode() + b"\x00" + resource_offer_cid.encode()
    return hashlib.sha256(CONSORTIUM_DOMAIN + body).digest()


def _address_bytes(address: str) -> bytes:
    if not (isinstance(address, str) and address.startswith("0x") and len(address) == 42):
        raise ValueError(f"not an address: {address!r}")
    return bytes.fromhex(address[2:])


def mediator_rank(seed: bytes, mediator: str) -> bytes:
    """The mediator's rank for `seed` (lower is chosen first)."""
    return hashlib.sha256(CONSORTIUM_DOMAIN + seed + _address_bytes(mediator)).digest()


def select_consortium(candidates: Iterable[str], seed: bytes, size: int) -> tuple[str, ...]:
    """The `size` lowest-ranked candidates (all of them if fewer), in ascending address order.

    Raises:
        ValueError: `size` is outside 1..MAX_CONSORTIUM_SIZE.
    """
    if not 1 <= size <= MAX_CONSORTIUM_SIZE:
        raise ValueError(f"consortium size must be 1..{MAX_CONSORTIUM_SIZE}, got {size}")
    unique = {_address_bytes(m): m for m in candidates}
    ranked = sorted(unique.values(), key=lambda m: (mediator_rank(seed, m), m.lower()))
    return tuple(sorted(ranked[:size], key=lambda m: int(m, 16)))


def default_quorum(size: int) -> int:
    """floor(2n/3) + 1, capped at n (equal to `chain.default_threshold`)."""
    if not 1 <= size <= MAX_CONSORTIUM_SIZE:
        raise ValueError(f"consortium size must be 1..{MAX_CONSORTIUM_SIZE}, got {size}")
    return min(size, 2 * size // 3 + 1)


def threshold_is_safe(threshold: int, size: int) -> bool:
    """Whether k of n is a strict majority (no two conflicting verdicts can both reach it)."""
    return 1 <= size <= MAX_CONSORTIUM_SIZE and size // 2 < threshold <= size


def required_collateral(price_wei: int, check_rate_ppm: int) -> int:
    """The least collateral that makes cheating unprofitable at this check rate (see module).

    A rate of 0 (no spot checks) requires nothing: only disputes of bad outputs protect.
    """
    if price_wei < 0 or not 0 <= check_rate_ppm <= PPM:
        raise ValueError("price must be >= 0 and the check rate in 0..1_000_000 ppm")
    if check_rate_ppm == 0:
        return 0
    return -(-price_wei * PPM // check_rate_ppm)


def collateral_covers_check_rate(collateral_wei: int, price_wei: int, check_rate_ppm: int) -> bool:
    return collateral_wei >= required_collateral(price_wei, check_rate_ppm)


def is_spot_checked(check_rate_ppm: int, draw_ppm: int) -> bool:
    """Whether a job whose uniform draw in [0, PPM) is `draw_ppm` goes to mediation."""
    if not 0 <= draw_ppm < PPM:
        raise ValueError("draw must be in 0..999_999")
    return draw_ppm < check_rate_ppm
