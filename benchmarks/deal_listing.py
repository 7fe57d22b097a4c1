"""What a long-lived node's deal store costs the node: listing, naming and open-deal reads.

    python benchmarks/deal_listing.py [--deals 10000] [--rounds 5]

A node keeps every deal it ever made. This builds a store of `--deals` settled client deals
(each written through `DealStore` as a client writes it: offered, matched, agreed, open,
running, accepted, settled, with a signed-offer-sized job offer, a deal, signatures and a
result) plus one open deal, then times, median of `--rounds`, in ms of this process's CPU:

- `every deal`: `deals()` described, as the `deals` control method answered every caller
  before (`lilypad-p2p deals`, `deals KEY`, `dispute`, the status page, /api/status), and how
  many bytes of JSON that is against the control answer's bound (CONTROL_MAX_LINE);
- `newest 51`: `deals(newest=51)` described, what `lilypad-p2p deals` asks for now;
- `open only`: `deals(open_only=True)`, what the provider reads every tick and the network
  reads for each inputs transfer;
- `named by key start` and `named by 0x deal ID`: `deals_named(..., most=10)`, what
  `deals KEY` and `dispute KEY` ask for now;
- `every client deal decoded`: `client_deals()`, what a spot-checking client's fee payer (every
  2 s) and a chain bridge (every 1 s) read to find the few deals they watch, before; and
  `changes since the last poll`: `changed_since(mark)` with nothing changed, what they read now;
- `first poll, every deal loaded`: `changed_since(0)` and each deal it names loaded, what a
  bridge's and a fee payer's first poll did on the event loop; `first poll, stored maps
  scanned`: `client_keys_where(...)` for a few live requests' salts, what it does now, in a
  worker thread (so the event loop's share is none of it).

Run it on an older checkout through PYTHONPATH to compare: what that code lacks is reported as
not measured. Writes benchmarks/results/deal-listing.json (with --label, merged under it).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lilypad_p2p.chain import Deal
from lilypad_p2p.config import CONTROL_MAX_LINE
from lilypad_p2p.deal_detail import ClientDetail
from lilypad_p2p.market import Event, advance, new_client_deal
from lilypad_p2p.roles import describe
from lilypad_p2p.store import DealStore

RESULTS = Path(__file__).parent / "results" / "deal-listing.json"
T0 = 1_700_000_000_000
# A settled client deal's path, as the client's driver writes it.
LIFE = (Event.MATCH_FOUND, Event.COUNTERSIGNED, Event.OPENED, Event.INPUTS_DELIVERED,
        Event.RESULT_VERIFIED, Event.SETTLED)


def _detail(n: int) -> ClientDetail:
    deal = Deal(job_creator="0x" + "11" * 20, provider="0x" + "22" * 20, payment=10**15,
                collateral=10**15, mediation_fee=10**14, mediators=("0x" + "33" * 20,),
                threshold=1, result_deadline=1_700_000_900, acceptance_window=60,
                mediation_window=600, job_spec_hash=os.urandom(32), module_hash=os.urandom(32),
                salt=os.urandom(32))
    return ClientDetail(
        job_offer=os.urandom(720), module="bafkrei" + "m" * 52, submitted_ms=T0 + n,
        module_name="hash", inputs_spool=None, resource_offer="bafkrei" + "r" * 52, deal=deal,
        job_creator_signature=os.urandom(65),
        provider_record=os.urandom(400), deal_id=n.to_bytes(32, "big"),
        result_hash=os.urandom(32), provider_commitment=os.urandom(65),
        acceptance_signature=os.urandom(65), result_path=f"/home/node/results/{n}.tar",
        result_cid="bafkrei" + "c" * 52, acceptance_delivered=True)


def build_store(path: Path, deals: int) -> str:
    """`deals` settled client deals and one open one; returns the open one's key. The first
    deal is written through the store, the rest are copies of its rows under other keys (the
    store's own writes commit each transition: minutes for ten thousand deals)."""
    store = DealStore.open(path)
    record = new_client_deal("bafkreitemplate", now_ms=T0, expires_ms=T0 + 100_000)
    store.insert(record, _detail(0))
    for step, happened in enumerate(LIFE, 1):
        record, _ = advance(record, happened, T0 + step * 100,
                            result_deadline_ms=T0 + 900_000)
        store.update(record, _detail(0), happened)
    store.close()
    db = sqlite3.connect(path)
    columns = [row[1] for row in db.execute("PRAGMA table_info(deals)")]
    names = ", ".join(columns)
    assert columns.index("key") < columns.index("created_ms")  # the parameters' order
    picked = ", ".join("?" if c in ("key", "created_ms") else c for c in columns)
    for n in range(1, deals):
        key = f"bafkrei{n:052d}"
        db.execute(f"INSERT INTO deals ({names}) SELECT {picked} FROM deals "
                   "WHERE key = 'bafkreitemplate'", (key, T0 + n))
        db.execute("INSERT INTO transitions (key, from_phase, to_phase, event, at_ms) "
                   "SELECT ?, from_phase, to_phase, event, at_ms + ? FROM transitions "
                   "WHERE key = 'bafkreitemplate'", (key, n))
    db.commit()
    db.close()
    store = DealStore.open(path)
    open_key = "bafkreiopen"
    store.insert(new_client_deal(open_key, now_ms=T0 + deals, expires_ms=T0 + 10**9),
                 replace(_detail(deals), deal=None))
    store.close()
    return open_key


def cpu_ms(work: Callable[[], Any], rounds: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(rounds):
        started = time.process_time()
        result = work()
        times.append((time.process_time() - started) * 1000)
    return round(statistics.median(times), 2), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--label", default="current")
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "node.sqlite"
        open_key = build_store(path, args.deals)
        store = DealStore.open(path)
        rows: dict[str, Any] = {"deals": args.deals + 1}
        every_ms, every = cpu_ms(lambda: [describe(d, store) for d in store.deals()],
                                 args.rounds)
        size = len(json.dumps(every).encode())
        rows["every_deal"] = {"cpu_ms": every_ms, "json_bytes": size,
                              "over_control_bound": size > CONTROL_MAX_LINE}
        clients_ms, _ = cpu_ms(store.client_deals, args.rounds)
        rows["every_client_deal_decoded"] = {"cpu_ms": clients_ms}
        open_ms, found = cpu_ms(lambda: store.deals(open_only=True), args.rounds)
        assert [d.record.key for d in found] == [open_key]
        rows["open_only"] = {"cpu_ms": open_ms}
        try:
            newest_ms, newest = cpu_ms(
                lambda: [describe(d, store) for d in store.deals(newest=51)], args.rounds)
            rows["newest_51"] = {"cpu_ms": newest_ms,
                                 "json_bytes": len(json.dumps(newest).encode())}
            by_key_ms, _ = cpu_ms(lambda: store.deals_named("bafkrei00000000000000000000000000"
                                                              "0000000000000000001", most=10),
                                  args.rounds)
            by_id_ms, _ = cpu_ms(lambda: store.deals_named("0x" + "00" * 30, most=10),
                                 args.rounds)
            rows["named_by_key_start"] = {"cpu_ms": by_key_ms}
            rows["named_by_deal_id_start"] = {"cpu_ms": by_id_ms}
            _, mark = store.changed_since(0)
            quiet_ms, _ = cpu_ms(lambda: store.changed_since(mark), args.rounds)
            rows["changes_since_the_last_poll"] = {"cpu_ms": quiet_ms}
        except (TypeError, AttributeError) as exc:  # an older store: no newest, deals_named
            rows["not_measured"] = str(exc)
        loaded_ms, _ = cpu_ms(lambda: [store.client_deal(key)
                                       for key in store.changed_since(0)[0]], args.rounds)
        rows["first_poll_every_deal_loaded"] = {"cpu_ms": loaded_ms}
        live = {os.urandom(32) for _ in range(3)}
        if hasattr(store, "client_keys_where"):
            scanned_ms, _ = cpu_ms(
                lambda: store.client_keys_where(lambda detail: detail.get("salt") in live),
                args.rounds)
            rows["first_poll_stored_maps_scanned"] = {"cpu_ms": scanned_ms}
        store.close()
    print(f"{args.label}: a store of {rows['deals']} deals (CPU ms, median of {args.rounds})")
    print(f"  every deal described: {every_ms} ms, {size / 2**20:.1f} MiB of JSON "
          f"({'over' if size > CONTROL_MAX_LINE else 'within'} the control answer's "
          f"{CONTROL_MAX_LINE / 2**20:.0f} MiB)")
    print(f"  open deals only: {open_ms} ms")
    print(f"  every client deal decoded: {clients_ms} ms")
    for name in ("newest_51", "named_by_key_start", "named_by_deal_id_start",
                 "changes_since_the_last_poll", "first_poll_every_deal_loaded",
                 "first_poll_stored_maps_scanned"):
        if name in rows:
            print(f"  {name.replace('_', ' ')}: {rows[name]['cpu_ms']} ms")
    if "not_measured" in rows:
        print(f"  not measured on this code: {rows['not_measured']}")
    rows.update(date=datetime.now(UTC).isoformat(timespec="minutes"), cpus=os.cpu_count(),
                load_average_1m={"start": load_start, "end": os.getloadavg()[0]})
    saved = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    saved[args.label] = rows
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(saved, indent=2) + "\n")


if __name__ == "__main__":
    main()
