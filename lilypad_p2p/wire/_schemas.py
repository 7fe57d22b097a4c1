"""Message schemas: what travels in a signed envelope.

Each message is a frozen slotted dataclass that validates itself on construction, so an invalid
message cannot exist. All fields are keyword-only. Every message has `v` (schema version) and
`type`, and travels as a map whose keys are exactly its field names: unknown, missing or
ill-typed fields make `from_wire` raise `MalformedMessage`.

Conventions:
- Addresses are EIP-55 strings in Python and 20-byte `bin` on the wire.
- Amounts are integer wei (`*_wei`), timestamps integer milliseconds (`*_at`, `deadline`).
- Sets (roles, markets, modules, mediators, matches) are tuples sorted by their wire form,
  without duplicates; the constructor refuses unsorted ones instead of sorting them, so a
  decoded message re-encodes to exactly the bytes that were signed.
- `cid` is the CIDv1 of the canonical bytes of the message (the unsigned body).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field, fields
from typing import ClassVar, Self

from lilypad_p2p.wire._codec import encode
from lilypad_p2p.wire._commitment import INPUTS_COMMITMENT_BYTES
from lilypad_p2p.wire._constants import MAX_CHAINS
from lilypad_p2p.wire._errors import (
    BadSignature,
    InvalidMessage,
    MalformedMessage,
    UnsupportedVersion,
)
from lilypad_p2p.wire._fields import (
    ADDRESS,
    IMAGE_REF,
    MARKET_NAME,
    MODULE_ID,
    NONCE_LIMIT,
    PLAIN,
    PPM,
    WEI,
    WireField,
    address_sort_key,
    expect_exact_keys,
    expect_map,
    optional,
    require_address,
    require_bool,
    require_bytes,
    require_chain_id,
    require_lifetime,
    require_text,
    require_timestamp,
    require_tuple,
    require_uint,
    require_wei,
    sequence,
)
from lilypad_p2p.wire._handover import HANDOVER_SIGNATURE_BYTES, verify_handover
from lilypad_p2p.wire._ids import address_from_peer_id_text, content_id, is_content_id

SCHEMA_VERSION = 1
ROLES = ("client", "mediator", "provider", "relay", "solver")
SEALING_KEY_BYTES = 32
MAX_MARKETS = 16
MAX_LISTEN_ADDRS = 16
MAX_MODULES = 64
MAX_TRUSTED_MEDIATORS = 32
MAX_MATCHES = 256
MAX_EPOCH = 1 << 53
LISTEN_ADDR = re.compile(r"/[\x21-\x7e]{1,255}")

# Resource limits per dimension: generous for one machine, small enough to add without overflow.
MAX_MILLI_CPU = 1 << 24
MAX_RAM_MB = 1 << 28
MAX_DISK_MB = 1 << 32
MAX_GPU_COUNT = 1 << 8
MAX_GPU_VRAM_MB = 1 << 24


def _wire(codec: WireField = PLAIN) -> dict[str, WireField]:
    return {"wire": codec}


@functools.cache
def _wire_fields(cls: type) -> tuple[tuple[str, WireField], ...]:
    return tuple((f.name, f.metadata["wire"]) for f in fields(cls) if "wire" in f.metadata)


@functools.cache
def _wire_keys(cls: type) -> frozenset[str]:
    return frozenset(name for name, _ in _wire_fields(cls))


def _require_market(name: str, value: object) -> None:
    require_text(name, value, MARKET_NAME)


def _require_module(name: str, value: object) -> None:
    require_text(name, value, MODULE_ID)


def _require_cid(name: str, value: object) -> None:
    if not is_content_id(value):
        raise InvalidMessage(f"{name} must be a CIDv1 (raw, sha2-256, base32), got {value!r}")


def _require_role(name: str, value: object) -> None:
    if value not in ROLES or type(value) is not str:
        raise InvalidMessage(f"{name} must be one of {ROLES}, got {value!r}")


def _require_listen_addr(name: str, value: object) -> None:
    require_text(name, value, LISTEN_ADDR)


def _require_match(name: str, value: object) -> None:
    if type(value) is not tuple or len(value) != 2:
        raise InvalidMessage(f"{name} must be a (job_offer_cid, resource_offer_cid) pair")
    _require_cid(f"{name}.job_offer_cid", value[0])
    _require_cid(f"{name}.resource_offer_cid", value[1])


def _require_trusted_mediators(value: object) -> None:
    """The mediators an offer accepts: a set of addresses, as both kinds of offer carry it."""
    require_tuple(
        "trusted_mediators", value, MAX_TRUSTED_MEDIATORS, require_address,
        sort_key=address_sort_key,
    )


def _require_version(v: object) -> None:
    if v != SCHEMA_VERSION or type(v) is not int:
        raise InvalidMessage(f"v must be {SCHEMA_VERSION}, got {v!r}")


class _Schema:
    """Wire behaviour shared by every message (and by `ResourceSpec`, which has no v/type)."""

    __slots__ = ()

    def to_wire(self) -> dict[str, object]:
        # As plain `type`: mypy does not count `type[Self]` as Hashable (functools.cache's key).
        schema: type = type(self)
        wire_fields = _wire_fields(schema)
        return {name: codec.to_wire(getattr(self, name)) for name, codec in wire_fields}

    @classmethod
    def from_wire(cls, raw: object) -> Self:
        """Build from the decoded wire map; any defect raises `MalformedMessage`."""
        what = cls.__name__
        schema: type = cls  # as in to_wire
        wire = expect_map(raw, what)
        expect_exact_keys(wire, _wire_keys(schema), what)
        if "v" in wire and (type(wire["v"]) is not int or wire["v"] != SCHEMA_VERSION):
            raise UnsupportedVersion(f"{what} version {wire['v']!r} (this node speaks 1)")
        if "type" in wire and wire["type"] != getattr(cls, "TYPE", None):
            raise MalformedMessage(f"{what}: type is {wire['type']!r}")
        kwargs = {
            name: codec.from_wire(wire[name], f"{what}.{name}")
            for name, codec in _wire_fields(schema)
            if name != "type"  # not an __init__ argument: fixed per class
        }
        try:
            return cls(**kwargs)
        except InvalidMessage as exc:
            raise MalformedMessage(f"{what}: {exc}") from exc


class _Message(_Schema):
    """A top-level message: has `v`, `type`, an owner, canonical bytes and a CID."""

    __slots__ = ()
    TYPE: ClassVar[str]
    # The field naming the address that must sign the envelope carrying this message.
    OWNER_FIELD: ClassVar[str]
    # Fields every message dataclass declares (annotations only: no slot, no dataclass field).
    v: int
    nonce: int
    _canonical: bytes

    def _check_nonce_and_version(self) -> None:
        """Called last by every message's `__post_init__`."""
        require_uint("nonce", self.nonce, NONCE_LIMIT)
        _require_version(self.v)

    @property
    def canonical_bytes(self) -> bytes:
        """The canonical encoding of this (unsigned) message, encoded on first use."""
        canonical = self._canonical
        if not canonical:
            canonical = encode(self.to_wire())
            object.__setattr__(self, "_canonical", canonical)
        return canonical

    def _received_as(self, canonical: bytes) -> None:
        """Take `canonical`, the bytes this message was decoded from, as its encoding: a
        received message is not encoded again (`SignedEnvelope._received_as` says why they are
        the same bytes)."""
        object.__setattr__(self, "_canonical", canonical)

    @property
    def cid(self) -> str:
        """CIDv1 of `canonical_bytes`: the message's ID (an offer's ID is its body's CID)."""
        return content_id(self.canonical_bytes)

    @property
    def owner_address(self) -> str:
        """The address that must have signed an envelope carrying this message."""
        owner: str = getattr(self, self.OWNER_FIELD)
        return owner


