"""The layers between Yamux and the socket (`net/_secure_channel.py`): the TCP stream reads
ahead and writes straight into the socket, and Noise frames are read and written in one step,
with the library's results and the library's errors. The library methods the one-step path
stands in for are pinned, so a py-libp2p change makes someone read them again."""

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from libp2p.crypto.secp256k1 import create_new_key_pair
from libp2p.io.exceptions import IncompleteReadError
from libp2p.io.trio import TrioTCPStream
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.peer.id import ID
from libp2p.security.noise.io import (
    MAX_PLAINTEXT_LENGTH,
    BaseNoiseMsgReadWriter,
    NoiseTransportReadWriter,
)
from libp2p.security.secure_session import SecureSession
from library_source import source_digest
from noise.connection import NoiseConnection
from noise.exceptions import NoiseInvalidMessage

from lilypad_p2p.net._secure_channel import (
    READ_AHEAD_BYTES,
    LeanNoiseTransport,
    LeanSecureSession,
    ReadAheadTCPStream,
    adopt_lean_layers,
)

# The library methods the one-step path stands in for; a new py-libp2p changes them here.
STOOD_IN_FOR = {
    BaseNoiseMsgReadWriter.read_msg: "b2fa218c135c",
    BaseNoiseMsgReadWriter.write_msg: "00818920318f",
    SecureSession.read: "eeba14a89cf1",
    NoiseConnection.encrypt: "f271e53c675e",
    NoiseConnection.decrypt: "dbc620748074",
}


@pytest.mark.parametrize("method", list(STOOD_IN_FOR), ids=lambda m: m.__qualname__)
def test_the_library_methods_we_stand_in_for_are_the_ones_we_read(method):
    assert source_digest(method) == STOOD_IN_FOR[method]


@pytest.fixture
async def tcp_pair():
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    client = await trio.open_tcp_stream("127.0.0.1", port)
    server = await listeners[0].accept()
    yield client, server
    await client.aclose()
    await server.aclose()
    await listeners[0].aclose()


def _read_ahead(socket_stream: trio.SocketStream) -> TrioTCPStream:
    stream = TrioTCPStream(socket_stream)
    ReadAheadTCPStream.adopt(stream)
    return stream


def _count_calls(owner: object, name: str) -> list[int]:
    """Count the calls of `owner`'s async method `name` from now on (in a one-item list)."""
    calls, method = [0], getattr(owner, name)

    async def counted(*args):
        calls[0] += 1
        return await method(*args)

    setattr(owner, name, counted)
    return calls


async def test_reads_ahead_and_hands_out_exactly_what_each_read_asks(tcp_pair):
    client, server = tcp_pair
    stream = _read_ahead(server)
    frames = [b"\x00\x05hello", b"\x00\x03abc", b"\x00\x01z"]
    await client.send_all(b"".join(frames))
    await trio.testing.wait_all_tasks_blocked()
    got = []
    for frame in frames:
        got.append(await stream.read(2) + await stream.read(len(frame) - 2))
    assert got == frames
    assert await stream.read(0) == b""
    await client.send_all(b"rest")
    assert await stream.read() == b"rest"
    await client.aclose()
    assert await stream.read(10) == b""


async def test_one_receive_serves_every_frame_that_arrived_with_it(tcp_pair):
    client, server = tcp_pair
    stream = _read_ahead(server)
    receives = _count_calls(server, "receive_some")
    await client.send_all(b"x" * 1000)
    await trio.testing.wait_all_tasks_blocked()
    for _ in range(10):
        assert await stream.read(100) == b"x" * 100
    assert receives == [1]
    assert READ_AHEAD_BYTES >= 64 * 1024


async def test_writes_go_straight_to_the_socket_and_queue_behind_one_that_waits(tcp_pair):
    client, server = tcp_pair
    stream = _read_ahead(server)
    through_trio = _count_calls(server, "send_all")
    for index in range(10):
        await stream.write(b"frame%d;" % index)
    assert through_trio == [0]
    expected = b"".join(b"frame%d;" % index for index in range(10))
    received = bytearray()
    while len(received) < len(expected):
        received += await client.receive_some()
    assert bytes(received) == expected

    # More than the kernel takes at once: the rest goes through trio, which waits for room, and
    # a write that comes meanwhile waits its turn behind it.
    blob, tail = bytes(range(256)) * 32768, b"tail"
    received.clear()

    async def read_all() -> None:
        while len(received) < len(blob) + len(tail):
            await trio.sleep(0.001)
            received.extend(await client.receive_some(65536))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.write, blob)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(stream.write, tail)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(read_all)
    assert through_trio == [2]
    assert bytes(received) == blob + tail


def _noise_pair() -> tuple[NoiseConnection, NoiseConnection]:
    """Two ends of a finished Noise handshake (the cipher libp2p uses: ChaChaPoly)."""
    ends = []
    for initiator in (True, False):
        end = NoiseConnection.from_name(b"Noise_NN_25519_ChaChaPoly_SHA256")
        end.set_as_initiator() if initiator else end.set_as_responder()
        end.start_handshake()
        ends.append(end)
    first, second = ends
    second.read_message(first.write_message())
    first.read_message(second.write_message())
    assert first.handshake_finished and second.handshake_finished
    return first, second


def _session(socket_stream: trio.SocketStream, noise_state: NoiseConnection) -> SecureSession:
    """The layers py-libp2p builds for TCP with Noise, over `socket_stream`."""
    keys = create_new_key_pair()
    raw = RawConnection(TrioTCPStream(socket_stream), False)
    transport = NoiseTransportReadWriter(raw, noise_state)
    return SecureSession(
        local_peer=ID.from_pubkey(keys.public_key),
        local_private_key=keys.private_key,
        remote_peer=ID.from_pubkey(keys.public_key),
        remote_permanent_pubkey=keys.public_key,
        is_initiator=False,
        conn=transport,
    )


