"""The commitment a job offer makes to its inputs (`JobOffer.inputs_commitment`).

    inputs_commitment = sha256(inputs nonce || the plaintext input stream)

The job creator draws the nonce, commits in the offer, and sends the nonce beside the inputs
(`JobRequest`, `MediationRequest`); the receiver hashes the plaintext as the chunks open. Since
the offer's hash is every deal's `jobSpecHash`, the inputs a provider or mediator runs are bound
to the deal both parties signed: streaming a mediator other inputs gets a refusal, not a
verdict. The nonce keeps the public offer from revealing small inputs (a guessable prompt).
"""

from __future__ import annotations

import hashlib
import secrets

from lilypad_p2p.wire._fields import require_bytes

INPUTS_NONCE_BYTES = 32
INPUTS_COMMITMENT_BYTES = 32


def new_inputs_nonce() -> bytes:
    return secrets.token_bytes(INPUTS_NONCE_BYTES)


class InputsCommitment:
    """The commitment of one input stream, fed its plaintext piece by piece."""

    __slots__ = ("_hash",)

    def __init__(self, nonce: bytes) -> None:
        require_bytes("inputs_nonce", nonce, INPUTS_NONCE_BYTES)
        self._hash = hashlib.sha256(nonce)

    def update(self, plaintext: bytes) -> None:
        self._hash.update(plaintext)

    def digest(self) -> bytes:
        return self._hash.digest()
