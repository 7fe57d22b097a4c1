"""Canonical msgpack: exactly one byte string per value, so IDs and signatures are stable.

Rules (a decoder refuses anything else, see `decode`):

- Values are `None`, `bool`, `int`, `str` (UTF-8), `bytes`, lists and maps. No floats, no ext
  types, no msgpack timestamps.
- Map keys are `str`, unique, sorted by code point (equal to sorting their UTF-8 bytes).
- Every value uses msgpack's shortest form (what msgpack-python's packer emits with
  `use_bin_type=True`): fixint/fixstr/fixarray/fixmap where they fit, else the smallest width.
- Integers in [-2**63, 2**64) are msgpack integers. Integers in [2**64, 2**256) (wei amounts
  can be that large) are encoded as a 32-byte big-endian `bin`. The generic decoder cannot tell
  such a `bin` from other bytes, so it returns `bytes`; the message schema knows which fields
  are amounts and turns the 32-byte form back into an `int`. An amount below 2**64 in the
  32-byte form is non-canonical and the schema refuses it.

The decoder checks canonicality by re-encoding what it decoded and comparing bytes: one rule,
no room for a decoder and an encoder that disagree. What it decoded needs none of `encode`'s
preparation when it is canonical (its maps arrive in wire order, its integers fit 64 bits), so
the decoder checks the types, depth and key order in place and packs the value as it stands:
the same verdicts, without building a sorted copy of every message every node receives.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import msgpack

from lilypad_p2p.wire._constants import MAX_MESSAGE_BYTES, MAX_NESTING_DEPTH
from lilypad_p2p.wire._errors import (
    MalformedMessage,
    NonCanonicalEncoding,
    OversizedMessage,
    UnencodableValue,
    WireError,
)

INT64_MIN = -(1 << 63)
UINT64_LIMIT = 1 << 64
UINT256_LIMIT = 1 << 256
BIG_UINT_BYTES = 32


def encode(obj: object) -> bytes:
    """Encode `obj` canonically.

    Raises:
        UnencodableValue: `obj` holds a float, a non-str map key, an integer outside
            [-2**63, 2**256), an unsupported type, or nests deeper than `MAX_NESTING_DEPTH`.
    """
    prepared = _prepare(obj, 0)
    try:
        packed: bytes = msgpack.packb(prepared, use_bin_type=True)
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. a str with lone surrogates
        raise UnencodableValue(f"msgpack cannot encode the value: {exc}") from exc
    return packed


def _prepare(obj: object, depth: int) -> object:
    """A copy of `obj` that msgpack packs canonically: sorted maps, big ints as bin.

    Dispatches on the exact type first (the hot path for our own dataclasses' output), then on
    subclasses such as IntEnum/StrEnum.
    """
    if depth > MAX_NESTING_DEPTH:
        raise UnencodableValue(f"nested deeper than {MAX_NESTING_DEPTH} levels")
    kind = type(obj)
    if kind is str or kind is bytes or kind is bool or obj is None:
        return obj
    if isinstance(obj, int):  # bool returned above; IntEnum and other subclasses land here
        if INT64_MIN <= obj < UINT64_LIMIT:
            return int(obj)
        if UINT64_LIMIT <= obj < UINT256_LIMIT:
            return obj.to_bytes(BIG_UINT_BYTES, "big")
        raise UnencodableValue(f"integer {obj} is outside [-2**63, 2**256)")
    if kind is dict and isinstance(obj, dict):
        for key in obj:
            if type(key) is not str:
                raise UnencodableValue(f"map key {key!r} is not a str")
        return {key: _prepare(obj[key], depth + 1) for key in sorted(obj)}
    if (kind is list or kind is tuple) and isinstance(obj, list | tuple):
        return [_prepare(item, depth + 1) for item in obj]
    if isinstance(obj, str | bytes):
        return obj
    raise UnencodableValue(f"{kind.__name__} has no canonical encoding")


def _refuse_ext(code: int, data: bytes) -> object:
    raise MalformedMessage(f"msgpack ext type {code} is not allowed")


def decode(data: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> object:
    """Decode one canonical msgpack value.

    Raises:
        OversizedMessage: `data` is longer than `max_bytes` (checked before parsing).
        NonCanonicalEncoding: valid msgpack, but not the canonical encoding of its value.
        MalformedMessage: anything else wrong: not bytes, truncated, trailing bytes, invalid
            UTF-8, floats, ext types, non-str map keys, nesting deeper than `MAX_NESTING_DEPTH`.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedMessage(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:  # before copying a memoryview into bytes
        raise OversizedMessage(f"{len(data)} bytes exceeds the {max_bytes}-byte limit")
    data = bytes(data)
    try:
        obj = msgpack.unpackb(
            data, raw=False, strict_map_key=True, use_list=True, ext_hook=_refuse_ext
        )
    except WireError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise MalformedMessage(f"not msgpack: {exc}") from exc
    if not _keys_in_order(obj, 0) or msgpack.packb(obj, use_bin_type=True) != data:
        raise NonCanonicalEncoding("msgpack value is not in canonical form")
    return obj


_DECODED_SCALARS = frozenset({str, bytes, bool, int, type(None)})


def _keys_in_order(obj: object, depth: int) -> bool:
    """Whether every map in the decoded `obj` lists its keys sorted; raises `MalformedMessage`
    where `encode` would refuse the value (with the same words), so `decode` keeps its verdicts.

    msgpack decodes only None, bool, int (within 64 bits), float, str, bytes, lists and maps
    with str or bytes keys, so floats, bytes keys and depth are all there is to refuse.
    """
    if depth > MAX_NESTING_DEPTH:
        raise MalformedMessage(f"nested deeper than {MAX_NESTING_DEPTH} levels")
    kind = type(obj)
    if kind in _DECODED_SCALARS:
        return True
    in_order = True
    items: Iterable[object]
    if kind is dict:
        mapping = cast(dict[object, object], obj)
        keys = list(mapping)
        for key in keys:
            if type(key) is not str:
                raise MalformedMessage(f"map key {key!r} is not a str")
        ordered = sorted(cast(list[str], keys))
        in_order = keys == ordered
        # In `encode`'s order, so that the first fault found is the one it would name.
        items = mapping.values() if in_order else [mapping[key] for key in ordered]
    elif kind is list:
        items = cast(list[object], obj)
    else:
        raise MalformedMessage(f"{kind.__name__} has no canonical encoding")
    for item in items:
        if type(item) in _DECODED_SCALARS and depth < MAX_NESTING_DEPTH:
            continue
        in_order = _keys_in_order(item, depth + 1) and in_order
    return in_order
