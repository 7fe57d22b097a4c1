"""Messages of the deal stream protocols (`net/_streams.py`): requests and their answers.

These travel over an authenticated libp2p stream (Noise binds the stream to the peer's key,
hence to its address), so they are not wrapped in signed envelopes; what must convince a third
party (the contract) carries its own EIP-712 signature. Each message is a frozen slotted
dataclass validated on construction; `deal_message_from_wire` (`_stream_messages.py`) builds
one from decoded msgpack or raises `MalformedMessage`, never anything else.

    /lilypad/deal/2    DealProposal     -> DealAccepted | DealRefused
    /lilypad/job/4     JobRequest -> [SendInputs, inputs ->] JobResultMessage + output | refused
    /lilypad/result/1  AcceptanceNotice -> AcceptanceAck
    /lilypad/mediation/3  MediationRequest -> [SendInputs, inputs ->] VerdictNotice | refused
                       (`_mediation_messages.py`)
"""

from __future__ import annotations

from dataclasses import Field, dataclass, fields
from typing import Any, ClassVar

from lilypad_p2p.wire._chunks import PREAMBLE_BYTES
from lilypad_p2p.wire._commitment import INPUTS_NONCE_BYTES
from lilypad_p2p.wire._errors import InvalidMessage, MalformedMessage
from lilypad_p2p.wire._fields import require_bytes, require_chain_id, require_chars, require_uint

DEAL_MESSAGE_VERSION = 1
SIGNATURE_BYTES = 65
HASH_BYTES = 32
SEALING_KEY_BYTES = 32
MAX_REASON_CHARS = 512
MAX_STREAM_BYTES = 2**63 - 1


def require_size(name: str, value: object) -> None:
    """A stream's length in bytes."""
    require_uint(name, value, MAX_STREAM_BYTES + 1)


# Field names of the EIP-712 `Deal` (chain/_typed.py) as a wire map. wire/ stays free of web3,
# so the map is checked for shape here and turned into a `chain.Deal` by the roles
# (`roles/_terms.py`), whose constructor checks every value.
DEAL_FIELDS = frozenset({
    "job_creator", "provider", "payment", "collateral", "mediation_fee", "mediators",
    "threshold", "result_deadline", "acceptance_window", "mediation_window", "job_spec_hash",
    "module_hash", "salt",
})


def require_deal_map(value: object) -> None:
    if type(value) is not dict:
        raise InvalidMessage("deal must be a map")
    if set(value) != DEAL_FIELDS:
        raise InvalidMessage(f"deal must have exactly {sorted(DEAL_FIELDS)}")


class _DealMessage:
    """The base of every stream message: checked on construction by its `_check`.

    A stream message is built from a peer's fields (`deal_message_from_wire`), so a defect is
    the sender's: `InvalidMessage` from the field checks becomes `MalformedMessage`, a
    `PeerMisbehaved`.
    """

    __slots__ = ()
    TYPE: ClassVar[str]
    # Every deal message is a dataclass; declared so that `fields(self)` type-checks.
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    def __post_init__(self) -> None:
        try:
            self._check()
        except InvalidMessage as exc:
            raise MalformedMessage(str(exc)) from exc

    def _check(self) -> None:
        raise NotImplementedError

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

    def _check(self) -> None:
        require_chain_id("chain_id", self.chain_id)
        require_bytes("job_offer", self.job_offer)
        require_chars("resource_offer_cid", self.resource_offer_cid, 128)
        require_deal_map(self.deal)
        require_bytes("job_creator_signature", self.job_creator_signature, SIGNATURE_BYTES)


