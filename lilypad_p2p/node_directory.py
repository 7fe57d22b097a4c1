"""The node-record directory: the freshest signed NodeRecord heard from each address, the
envelope it came in (served to syncing peers), and which retired keys hand over to whom.

Clients find mediators and providers' addresses here; `keys rotate` hand-overs retire an
address for good, so a late record of the old key cannot take its place back.
"""

from __future__ import annotations

import logging

from lilypad_p2p import wire
from lilypad_p2p.logs import event

log = logging.getLogger("lilypad_p2p.node")


class NodeDirectory:
    def __init__(self) -> None:
        self.records: dict[str, wire.NodeRecord] = {}
        # The envelopes they came in, served to syncing peers while still fresh.
        self.envelopes: dict[str, wire.SignedEnvelope] = {}
        # Retired address -> the address that replaced it (records carrying a hand-over).
        self.successors: dict[str, str] = {}

    def observe(self, envelope: wire.SignedEnvelope) -> None:
        """Keep a received NodeRecord if it is the newest of its address."""
        record = envelope.body
        assert isinstance(record, wire.NodeRecord)
        if record.address in self.successors:
            return  # a retired key's record: its successor speaks for it now
        known = self.records.get(record.address)
        if known is None or known.created_at < record.created_at:
            self.records[record.address] = record
            self.envelopes[record.address] = envelope
        if record.predecessor is not None and record.predecessor not in self.successors:
            self.successors[record.predecessor] = record.address
            self.records.pop(record.predecessor, None)
            self.envelopes.pop(record.predecessor, None)
            event(log, "node.key_rotated", retired=record.predecessor,
                  successor=record.address)

    def expire(self, now_ms: int) -> None:
        for address, record in list(self.records.items()):
            if record.expires_at <= now_ms:
                del self.records[address]
                self.envelopes.pop(address, None)

    def envelopes_except(self, address: str) -> list[wire.SignedEnvelope]:
        """The envelopes of every record held but `address`'s (ours is signed afresh)."""
        return [envelope for held, envelope in self.envelopes.items() if held != address]