def _cache_field() -> bytes:
    return field(default=b"", init=False, repr=False, compare=False)


def _type_field(type_name: str) -> str:
    return field(default=type_name, init=False, metadata=_wire())


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourceSpec(_Schema):
    """Resources a provider offers for one job, or a job needs. VRAM is per GPU."""

    milli_cpu: int = field(metadata=_wire())
    ram_mb: int = field(metadata=_wire())
    disk_mb: int = field(metadata=_wire())
    gpu_count: int = field(default=0, metadata=_wire())
    gpu_vram_mb: int = field(default=0, metadata=_wire())

    def __post_init__(self) -> None:
        require_uint("milli_cpu", self.milli_cpu, MAX_MILLI_CPU)
        require_uint("ram_mb", self.ram_mb, MAX_RAM_MB)
        require_uint("disk_mb", self.disk_mb, MAX_DISK_MB)
        require_uint("gpu_count", self.gpu_count, MAX_GPU_COUNT)
        require_uint("gpu_vram_mb", self.gpu_vram_mb, MAX_GPU_VRAM_MB)
        if self.gpu_count == 0 and self.gpu_vram_mb != 0:
            raise InvalidMessage("gpu_vram_mb must be 0 when gpu_count is 0")


def _spec_from_wire(raw: object, name: str) -> ResourceSpec:
    return ResourceSpec.from_wire(raw)