@pytest.fixture
async def sessions(tcp_pair):
    """(the library's session, our lean one) over one TCP connection."""
    client, server = tcp_pair
    library_noise, lean_noise = _noise_pair()
    library, lean = _session(client, library_noise), _session(server, lean_noise)
    assert isinstance(adopt_lean_layers(lean), ReadAheadTCPStream)
    assert isinstance(lean, LeanSecureSession) and isinstance(lean.conn, LeanNoiseTransport)
    return library, lean


async def test_what_one_side_writes_the_other_reads_in_both_directions(sessions):
    library, lean = sessions
    messages = [b"a", b"hello" * 100, bytes(range(256)) * 300, b"z"]  # one over a Noise frame
    assert len(messages[2]) > MAX_PLAINTEXT_LENGTH
    for writer, reader in ((library, lean), (lean, library)):
        for message in messages:
            await writer.write(message)
        for message in messages:
            assert await reader.read(len(message)) == message


async def test_buffered_plaintext_is_taken_without_a_read_and_only_when_all_of_it_is_here(
    sessions,
):
    library, lean = sessions
    await library.write(b"0123456789")
    assert lean.take_buffered(1) is None  # nothing read yet: it does not read
    assert await lean.read(3) == b"012"  # the whole frame is buffered now
    assert lean.take_buffered(4) == b"3456"
    assert lean.take_buffered(4) is None
    assert await lean.read(3) == b"789"


@settings(max_examples=30, deadline=None)
@given(
    frames=st.lists(st.binary(min_size=1, max_size=3000), min_size=1, max_size=12),
    cuts=st.lists(st.integers(1, 5000), max_size=8),
    reads=st.lists(st.integers(1, 4000), min_size=1, max_size=8),
)
def test_frames_arriving_in_any_pieces_read_back_in_any_sizes(frames, cuts, reads):
    async def scenario() -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        client = await trio.open_tcp_stream("127.0.0.1", port)
        server = await listeners[0].accept()
        sender_noise, receiver_noise = _noise_pair()
        lean = _session(server, receiver_noise)
        adopt_lean_layers(lean)
        wire = b"".join(_framed(sender_noise.encrypt(frame)) for frame in frames)
        expected, got = b"".join(frames), bytearray()

        async def send_in_pieces() -> None:
            rest = wire
            for cut in cuts:
                await client.send_all(rest[:cut])
                rest = rest[cut:]
                await trio.sleep(0.001)
            await client.send_all(rest)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_in_pieces)
            sizes = iter(reads * (len(expected) + 1))
            while len(got) < len(expected):
                got += await lean.read(min(next(sizes), len(expected) - len(got)))
        assert bytes(got) == expected
        for stream in (client, server, listeners[0]):
            await stream.aclose()

    trio.run(scenario)


def _framed(ciphertext: bytes) -> bytes:
    return len(ciphertext).to_bytes(2, "big") + ciphertext


@pytest.fixture
async def lean_receiver(tcp_pair):
    """(the sender's socket, the sender's Noise end, the receiver's, our lean session)."""
    client, server = tcp_pair
    sender_noise, receiver_noise = _noise_pair()
    lean = _session(server, receiver_noise)
    adopt_lean_layers(lean)
    return client, sender_noise, receiver_noise, lean


async def test_frames_that_arrived_together_are_read_with_one_receive_and_no_library_read(
    tcp_pair, lean_receiver
):
    client, sender_noise, _, lean = lean_receiver
    receives = _count_calls(tcp_pair[1], "receive_some")
    library_reads = _count_calls(lean.conn.read_writer, "read_msg")
    frames = [b"offer %d" % index for index in range(20)]
    await client.send_all(b"".join(_framed(sender_noise.encrypt(frame)) for frame in frames))
    await trio.testing.wait_all_tasks_blocked()
    for frame in frames:
        assert await lean.read(len(frame)) == frame
    assert receives == [1]
    assert library_reads == [0]


async def test_a_forged_frame_is_refused_as_the_library_refuses_it(lean_receiver):
    client, sender_noise, receiver_noise, lean = lean_receiver
    good = sender_noise.encrypt(b"first")
    forged = bytearray(sender_noise.encrypt(b"second"))
    forged[-1] ^= 1
    await client.send_all(_framed(good))
    await client.send_all(_framed(bytes(forged)))
    assert await lean.read(5) == b"first"
    with pytest.raises(NoiseInvalidMessage):
        await lean.read(6)
    # As in the library, a frame that fails does not use up its nonce.
    assert receiver_noise.noise_protocol.cipher_state_decrypt.n == 1


async def test_an_end_mid_frame_is_the_library_error(lean_receiver):
    client, sender_noise, _, lean = lean_receiver
    await client.send_all(_framed(sender_noise.encrypt(b"whole")))
    await client.send_all(_framed(sender_noise.encrypt(b"cut short"))[:6])
    await client.aclose()
    assert await lean.read(5) == b"whole"
    with pytest.raises(IncompleteReadError):
        await lean.read(9)


async def test_plaintext_the_library_buffered_before_the_switch_is_read_first(tcp_pair):
    client, server = tcp_pair
    sender_noise, receiver_noise = _noise_pair()
    session = _session(server, receiver_noise)
    session._fill(b"held")  # what muxer negotiation can leave behind
    adopt_lean_layers(session)
    await client.send_all(_framed(sender_noise.encrypt(b"next")))
    assert await session.read(8) == b"heldnext"


def test_a_connection_built_another_way_is_left_as_it_is():
    class Elsewhere:
        conn = None

    assert adopt_lean_layers(Elsewhere()) is None
