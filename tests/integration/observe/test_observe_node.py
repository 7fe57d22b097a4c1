"""The operator's listener on real node processes: metrics, health, readiness, token, hostility."""

from __future__ import annotations

import errno
import os
import socket
import stat
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from scrape_kit import free_port, get, samples

from lilypad_p2p.control import ControlError
from lilypad_p2p.localnet import LocalCluster
from lilypad_p2p.testing import require_real

pytestmark = [pytest.mark.net, pytest.mark.slow]


def test_metrics_health_and_readiness_of_two_meshed_nodes(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path)
    port_a, port_b = free_port(), free_port()
    with cluster.running():
        a = cluster.start_node("a", roles=["provider"],
                               extra_args=["--metrics-listen", f"127.0.0.1:{port_a}"])
        a.wait_ready()
        b = cluster.start_node("b", roles=["solver"], bootstrap=[a.dial_addr],
                               extra_args=["--metrics-listen", f"127.0.0.1:{port_b}"])
        b.wait_ready()
        base = f"http://127.0.0.1:{port_b}"
        assert get(f"{base}/healthz") == (200, "ok\n")
        cluster.wait_until(lambda: get(f"{base}/readyz")[0] == 200, timeout_s=30,
                           what="b ready (meshed)")
        assert get(f"{base}/readyz")[1] == "ready\n"

        def scraped() -> dict:
            status, text = get(f"{base}/metrics")
            assert status == 200
            return samples(text)

        cluster.wait_until(
            lambda: scraped().get(("lilypad_offers", (("kind", "resource"),)), 0) >= 1,
            timeout_s=30, what="b's book to hold a's offer",
        )
        # b may learn a's offer and record by sync alone; a's record is gossiped again once
        # its addresses settle, and the counter must show that delivery.
        cluster.wait_until(
            lambda: scraped().get(("lilypad_gossip_delivered_messages_total", ()), 0) >= 1,
            timeout_s=30, what="b to deliver a gossip message",
        )
        metrics = scraped()
        assert metrics[("lilypad_peers", ())] == 1
        assert metrics[("lilypad_ready_check", (("check", "meshed"),))] == 1
        info = [labels for name, labels in metrics if name == "lilypad_node_info"]
        assert dict(info[0])["roles"] == "solver"
        assert metrics[("lilypad_gossip_delivered_messages_total", ())] >= 1
        assert metrics[("process_resident_memory_bytes", ())] > 0
        assert get(f"{base}/")[0] == 200 and a.status["peer_id"] in get(f"{base}/")[1]
        # `status` reads the chain afresh unless told how old a read may be, within a bound
        # (the provider has a chain; the solver none).
        assert [chain["age_s"] for chain in a.call("status")["chains"]] == [0.0]
        time.sleep(0.3)
        reused = a.call("status", {"chain_max_age_s": 60})["chains"]
        assert [0.2 <= chain["age_s"] <= 60 for chain in reused] == [True]
        with pytest.raises(ControlError, match="chain_max_age_s must be a number"):
            b.call("status", {"chain_max_age_s": -1})

        # Hostile clients: garbage, an endless header, a half-open connection, a POST.
        for payload in (b"\x00\xff garbage\r\n\r\n", b"GET / HTTP/1.1\r\nX: " + b"a" * 70_000):
            with socket.create_connection(("127.0.0.1", port_b), timeout=10) as raw:
                try:
                    raw.sendall(payload)
                    raw.shutdown(socket.SHUT_WR)
                    while raw.recv(4096):
                        pass
                except OSError as error:
                    # Closing on unread garbage resets: the node owes it nothing. A reset that
                    # lands before our shutdown makes the shutdown report ENOTCONN instead.
                    if not isinstance(error, ConnectionResetError) and \
                            error.errno != errno.ENOTCONN:
                        raise
        idle = socket.create_connection(("127.0.0.1", port_b), timeout=10)
        request = urllib.request.Request(f"{base}/metrics", data=b"x", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 405
        assert get(f"{base}/healthz") == (200, "ok\n")
        idle.close()

        # The solver loses its only peer: not ready, and the page says why.
        a.stop()
        cluster.wait_until(lambda: get(f"{base}/readyz")[0] == 503, timeout_s=30,
                           what="b not ready after losing its mesh")
        assert "meshed" in get(f"{base}/readyz")[1]
        assert b.process.poll() is None


def test_a_listener_off_loopback_requires_the_token(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path)
    port = free_port()
    with cluster.running():
        node = cluster.start_node("n", roles=["solver"],
                                  extra_args=["--metrics-listen", f"0.0.0.0:{port}"])
        node.wait_ready()
        token_file = node.home / "metrics.token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        base = f"http://127.0.0.1:{port}"
        assert get(f"{base}/metrics")[0] == 401
        assert get(f"{base}/metrics", token="wrong" * 5)[0] == 401
        assert get(f"{base}/metrics", token=token)[0] == 200
        assert get(f"{base}/?token={token}")[0] == 200
        assert get(f"{base}/healthz") == (200, "ok\n")  # probes need no secret
        assert token not in node.log_tail(200)


def test_the_status_page_in_a_real_browser(tmp_path: Path) -> None:
    chromium = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser")
                     if os.path.exists(p)), None)
    if chromium is None:
        require_real("chromium", "Debian's chromium is not installed: run scripts/setup")
        return
    cluster = LocalCluster(tmp_path)
    port = free_port()
    with cluster.running():
        provider = cluster.start_node("provider", roles=["provider"])
        provider.wait_ready()
        node = cluster.start_node("watched", roles=["solver"], bootstrap=[provider.dial_addr],
                                  extra_args=["--metrics-listen", f"127.0.0.1:{port}"])
        node.wait_ready()
        cluster.wait_until(lambda: get(f"http://127.0.0.1:{port}/readyz")[0] == 200,
                           timeout_s=30, what="the watched node to mesh")
        url = f"http://127.0.0.1:{port}/"
        flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-sync",
                 "--disable-component-update", f"--user-data-dir={tmp_path / 'profile'}",
                 "--virtual-time-budget=4000"]
        dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, timeout=120,
                             check=True).stdout.decode()
        shot = Path(os.environ.get("LILYPAD_SCREENSHOT_DIR", tmp_path)) / "status-page.png"
        subprocess.run([*flags, "--window-size=1280,1000", f"--screenshot={shot}", url],
                       capture_output=True, timeout=120, check=True)
        # The browser ran the page's refresh script and still shows the node as it is.
        assert "lilypad-p2p node" in dom and "ready" in dom
        assert node.status["address"] in dom and node.status["peer_id"] in dom
        assert provider.status["peer_id"] in dom  # in the peers table
        assert "Markets and offers" in dom and "<td>cpu</td>" in dom
        assert "Deals (latest 20 of 0)" in dom and "no deals yet" in dom
        assert shot.stat().st_size > 10_000
