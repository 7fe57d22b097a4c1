"""A NAT lab in Linux network namespaces: public relays and two hosts behind their own NAT.

    wan (bridge, W.N.0.0/24; W = 10, or 11 with NatLab(upnp=True))
     ├─ relay      W.N.0.1             public bootstrap/relay host
     ├─ relay2     W.N.0.4             a second relay (NatLab(relays=2))
     ├─ nat_a      W.N.0.2 | 10.N.1.1  MASQUERADE out of its wan side (+ miniupnpd with upnp)
     │   └─ host_a 10.N.1.2
     ├─ nat_b      W.N.0.3 | 10.N.2.1
     │   └─ host_b 10.N.2.2
     └─ (root namespace) W.N.0.254     NatLab(uplink=True): the test's own side of the wan,
                                       e.g. an anvil every namespace reaches as a public host

Every name starts with a per-run prefix; everything lives in namespaces this lab creates (the
iptables rules too, since netfilter state is per namespace), so deleting the namespaces removes
it all (the uplink's root end goes with its wan end). `NatLab.running()` tears down on any exit
and `leftovers()` checks nothing remains. Needs root, `ip` (iproute2) and `iptables`.

Linux MASQUERADE keeps the source port when it can (endpoint-independent mapping) and filters
by connection (address-and-port-dependent filtering); each router also drops unsolicited
inbound packets, as home routers do, instead of answering them with a RST. TCP hole punching by
simultaneous open can pass such a NAT. `NatLab(symmetric=True)` maps every connection to a
random port instead (`--random-fully`: endpoint-dependent mapping, a "symmetric" NAT): the port
a relay observes is useless to anyone else, so hole punching fails and traffic stays relayed.

`NatLab(upnp=True)` runs miniupnpd (Debian's miniupnpd-nftables) on nat_a, so host_a can ask
its router for a port mapping (UPnP IGD). Both miniupnpd and py-libp2p's UPnP client refuse a
gateway whose external address is private or reserved (they assume a double NAT), so such a
lab's wan uses 11.N.0.0/24, a public range, inside the isolated namespaces; it cannot be
combined with the uplink, which would route that range from the root namespace.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lilypad_p2p.control import ControlError
from lilypad_p2p.localnet import (
    COMMAND_TIMEOUT_S,
    POLL_INTERVAL_S,
    NodeProcess,
    free_octet,
    namespaces_missing,
    run_command,
)

NODE_PORT = 4001
# `wait_until`'s default deadline for what nodes report (reachability, reservations, offers).
WAIT_TIMEOUT_S = 30.0
# How long miniupnpd may take to listen (it starts in milliseconds).
UPNPD_START_TIMEOUT_S = 10.0
# The wan-side host numbers of the relays, in order, of router A, and of the root's uplink.
_RELAY_HOSTS = (1, 4)
_NAT_A_HOST = 2
_UPLINK_HOST = 254
# miniupnpd's nftables chains (its defaults), hooked into the router's forward and nat paths.
_UPNPD_NFT = """
table inet filter {
    chain forward { type filter hook forward priority 0; policy accept; jump miniupnpd; }
    chain miniupnpd { }
    chain prerouting { type nat hook prerouting priority -100; jump prerouting_miniupnpd; }
    chain postrouting { type nat hook postrouting priority 100; jump postrouting_miniupnpd; }
    chain prerouting_miniupnpd { }
    chain postrouting_miniupnpd { }
}
"""


class LabError(RuntimeError):
    """The lab could not be built or torn down."""


def lab_missing() -> str | None:
    """Why a NAT lab cannot run here, or None if it can."""
    return namespaces_missing()


def upnp_missing() -> str | None:
    """Why `NatLab(upnp=True)` cannot run here (besides `lab_missing`), or None if it can."""
    for tool in ("miniupnpd", "nft"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install -y miniupnpd-nftables nftables)"
    return None


def _free_octet() -> int:
    """A second octet N in 100..199 whose 10.N/16 and 11.N/16 (the upnp lab's wan) are free."""
    return free_octet(("10", "11"), range(100, 200), LabError)


def _run(args: Sequence[str], stdin: str | None = None) -> None:
    run_command(args, LabError, stdin)


@dataclass
class NatLab:
    """The lab's layout; `running()` builds it and always tears it down.

    Args:
        relays: public relay hosts, namespaces "relay" and (if 2) "relay2".
        symmetric: the NAT routers map each connection to a random port (hole punching fails).
        uplink: give the root namespace an address on the wan (`uplink_ip()`).
        upnp: router A runs miniupnpd (the wan then uses a public range, see above).
    """

    prefix: str = field(default_factory=lambda: f"lpn{secrets.token_hex(2)}")
    octet: int = field(default_factory=_free_octet)
    nodes: list[NodeProcess] = field(default_factory=list)
    relays: int = 1
    symmetric: bool = False
    uplink: bool = False
    upnp: bool = False
    _daemons: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _scratch: Path | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.relays <= len(_RELAY_HOSTS):
            raise LabError(f"relays must be 1..{len(_RELAY_HOSTS)}, got {self.relays}")
        if self.upnp and self.uplink:
            raise LabError("upnp and uplink cannot be combined (see the module docstring)")

    def _wan_ip(self, host: int) -> str:
        return f"{11 if self.upnp else 10}.{self.octet}.0.{host}"

    def ns(self, role: str) -> str:
        return f"{self.prefix}{role}"

    @property
    def relay_roles(self) -> list[str]:
        return ["relay", "relay2"][: self.relays]

    @property
    def namespaces(self) -> list[str]:
        roles = ["wan", *self.relay_roles, "nata", "natb", "hosta", "hostb"]
        return [self.ns(r) for r in roles]

    def relay_ip(self, index: int = 0) -> str:
        return self._wan_ip(_RELAY_HOSTS[index])

    def router_a_ip(self) -> str:
        """Router A's public (wan) address: host_a's observed address, and its UPnP one."""
        return self._wan_ip(_NAT_A_HOST)

    def relay_multiaddr(self, peer_id: str, index: int = 0) -> str:
        """The address nodes bootstrap from: relay `index`'s node with peer ID `peer_id`."""
        return f"/ip4/{self.relay_ip(index)}/tcp/{NODE_PORT}/p2p/{peer_id}"

    def uplink_ip(self) -> str:
        """The root namespace's address on the wan (only with `uplink=True`)."""
        if not self.uplink:
            raise LabError("this lab has no uplink (NatLab(uplink=True))")
        return self._wan_ip(_UPLINK_HOST)

    def _ns(self, ns: str, *args: str) -> None:
        _run(["ip", "netns", "exec", ns, *args])

    def _veth(self, left_ns: str, left: str, right_ns: str, right: str) -> None:
        _run(["ip", "link", "add", left, "type", "veth", "peer", "name", right])
        _run(["ip", "link", "set", left, "netns", left_ns])
        _run(["ip", "link", "set", right, "netns", right_ns])

    def _addr(self, ns: str, dev: str, cidr: str) -> None:
        self._ns(ns, "ip", "addr", "add", cidr, "dev", dev)
        self._ns(ns, "ip", "link", "set", dev, "up")

    def build(self) -> None:
        o, p = self.octet, self.prefix
        for ns in self.namespaces:
            _run(["ip", "netns", "add", ns])
            self._ns(ns, "ip", "link", "set", "lo", "up")
        wan = self.ns("wan")
        self._ns(wan, "ip", "link", "add", "br0", "type", "bridge")
        self._ns(wan, "ip", "link", "set", "br0", "up")
        public = [*zip(self.relay_roles, _RELAY_HOSTS, strict=False), ("nata", 2), ("natb", 3)]
        for role, host_octet in public:
            inside, outside = f"{p}{role[-1]}w", f"{p}{role[-1]}b"
            self._veth(self.ns(role), inside, wan, outside)
            self._ns(wan, "ip", "link", "set", outside, "master", "br0")
            self._ns(wan, "ip", "link", "set", outside, "up")
            self._addr(self.ns(role), inside, f"{self._wan_ip(host_octet)}/24")
        if self.uplink:
            root_end, wan_end = f"{p}up", f"{p}ub"
            _run(["ip", "link", "add", root_end, "type", "veth", "peer", "name", wan_end])
            _run(["ip", "link", "set", wan_end, "netns", wan])
            self._ns(wan, "ip", "link", "set", wan_end, "master", "br0")
            self._ns(wan, "ip", "link", "set", wan_end, "up")
            _run(["ip", "addr", "add", f"{self.uplink_ip()}/24", "dev", root_end])
            _run(["ip", "link", "set", root_end, "up"])
        for side, subnet in (("a", 1), ("b", 2)):
            nat, host = self.ns(f"nat{side}"), self.ns(f"host{side}")
            lan_nat, lan_host = f"{p}{side}l", f"{p}{side}h"
            self._veth(nat, lan_nat, host, lan_host)
            self._addr(nat, lan_nat, f"10.{o}.{subnet}.1/24")
            self._addr(host, lan_host, f"10.{o}.{subnet}.2/24")
            self._ns(host, "ip", "route", "add", "default", "via", f"10.{o}.{subnet}.1")
            self._ns(nat, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
            random_ports = ["--random-fully"] if self.symmetric else []
            self._ns(
                nat, "iptables", "-t", "nat", "-A", "POSTROUTING",
                "-o", f"{p}{side}w", "-j", "MASQUERADE", *random_ports,
            )
            # A home router's stateful firewall: unsolicited inbound packets are dropped, not
            # answered with a RST (which would abort the peer's hole-punching SYN).
            self._ns(
                nat, "iptables", "-A", "INPUT", "-i", f"{p}{side}w",
                "-m", "conntrack", "--ctstate", "NEW,INVALID", "-j", "DROP",
            )
        if self.upnp:
            self._start_miniupnpd()

    def _start_miniupnpd(self) -> None:
        """miniupnpd on router A, serving host_a's LAN, mapping ports on the wan side."""
        nat, p, o = self.ns("nata"), self.prefix, self.octet
        _run(["ip", "netns", "exec", nat, "nft", "-f", "-"], stdin=_UPNPD_NFT)
        self._scratch = Path(tempfile.mkdtemp(prefix=f"{p}-upnpd-"))
        config = self._scratch / "miniupnpd.conf"
        config.write_text(
            f"ext_ifname={p}aw\nlistening_ip={p}al\nhttp_port=0\nenable_upnp=yes\n"
            f"enable_natpmp=no\nsecure_mode=yes\nsystem_uptime=yes\nuuid={uuid.uuid4()}\n"
            "upnp_table_name=filter\nupnp_nat_table_name=filter\n"
            "upnp_forward_chain=miniupnpd\nupnp_nat_chain=prerouting_miniupnpd\n"
            "upnp_nat_postrouting_chain=postrouting_miniupnpd\n"
            f"allow 1024-65535 10.{o}.1.0/24 1024-65535\ndeny 0-65535 0.0.0.0/0 0-65535\n"
        )
        log_path = self._scratch / "miniupnpd.log"
        with log_path.open("wb") as log:
            self._daemons.append(subprocess.Popen(
                ["ip", "netns", "exec", nat, "miniupnpd", "-d", "-f", str(config),
                 "-P", str(self._scratch / "miniupnpd.pid")],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            ))
        deadline = time.monotonic() + UPNPD_START_TIMEOUT_S
        while b"HTTP listening on port" not in log_path.read_bytes():
            if self._daemons[-1].poll() is not None or time.monotonic() > deadline:
                raise LabError(f"miniupnpd did not start:\n{self.upnpd_log()}")
            time.sleep(POLL_INTERVAL_S)

    def upnpd_log(self) -> str:
        """What miniupnpd said (empty without `upnp`)."""
        if self._scratch is None or not (self._scratch / "miniupnpd.log").exists():
            return ""
        return (self._scratch / "miniupnpd.log").read_text(errors="replace")

    def upnp_mappings(self) -> str:
        """Router A's UPnP port forwards as nftables lists them (its DNAT rules)."""
        done = subprocess.run(
            ["ip", "netns", "exec", self.ns("nata"), "nft", "list", "chain", "inet", "filter",
             "prerouting_miniupnpd"],
            capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False,
        )
        return done.stdout

    def start_node(
        self, role: str, home: Path, args: Sequence[str], *, env: dict[str, str] | None = None
    ) -> NodeProcess:
        """A real `lilypad-p2p node` process inside the namespace `role`."""
        home.mkdir(parents=True, exist_ok=True)
        command = [
            "ip", "netns", "exec", self.ns(role), sys.executable, "-m", "lilypad_p2p.cli",
            "node", "--home", str(home), "--listen", f"/ip4/0.0.0.0/tcp/{NODE_PORT}", *args,
        ]
        clean_env = {k: v for k, v in os.environ.items() if not k.startswith("LILYPAD_")}
        log_path = home / "node.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**clean_env, "PYTHONUNBUFFERED": "1", **(env or {})},
            )
        node = NodeProcess(name=role, home=home, process=process, log_path=log_path)
        self.nodes.append(node)
        return node

    def wait_until(
        self, condition: Callable[[], object], what: str, timeout_s: float = WAIT_TIMEOUT_S
    ) -> None:
        """Poll `condition()` until truthy (a node not answering yet counts as false).

        Raises:
            LabError: the deadline passed, or a node of the lab exited meanwhile.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(ControlError, OSError):
                if condition():
                    return
            for node in self.nodes:
                if node.process.poll() is not None:
                    raise LabError(f"{node.name} exited while waiting for {what}:\n"
                                   f"{node.log_tail()}")
            time.sleep(POLL_INTERVAL_S)
        raise LabError(f"timed out after {timeout_s} s waiting for {what}")

    def stop_nodes(self) -> None:
        for node in self.nodes:
            if node.process.poll() is None:
                node.process.send_signal(signal.SIGINT)
        for node in self.nodes:
            node.stop()

    def teardown(self) -> None:
        with contextlib.suppress(Exception):
            self.stop_nodes()
        for daemon in self._daemons:
            daemon.terminate()
            try:
                daemon.wait(COMMAND_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        # A veth still in the root namespace (a build that failed half-way) goes too.
        for link in self._root_links():
            subprocess.run(["ip", "link", "del", link], capture_output=True, check=False)

    def _root_links(self) -> list[str]:
        out = subprocess.run(
            ["ip", "-o", "link", "show"], capture_output=True, text=True, check=False
        ).stdout
        lines = [line for line in out.splitlines() if ":" in line]
        names = [line.split(":")[1].strip().split("@")[0] for line in lines]
        return [name for name in names if name.startswith(self.prefix)]

    def leftovers(self) -> list[str]:
        """Namespaces, root links or daemons of this run that still exist (should be none)."""
        listed = subprocess.run(
            ["ip", "netns", "list"], capture_output=True, text=True, check=False
        ).stdout
        spaces = [line.split()[0] for line in listed.splitlines() if line.startswith(self.prefix)]
        daemons = [f"daemon pid {d.pid}" for d in self._daemons if d.poll() is None]
        return spaces + self._root_links() + daemons

    @contextlib.contextmanager
    def running(self) -> Iterator[NatLab]:
        try:
            self.build()
            yield self
        finally:
            self.teardown()
