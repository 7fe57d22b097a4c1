"""The chain package's error subtree, and the map from contract reverts to it.

Every custom error of the settlement contract maps to one class here, whichever backend raised
it (py-evm and JSON-RPC nodes report reverts differently; `_client` extracts the revert data and
calls `revert_error`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from lilypad_p2p.errors import LilypadError, PeerMisbehaved


class ChainError(LilypadError):
    """Root of the chain package's errors."""


class RpcUnavailable(ChainError):
    """The chain node did not answer, even after retries with backoff."""


class SignatureInvalid(ChainError, PeerMisbehaved):
    """A typed-data signature is malformed, malleable (high s) or from the wrong signer."""


class SenderUnfunded(ChainError):
    """The sending account has too little ETH for a transaction's gas and value."""


class ContractRevert(ChainError):
    """The settlement contract refused a call; `error` is its custom error's name.

    Its message says in words what went wrong and what to do where `_WORDS` knows the error,
    and keeps the raw form (name and arguments) for logs and searches.
    """

    def __init__(self, error: str, args: Mapping[str, object] | None = None) -> None:
        self.error = error
        self.error_args = dict(args or {})
        detail = ", ".join(f"{k}={_show(v)}" for k, v in self.error_args.items())
        words = _WORDS.get(error)
        raw = f"{error}({detail})"
        super().__init__(raw if words is None else f"{words(self.error_args)} ({raw})")


class AlreadySettled(ContractRevert):
    """The deal already reached a final state; nothing was (or will be) paid twice."""


class DealAlreadyOpened(ContractRevert):
    """This signed deal was opened before; a deal opens once."""


class DealNotOpen(ContractRevert):
    """No deal with this dealId exists on this contract."""


class WrongDealStatus(ContractRevert):
    """The deal is in a status where this call does not apply."""


class InsufficientFunds(ContractRevert):
    """A free balance is smaller than what the call would lock or move."""


class SignatureRejected(ContractRevert):
    """The contract rejected a signature or a set of mediator signatures."""


class DeadlineError(ContractRevert):
    """Too early (a deadline or notice has not passed) or too late (it has)."""


class InvalidDealTerms(ContractRevert):
    """The deal's shape is invalid (mediator set, threshold, parties) or it has expired."""


class TransactionReverted(ChainError):
    """A transaction reverted and its reason could not be decoded."""


_CLASS_BY_ERROR: dict[str, type[ContractRevert]] = {
    "AlreadySettled": AlreadySettled,
    "DealAlreadyOpened": DealAlreadyOpened,
    "DealNotOpen": DealNotOpen,
    "WrongStatus": WrongDealStatus,
    "NotJobCreator": WrongDealStatus,
    "InsufficientFunds": InsufficientFunds,
    "BadSignature": SignatureRejected,
    "MalleableSignature": SignatureRejected,
    "WrongSigner": SignatureRejected,
    "NotEnoughSignatures": SignatureRejected,
    "SignersNotAscending": SignatureRejected,
    "NotInConsortium": SignatureRejected,
    "UnregisteredMediator": SignatureRejected,
    "VerdictInconsistent": SignatureRejected,
    "AlreadySigned": SignatureRejected,
    "NotEquivocation": SignatureRejected,
    "NotMediator": WrongDealStatus,
    "NoFeeOwed": WrongDealStatus,
    "TooEarly": DeadlineError,
    "TooLate": DeadlineError,
    "WithdrawNotReady": DeadlineError,
    "DealExpired": InvalidDealTerms,
    "InvalidDeal": InvalidDealTerms,
}


def utc(timestamp: object) -> str:
    """A unix time as `2025-01-02 03:04:05 UTC`."""
    return datetime.fromtimestamp(int(str(timestamp)), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# The errors an operator's own command can meet (deposit, withdraw, payout), in words.
_WORDS: dict[str, Callable[[Mapping[str, object]], str]] = {
    "ZeroAmount": lambda _: "the amount is 0: give more than 0",
    "AmountOverflow": lambda _: "the amount is larger than the contract can hold: give less",
    "NoWithdrawRequest": lambda _: (
        "nothing to complete: request a withdrawal first with `withdraw AMOUNT`"),
    "WithdrawNotReady": lambda a: (
        f"the withdrawal is not ready before {utc(a['readyAt'])}: complete it after that"),
    "ZeroAddress": lambda _: "the address is 0x0…0, which nobody controls: give a nonzero one",
    "NoPayoutChange": lambda _: "no payout address change is pending: nothing to cancel",
    "NotPayoutAddress": lambda a: (
        f"only the payout address {a['payout']} can cancel the change, not {a['caller']}: "
        f"give the key file of {a['payout']}"),
}


def revert_error(error: str, args: Mapping[str, object] | None = None) -> ContractRevert:
    """The typed exception for the contract's custom error `error` with decoded `args`."""
    return _CLASS_BY_ERROR.get(error, ContractRevert)(error, args)


def _show(value: object) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return repr(value) if isinstance(value, str) else str(value)