SPEC = WireField(to_wire=ResourceSpec.to_wire, from_wire=_spec_from_wire)


def _require_spec(value: object) -> None:
    if type(value) is not ResourceSpec:
        raise InvalidMessage("spec must be a ResourceSpec")


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeRecord(_Message):
    """A node introducing itself on the nodes topic: who it is and how to reach it.

    `peer_id` must hold the same secp256k1 key as `address`. `mediator_available` is a claim
    only: whoever relies on it checks the mediator's registration on chain.
    """

    TYPE: ClassVar[str] = "node_record"
    OWNER_FIELD: ClassVar[str] = "address"

    v: int = field(default=SCHEMA_VERSION, metadata=_wire())
    type: str = _type_field(TYPE)
    address: str = field(metadata=_wire(ADDRESS))
    peer_id: str = field(metadata=_wire())
    roles: tuple[str, ...] = field(metadata=_wire(sequence(PLAIN)))
    sealing_public_key: bytes = field(metadata=_wire())
    markets: tuple[str, ...] = field(metadata=_wire(sequence(PLAIN)))
    mediator_available: bool = field(default=False, metadata=_wire())
    listen_addrs: tuple[str, ...] = field(metadata=_wire(sequence(PLAIN)))
    # After a key rotation: the retired address and its signature naming this one (`_handover`).
    predecessor: str | None = field(default=None, metadata=_wire(optional(ADDRESS)))
    predecessor_signature: bytes = field(default=b"", metadata=_wire())
    created_at: int = field(metadata=_wire())
    expires_at: int = field(metadata=_wire())
    nonce: int = field(metadata=_wire())
    _canonical: bytes = _cache_field()

    def __post_init__(self) -> None:
        require_address("address", self.address)
        if self.predecessor is None:
            require_bytes("predecessor_signature", self.predecessor_signature, 0)
        else:
            require_address("predecessor", self.predecessor)
            if self.predecessor == self.address:
                raise InvalidMessage("predecessor must be another address than the node's own")
            require_bytes(
                "predecessor_signature", self.predecessor_signature, HANDOVER_SIGNATURE_BYTES
            )
            try:
                verify_handover(self.predecessor, self.address, self.predecessor_signature)
            except BadSignature as exc:
                raise InvalidMessage(f"predecessor_signature: {exc}") from exc
        if type(self.peer_id) is not str:
            raise InvalidMessage(f"peer_id must be a str, got {self.peer_id!r}")
        try:
            peer_address = address_from_peer_id_text(self.peer_id)
        except ValueError as exc:
            raise InvalidMessage(f"peer_id: {exc}") from exc
        if peer_address != self.address:
            raise InvalidMessage("peer_id and address come from different keys")
        require_tuple("roles", self.roles, len(ROLES), _require_role, sort_key=str)
        require_bytes("sealing_public_key", self.sealing_public_key, SEALING_KEY_BYTES)
        require_tuple("markets", self.markets, MAX_MARKETS, _require_market, sort_key=str)
        require_bool("mediator_available", self.mediator_available)
        # Listen addresses keep the owner's order (preference), so they are not sorted.
        require_tuple(
            "listen_addrs", self.listen_addrs, MAX_LISTEN_ADDRS, _require_listen_addr, sort_key=None
        )
        require_lifetime(self.created_at, self.expires_at)
        self._check_nonce_and_version()


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourceOffer(_Message):
    """A provider offers `spec` at a fixed price per job.

    `spec` is capacity for jobs running at once: several jobs may be matched to one offer when
    their specs sum to at most it (per-GPU VRAM is per job, not summed).

    `collateral_wei` is what the provider locks per deal; `modules` are the module IDs it runs,
    and its policy rules (`market/_module_policy.py`: `digest:sha256:...`, `repo:PREFIX`,
    `any` or `any/CPU/RAM/DISK/GPUS`);
    `chain_ids` are the settlement chains it takes deals on (it has a deposit on each): money
    stays on each deal's own chain, while the market (topic) is shared by every chain.
    """

    TYPE: ClassVar[str] = "resource_offer"
    OWNER_FIELD: ClassVar[str] = "provider"

    v: int = field(default=SCHEMA_VERSION, metadata=_wire())
    type: str = _type_field(TYPE)
    market: str = field(metadata=_wire())
    provider: str = field(metadata=_wire(ADDRESS))
    spec: ResourceSpec = field(metadata=_wire(SPEC))
    modules: tuple[str, ...] = field(metadata=_wire(sequence(PLAIN)))
    price_per_job_wei: int = field(metadata=_wire(WEI))
    collateral_wei: int = field(metadata=_wire(WEI))
    trusted_mediators: tuple[str, ...] = field(metadata=_wire(sequence(ADDRESS)))
    chain_ids: tuple[int, ...] = field(metadata=_wire(sequence(PLAIN)))
    created_at: int = field(metadata=_wire())
    expires_at: int = field(metadata=_wire())
    nonce: int = field(metadata=_wire())
    _canonical: bytes = _cache_field()

    def __post_init__(self) -> None:
        _require_market("market", self.market)
        require_address("provider", self.provider)
        _require_spec(self.spec)
        require_tuple("modules", self.modules, MAX_MODULES, _require_module, sort_key=str)
        require_wei("price_per_job_wei", self.price_per_job_wei)
        require_wei("collateral_wei", self.collateral_wei)
        _require_trusted_mediators(self.trusted_mediators)
        require_tuple("chain_ids", self.chain_ids, MAX_CHAINS, require_chain_id, sort_key=int)
        if not self.chain_ids:
            raise InvalidMessage("chain_ids must name at least one chain")
        require_lifetime(self.created_at, self.expires_at)
        self._check_nonce_and_version()


