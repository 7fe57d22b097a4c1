"""Field checks and field wire conversions shared by the message schemas.

Two kinds of helpers, one direction each:

- `require_*` run in `__post_init__` and raise `InvalidMessage`: a message that breaks a rule
  cannot be constructed, whether we build it or a peer's bytes do (`from_wire` turns the error
  into `MalformedMessage`).
- `WireField`s convert between Python values and their wire form (addresses are 20-byte `bin`,
  large amounts 32-byte `bin`, sequences msgpack arrays). Their `from_wire` side checks only the
  wire *type* and raises `MalformedMessage`; the constructor then checks the value.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eth_utils import to_checksum_address

from lilypad_p2p.wire._codec import BIG_UINT_BYTES, UINT64_LIMIT, UINT256_LIMIT
from lilypad_p2p.wire._constants import MAX_CHAIN_ID, MAX_LIFETIME_MS
from lilypad_p2p.wire._errors import InvalidMessage, MalformedMessage

if TYPE_CHECKING:
    from _typeshed import SupportsRichComparison

ADDRESS_BYTES = 20
ADDRESS_TEXT = re.compile(r"0x[0-9a-fA-F]{40}")
# EIP-55 costs two keccaks per address; the same few addresses (providers, mediators) recur.
_CHECKSUM_CACHE_SIZE = 8192
# Timestamps are integer milliseconds since the Unix epoch; 2**53 keeps them exact in JSON too.
TIMESTAMP_LIMIT = 1 << 53
NONCE_LIMIT = UINT64_LIMIT
PPM = 1_000_000  # rates (a job's spot-check rate) are in parts per million
MARKET_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
MODULE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,127}")
# A module's image as its definition names it: an offline recipe, or a registry image by digest.
IMAGE_REF = re.compile(
    r"recipe:[a-z0-9][a-z0-9_-]{0,63}|[a-z0-9][a-z0-9._/:-]{0,190}@sha256:[0-9a-f]{64}"
)


# --- constructor checks (raise InvalidMessage) ---------------------------------------------


def require_uint(name: str, value: object, limit: int) -> None:
    if type(value) is not int or not 0 <= value < limit:
        raise InvalidMessage(f"{name} must be an int in [0, {limit}), got {value!r}")


def require_wei(name: str, value: object) -> None:
    require_uint(name, value, UINT256_LIMIT)


def require_timestamp(name: str, value: object) -> None:
    require_uint(name, value, TIMESTAMP_LIMIT)


def require_bool(name: str, value: object) -> None:
    if type(value) is not bool:
        raise InvalidMessage(f"{name} must be a bool, got {value!r}")


def require_text(name: str, value: object, pattern: re.Pattern[str]) -> None:
    if type(value) is not str or pattern.fullmatch(value) is None:
        raise InvalidMessage(f"{name} must match {pattern.pattern!r}, got {value!r}")


def require_bytes(name: str, value: object, length: int | None = None) -> None:
    """Bytes, of exactly `length` if given."""
    if type(value) is not bytes:
        raise InvalidMessage(f"{name} must be bytes, got {type(value).__name__}")
    if length is not None and len(value) != length:
        raise InvalidMessage(f"{name} must be {length} bytes, got {value!r}")


def require_chars(name: str, value: object, limit: int) -> None:
    """Free text (a reason, a module name as asked): 1..`limit` characters of anything."""
    if type(value) is not str or not 0 < len(value) <= limit:
        raise InvalidMessage(f"{name} must be 1..{limit} chars, got {value!r}")


def require_chain_id(name: str, value: object) -> None:
    """A settlement chain's EIP-155 ID: 1..MAX_CHAIN_ID (the deal's EIP-712 domain binds it)."""
    if type(value) is not int or not 1 <= value <= MAX_CHAIN_ID:
        raise InvalidMessage(f"{name} must be a chain ID in [1, {MAX_CHAIN_ID}], got {value!r}")


@functools.lru_cache(maxsize=_CHECKSUM_CACHE_SIZE)
def checksum_address(raw: bytes) -> str:
    """EIP-55 form of a 20-byte address."""
    return to_checksum_address(raw)


def require_address(name: str, value: object) -> None:
    if (
        type(value) is not str
        or ADDRESS_TEXT.fullmatch(value) is None
        or checksum_address(bytes.fromhex(value[2:])) != value
    ):
        raise InvalidMessage(f"{name} must be an EIP-55 checksummed address, got {value!r}")


def require_tuple(
    name: str,
    values: object,
    max_items: int,
    check_item: Callable[[str, object], None],
    *,
    sort_key: Callable[[Any], SupportsRichComparison] | None,
) -> None:
    """A tuple of at most `max_items` valid, distinct items; sorted by `sort_key` if given.

    Sets travel sorted so that one set has one encoding (and one CID).
    """
    if type(values) is not tuple:
        raise InvalidMessage(f"{name} must be a tuple, got {type(values).__name__}")
    if len(values) > max_items:
        raise InvalidMessage(f"{name} has {len(values)} items, at most {max_items} allowed")
    for index, item in enumerate(values):
        check_item(f"{name}[{index}]", item)
    if len(set(values)) != len(values):
        raise InvalidMessage(f"{name} has duplicate items")
    if sort_key is not None and list(values) != sorted(values, key=sort_key):
        raise InvalidMessage(f"{name} must be sorted (sets travel sorted)")


def require_lifetime(created_at: int, expires_at: int) -> None:
    require_timestamp("created_at", created_at)
    require_timestamp("expires_at", expires_at)
    if not created_at < expires_at <= created_at + MAX_LIFETIME_MS:
        raise InvalidMessage(
            f"expires_at must be after created_at and at most {MAX_LIFETIME_MS} ms later "
            f"(created_at={created_at}, expires_at={expires_at})"
        )


def address_sort_key(address: str) -> str:
    """Sorting key of addresses: their wire bytes, i.e. the lower-case hex."""
    return address.lower()


# --- wire conversions (from_wire raises MalformedMessage) ----------------------------------


@dataclass(frozen=True, slots=True)
class WireField:
    """How one field travels: `to_wire(value)` and `from_wire(raw, name)`."""

    to_wire: Callable[[Any], object]
    from_wire: Callable[[object, str], Any]


def _same(value: object) -> object:
    return value


def _same_from_wire(raw: object, name: str) -> object:
    return raw


def address_to_wire(address: str) -> bytes:
    return bytes.fromhex(address[2:])


def _address_from_wire(raw: object, name: str) -> str:
    if type(raw) is not bytes or len(raw) != ADDRESS_BYTES:
        raise MalformedMessage(f"{name} must be a {ADDRESS_BYTES}-byte address")
    return checksum_address(raw)


def _wei_to_wire(amount: int) -> object:
    return amount if amount < UINT64_LIMIT else amount.to_bytes(BIG_UINT_BYTES, "big")


def _wei_from_wire(raw: object, name: str) -> object:
    if type(raw) is bytes:
        if len(raw) != BIG_UINT_BYTES:
            raise MalformedMessage(f"{name}: a large amount must be {BIG_UINT_BYTES} bytes")
        amount = int.from_bytes(raw, "big")
        if amount < UINT64_LIMIT:
            raise MalformedMessage(f"{name}: amounts below 2**64 must travel as msgpack ints")
        return amount
    return raw


PLAIN = WireField(to_wire=_same, from_wire=_same_from_wire)
ADDRESS = WireField(to_wire=address_to_wire, from_wire=_address_from_wire)
WEI = WireField(to_wire=_wei_to_wire, from_wire=_wei_from_wire)


def optional(inner: WireField) -> WireField:
    def to_wire(value: object) -> object:
        return None if value is None else inner.to_wire(value)

    def from_wire(raw: object, name: str) -> object:
        return None if raw is None else inner.from_wire(raw, name)

    return WireField(to_wire=to_wire, from_wire=from_wire)


def sequence(inner: WireField) -> WireField:
    """A Python tuple travelling as a msgpack array."""

    def to_wire(values: tuple[Any, ...]) -> list[object]:
        return [inner.to_wire(value) for value in values]

    def from_wire(raw: object, name: str) -> tuple[Any, ...]:
        if type(raw) is not list:
            raise MalformedMessage(f"{name} must be an array")
        return tuple(inner.from_wire(item, f"{name}[{index}]") for index, item in enumerate(raw))

    return WireField(to_wire=to_wire, from_wire=from_wire)


def expect_map(raw: object, what: str) -> dict[str, object]:
    if type(raw) is not dict:
        raise MalformedMessage(f"{what} must be a map")
    return raw


def expect_exact_keys(fields: dict[str, object], expected: frozenset[str], what: str) -> None:
    if fields.keys() != expected:
        missing = sorted(expected - fields.keys())
        unknown = sorted(repr(key) for key in fields.keys() - expected)  # keys may be non-str
        raise MalformedMessage(f"{what}: missing fields {missing}, unknown fields {unknown}")
