"""A js-libp2p peer on its default stack meshes with a real `lilypad-p2p node` and receives its
offers.

The js peer (interop/js/peer.mjs: js-libp2p 2.x, TCP, Noise, Yamux only, gossipsub with default
options, an Ed25519 identity) dials the node, subscribes to the market topic and reports its
mesh and every message as JSON lines. It must negotiate Yamux, have the node in its mesh, and
receive the node's ResourceOffer, which must open as a valid envelope signed by the node.
"""

import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from lilypad_p2p import wire
from lilypad_p2p.localnet import LocalCluster
from lilypad_p2p.testing import require_real

pytestmark = [pytest.mark.net, pytest.mark.slow]

JS_DIR = Path(__file__).resolve().parents[3] / "interop" / "js"
TOPIC = "/lilypad/1/market/cpu"
# The js peer dials after the node's first publication, so the offer it gets is the node's
# re-publication (every 60 s) or the mesh's IHAVE gossip of it.
OFFER_WITHIN_S = 120.0
JS_READY_S = 60.0


def _require_js_peer() -> str:
    node = shutil.which("node")
    if node is None:
        require_real("node", "install Node.js 20 (scripts/setup expects it)")
    if not (JS_DIR / "node_modules" / "libp2p").is_dir():
        require_real("js-libp2p", "run `npm ci` in interop/js (scripts/setup does)")
    return node


def _reader(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _next_event(lines: queue.Queue, deadline: float) -> dict | None:
    try:
        line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
    except queue.Empty:
        return None
    if line is None:
        raise AssertionError("the js peer exited")
    return json.loads(line)


def test_js_libp2p_default_peer_meshes_and_receives_offers(tmp_path):
    node_binary = _require_js_peer()
    cluster = LocalCluster(tmp_path)
    with cluster.running():
        # It follows the market (providers only publish into it by default): the js peer
        # must mesh with it on the topic.
        node = cluster.start_node("provider", roles=["provider"], markets=("cpu",),
                                  env={"LILYPAD_FOLLOW_MARKETS": "true"})
        status = node.wait_ready()
        js = subprocess.Popen(
            [node_binary, "peer.mjs", "--dial", node.dial_addr, "--topic", TOPIC,
             "--timeout", str(int(OFFER_WITHIN_S + JS_READY_S))],
            cwd=JS_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=open(tmp_path / "js.log", "wb"), text=True,  # noqa: SIM115 - lives with js
            env={**os.environ, "DEBUG": ""},
        )
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=_reader, args=(js.stdout, lines), daemon=True).start()
        connected: dict = {}
        meshed_with_node = False
        offer: wire.SignedEnvelope | None = None
        try:
            deadline = time.monotonic() + JS_READY_S + OFFER_WITHIN_S
            while offer is None or not meshed_with_node:
                event = _next_event(lines, deadline)
                assert event is not None, (
                    f"js peer: connected={connected} meshed={meshed_with_node} "
                    f"offer={offer is not None}\n{(tmp_path / 'js.log').read_text()[-2000:]}\n"
                    f"{node.log_tail()}"
                )
                assert event["event"] != "dial_failed", event
                if event["event"] == "connected" and event["peer_id"] == status["peer_id"]:
                    connected = event
                elif event["event"] == "mesh":
                    meshed_with_node = meshed_with_node or status["peer_id"] in event["peers"]
                elif event["event"] == "message" and event["from"] == status["peer_id"]:
                    envelope = wire.open_envelope(
                        bytes.fromhex(event["data_hex"]), now_ms=int(time.time() * 1000)
                    )
                    if isinstance(envelope.body, wire.ResourceOffer):
                        assert event["topic"] == TOPIC
                        offer = envelope
        finally:
            if js.poll() is None:
                js.stdin.close()
                try:
                    js.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    js.kill()
        assert connected["muxer"] == "/yamux/1.0.0"
        assert connected["encryption"] == "/noise"
        assert offer.signer == status["address"]
        assert node.process.poll() is None, "the node died"