@dataclass(frozen=True, slots=True, kw_only=True)
class JobOffer(_Message):
    """A job creator wants `module` run on at least `spec`, for at most `max_price_wei`.

    The result is due by `deadline`; the offer is open until `expires_at` (<= deadline). A
    `target_provider` skips the solvers. `chain_id` is the settlement chain the job pays on
    (only offers whose `chain_ids` include it match). `check_rate_ppm` is the share of jobs
    (parts per million) the job creator sends to mediation as spot checks: only offers whose
    collateral covers price / rate match, so cheating does not pay. `records_block` > 0 asks
    solvers to read providers' track records as of that block of `chain_id` (0: records do
    not count): only providers with at least `min_completed_deals` completed deals and no slash
    within `slash_free_blocks` blocks of it match, and records break ties between equal offers
    (DESIGN.md §5). Inputs are not here: they travel sealed to the matched provider over a stream.
    `inputs_commitment` binds them to every deal of this offer (its hash is the deal's
    `jobSpecHash`): sha256(inputs nonce || the plaintext input stream), the nonce sent with the
    inputs (`JobRequest`, `MediationRequest`), so the provider and each mediator run only the
    inputs committed to, and the public offer does not reveal small inputs.
    """

    TYPE: ClassVar[str] = "job_offer"
    OWNER_FIELD: ClassVar[str] = "job_creator"

    v: int = field(default=SCHEMA_VERSION, metadata=_wire())
    type: str = _type_field(TYPE)
    market: str = field(metadata=_wire())
    job_creator: str = field(metadata=_wire(ADDRESS))
    module: str = field(metadata=_wire())
    image: str = field(default="", metadata=_wire())
    spec: ResourceSpec = field(metadata=_wire(SPEC))
    max_price_wei: int = field(metadata=_wire(WEI))
    trusted_mediators: tuple[str, ...] = field(metadata=_wire(sequence(ADDRESS)))
    deadline: int = field(metadata=_wire())
    target_provider: str | None = field(default=None, metadata=_wire(optional(ADDRESS)))
    chain_id: int = field(metadata=_wire())
    check_rate_ppm: int = field(default=0, metadata=_wire())
    records_block: int = field(default=0, metadata=_wire())
    min_completed_deals: int = field(default=0, metadata=_wire())
    slash_free_blocks: int = field(default=0, metadata=_wire())
    inputs_commitment: bytes = field(metadata=_wire())
    created_at: int = field(metadata=_wire())
    expires_at: int = field(metadata=_wire())
    nonce: int = field(metadata=_wire())
    _canonical: bytes = _cache_field()

    def __post_init__(self) -> None:
        _require_market("market", self.market)
        require_address("job_creator", self.job_creator)
        _require_module("module", self.module)
        if self.image != "":
            require_text("image", self.image, IMAGE_REF)
        _require_spec(self.spec)
        require_wei("max_price_wei", self.max_price_wei)
        _require_trusted_mediators(self.trusted_mediators)
        require_timestamp("deadline", self.deadline)
        if self.target_provider is not None:
            require_address("target_provider", self.target_provider)
        require_chain_id("chain_id", self.chain_id)
        require_uint("check_rate_ppm", self.check_rate_ppm, PPM + 1)
        require_uint("records_block", self.records_block, NONCE_LIMIT)
        require_uint("min_completed_deals", self.min_completed_deals, NONCE_LIMIT)
        require_uint("slash_free_blocks", self.slash_free_blocks, NONCE_LIMIT)
        require_bytes("inputs_commitment", self.inputs_commitment, INPUTS_COMMITMENT_BYTES)
        if (self.min_completed_deals or self.slash_free_blocks) and not self.records_block:
            raise InvalidMessage("a record requirement needs records_block: the block of "
                                 "chain_id the records are read at")
        require_lifetime(self.created_at, self.expires_at)
        if self.expires_at > self.deadline:
            raise InvalidMessage("expires_at must not be after deadline")
        self._check_nonce_and_version()


