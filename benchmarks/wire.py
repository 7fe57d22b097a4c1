"""Wire format cost: message sizes and CPU per sign / open / decode, for every schema.

    python benchmarks/wire.py [--repetitions 2000]

`open_envelope` is what every gossip validator runs for every unique message it receives, so
its CPU time adds directly to the "CPU ms per delivered message" budget of the gossip layer
(target <= 5 ms in total). Times are process CPU time (time.process_time) per operation, the
median of 5 batches of --repetitions operations. Writes benchmarks/results/wire.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from eth_keys.datatypes import PrivateKey
from libp2p.crypto.secp256k1 import create_new_key_pair
from libp2p.peer.id import ID

from lilypad_p2p.market import AddOutcome, OfferBook, ReplayGuard
from lilypad_p2p.wire import (
    Cancel,
    JobOffer,
    MatchProposal,
    NodeRecord,
    ResourceOffer,
    ResourceSpec,
    content_id,
    decode,
    open_envelope,
    sign_envelope,
)

BATCHES = 5
# The validator's share of the gossip CPU budget we consider comfortable (5 % of 5 ms).
OPEN_TARGET_US = 250.0
RESULTS = Path(__file__).parent / "results" / "wire.json"
KEY = PrivateKey(b"\x11" * 32)
ADDRESS = KEY.public_key.to_checksum_address()
MEDIATORS = tuple(
    sorted(
        (PrivateKey(bytes([n]) * 32).public_key.to_checksum_address() for n in range(2, 5)),
        key=str.lower,
    )
)
NOW = 1_700_000_000_000
SPEC = ResourceSpec(milli_cpu=4000, ram_mb=8192, disk_mb=20_000, gpu_count=1, gpu_vram_mb=24_000)


def sample_messages() -> dict[str, object]:
    lifetime = {"created_at": NOW, "expires_at": NOW + 3_600_000, "nonce": 2**63}
    return {
        "node_record": NodeRecord(
            address=ADDRESS,
            peer_id=str(ID.from_pubkey(create_new_key_pair(KEY.to_bytes()).public_key)),
            roles=("provider", "solver"),
            sealing_public_key=b"\x07" * 32,
            markets=("cpu", "gpu"),
            listen_addrs=("/ip4/203.0.113.7/tcp/4001", "/ip6/2001:db8::7/tcp/4001"),
            **lifetime,
        ),
        "resource_offer": ResourceOffer(
            market="gpu",
            provider=ADDRESS,
            spec=SPEC,
            modules=("hash", "python", "wordcount"),
            price_per_job_wei=3 * 10**15,
            collateral_wei=6 * 10**15,
            trusted_mediators=MEDIATORS,
            chain_ids=(31337,),
            **lifetime,
        ),
        "job_offer": JobOffer(
            market="gpu",
            job_creator=ADDRESS,
            module="wordcount",
            spec=SPEC,
            max_price_wei=5 * 10**15,
            trusted_mediators=MEDIATORS,
            chain_id=31337,
            deadline=NOW + 7_200_000,
            inputs_commitment=bytes(range(32)),
            **lifetime,
        ),
        "match_proposal_10": MatchProposal(
            market="gpu",
            epoch=12345,
            solver=ADDRESS,
            matches=tuple(
                sorted((content_id(b"job%d" % n), content_id(b"res%d" % n)) for n in range(10))
            ),
            **lifetime,
        ),
        "cancel": Cancel(
            market="gpu", offer_cid=content_id(b"offer"), owner=ADDRESS, created_at=NOW, nonce=1
        ),
    }


def cpu_us_per_call(operation: Callable[[], object], repetitions: int) -> float:
    batches = []
    for _ in range(BATCHES):
        started = time.process_time()
        for _ in range(repetitions):
            operation()
        batches.append((time.process_time() - started) / repetitions * 1e6)
    return statistics.median(batches)


def measure(repetitions: int) -> dict[str, object]:
    figures: dict[str, object] = {}
    for name, body in sample_messages().items():
        envelope = sign_envelope(body, KEY, NOW)
        data = envelope.encode()
        figures[name] = {
            "body_bytes": len(body.canonical_bytes),
            "envelope_bytes": len(data),
            "sign_us": cpu_us_per_call(lambda b=body: sign_envelope(b, KEY, NOW), repetitions),
            "decode_us": cpu_us_per_call(lambda d=data: decode(d), repetitions),
            "open_us": cpu_us_per_call(lambda d=data: open_envelope(d, now_ms=NOW), repetitions),
        }
    offers = [
        sign_envelope(
            ResourceOffer(
                market="cpu",
                provider=ADDRESS,
                spec=SPEC,
                modules=(),
                price_per_job_wei=n,
                collateral_wei=0,
                trusted_mediators=(),
                chain_ids=(31337,),
                created_at=NOW,
                expires_at=NOW + 60_000,
                nonce=n,
            ),
            KEY,
            NOW,
        )
        for n in range(repetitions)
    ]

    def fill_book() -> None:
        book, guard = OfferBook(max_offers_per_owner=repetitions), ReplayGuard()
        for envelope in offers:
            assert guard.check_and_record(envelope, NOW)
            assert book.add(envelope, NOW) is AddOutcome.ADDED

    figures["replay_guard_plus_book_add_us"] = cpu_us_per_call(fill_book, 1) / repetitions
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=2000)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    figures = measure(args.repetitions)
    figures["load_average_1min"] = {"start": load_before, "end": os.getloadavg()[0]}
    figures["date_utc"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    header = ("message", "body B", "env. B", "sign us", "decode us", "open us")
    print("{:<20}{:>8}{:>8}{:>10}{:>11}{:>9}".format(*header))
    for name, row in figures.items():
        if isinstance(row, dict) and "open_us" in row:
            print(
                f"{name:<20}{row['body_bytes']:>8}{row['envelope_bytes']:>8}"
                f"{row['sign_us']:>10.1f}{row['decode_us']:>11.1f}{row['open_us']:>9.1f}"
            )
    print(f"replay guard + offer book add: {figures['replay_guard_plus_book_add_us']:.1f} us/offer")
    rows = [row for row in figures.values() if isinstance(row, dict) and "open_us" in row]
    worst_open = max(row["open_us"] for row in rows)
    verdict = "met" if worst_open <= OPEN_TARGET_US else "MISSED"
    print(f"worst open_envelope {worst_open:.1f} us (target <= {OPEN_TARGET_US:.0f} us): {verdict}")
    print(f"load average (1 min): {figures['load_average_1min']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
