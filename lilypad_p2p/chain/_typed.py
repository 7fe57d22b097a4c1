"""EIP-712 structs the settlement contract checks: build, hash, sign, recover.

These frozen dataclasses are also what nodes send each other (deals are co-signed over a
stream; mediators exchange `Verdict` signatures). Hashing is implemented here, word for word as
the contract does it, and cross-checked against eth-account's generic EIP-712 encoder in the unit
tests; signing goes through eth-account over that digest. Pure: no I/O, no web3.
"""

from __future__ import annotations

import enum
import functools
import itertools
from dataclasses import dataclass
from typing import ClassVar, Protocol

from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_keys import KeyAPI
from eth_typing import Hash32
from eth_utils import is_address, keccak, to_checksum_address

from lilypad_p2p.chain._errors import SignatureInvalid

DOMAIN_NAME = "LilypadSettlement"
DOMAIN_VERSION = "1"
MAX_MEDIATORS = 32
SIGNATURE_LENGTH = 65
# secp256k1n / 2: a larger s is the malleable twin of a valid low-s signature.
HALF_CURVE_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0
_UINT64_MAX = 2**64 - 1
_UINT128_MAX = 2**128 - 1
# ABI types of the contract's DealTerms struct, in EIP-712 field order.
_TERMS_TYPES = ("address", "address", "uint128", "uint128", "uint128", "bytes32", "uint8",
                "uint64", "uint64", "uint64", "bytes32")

DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
JOB_TYPE = "Job(bytes32 jobSpecHash,bytes32 moduleHash,bytes32 salt)"
DEAL_TYPE = (
    "Deal(address jobCreator,address provider,uint128 payment,uint128 collateral,"
    "uint128 mediationFee,address[] mediators,uint8 threshold,uint64 resultDeadline,"
    "uint64 acceptanceWindow,uint64 mediationWindow,Job job)"
)
ACCEPTANCE_TYPE = "Acceptance(bytes32 dealId,bytes32 resultHash)"
RESULT_COMMITMENT_TYPE = "ResultCommitment(bytes32 dealId,bytes32 resultHash)"
VERDICT_TYPE = "Verdict(bytes32 dealId,uint8 outcome,bytes32 resultHash)"


