"""Messages of the deal stream protocols (`net/_streams.py`): requests and their answers.

These travel over an authenticated libp2p stream (Noise binds the stream to the peer's key,
hence to its address), so they are not wrapped in signed envelopes; what must convince a third
party (the contract) carries its own EIP-712 signature. Each message is a frozen slotted
dataclass validated on construction; `deal_message_from_wire` builds one from decoded msgpack
or raises `MalformedMessage`, never anything else.

    /lilypad/deal/1    DealProposal     -> DealCountersigned | DealRefused
    /lilypad/job/2     JobRequest -> [SendInputs, inputs ->] JobResultMessage + output | refused
    /lilypad/result/1  AcceptanceNotice -> AcceptanceAck
    /lilypad/mediation/2  MediationRequest -> [SendInputs, inputs ->] VerdictNotice | refused
                       (`_mediation_messages.py`)
"""

from __future__ import annotations

from dataclasses import Field, dataclass, fields
from typing import Any, ClassVar

from lilypad_p2p.wire._chunks import PREAMBLE_BYTES
from lilypad_p2p.wire._constants import MAX_CHAIN_ID
from lilypad_p2p.wire._errors import MalformedMessage

DEAL_MESSAGE_VERSION = 1
SIGNATURE_BYTES = 65
HASH_BYTES = 32
SEALING_KEY_BYTES = 32
MAX_REASON_CHARS = 512
MAX_STREAM_BYTES = 2**63 - 1


def _need(condition: bool, message: str) -> None:
    if not condition:
        raise MalformedMessage(message)


def _need_bytes(name: str, value: object, length: int | None = None) -> None:
    _need(type(value) is bytes, f"{name} must be bytes")
    assert isinstance(value, bytes)
    _need(length is None or len(value) == length, f"{name} must be {length} bytes")


def _need_chain_id(value: object) -> None:
    _need(type(value) is int and 1 <= value <= MAX_CHAIN_ID,
          f"chain_id must be an int in [1, {MAX_CHAIN_ID}]")


def _need_size(name: str, value: object) -> None:
    _need(isinstance(value, int) and not isinstance(value, bool)
          and 0 <= value <= MAX_STREAM_BYTES,
          f"{name} must be an int in [0, 2^63)")


def _need_text(name: str, value: object, limit: int) -> None:
    _need(type(value) is str and 0 < len(value) <= limit, f"{name} must be 1..{limit} chars")


# Field names of the EIP-712 `Deal` (chain/_typed.py) as a wire map. wire/ stays free of web3,
# so the map is checked for shape here and turned into a `chain.Deal` by the roles
# (`roles/_terms.py`), whose constructor checks every value.
DEAL_FIELDS = frozenset({
    "job_creator", "provider", "payment", "collateral", "mediation_fee", "mediators",
    "threshold", "result_deadline", "acceptance_window", "mediation_window", "job_spec_hash",
    "module_hash", "salt",
})


def _need_deal_map(value: object) -> None:
    _need(type(value) is dict, "deal must be a map")
    assert isinstance(value, dict)
    _need(set(value) == DEAL_FIELDS, f"deal must have exactly {sorted(DEAL_FIELDS)}")


class _DealMessage:
    __slots__ = ()
    TYPE: ClassVar[str]
    # Every deal message is a dataclass; declared so that `fields(self)` type-checks.
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    def to_wire(self) -> dict[str, object]:
        wire: dict[str, object] = {"type": self.TYPE, "v": DEAL_MESSAGE_VERSION}
        for f in fields(self):
            wire[f.name] = getattr(self, f.name)
        return wire


@dataclass(frozen=True, slots=True)
class DealProposal(_DealMessage):
    """Job creator -> provider: the deal, signed by the job creator, and where it came from.

    `job_offer` is the job creator's signed envelope of its JobOffer (bytes), so the provider
    can check the deal against what was offered; `resource_offer_cid` names the provider's own
    offer the deal takes. `chain_id` names the settlement chain whose EIP-712 domain the
    signature is under (the job offer's): a deal is only ever checked in that domain, so a
    signature made for one chain is refused on another.
    """

    TYPE: ClassVar[str] = "deal_proposal"
    chain_id: int
    job_offer: bytes
    resource_offer_cid: str
    deal: dict[str, object]
    job_creator_signature: bytes

    def __post_init__(self) -> None:
        _need_chain_id(self.chain_id)
        _need_bytes("job_offer", self.job_offer)
        _need_text("resource_offer_cid", self.resource_offer_cid, 128)
        _need_deal_map(self.deal)
        _need_bytes("job_creator_signature", self.job_creator_signature, SIGNATURE_BYTES)


@dataclass(frozen=True, slots=True)
class DealCountersigned(_DealMessage):
    TYPE: ClassVar[str] = "deal_countersigned"
    provider_signature: bytes

    def __post_init__(self) -> None:
        _need_bytes("provider_signature", self.provider_signature, SIGNATURE_BYTES)


@dataclass(frozen=True, slots=True)
class DealRefused(_DealMessage):
    """Any refusal on any of the three protocols; `reason` is for humans and logs."""

    TYPE: ClassVar[str] = "refused"
    reason: str

    def __post_init__(self) -> None:
        _need_text("reason", self.reason, MAX_REASON_CHARS)


