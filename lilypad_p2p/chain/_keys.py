"""The settlement contract's key-safety calls: a payout address the hot key cannot redirect
quickly, and moving an account to a new key.

The node key is hot; `withdraw` pays only to the account's payout address (a cold wallet).
Changing a set payout address is announced and lands after `payoutChangeDelay()` (twice the
withdrawal notice); the current payout address can cancel it. `rotateKey` moves the free
balance and payout record to a new key that consented by signing `KeyRotation(from, to)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from lilypad_p2p.chain._backend import TxReceipt
from lilypad_p2p.chain._client import SettlementClient
from lilypad_p2p.chain._typed import sign_typed

KEY_ROTATION_TYPE = "KeyRotation(address from,address to)"


@dataclass(frozen=True, slots=True)
class KeyRotation:
    """The new key's consent to take over `from_address`'s account (EIP-712)."""

    TYPE_STRING: ClassVar[str] = KEY_ROTATION_TYPE
    from_address: str
    to_address: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "from_address", to_checksum_address(self.from_address))
        object.__setattr__(self, "to_address", to_checksum_address(self.to_address))

    def struct_hash(self) -> bytes:
        return keccak(abi_encode(["bytes32", "address", "address"],
                                 [keccak(text=KEY_ROTATION_TYPE), self.from_address,
                                  self.to_address]))


@dataclass(frozen=True, slots=True)
class PayoutState:
    """Where an account's withdrawals go now, and any announced change.

    `payout` is the address `withdraw` pays (the account itself if none was named);
    `configured` is None when none was named; `pending`/`pending_ready_at` describe an announced
    change (None/0 when there is none).
    """

    account: str
    payout: str
    configured: str | None
    pending: str | None
    pending_ready_at: int
    change_delay_s: int
    successor: str | None


def payout_state(client: SettlementClient, account: str | None = None) -> PayoutState:
    who = to_checksum_address(account or client._require_account().address)
    configured = client._view("payoutAddress", who)
    pending, ready_at = client._view("payoutChanges", who)
    successor = client._view("successorOf", who)
    return PayoutState(
        account=who,
        payout=to_checksum_address(client._view("payoutOf", who)),
        configured=None if int(configured, 16) == 0 else to_checksum_address(configured),
        pending=None if int(ready_at) == 0 else to_checksum_address(pending),
        pending_ready_at=int(ready_at),
        change_delay_s=int(client._view("payoutChangeDelay")),
        successor=None if int(successor, 16) == 0 else to_checksum_address(successor),
    )


def holds_code(client: SettlementClient, address: str) -> bool:
    """Whether `address` holds contract code on `client`'s chain (a multisig, a token, the
    settlement contract itself): ETH paid there moves only as that code allows."""
    chain = client.chain
    return bool(chain.rpc(lambda: chain.w3.eth.get_code(to_checksum_address(address))))


def set_payout_address(client: SettlementClient, payout: str) -> TxReceipt:
    """Name (first time: at once) or announce a change of (after the delay) the payout address."""
    return client.send("setPayoutAddress", to_checksum_address(payout))


def cancel_payout_change(client: SettlementClient, account: str) -> TxReceipt:
    """Cancel `account`'s pending payout change; `client` must act as its current payout address."""
    return client.send("cancelPayoutChange", to_checksum_address(account))


def sign_key_rotation(client: SettlementClient, from_address: str, new_key: LocalAccount) -> bytes:
    """The new key's signature consenting to take over `from_address`'s account."""
    return sign_typed(KeyRotation(from_address, new_key.address), client.domain, new_key)


def rotate_key(client: SettlementClient, new_key: LocalAccount) -> TxReceipt:
    """Move `client`'s account (free balance, payout record) to `new_key`."""
    old = client._require_account().address
    return client.send("rotateKey", new_key.address, sign_key_rotation(client, old, new_key))


def sweep_rotated(client: SettlementClient, from_address: str) -> TxReceipt:
    """Move what was credited to a rotated-away address since to its successor."""
    return client.send("sweepRotated", to_checksum_address(from_address))


__all__ = [
    "KEY_ROTATION_TYPE",
    "KeyRotation",
    "PayoutState",
    "cancel_payout_change",
    "holds_code",
    "payout_state",
    "rotate_key",
    "set_payout_address",
    "sign_key_rotation",
    "sweep_rotated",
]