def default_threshold(mediator_count: int) -> int:
    """The default k for n mediators: floor(2n/3) + 1, capped at n (so n = 1..3 means all)."""
    if not 1 <= mediator_count <= MAX_MEDIATORS:
        raise ValueError(f"mediator count must be 1..{MAX_MEDIATORS}, got {mediator_count}")
    return min(mediator_count, 2 * mediator_count // 3 + 1)


# Validating and checksumming an address costs keccaks, and the same few addresses recur in
# every deal a node reads (a provider's tick re-reads each open deal: 10 % of its CPU at 50
# nodes before this cache).
_ADDRESS_CACHE_SIZE = 8192


@functools.lru_cache(maxsize=_ADDRESS_CACHE_SIZE)
def _checksummed(value: str) -> str | None:
    return to_checksum_address(value) if is_address(value) else None


# A deal's ID is four keccaks over its ABI encoding (0.3 ms), and each role asks for the IDs of
# the deals it holds on every step: a provider's tick, each chain read and each message.
_DEAL_ID_CACHE_SIZE = 4096


@functools.lru_cache(maxsize=_DEAL_ID_CACHE_SIZE)
def _deal_id(deal: Deal, domain: Domain) -> bytes:
    return domain.digest(deal.struct_hash())


def _checksum(value: str, what: str) -> str:
    checksummed = _checksummed(value) if isinstance(value, str) else None
    if checksummed is None:
        raise ValueError(f"{what}: {value!r} is not an address")
    return checksummed


def _bytes32(value: bytes, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != 32:
        raise ValueError(f"{what}: expected 32 bytes, got {value!r}")


def _uint(value: int, maximum: int, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise ValueError(f"{what}: {value!r} is not an integer in 0..{maximum}")


class Outcome(enum.IntEnum):
    """A mediation verdict, numbered as the contract's `Outcome` enum."""

    PROVIDER_CORRECT = 1
    PROVIDER_WRONG = 2
    NON_DETERMINISTIC = 3


@dataclass(frozen=True, slots=True)
class Domain:
    """The settlement contract's EIP-712 domain: binds every signature to a chain and contract."""

    chain_id: int
    verifying_contract: str

    def __post_init__(self) -> None:
        _uint(self.chain_id, 2**256 - 1, "chain_id")
        object.__setattr__(
            self, "verifying_contract", _checksum(self.verifying_contract, "verifying_contract")
        )

    @property
    def separator(self) -> bytes:
        return keccak(
            abi_encode(
                ["bytes32", "bytes32", "bytes32", "uint256", "address"],
                [
                    keccak(text=DOMAIN_TYPE),
                    keccak(text=DOMAIN_NAME),
                    keccak(text=DOMAIN_VERSION),
                    self.chain_id,
                    self.verifying_contract,
                ],
            )
        )

    def as_typed_data(self) -> dict[str, object]:
        return {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }

    def digest(self, struct_hash: bytes) -> bytes:
        """The EIP-712 digest `keccak256(0x1901 || separator || structHash)`."""
        return keccak(b"\x19\x01" + self.separator + struct_hash)


class TypedStruct(Protocol):
    """What `sign_typed`/`recover_typed` need from a struct."""

    def struct_hash(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Deal:
    """A deal both parties sign; its EIP-712 digest under the contract's domain is the dealId.

    Amounts are wei. `result_deadline` is absolute unix seconds; `acceptance_window` runs from the
    moment a result is recorded on chain, `mediation_window` from the dispute (seconds).
    `mediators` must be strictly ascending (as 160-bit numbers) and exclude both parties.
    In EIP-712 the last three fields form a nested `Job` struct (so calldata carries one hash
    for them); here they are flat.
    """

    job_creator: str
    provider: str
    payment: int
    collateral: int
    mediation_fee: int
    mediators: tuple[str, ...]
    threshold: int
    result_deadline: int
    acceptance_window: int
    mediation_window: int
    job_spec_hash: bytes
    module_hash: bytes
    salt: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "job_creator", _checksum(self.job_creator, "job_creator"))
        object.__setattr__(self, "provider", _checksum(self.provider, "provider"))
        for name in ("payment", "collateral", "mediation_fee"):
            _uint(getattr(self, name), _UINT128_MAX, name)
        for name in ("result_deadline", "acceptance_window", "mediation_window"):
            _uint(getattr(self, name), _UINT64_MAX, name)
        for name in ("job_spec_hash", "module_hash", "salt"):
            _bytes32(getattr(self, name), name)
        if not isinstance(self.mediators, tuple):
            raise ValueError("mediators: expected a tuple of addresses")
        mediators = tuple(_checksum(m, "mediator") for m in self.mediators)
        object.__setattr__(self, "mediators", mediators)
        if not 1 <= len(mediators) <= MAX_MEDIATORS:
            raise ValueError(f"mediators: need 1..{MAX_MEDIATORS}, got {len(mediators)}")
        numbers = [int(m, 16) for m in mediators]
        if any(a >= b for a, b in itertools.pairwise(numbers)):
            raise ValueError("mediators: must be strictly ascending (sort them as numbers)")
        if self.job_creator in mediators or self.provider in mediators:
            raise ValueError("mediators: a party to the deal cannot mediate it")
        _uint(self.threshold, len(mediators), "threshold")
        if self.threshold == 0:
            raise ValueError("threshold: must be at least 1")

    @property
    def mediators_hash(self) -> bytes:
        """EIP-712 encoding of `address[] mediators`: keccak256 of the 32-byte-padded addresses."""
        return keccak(b"".join(abi_encode(["address"], [m]) for m in self.mediators))

    @property
    def job_hash(self) -> bytes:
        """hashStruct of the nested EIP-712 `Job`."""
        return keccak(
            abi_encode(["bytes32", "bytes32", "bytes32", "bytes32"],
                       [keccak(text=JOB_TYPE), self.job_spec_hash, self.module_hash, self.salt])
        )

    def struct_hash(self) -> bytes:
        return keccak(
            abi_encode(["bytes32", *_TERMS_TYPES],
                       [keccak(text=DEAL_TYPE + JOB_TYPE), *self.terms_abi()])
        )

    def deal_id(self, domain: Domain) -> bytes:
        return _deal_id(self, domain)

    @property
    def job_creator_locks(self) -> int:
        """What opening the deal moves from the job creator's free to its locked balance."""
        return self.payment + self.mediation_fee

    def terms_abi(self) -> tuple[object, ...]:
        """The contract's `DealTerms` calldata struct: this deal with the mediators hashed."""
        return (
            self.job_creator, self.provider, self.payment, self.collateral, self.mediation_fee,
            self.mediators_hash, self.threshold, self.result_deadline, self.acceptance_window,
            self.mediation_window, self.job_hash,
        )

    def as_typed_data(self) -> dict[str, object]:
        return {
            "jobCreator": self.job_creator, "provider": self.provider, "payment": self.payment,
            "collateral": self.collateral, "mediationFee": self.mediation_fee,
            "mediators": list(self.mediators), "threshold": self.threshold,
            "resultDeadline": self.result_deadline, "acceptanceWindow": self.acceptance_window,
            "mediationWindow": self.mediation_window,
            "job": {"jobSpecHash": self.job_spec_hash, "moduleHash": self.module_hash,
                    "salt": self.salt},
        }


@dataclass(frozen=True, slots=True)
class _ResultAttestation:
    """A party's signed word on a deal's result hash; subclasses differ only in type string."""

    TYPE_STRING: ClassVar[str]
    deal_id: bytes
    result_hash: bytes

    def __post_init__(self) -> None:
        _bytes32(self.deal_id, "deal_id")
        _bytes32(self.result_hash, "result_hash")

    def struct_hash(self) -> bytes:
        return keccak(
            abi_encode(["bytes32", "bytes32", "bytes32"],
                       [keccak(text=self.TYPE_STRING), self.deal_id, self.result_hash])
        )

    def as_typed_data(self) -> dict[str, object]:
        return {"dealId": self.deal_id, "resultHash": self.result_hash}


@dataclass(frozen=True, slots=True)
class Acceptance(_ResultAttestation):
    """The job creator accepts `result_hash` for the deal: settles it, paying the provider."""

    TYPE_STRING: ClassVar[str] = ACCEPTANCE_TYPE


@dataclass(frozen=True, slots=True)
class ResultCommitment(_ResultAttestation):
    """The provider commits to `result_hash` (CID digest of the output tarball) for the deal."""

    TYPE_STRING: ClassVar[str] = RESULT_COMMITMENT_TYPE


@dataclass(frozen=True, slots=True)
class Verdict:
    """A mediator's verdict; `result_hash` is the hash the mediator computed itself.

    The contract requires it to equal the provider's recorded hash for PROVIDER_CORRECT and to
    differ for PROVIDER_WRONG.
    """

    deal_id: bytes
    outcome: Outcome
    result_hash: bytes

    def __post_init__(self) -> None:
        _bytes32(self.deal_id, "deal_id")
        _bytes32(self.result_hash, "result_hash")
        object.__setattr__(self, "outcome", Outcome(self.outcome))

    def struct_hash(self) -> bytes:
        return keccak(
            abi_encode(["bytes32", "bytes32", "uint8", "bytes32"],
                       [keccak(text=VERDICT_TYPE), self.deal_id, int(self.outcome),
                        self.result_hash])
        )

    def as_typed_data(self) -> dict[str, object]:
        return {"dealId": self.deal_id, "outcome": int(self.outcome),
                "resultHash": self.result_hash}


def typed_data_types(primary: str) -> dict[str, list[dict[str, str]]]:
    """The EIP-712 `types` table for `primary` and the structs it uses (without EIP712Domain),
    e.g. for a wallet's eth_signTypedData_v4."""
    strings = {
        "Deal": (DEAL_TYPE, JOB_TYPE),
        "Acceptance": (ACCEPTANCE_TYPE,),
        "ResultCommitment": (RESULT_COMMITMENT_TYPE,),
        "Verdict": (VERDICT_TYPE,),
    }[primary]
    table: dict[str, list[dict[str, str]]] = {}
    for type_string in strings:
        name, fields = type_string[:-1].split("(", 1)
        table[name] = [
            {"type": f.split(" ")[0], "name": f.split(" ")[1]} for f in fields.split(",")
        ]
    return table


def sign_typed(struct: TypedStruct, domain: Domain, account: LocalAccount) -> bytes:
    """Sign the EIP-712 digest of `struct` under `domain`: 65 bytes r || s || v (v = 27/28)."""
    digest = domain.digest(struct.struct_hash())
    # The digest is an EIP-712 typed-data hash built above, never bytes a peer chose.
    signed = account.unsafe_sign_hash(Hash32(digest))
    return bytes(signed.signature)


def recover_typed(struct: TypedStruct, domain: Domain, signature: bytes) -> str:
    """The checksum address that signed `struct` under `domain`.

    Applies the contract's rules (65 bytes, v in {27, 28}, low s), so a signature accepted here
    is accepted on chain. Raises SignatureInvalid otherwise.
    """
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_LENGTH:
        raise SignatureInvalid("signature must be 65 bytes (r, s, v)")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    if s > HALF_CURVE_ORDER:
        raise SignatureInvalid("high-s signature (malleable)")
    if v not in (27, 28):
        raise SignatureInvalid(f"v must be 27 or 28, got {v}")
    try:
        public_key = KeyAPI.Signature(vrs=(v - 27, r, s)).recover_public_key_from_msg_hash(
            domain.digest(struct.struct_hash())
        )
    except Exception as exc:  # eth_keys raises BadSignature/ValidationError for off-curve r, s
        raise SignatureInvalid(f"signature does not recover: {exc}") from exc
    return public_key.to_checksum_address()


def require_signer(struct: TypedStruct, domain: Domain, signature: bytes, expected: str) -> None:
    """Raise SignatureInvalid unless `expected` signed `struct` under `domain`."""
    signer = recover_typed(struct, domain, signature)
    if signer != to_checksum_address(expected):
        raise SignatureInvalid(f"signed by {signer}, expected {to_checksum_address(expected)}")
