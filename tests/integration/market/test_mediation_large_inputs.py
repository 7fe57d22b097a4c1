"""A spot check of a job whose inputs are past the old 64 MiB mediation frame: real node
processes (provider, mediator, client with `check_rate = 1`), Docker and anvil. The client
streams its spooled 80 MiB to the mediator over `/lilypad/mediation/3`; the mediator rules
PROVIDER_CORRECT for the honest provider without its memory growing with the inputs, and leaves
nothing in its spool. Then a peer with its own key, speaking the protocol from the spec, gets a
one-line refusal for a deal it made up (no input byte asked for), garbage ends its stream, and
the mediator lives."""

import os
import re
import secrets
from pathlib import Path

import msgpack
import pytest
import trio
from eth_utils import keccak

from lilypad_p2p.identity import Identity
from lilypad_p2p.localnet import market_world, node_identity
from lilypad_p2p.testing import random_file, require_anvil, require_docker
from lilypad_p2p.testing._hostile import connected_host, read_until_end
from lilypad_p2p.testing._mediation import start_spot_checked_market

pytestmark = [pytest.mark.net, pytest.mark.chain, pytest.mark.docker, pytest.mark.slow]
MIB = 2**20
SIZE = 80 * MIB
JOB_TIMEOUT_S = 400.0
# The mediator streams one chunk (1 MiB) at a time; anything near the inputs means buffering.
RSS_GROWTH_LIMIT_MIB = 48
STREAM_END_S = 45.0
# A job whose output is small: the inputs are what is large here.
HASH_SCRIPT = b"""\
import hashlib
digest = hashlib.sha256()
with open('/inputs/data.bin', 'rb') as src:
    while piece := src.read(1 << 20):
        digest.update(piece)
open('/outputs/sha256.txt', 'w').write(digest.hexdigest())
"""


def _high_water_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None
    return int(match.group(1))


def _frame(message: dict) -> bytes:
    """A deal-stream frame as docs/WIRE.md §6.1 specifies it: u32 length, canonical msgpack."""
    body = msgpack.packb(dict(sorted(message.items())), use_bin_type=True)
    return len(body).to_bytes(4, "big") + body


async def _attack(mediator_addr: str, mediator: str, chain_id: int) -> tuple[bytes, bytes]:
    """A made-up deal naming the mediator, 64 MiB of inputs announced; then plain garbage."""
    attacker, accomplice = Identity.generate(), Identity.generate()
    deal = {"job_creator": attacker.address, "provider": accomplice.address, "payment": 1,
            "collateral": 1, "mediation_fee": 0, "mediators": [mediator], "threshold": 1,
            "result_deadline": 2**40, "acceptance_window": 60, "mediation_window": 600,
            "job_spec_hash": bytes(32), "module_hash": keccak(text="hash"),
            "salt": secrets.token_bytes(32)}
    request = {"type": "mediation_request", "v": 1, "chain_id": chain_id,
               "deal": dict(sorted(deal.items())), "module": "hash",
               "inputs_preamble": os.urandom(104), "inputs_bytes": 64 * MIB,
               "inputs_nonce": os.urandom(32), "job_offer": b"a job offer never posted",
               "result_hash": bytes(32), "provider_signature": b"\x01" * 65,
               "output_recipient": b""}
    async with connected_host(mediator_addr) as (host, target):
        stream = await host.new_stream(target, ["/lilypad/mediation/3"])
        await stream.write(_frame(request))
        with trio.fail_after(STREAM_END_S):
            answer = await read_until_end(stream)
        stream = await host.new_stream(target, ["/lilypad/mediation/3"])
        await stream.write(len(b"x" * 4096).to_bytes(4, "big") + os.urandom(4096))
        with trio.fail_after(STREAM_END_S):
            garbage = await read_until_end(stream)
    return answer, garbage


def test_an_80_mib_job_is_spot_checked_by_a_streaming_mediator(tmp_path):
    require_anvil()
    require_docker("the provider and the mediator run the job in Docker",
                   image="lilypad-p2p/python")
    data = random_file(tmp_path / "data.bin", SIZE // MIB)
    script = tmp_path / "main.py"
    script.write_bytes(HASH_SCRIPT)
    with market_world(tmp_path / "market") as world:
        provider, mediator, client = start_spot_checked_market(world, "provider")
        mediator_address = node_identity(world, "mediator").address

        def checked(data: Path) -> dict:
            key = client.call("submit", {
                "module": "python", "params": {"script": "main.py"},
                "file_paths": {"main.py": str(script), "data.bin": str(data)},
                "target": provider.status["address"],
            })["key"]
            deal = world.wait_for_phase(client, key, {"accepted", "settled", "resolved",
                                                      "rejected", "timed_out", "cancelled"},
                                        timeout_s=JOB_TIMEOUT_S)
            assert deal["phase"] in ("accepted", "settled"), (deal, mediator.log_tail(30))
            assert deal["check_outcome"] == "PROVIDER_CORRECT", deal
            return deal

        # A small checked job first: the mediator prepares the module's image once (its own
        # memory cost, whatever the job's size).
        small = tmp_path / "small.bin"
        small.write_bytes(b"warm")
        checked(small)
        before = _high_water_kib(mediator.process.pid)
        checked(data)
        growth_mib = (_high_water_kib(mediator.process.pid) - before) / 1024
        assert "mediation.verdict" in mediator.log_tail(200)
        assert [p for p in (mediator.home / "spool" / "mediator").iterdir()] == []

        answer, garbage = trio.run(_attack, mediator.dial_addr, mediator_address,
                                   world.settlement(node_identity(world, "client")).chain
                                   .chain_id)
        refusal = msgpack.unpackb(answer[4:], raw=False)
        assert refusal["type"] == "refused" and "\n" not in refusal["reason"], refusal
        assert refusal["reason"] == "v must be 27 or 28, got 1"  # the commitment, checked first
        assert len(answer) == 4 + int.from_bytes(answer[:4], "big")  # no send_inputs before
        assert garbage == b""
        assert mediator.process.poll() is None, mediator.log_tail(30)
        assert mediator.call("status")["address"] == mediator_address  # it still answers
    assert growth_mib < RSS_GROWTH_LIMIT_MIB, growth_mib
