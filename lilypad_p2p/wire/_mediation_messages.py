"""Messages of the mediation transfer protocol `/lilypad/mediation/3`.

    MediationRequest -> SendInputs, the inputs' sealed chunks
                     -> VerdictNotice | VerdictWithOutput + the output's sealed chunks | DealRefused

The disputing job creator asks each mediator of the deal's consortium directly: the request
carries the deal, its job offer, the provider's signed ResultCommitment and the size, preamble
and nonce of the job's input stream re-sealed to that mediator's X25519 key; the mediator checks
the deal before it asks for the chunks (`SendInputs`, as a provider does on `/lilypad/job/4`),
runs them only if they are the ones the job offer committed to, and answers with its
EIP-712-signed Verdict. A stream and not
gossip: inputs are per mediator (sealed to each one), the asker is the party that will call
`resolve` and needs the signatures, and a verdict travelling on a public topic would let anyone
race to resolve with it (harmless, but it costs the network gossip for nothing). A verdict
stands alone (its EIP-712 signature names the deal), so whoever holds k of them can resolve; a
provider defending a dispute gathers its own (`roles/_provider_disputes.py`).
Like the deal messages these ride an authenticated stream, and what convinces the contract
carries its own EIP-712 signature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lilypad_p2p.wire._chunks import PREAMBLE_BYTES
from lilypad_p2p.wire._deal_messages import (
    HASH_BYTES,
    SEALING_KEY_BYTES,
    SIGNATURE_BYTES,
    DealWithInputs,
    _DealMessage,
    require_size,
)
from lilypad_p2p.wire._errors import InvalidMessage
from lilypad_p2p.wire._fields import require_bytes

OUTCOMES = (1, 2, 3)  # the contract's Outcome: provider correct, provider wrong, non-deterministic
PROVIDER_CORRECT = OUTCOMES[0]


@dataclass(frozen=True, slots=True)
class MediationRequest(DealWithInputs):
    """Job creator -> mediator: re-run this disputed deal and sign a verdict.

    The job's input stream, re-sealed to the mediator's key under `MEDIATION_CONTEXT` || deal ID,
    follows once the mediator asks (`inputs_preamble`, `inputs_bytes`, `inputs_nonce` as in
    `JobRequest`); `job_offer` is the job creator's signed envelope of the JobOffer whose hash is
    the deal's `jobSpecHash`, whose `inputs_commitment` the inputs must open. `result_hash` and
    `provider_signature` are the provider's ResultCommitment (recorded on chain before the
    dispute, so the mediator checks it there too). `chain_id` is the deal's chain: the mediator
    reads and signs in that chain's domain, and refuses a chain it does not serve.
    `output_recipient` is empty, or the X25519 key of a job creator the provider never delivered
    to: a mediator whose runs reproduce the recorded result then answers `VerdictWithOutput`.
    """

    TYPE: ClassVar[str] = "mediation_request"
    job_offer: bytes
    result_hash: bytes
    provider_signature: bytes
    output_recipient: bytes

    def _check(self) -> None:
        DealWithInputs._check(self)  # as in JobRequest._check
        require_bytes("job_offer", self.job_offer)
        require_bytes("output_recipient", self.output_recipient)
        if len(self.output_recipient) not in (0, SEALING_KEY_BYTES):
            raise InvalidMessage(f"output_recipient must be empty or {SEALING_KEY_BYTES} bytes")
        require_bytes("result_hash", self.result_hash, HASH_BYTES)
        require_bytes("provider_signature", self.provider_signature, SIGNATURE_BYTES)


# A MediationRequest's `provider_signature` from a job creator that never received the result
# the provider recorded on chain: the record stands for the signature the contract checked.
NO_COMMITMENT = bytes(SIGNATURE_BYTES)


@dataclass(frozen=True, slots=True)
class VerdictNotice(_DealMessage):
    """A mediator's signed Verdict for `deal_id`: (outcome, result hash, EIP-712 signature)."""

    TYPE: ClassVar[str] = "verdict"
    deal_id: bytes
    outcome: int
    result_hash: bytes
    mediator_signature: bytes

    def _check(self) -> None:
        require_bytes("deal_id", self.deal_id, HASH_BYTES)
        if type(self.outcome) is not int or self.outcome not in OUTCOMES:
            raise InvalidMessage(f"outcome must be one of {OUTCOMES}")
        require_bytes("result_hash", self.result_hash, HASH_BYTES)
        require_bytes("mediator_signature", self.mediator_signature, SIGNATURE_BYTES)


@dataclass(frozen=True, slots=True)
class VerdictWithOutput(VerdictNotice):
    """A verdict upholding the recorded result, and the output tarball the mediator's runs
    produced (it hashes to `result_hash`): `output_bytes` bytes follow as a sealed chunk stream
    to the request's `output_recipient`, as a provider's `job_result` does. Sent only to a job
    creator that asked for it, so that one whose provider withheld a correct result still gets
    what it pays for."""

    TYPE: ClassVar[str] = "verdict_output"
    output_preamble: bytes
    output_bytes: int

    def _check(self) -> None:
        VerdictNotice._check(self)  # as in JobRequest._check
        if self.outcome != PROVIDER_CORRECT:
            raise InvalidMessage(f"a verdict with the output upholds the result: outcome "
                                 f"{PROVIDER_CORRECT}")
        require_bytes("output_preamble", self.output_preamble, PREAMBLE_BYTES)
        require_size("output_bytes", self.output_bytes)
