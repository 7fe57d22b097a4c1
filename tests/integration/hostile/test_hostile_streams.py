"""Every stream protocol of a node process fed garbage, huge length prefixes, slow senders and
200 concurrent streams, by a plain py-libp2p peer with its own key (garbage and the stream flood
on both muxers a node accepts)."""

import contextlib
import os

import pytest
import trio
from hostile_kit import assert_node_healthy, connected_host, gossip_statistics
from libp2p.abc import INetStream

from lilypad_p2p import wire
from lilypad_p2p.net import (
    DEAL_PROTOCOL,
    DIALBACK_PROTOCOL,
    JOB_PROTOCOL,
    PEER_EXCHANGE_PROTOCOL,
    PING_PROTOCOL,
    RESULT_PROTOCOL,
    NetLimits,
)
from lilypad_p2p.net._sync import OFFER_SYNC_PROTOCOL
from lilypad_p2p.testing._hostile import read_until_end

pytestmark = [pytest.mark.net, pytest.mark.slow]

PROTOCOLS = [DEAL_PROTOCOL, JOB_PROTOCOL, RESULT_PROTOCOL, OFFER_SYNC_PROTOCOL,
             PEER_EXCHANGE_PROTOCOL, DIALBACK_PROTOCOL, PING_PROTOCOL]
# The node's longest read timeout (deal streams, 30 s) plus slack for a loaded machine.
STREAM_END_S = 45.0


MUXERS = ["yamux", "mplex"]


@pytest.mark.parametrize("muxer", MUXERS)
async def test_garbage_and_huge_length_prefixes_on_every_protocol_end_their_streams(
    public_node, muxer
):
    ended: list[str] = []
    async with connected_host(public_node, muxer) as (host, target):

        async def attack(protocol: str, payload: bytes) -> None:
            try:
                stream = await host.new_stream(target, [protocol])
                await stream.write(payload)
            except Exception:  # the node may reset before we finish writing (that is an end)
                ended.append(protocol)
                return
            with trio.fail_after(STREAM_END_S):
                await read_until_end(stream)
            ended.append(protocol)

        async with trio.open_nursery() as nursery:
            for protocol in PROTOCOLS:
                nursery.start_soon(attack, protocol, os.urandom(4096))
                nursery.start_soon(attack, protocol, b"\xff\xff\xff\xff" + os.urandom(64))
        offender = str(host.get_id())
    assert len(ended) == 2 * len(PROTOCOLS)
    await assert_node_healthy(public_node, offender=offender)


async def test_a_large_job_frame_is_refused_before_its_body(public_node):
    async with connected_host(public_node) as (host, target):
        stream = await host.new_stream(target, [JOB_PROTOCOL])
        # 60 MiB announced for the request frame (inputs never travel in it); no byte follows.
        await stream.write((60 * 1024 * 1024).to_bytes(4, "big"))
        with trio.fail_after(10):  # the node's read timeout is 30 s: this is the prefix check
            assert await read_until_end(stream) == b""
    stats = await gossip_statistics(public_node)
    assert stats["reports"].get("low_tolerance", 0) >= 1
    await assert_node_healthy(public_node)


async def test_job_inputs_from_a_peer_without_a_deal_are_never_asked_for(public_node):
    deal = {name: 0 for name in wire.DEAL_FIELDS}
    request = {"type": "job_request", "v": 1, "chain_id": 1, "deal": deal, "module": "hash",
               "inputs_preamble": os.urandom(104), "inputs_bytes": 4 * 2**30,
               "inputs_nonce": os.urandom(32), "output_recipient": os.urandom(32)}
    body = wire.encode(request)
    async with connected_host(public_node) as (host, target):
        stream = await host.new_stream(target, [JOB_PROTOCOL])
        await stream.write(len(body).to_bytes(4, "big") + body)
        with trio.fail_after(STREAM_END_S):
            answer = await read_until_end(stream)
        length = int.from_bytes(answer[:4], "big")
        refused = wire.deal_message_from_wire(wire.decode(answer[4 : 4 + length]))
        # A refusal, never `send_inputs`: not one byte of the 4 GiB is invited.
        assert isinstance(refused, wire.DealRefused), refused
        assert len(answer) == 4 + length
    await assert_node_healthy(public_node)


@pytest.mark.parametrize("muxer", MUXERS)
async def test_200_concurrent_streams_cost_the_sender_its_connection(public_node, muxer):
    before = (await gossip_statistics(public_node))["connections_refused"].get("streams", 0)
    async with connected_host(public_node, muxer) as (host, target):
        offender = str(host.get_id())
        opened = []

        async def open_one() -> None:
            with contextlib.suppress(Exception):  # reset, or the connection closed: refused
                stream = await host.new_stream(target, [DEAL_PROTOCOL])
                await stream.write(b"\x00")  # a slow sender: one byte of the header
                opened.append(stream)

        # The per-protocol budget's streams open and are held (slow senders) ...
        budget = NetLimits().max_streams_per_protocol_per_peer
        for _ in range(budget):
            await open_one()
        assert len(opened) == budget
        # ... and past it each stream is reset unread and graded: the reports take the peer to
        # the graylist, and the node bans it as soon as it is there.
        with trio.move_on_after(60):
            async with trio.open_nursery() as nursery:
                for _ in range(200 - budget):
                    nursery.start_soon(open_one)
        stats = await gossip_statistics(public_node)
        assert stats["connections_refused"].get("streams", 0) > before
        await assert_node_healthy(public_node, offender=offender)


async def test_slow_senders_and_silent_askers_are_cut_off_by_the_node(public_node):
    async with connected_host(public_node) as (host, target):
        silent = [await host.new_stream(target, [protocol])
                  for protocol in (PING_PROTOCOL, DIALBACK_PROTOCOL, DEAL_PROTOCOL)]

        async def trickle(stream: INetStream) -> None:
            for byte in b"\x00\x00\x01\x00":
                await stream.write(bytes([byte]))
                await trio.sleep(2)
            while True:
                await stream.write(b"\x00")
                await trio.sleep(2)

        slow = await host.new_stream(target, [RESULT_PROTOCOL])
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_ignore_errors, trickle, slow)
            # While they hang on, an honest peer is served as usual.
            await assert_node_healthy(public_node)
            with trio.fail_after(STREAM_END_S):
                for stream in [*silent, slow]:
                    await read_until_end(stream)
            nursery.cancel_scope.cancel()
    await assert_node_healthy(public_node)


async def _ignore_errors(fn, *args) -> None:
    with contextlib.suppress(Exception):  # the node reset the stream: what the test waits for
        await fn(*args)
