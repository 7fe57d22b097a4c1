"""Node groups in Linux network namespaces around a core namespace that runs anvil.

    root ns 10.O.0.1 ──── core 10.O.0.2 (anvil on :8545, forwards between groups)
                           ├── group k, public: 10.O.k.2 (its nodes listen there)
                           └── group k, natted: router 10.O.k.2 | 10.O.(k+100).1, MASQUERADE
                                                 └── host 10.O.(k+100).2 (its nodes)

Every node reaches anvil at the core's 10.O.0.2 through its default route, and so does the
simnet from the root namespace; control sockets are files, so the simnet drives the nodes as
usual. A partition is a pair of iptables DROP rules in the core's FORWARD chain between two
groups (traffic to the core itself, the chain, is untouched); healing deletes them. A natted
group's router drops unsolicited inbound packets, like `lilypad_p2p.testing._nat_lab`.

Every name starts with a per-run prefix and everything lives in namespaces created here
(deleting a namespace deletes its veths and iptables rules), so `teardown` - run on any exit -
leaves nothing behind, and `leftovers` checks it. Needs root, `ip` and `iptables`.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lilypad_p2p.chain import open_rpc_chain
from lilypad_p2p.localnet import free_octet, namespaces_missing, run_command, stop_anvil

ANVIL_PORT = 8545
ANVIL_START_TIMEOUT_S = 30.0
ANVIL_POLL_S = 0.2
NAT_LAN_OFFSET = 100
# Where `ip netns add` names each namespace (what `ip netns exec` enters).
NAMESPACE_DIR = Path("/run/netns")
# Second octets the labs use (the NAT lab in lilypad_p2p.testing takes 100-199).
OCTET_RANGE = (20, 100)


class NetnsError(RuntimeError):
    """The namespaces could not be built, changed or torn down."""


def netns_missing() -> str | None:
    """Why namespaced scenarios cannot run here, or None if they can."""
    return namespaces_missing()


def _run(args: Sequence[str]) -> None:
    run_command(args, NetnsError)


def _free_octet() -> int:
    """A second octet for 10.O.0.0/16 no root-namespace address uses (another lab's uplink)."""
    return free_octet(("10",), range(*OCTET_RANGE), NetnsError)


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    index: int  # 1..99: the group's subnet octet
    natted: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.index < NAT_LAN_OFFSET or not self.name.isalnum():
            raise NetnsError(f"group {self.name!r} #{self.index}: need an alphanumeric name "
                             f"and an index in 1..{NAT_LAN_OFFSET - 1}")


@dataclass
class NetnsLab:
    groups: tuple[Group, ...]
    prefix: str = field(default_factory=lambda: f"sn{secrets.token_hex(2)}")
    octet: int = field(default_factory=lambda: _free_octet())
    partitions: list[tuple[str, str]] = field(default_factory=list)

    def ns(self, role: str) -> str:
        return f"{self.prefix}{role}"

    @property
    def core_ip(self) -> str:
        return f"10.{self.octet}.0.2"

    @property
    def rpc_url(self) -> str:
        return f"http://{self.core_ip}:{ANVIL_PORT}"

    def group(self, name: str) -> Group:
        for group in self.groups:
            if group.name == name:
                return group
        raise NetnsError(f"no group {name!r}")

    def node_ns(self, name: str) -> str:
        """The namespace a group's nodes run in (the host behind the router when natted)."""
        group = self.group(name)
        return self.ns(f"{group.name}h" if group.natted else group.name)

    def node_ip(self, name: str) -> str:
        group = self.group(name)
        if group.natted:
            return f"10.{self.octet}.{group.index + NAT_LAN_OFFSET}.2"
        return f"10.{self.octet}.{group.index}.2"

    def subnet(self, name: str) -> str:
        return f"10.{self.octet}.{self.group(name).index}.0/24"

    @property
    def namespaces(self) -> list[str]:
        spaces = [self.ns("core")]
        for group in self.groups:
            spaces.append(self.ns(group.name))
            if group.natted:
                spaces.append(self.ns(f"{group.name}h"))
        return spaces

    def _in(self, ns: str, *args: str) -> None:
        _run(["ip", "netns", "exec", ns, *args])

    def _link(self, left_ns: str | None, left: str, left_cidr: str, right_ns: str, right: str,
              right_cidr: str) -> None:
        _run(["ip", "link", "add", left, "type", "veth", "peer", "name", right])
        _run(["ip", "link", "set", right, "netns", right_ns])
        self._in(right_ns, "ip", "addr", "add", right_cidr, "dev", right)
        self._in(right_ns, "ip", "link", "set", right, "up")
        if left_ns is None:  # the root namespace: the simnet reaches anvil through this link
            _run(["ip", "addr", "add", left_cidr, "dev", left])
            _run(["ip", "link", "set", left, "up"])
            return
        _run(["ip", "link", "set", left, "netns", left_ns])
        self._in(left_ns, "ip", "addr", "add", left_cidr, "dev", left)
        self._in(left_ns, "ip", "link", "set", left, "up")

    def build(self) -> None:
        o, p = self.octet, self.prefix
        for ns in self.namespaces:
            _run(["ip", "netns", "add", ns])
            self._in(ns, "ip", "link", "set", "lo", "up")
        core = self.ns("core")
        self._link(None, f"{p}r", f"10.{o}.0.1/24", core, f"{p}c", f"10.{o}.0.2/24")
        self._in(core, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        for group in self.groups:
            k, gns = group.index, self.ns(group.name)
            self._link(core, f"{p}{group.name}c", f"10.{o}.{k}.1/24", gns, f"{p}{group.name}w",
                       f"10.{o}.{k}.2/24")
            self._in(gns, "ip", "route", "add", "default", "via", f"10.{o}.{k}.1")
            if not group.natted:
                continue
            lan = k + NAT_LAN_OFFSET
            host = self.ns(f"{group.name}h")
            self._link(gns, f"{p}{group.name}l", f"10.{o}.{lan}.1/24", host,
                       f"{p}{group.name}h", f"10.{o}.{lan}.2/24")
            self._in(host, "ip", "route", "add", "default", "via", f"10.{o}.{lan}.1")
            self._in(gns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
            self._in(gns, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o",
                     f"{p}{group.name}w", "-j", "MASQUERADE")
            # A home router's stateful firewall: unsolicited inbound packets are dropped.
            self._in(gns, "iptables", "-A", "INPUT", "-i", f"{p}{group.name}w", "-m",
                     "conntrack", "--ctstate", "NEW,INVALID", "-j", "DROP")
            self._in(gns, "iptables", "-A", "FORWARD", "-i", f"{p}{group.name}w", "-m",
                     "conntrack", "--ctstate", "NEW,INVALID", "-j", "DROP")

    def _drop_rules(self, left: str, right: str, action: str) -> None:
        for source, target in ((left, right), (right, left)):
            self._in(self.ns("core"), "iptables", action, "FORWARD", "-s", self.subnet(source),
                     "-d", self.subnet(target), "-j", "DROP")

    def partition(self, left: str, right: str) -> None:
        """Drop every packet between two groups (both ways) in the core."""
        self._drop_rules(left, right, "-I")
        self.partitions.append((left, right))

    def heal(self) -> None:
        """Remove every partition."""
        while self.partitions:
            left, right = self.partitions.pop()
            self._drop_rules(left, right, "-D")

    def command(self, group: str, args: Sequence[str]) -> list[str]:
        """`args` run inside the namespace of `group`'s nodes."""
        return ["ip", "netns", "exec", self.node_ns(group), *args]

    def namespace_file(self, group: str) -> Path:
        """The file that names the namespace of `group`'s nodes (for setns)."""
        return NAMESPACE_DIR / self.node_ns(group)

    def teardown(self) -> None:
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        for link in self._root_links():
            subprocess.run(["ip", "link", "del", link], capture_output=True, check=False)

    def _root_links(self) -> list[str]:
        out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                             check=False).stdout
        names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()
                 if ":" in line]
        return [name for name in names if name.startswith(self.prefix)]

    def leftovers(self) -> list[str]:
        """Namespaces or root links of this lab that still exist (none after teardown)."""
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                                check=False).stdout
        spaces = [line.split()[0] for line in listed.splitlines()
                  if line.startswith(self.prefix)]
        return spaces + self._root_links()

    @contextlib.contextmanager
    def running(self) -> Iterator[NetnsLab]:
        try:
            self.build()
            yield self
        finally:
            self.teardown()

    @contextlib.contextmanager
    def anvil(self, binary: Path, log_path: Path) -> Iterator[str]:
        """Anvil in the core namespace, reachable by every group and the root namespace."""
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                ["ip", "netns", "exec", self.ns("core"), str(binary), "--host", "0.0.0.0",
                 "--port", str(ANVIL_PORT), "--hardfork", "prague", "--accounts", "1"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + ANVIL_START_TIMEOUT_S
            while True:
                if process.poll() is not None:
                    raise NetnsError(f"anvil exited ({process.returncode}); see {log_path}")
                with contextlib.suppress(Exception):
                    open_rpc_chain(self.rpc_url).block_number()
                    break
                if time.monotonic() > deadline:
                    raise NetnsError(f"anvil did not answer within {ANVIL_START_TIMEOUT_S} s")
                time.sleep(ANVIL_POLL_S)
            yield self.rpc_url
        finally:
            stop_anvil(process)
