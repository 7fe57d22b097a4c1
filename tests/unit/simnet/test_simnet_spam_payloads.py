"""Every kind of spam the spamming node sends is rejected by an honest validator, as intended."""

import pytest
from libp2p.peer.id import ID

from lilypad_p2p.identity import Identity
from lilypad_p2p.market import ReplayGuard
from lilypad_p2p.net import NODES_TOPIC, DropReason, Rejected, validate_gossip
from lilypad_p2p.testing import SpamKind, spam_payload

NOW_MS = 1_800_000_000_000
EXPECTED = {
    SpamKind.BAD_SIGNATURE: DropReason.BAD_SIGNATURE,
    SpamKind.OVERSIZED: DropReason.OVERSIZED,
    SpamKind.EXPIRED: DropReason.EXPIRED,
    SpamKind.MALFORMED: DropReason.MALFORMED,
    SpamKind.SIGNER_NOT_SOURCE: DropReason.SIGNER_NOT_SOURCE,
}


@pytest.mark.parametrize("kind", list(SpamKind))
def test_spam_is_rejected_for_its_reason(kind: SpamKind) -> None:
    spammer, stranger = Identity.generate(), Identity.generate()
    payload = spam_payload(kind, spammer, stranger, now_ms=NOW_MS, nonce=7)
    verdict = validate_gossip(payload, (str(NODES_TOPIC),),
                              ID(spammer.peer_id.to_bytes()), now_ms=NOW_MS,
                              replay_guard=ReplayGuard())
    assert isinstance(verdict, Rejected)
    assert verdict.reason is EXPECTED[kind]


def test_spam_payloads_differ_by_nonce() -> None:
    spammer, stranger = Identity.generate(), Identity.generate()
    for kind in SpamKind:
        first = spam_payload(kind, spammer, stranger, now_ms=NOW_MS, nonce=1)
        second = spam_payload(kind, spammer, stranger, now_ms=NOW_MS, nonce=2)
        assert first != second