@dataclass(frozen=True, slots=True)
class DealAccepted(_DealMessage):
    """Provider -> job creator: the provider signed the deal and holds room for it. Its
    signature stays with it: the provider opens the deal on chain itself once it holds the
    inputs, so a job creator can never lock its collateral for a job it gave it nothing to
    run."""

    TYPE: ClassVar[str] = "deal_accepted"

    def _check(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class DealRefused(_DealMessage):
    """Any refusal on any of the three protocols; `reason` is for humans and logs."""

    TYPE: ClassVar[str] = "refused"
    reason: str

    def _check(self) -> None:
        require_chars("reason", self.reason, MAX_REASON_CHARS)


@dataclass(frozen=True, slots=True)
class DealWithInputs(_DealMessage):
    """The deal on `chain_id` to run `module` on, and the inputs' stream that follows.

    The inputs come as a sealed chunk stream (`wire/_chunks.py`) of `inputs_bytes` bytes whose
    preamble this carries, once the receiver answers `SendInputs`. `inputs_nonce` opens the job
    offer's `inputs_commitment` (`wire/_commitment.py`): the receiver runs only inputs whose
    plaintext it matches.
    """

    chain_id: int
    deal: dict[str, object]
    module: str
    inputs_preamble: bytes
    inputs_bytes: int
    inputs_nonce: bytes

    def _check(self) -> None:
        require_chain_id("chain_id", self.chain_id)
        require_deal_map(self.deal)
        require_chars("module", self.module, 128)
        require_bytes("inputs_preamble", self.inputs_preamble, PREAMBLE_BYTES)
        require_size("inputs_bytes", self.inputs_bytes)
        require_bytes("inputs_nonce", self.inputs_nonce, INPUTS_NONCE_BYTES)


@dataclass(frozen=True, slots=True)
class JobRequest(DealWithInputs):
    """Job creator -> provider: run the open deal on inputs of `inputs_bytes` bytes.

    The inputs follow as a sealed chunk stream (`wire/_chunks.py`) whose preamble this carries,
    once the provider answers `SendInputs`. `output_recipient` is the job creator's X25519
    key: outputs are sealed to it. Sending the same request again (after a crash on either
    side) returns the same result. `chain_id` names the deal's chain (its deal ID is computed
    in that chain's domain).
    """

    TYPE: ClassVar[str] = "job_request"
    output_recipient: bytes

    def _check(self) -> None:
        # Not super(): a slotted dataclass is a new class, which zero-argument super() misses.
        DealWithInputs._check(self)
        require_bytes("output_recipient", self.output_recipient, SEALING_KEY_BYTES)


@dataclass(frozen=True, slots=True)
class SendInputs(_DealMessage):
    """Provider -> job creator: the deal is open and the inputs are wanted; stream them now."""

    TYPE: ClassVar[str] = "send_inputs"
    deal_id: bytes

    def _check(self) -> None:
        require_bytes("deal_id", self.deal_id, HASH_BYTES)


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

    def _check(self) -> None:
        require_bytes("deal_id", self.deal_id, HASH_BYTES)
        require_bytes("result_hash", self.result_hash, HASH_BYTES)
        require_bytes("provider_signature", self.provider_signature, SIGNATURE_BYTES)
        require_bytes("output_preamble", self.output_preamble, PREAMBLE_BYTES)
        require_size("output_bytes", self.output_bytes)


@dataclass(frozen=True, slots=True)
class AcceptanceNotice(_DealMessage):
    """Job creator -> provider: the signed Acceptance of `result_hash` for the deal on
    `chain_id` (checked in that chain's domain)."""

    TYPE: ClassVar[str] = "acceptance"
    chain_id: int
    deal_id: bytes
    result_hash: bytes
    job_creator_signature: bytes

    def _check(self) -> None:
        require_chain_id("chain_id", self.chain_id)
        require_bytes("deal_id", self.deal_id, HASH_BYTES)
        require_bytes("result_hash", self.result_hash, HASH_BYTES)
        require_bytes("job_creator_signature", self.job_creator_signature, SIGNATURE_BYTES)


@dataclass(frozen=True, slots=True)
class AcceptanceAck(_DealMessage):
    TYPE: ClassVar[str] = "acceptance_ack"
    deal_id: bytes

    def _check(self) -> None:
        require_bytes("deal_id", self.deal_id, HASH_BYTES)
