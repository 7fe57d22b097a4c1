"""Anvil for a local network: the npm-pinned binary started on a free port, and accounts from
fixed seeds funded on it.

Accounts come from fixed seeds, so tests, benchmarks and the simnet are reproducible and the same
accounts are funded on every chain. They are test keys: never hold real money with them.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3.types import RPCEndpoint, RPCResponse

from lilypad_p2p.chain import Chain

TEST_ACCOUNT_COUNT = 16
TEST_BALANCE_WEI = 10**24  # one million ETH each
# How long anvil may take to listen (it starts in ~0.2 s) and to exit when asked.
ANVIL_START_TIMEOUT_S = 20.0
ANVIL_STOP_TIMEOUT_S = 5.0
_ANVIL_POLL_S = 0.02
_REPO = Path(__file__).resolve().parents[2]
_NPM_ANVIL = _REPO / "contracts" / "node_modules" / ".bin" / "anvil"


def chain_test_accounts(count: int = TEST_ACCOUNT_COUNT) -> list[LocalAccount]:
    """`count` deterministic test accounts (the same on every backend and run)."""
    return [
        Account.from_key(keccak(text=f"lilypad-p2p test account {i}")) for i in range(count)
    ]


def anvil_binary() -> Path | None:
    """The npm-pinned anvil (contracts/node_modules), `$LILYPAD_ANVIL`, or one on PATH."""
    override = os.environ.get("LILYPAD_ANVIL")
    if override:
        return Path(override)
    if _NPM_ANVIL.exists():
        return _NPM_ANVIL
    found = shutil.which("anvil")
    return Path(found) if found else None


@contextmanager
def running_anvil(
    binary: Path | None = None, *, host: str = "127.0.0.1", chain_id: int | None = None
) -> Iterator[str]:
    """Start anvil on a free port of `host` (it picks one: `--port 0`); yield its URL; stop it.

    `host` is loopback unless network namespaces must reach it (the NAT lab's uplink address).
    `chain_id` (default anvil's 31337) tells two anvils apart, as two settlement chains.
    """
    binary = binary or anvil_binary()
    if binary is None:
        raise FileNotFoundError("anvil not found: run `npm ci` in contracts/ (scripts/setup)")
    with tempfile.TemporaryDirectory(prefix="lilypad-anvil-") as tmp:
        log_path = Path(tmp) / "anvil.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(binary), "--host", host, "--port", "0", "--hardfork", "prague",
                 "--accounts", "1",
                 *(("--chain-id", str(chain_id)) if chain_id is not None else ())],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            yield await_listening(process, log_path)
        finally:
            stop_anvil(process)


def stop_anvil(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if anvil has not exited within ANVIL_STOP_TIMEOUT_S."""
    process.terminate()
    try:
        process.wait(timeout=ANVIL_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def await_listening(process: subprocess.Popen[bytes], log_path: Path) -> str:
    """The URL anvil (`process`, logging to `log_path`) answers on, once it says it listens."""
    deadline = time.monotonic() + ANVIL_START_TIMEOUT_S
    marker = b"Listening on "
    while time.monotonic() < deadline:
        text = log_path.read_bytes()
        if marker in text:
            address = text.split(marker, 1)[1].split(b"\n", 1)[0].decode().strip()
            return f"http://{address}"
        if process.poll() is not None:
            raise RuntimeError(f"anvil exited ({process.returncode}): {text[-2000:]!r}")
        time.sleep(_ANVIL_POLL_S)  # polling a log file with a bounded deadline
    raise TimeoutError(f"anvil did not listen within {ANVIL_START_TIMEOUT_S} s")


def dev_rpc(chain: Chain, method: str, params: list[Any]) -> RPCResponse:
    """One call of a dev chain's own JSON-RPC methods (anvil_*, evm_*)."""
    return chain.rpc(functools.partial(chain.w3.provider.make_request, RPCEndpoint(method), params))


def fund_on_anvil(chain: Chain, accounts: list[LocalAccount], wei: int = TEST_BALANCE_WEI) -> None:
    for account in accounts:
        dev_rpc(chain, "anvil_setBalance", [account.address, hex(wei)])
