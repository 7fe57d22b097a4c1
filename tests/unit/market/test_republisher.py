import pytest
from eth_keys.datatypes import PrivateKey

from lilypad_p2p.market import REPUBLISH_INTERVAL_MS, Republisher
from lilypad_p2p.testing.offers import make_resource_offer

KEY = PrivateKey(b"\x01" * 32)
T0 = 1_700_000_000_000
INTERVAL = REPUBLISH_INTERVAL_MS


def offer(lifetime=5 * INTERVAL, nonce=0):
    return make_resource_offer(provider=KEY.public_key.to_checksum_address(), created_at=T0,
                               lifetime_ms=lifetime, nonce=nonce)


def test_due_every_interval_until_expiry():
    republisher = Republisher()
    lifetime = INTERVAL * 5 // 2
    body = offer(lifetime=lifetime)
    republisher.track(body, T0)
    assert republisher.next_due_ms() == T0 + INTERVAL
    assert republisher.take_due(T0 + INTERVAL - 1) == []
    published = []
    for now in range(T0, T0 + 2 * lifetime, 1_000):
        published += [now for _ in republisher.take_due(now)]
    assert published == [T0 + INTERVAL, T0 + 2 * INTERVAL]  # until expiry, not after
    assert len(republisher) == 0 and republisher.next_due_ms() is None


def test_late_tick_republishes_once_and_reschedules_from_then():
    republisher = Republisher()
    body = offer()
    republisher.track(body, T0)
    late = T0 + INTERVAL + INTERVAL // 2
    assert republisher.take_due(late) == [body]
    assert republisher.next_due_ms() == late + INTERVAL


def test_untrack_stops_republishing():
    republisher = Republisher()
    kept, cancelled = offer(nonce=1), offer(nonce=2)
    republisher.track(kept, T0)
    republisher.track(cancelled, T0)
    assert republisher.untrack(cancelled.cid) is True
    assert republisher.untrack(cancelled.cid) is False
    assert republisher.take_due(T0 + REPUBLISH_INTERVAL_MS) == [kept]
    assert republisher.tracked() == [kept.cid]


def test_due_order_is_deterministic():
    republisher = Republisher()
    bodies = [offer(nonce=n) for n in range(5)]
    for index, body in enumerate(bodies):
        republisher.track(body, T0 + (index % 2))
    due = republisher.take_due(T0 + REPUBLISH_INTERVAL_MS + 1)
    expected = sorted(bodies, key=lambda b: (T0 + bodies.index(b) % 2, b.cid))
    assert due == expected


def test_tracking_again_reschedules():
    republisher = Republisher()
    body = offer()
    republisher.track(body, T0)
    republisher.track(body, T0 + 10_000)
    assert republisher.take_due(T0 + REPUBLISH_INTERVAL_MS) == []
    assert republisher.take_due(T0 + 10_000 + REPUBLISH_INTERVAL_MS) == [body]


@pytest.mark.parametrize("interval", [0, 10**9])
def test_interval_must_fit_the_replay_window(interval):
    with pytest.raises(ValueError):
        Republisher(interval)