@dataclass(frozen=True, slots=True)
class JobRequest(_DealMessage):
    """Job creator -> provider: run the open deal on inputs of `inputs_bytes` bytes.

    The inputs follow as a sealed chunk stream (`wire/_chunks.py`) whose preamble this carries,
    once the provider answers `SendInputs`. `output_recipient` is the job creator's X25519
    key: outputs are sealed to it. Sending the same request again (after a crash on either
    side) returns the same result. `chain_id` names the deal's chain (its deal ID is computed
    in that chain's domain).
    """

    TYPE: ClassVar[str] = "job_request"
    chain_id: int
    deal: dict[str, object]
    module: str
    inputs_preamble: bytes
    inputs_bytes: int
    output_recipient: bytes

    def __post_init__(self) -> None:
        _need_chain_id(self.chain_id)
        _need_deal_map(self.deal)
        _need_text("module", self.module, 128)
        _need_bytes("inputs_preamble", self.inputs_preamble, PREAMBLE_BYTES)
        _need_size("inputs_bytes", self.inputs_bytes)
        _need_bytes("output_recipient", self.output_recipient, SEALING_KEY_BYTES)


@dataclass(frozen=True, slots=True)
class SendInputs(_DealMessage):
    """Provider -> job creator: the deal is open and the inputs are wanted; stream them now."""

    TYPE: ClassVar[str] = "send_inputs"
    deal_id: bytes

    def __post_init__(self) -> None:
        _need_bytes("deal_id", self.deal_id, HASH_BYTES)


@dataclass(frozen=True, slots=True)
class JobResultMessage(_DealMessage):
    """Provider -> job creator: the signed ResultCommitment; the output tarball of
    `output_bytes` bytes follows as a sealed chunk stream whose preamble this carries."""

    TYPE: ClassVar[str] = "job_result"
    deal_id: bytes
    result_hash: bytes
    provider_signature: bytes
    output_preamble: bytes
    output_bytes: int

    def __post_init__(self) -> None:
        _need_bytes("deal_id", self.deal_id, HASH_BYTES)
        _need_bytes("result_hash", self.result_hash, HASH_BYTES)
        _need_bytes("provider_signature", self.provider_signature, SIGNATURE_BYTES)
        _need_bytes("output_preamble", self.output_preamble, PREAMBLE_BYTES)
        _need_size("output_bytes", self.output_bytes)


@dataclass(frozen=True, slots=True)
class AcceptanceNotice(_DealMessage):
    """Job creator -> provider: the signed Acceptance of `result_hash` for the deal on
    `chain_id` (checked in that chain's domain)."""

    TYPE: ClassVar[str] = "acceptance"
    chain_id: int
    deal_id: bytes
    result_hash: bytes
    job_creator_signature: bytes

    def __post_init__(self) -> None:
        _need_chain_id(self.chain_id)
        _need_bytes("deal_id", self.deal_id, HASH_BYTES)
        _need_bytes("result_hash", self.result_hash, HASH_BYTES)
        _need_bytes("job_creator_signature", self.job_creator_signature, SIGNATURE_BYTES)


@dataclass(frozen=True, slots=True)
class AcceptanceAck(_DealMessage):
    TYPE: ClassVar[str] = "acceptance_ack"
    deal_id: bytes

    def __post_init__(self) -> None:
        _need_bytes("deal_id", self.deal_id, HASH_BYTES)


# The mediation protocol's messages share this framing and the helpers above.
from lilypad_p2p.wire._mediation_messages import MediationRequest, VerdictNotice  # noqa: E402
from lilypad_p2p.wire._module_messages import ModuleDefinition, ModuleRequest  # noqa: E402

DealMessage = (
    DealProposal | DealCountersigned | DealRefused | JobRequest | SendInputs | JobResultMessage
    | AcceptanceNotice | AcceptanceAck | MediationRequest | VerdictNotice | ModuleRequest
    | ModuleDefinition
)
DEAL_MESSAGE_TYPES: dict[str, type[DealMessage]] = {
    cls.TYPE: cls
    for cls in (DealProposal, DealCountersigned, DealRefused, JobRequest, SendInputs,
                JobResultMessage, AcceptanceNotice, AcceptanceAck, MediationRequest, VerdictNotice,
                ModuleRequest, ModuleDefinition)
}


def deal_message_from_wire(raw: object) -> DealMessage:
    """Build the message `raw["type"]` names; any defect raises `MalformedMessage`."""
    _need(type(raw) is dict, "a deal message must be a map")
    assert isinstance(raw, dict)
    _need(raw.get("v") == DEAL_MESSAGE_VERSION, f"deal message version {raw.get('v')!r}")
    kind = raw.get("type")
    cls = DEAL_MESSAGE_TYPES.get(kind) if type(kind) is str else None
    _need(cls is not None, f"unknown deal message type {raw.get('type')!r}")
    assert cls is not None
    names = {f.name for f in fields(cls)}
    _need(set(raw) == names | {"type", "v"}, f"{cls.TYPE}: fields must be {sorted(names)}")
    values = {name: raw[name] for name in names}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise MalformedMessage(f"{cls.TYPE}: {exc}") from exc