def matching_content_id(market: str, epoch: int, matches: tuple[tuple[str, str], ...]) -> str:
    """The solver-independent ID of a matching: CIDv1 over (market, epoch, sorted matches).

    Two solvers that computed the same matching for the same epoch publish proposals with
    different bodies (each names its own solver) but the same matching ID; clients treat such
    proposals as one. `matches` must be sorted, as in a `MatchProposal`.
    """
    body = {"type": "matching", "market": market, "epoch": epoch, "matches": matches}
    return content_id(encode(body))


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchProposal(_Message):
    """A solver's matching for one epoch: (job offer CID, resource offer CID) pairs.

    Pairs are sorted and each job offer appears at most once; a resource offer may serve several
    jobs (the provider refuses what exceeds its capacity). `matching_id` is derived, not sent:
    it identifies the matching whichever solver proposed it (see `matching_content_id`).
    """

    TYPE: ClassVar[str] = "match_proposal"
    OWNER_FIELD: ClassVar[str] = "solver"

    v: int = field(default=SCHEMA_VERSION, metadata=_wire())
    type: str = _type_field(TYPE)
    market: str = field(metadata=_wire())
    epoch: int = field(metadata=_wire())
    solver: str = field(metadata=_wire(ADDRESS))
    matches: tuple[tuple[str, str], ...] = field(metadata=_wire(sequence(sequence(PLAIN))))
    created_at: int = field(metadata=_wire())
    expires_at: int = field(metadata=_wire())
    nonce: int = field(metadata=_wire())
    _canonical: bytes = _cache_field()

    def __post_init__(self) -> None:
        _require_market("market", self.market)
        require_uint("epoch", self.epoch, MAX_EPOCH)
        require_address("solver", self.solver)
        require_tuple("matches", self.matches, MAX_MATCHES, _require_match, sort_key=tuple)
        if not self.matches:
            raise InvalidMessage("matches must not be empty")
        jobs = [job for job, _ in self.matches]
        if len(set(jobs)) != len(jobs):
            raise InvalidMessage("a job offer appears in more than one match")
        require_lifetime(self.created_at, self.expires_at)
        self._check_nonce_and_version()

    @property
    def matching_id(self) -> str:
        """CID of (market, epoch, matches): equal across solvers proposing the same matching."""
        return matching_content_id(self.market, self.epoch, self.matches)


@dataclass(frozen=True, slots=True, kw_only=True)
class Cancel(_Message):
    """Withdraws the offer `offer_cid`; only counts when `owner` is that offer's owner."""

    TYPE: ClassVar[str] = "cancel"
    OWNER_FIELD: ClassVar[str] = "owner"

    v: int = field(default=SCHEMA_VERSION, metadata=_wire())
    type: str = _type_field(TYPE)
    market: str = field(metadata=_wire())
    offer_cid: str = field(metadata=_wire())
    owner: str = field(metadata=_wire(ADDRESS))
    created_at: int = field(metadata=_wire())
    nonce: int = field(metadata=_wire())
    _canonical: bytes = _cache_field()

    def __post_init__(self) -> None:
        _require_market("market", self.market)
        _require_cid("offer_cid", self.offer_cid)
        require_address("owner", self.owner)
        require_timestamp("created_at", self.created_at)
        self._check_nonce_and_version()


Message = NodeRecord | ResourceOffer | JobOffer | MatchProposal | Cancel
Offer = ResourceOffer | JobOffer
MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.TYPE: cls for cls in (NodeRecord, ResourceOffer, JobOffer, MatchProposal, Cancel)
}


def message_from_wire(raw: object) -> Message:
    """Build whichever message `raw["type"]` names; any defect raises `MalformedMessage`."""
    wire = expect_map(raw, "message")
    type_name = wire.get("type")
    cls = MESSAGE_TYPES.get(type_name) if type(type_name) is str else None
    if cls is None:
        raise MalformedMessage(f"unknown message type {type_name!r}")
    return cls.from_wire(wire)
