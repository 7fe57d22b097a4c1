"""One `NodeConfig` per node: TOML file < `LILYPAD_*` environment < command-line flags.

Every setting is declared once, as a field of `NodeConfig`: its type, default, kind of value
(bounds included), TOML key, environment variable, flag and a line of help. The parsing, the
errors, `lilypad-p2p node --help` and the README's settings list all come from that one table
(`SETTINGS`), so they cannot drift apart, and an error always names the setting and the source
that gave the bad value. Validation happens at start, before any socket opens. (Not pydantic:
its errors are generic and several lines long, and each value here must be refused with one
line naming where it came from; a small table of kinds says that more briefly.)

The TOML file is `<home>/config.toml` unless `--config` names another:

```toml
roles = ["provider", "solver"]
listen = ["/ip4/0.0.0.0/tcp/4001"]
bootstrap = ["/ip4/203.0.113.7/tcp/4001/p2p/16Uiu2HAm..."]
markets = ["cpu"]
log_level = "info"

[chain]
rpc_url = "http://127.0.0.1:8545"   # absent: the embedded py-evm chain
contract = "0x..."
```

`[chain]` is the one-chain shorthand. A node serving several settlement chains at once lists
them instead (not both; the first is the default for `submit`):

```toml
[[chains]]
chain_id = 31337                    # checked against the RPC's eth_chainId at start
rpc_url = "http://127.0.0.1:8545"   # or "embedded" (at most one)
contract = "0x..."
requests = "0x..."                  # optional: LilypadRequests, served by --chain-bridge
```
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from lilypad_p2p._config_file import ADDRESS, RPC_URL, ChainSettings, chain_list, lookup, read_toml
from lilypad_p2p._config_kinds import (
    Choice,
    Flag,
    Fraction,
    HostPort,
    Kind,
    Multiaddrs,
    PeerListFile,
    ResourceLimits,
    StringList,
    Strings,
    Whole,
)
from lilypad_p2p.errors import ConfigError

if TYPE_CHECKING:
    from lilypad_p2p.net import NetLimits

__all__ = [
    "SETTINGS",
    "ChainSettings",
    "NodeConfig",
    "Setting",
    "check_home",
    "default_home",
    "load_config",
]

T = TypeVar("T")

ROLES = ("client", "provider", "solver", "mediator", "relay", "chain-bridge")
# The roles that receive their markets' gossip: clients and solvers, a chain bridge (it posts
# jobs as a client does), and a relay, which carries the gossip of the peers behind NATs that
# reach each other only through it. The others only publish into it.
MARKET_FOLLOWING_ROLES = frozenset({"client", "solver", "chain-bridge", "relay"})
# Of them, those that also receive job offers and their cancellations: solvers match them, and a
# relay carries them. Clients and chain bridges send theirs to the solvers and relays they are
# connected to, and hear only the matches (DESIGN §4).
JOB_FOLLOWING_ROLES = frozenset({"solver", "relay"})
# The roles that post job offers.
JOB_POSTING_ROLES = frozenset({"client", "chain-bridge"})
DEFAULT_LISTEN = ("/ip4/0.0.0.0/tcp/4001",)
CONTROL_SOCKET = "control.sock"
DEFAULT_MARKETS = ("cpu",)
LOG_LEVELS = ("debug", "info", "warning", "error")

# How often a node re-publishes its NodeRecord (seconds; market.REPUBLISH_INTERVAL_MS for its
# offers): newcomers get both by offer sync, so this only renews them before they go stale.
NODE_RECORD_INTERVAL_S = 480.0
# How long a control-interface client waits for the node to answer.
CONTROL_TIMEOUT_S = 10.0
# Largest control request or response line accepted (bytes).
CONTROL_MAX_LINE = 4 * 1024 * 1024

# A job's inputs at most (and the output a client takes back): inputs and outputs are streamed
# in sealed chunks (roles/_transfer.py), so this bounds disk, not memory.
DEFAULT_MAX_JOB_BYTES = 4 * 1024**3

DAY_S = 86_400
MAX_WEI = (1 << 256) - 1
WEI = Whole(0, MAX_WEI, "wei")
# A deal timeout is a day at most; an acceptance window a week (the contract holds the money
# meanwhile); relay and connection limits are far above any need.
TIMEOUT = Whole(1, DAY_S, "s")
WEEK = Whole(1, 7 * DAY_S, "s")
LIMIT = Whole(1, 1 << 40)
LIMIT_BYTES = Whole(1, 1 << 40, "bytes")
ANY_COUNT = Whole(0, 2**63)


def _distinct(items: Strings) -> Strings:
    return tuple(dict.fromkeys(items))


def _by_address(items: Strings) -> Strings:
    """Offers list mediators sorted by their lowercase form, without duplicates."""
    return tuple(sorted({a.lower(): a for a in items}.values(), key=str.lower))


_MODULE_REF = r"[a-z0-9][a-z0-9_-]{0,63}(@[0-9A-Za-z.+-]{1,32})?|bafkrei[a-z2-7]{52}"


@dataclass(frozen=True, slots=True)
class _Spec(Generic[T]):
    """What `setting()` records on a field; `Setting` adds the field's name."""

    kind: Kind[T]
    help: str
    toml: str | None
    env: str | None
    flag: str | None
    hidden: bool


def setting(default: T, kind: Kind[T], help: str, *, toml: str | None = None,
            env: str | None = None, flag: str | None = None, hidden: bool = False) -> T:
    """A `NodeConfig` field that is a setting. `toml` is its key in the file ("table.key" in a
    table; default: the field's name), `env` its variable (default: LILYPAD_<NAME>), `flag` the
    `node` flag that sets it, if any; `hidden` keeps a test fault out of the help."""
    return field(default=default, metadata={"setting": _Spec(kind, help, toml, env, flag, hidden)})


@dataclass(frozen=True, slots=True)
class NodeConfig:
    home: Path
    roles: frozenset[str] = setting(
        frozenset(), StringList("|".join(map(re.escape, ROLES)), f"a role ({', '.join(ROLES)})",
                                frozenset),
        "the roles this node plays", flag="--client, --provider, --solver, --mediator, "
        "--relay, --chain-bridge")
    listen: tuple[str, ...] = setting(DEFAULT_LISTEN, Multiaddrs(listenable=True),
                                      "multiaddrs to listen on", flag="--listen")
    bootstrap: tuple[str, ...] = setting((), Multiaddrs(need_peer_id=True), "peers to join through",
                                 flag="--bootstrap")
    bootstrap_file_peers: tuple[str, ...] = setting(
        (), PeerListFile(), "a peer list to join through (bootstrap/README.md)",
        toml="bootstrap_file", env="LILYPAD_BOOTSTRAP_FILE")
    markets: tuple[str, ...] = setting(
        DEFAULT_MARKETS, StringList(r"[a-z0-9][a-z0-9_-]{0,31}", "a market name (lowercase "
                                    "letters, digits, '-' or '_', at most 32 characters)",
                                    _distinct, at_least_one=True),
        "markets to join (cpu, gpu, ...)", flag="--market")
    # Solvers receive every offer, match and cancel of their markets, clients every resource
    # offer and match; other nodes (providers) only publish into them, unless this is on
    # (README "Seeing the market").
    follow_markets: bool = setting(False, Flag(), "receive the markets' job offers and matches "
                                   "without the solver role (the `market` view of a client or "
                                   "provider), at the cost of every job's gossip")
    log_level: str = setting("info", Choice(LOG_LEVELS, fold_case=True), "how much to log",
                             flag="--log-level")
    # The one-chain shorthand `[chain]`; `[[chains]]` lists several (see `chains`).
    rpc_url: str | None = setting(None, RPC_URL, "JSON-RPC URL of the settlement chain "
                                  "(absent: the embedded chain)", toml="chain.rpc_url",
                                  flag="--rpc-url")
    contract: str | None = setting(None, ADDRESS, "the settlement contract",
                                   toml="chain.contract", flag="--contract")
    # On-chain job requests (roles/_bridge.py): the LilypadRequests contract on the same chain,
    # whose requests a chain-bridge node serves once this many blocks are mined on top of one
    # (reorg safety; 0 for a dev chain that mines only on demand).
    requests_contract: str | None = setting(
        None, ADDRESS, "the LilypadRequests contract a chain-bridge serves",
        toml="chain.requests")
    bridge_confirmations: int = setting(
        12, Whole(0, 10_000, "blocks"), "blocks on top of a request before a bridge acts")
    # A deal's consortium is drawn from the mediators both sides trust.
    mediators: tuple[str, ...] = setting(
        (), StringList(r"0x[0-9a-fA-F]{40}", "a 0x-prefixed 20-byte address", _by_address),
        "mediators this node trusts (their addresses), put in its offers")
    # Deal timeouts (market/_deal.py) and the acceptance window a client's deals carry on
    # chain. Short values are for tests; defaults suit a real market.
    match_timeout_s: int = setting(60, TIMEOUT, "how long a job offer waits for a match")
    agreement_timeout_s: int = setting(30, TIMEOUT, "how long a matched deal waits to be signed")
    acceptance_timeout_s: int = setting(30, TIMEOUT, "how long a result waits to be accepted")
    settlement_timeout_s: int = setting(30, TIMEOUT, "how long an accepted deal waits to settle")
    acceptance_window_s: int = setting(120, WEEK, "the acceptance window a deal carries on chain")
    # NAT (net/_nat.py, bootstrap/README.md): reservations a private node keeps, a relay's
    # limits, UPnP port mapping.
    relay_reservations: int = setting(2, Whole(1, 64), "relay reservations a private node keeps",
                                      toml="relay.reservations")
    relay_max_reservations: int = setting(128, Whole(1, 65_536), "reservations a relay grants",
                                          toml="relay.max_reservations")
    relay_max_circuits: int = setting(64, Whole(1, 65_536), "circuits a relay carries at once",
                                      toml="relay.max_circuits")
    relay_circuit_duration_s: int = setting(7200, WEEK, "longest relayed circuit",
                                            toml="relay.circuit_duration_s")
    relay_circuit_bytes: int = setting(1 << 30, Whole(1, 1 << 40, "bytes"),
                                       "most bytes one relayed circuit carries",
                                       toml="relay.circuit_bytes")
    upnp: bool = setting(False, Flag(), "map the listening port on the router by UPnP")
    # Both muxers are always offered, so nodes with different settings still connect;
    # relayed connections work over both.
    muxer: str = setting("yamux", Choice(("mplex", "yamux")), "stream muxer proposed first")
    # A public node's budgets (net/_admission.py NetLimits, whose defaults these are; README
    # "What a public node withstands").
    limit_max_connections: int = setting(160, LIMIT, "connections in all",
                                         toml="limits.max_connections")
    limit_max_inbound: int = setting(128, LIMIT, "inbound connections",
                                     toml="limits.max_inbound")
    limit_max_outbound: int = setting(64, LIMIT, "outbound connections",
                                      toml="limits.max_outbound")
    limit_max_per_ip: int = setting(8, LIMIT, "connections from one IP address",
                                    toml="limits.max_per_ip")
    limit_max_per_subnet: int = setting(32, LIMIT, "connections from one /24 or /48",
                                        toml="limits.max_per_subnet")
    limit_max_per_peer: int = setting(3, LIMIT, "connections from one peer",
                                      toml="limits.max_per_peer")
    limit_max_streams_per_protocol_per_peer: int = setting(
        32, LIMIT, "open streams of one protocol from one peer",
        toml="limits.max_streams_per_protocol_per_peer")
    limit_max_inflight_bytes_per_peer: int = setting(
        80 * 1024 * 1024, LIMIT_BYTES, "request bytes in flight from one peer",
        toml="limits.max_inflight_bytes_per_peer")
    limit_max_inflight_bytes: int = setting(256 * 1024 * 1024, LIMIT_BYTES,
                                            "request bytes in flight in all",
                                            toml="limits.max_inflight_bytes")
    limit_ban_s: int = setting(120, WEEK, "how long a misbehaving peer is refused",
                               toml="limits.ban_s")
    # Mediation (roles/_mediator.py, market/_consortium.py).
    mediator_stake_wei: int = setting(10**18, WEI, "a mediator's stake")
    check_rate_ppm: int = setting(
        0, Fraction(), "client: share of jobs re-run by mediators as spot checks (it only takes "
        "offers whose collateral >= price / rate)", toml="check_rate", env="LILYPAD_CHECK_RATE",
        flag="--check-rate")
    mediation_fee_wei: int = setting(10**14, WEI, "client: the fee a mediation pays each mediator")
    consortium_size: int = setting(3, Whole(1, 32), "client: mediators per deal (the "
                                   "contract's bound)")
    consortium_threshold: int = setting(0, Whole(0, 32), "client: verdicts that resolve a "
                                        "dispute (0: a strict majority)")
    # roles/_resource_offer.py DEFAULT_PRICE_PER_JOB_WEI; roles/_client_records.py.
    price_per_job_wei: int = setting(10**15, WEI, "provider: asking price per job")
    offer_disk_mb: int = setting(
        0, Whole(0, 1 << 40, "MiB"), "provider: disk it offers jobs (0: the free space under "
        "its home at start, where jobs' inputs and outputs go)")
    require_provider_deals: int = setting(0, ANY_COUNT, "client: completed deals a provider "
                                          "needs on chain (0 admits newcomers)")
    require_slash_free_blocks: int = setting(0, Whole(0, 2**63, "blocks"), "client: blocks a "
                                             "provider must have gone without a slash")
    prefer_provider_records: bool = setting(False, Flag(), "client: prefer providers with "
                                            "longer track records")
    # The operator's listener (observe/): off loopback it asks for <home>/metrics.token.
    metrics_listen: str | None = setting(
        None, HostPort(), "HOST:PORT serving /metrics, /healthz, /readyz and the status page",
        flag="--metrics-listen")
    # At least a MiB (a job's header and a module's small inputs), at most a PiB.
    max_job_bytes: int = setting(DEFAULT_MAX_JOB_BYTES, Whole(1 << 20, 1 << 50, "bytes"),
                                 "most bytes of a job's inputs, and of the output taken back")
    # A provider's module policy (market/_module_policy.py): with none of these set it runs the
    # shipped modules only.
    module_allow: tuple[str, ...] = setting(
        (), StringList(_MODULE_REF, "a module name or a module ID", tuple),
        "provider: modules it runs (IDs, or shipped modules by name)", toml="modules.allow",
        env="LILYPAD_MODULES_ALLOW")
    module_allow_images: tuple[str, ...] = setting(
        (), StringList(r"sha256:[0-9a-f]{64}", "sha256:<64 hex>", tuple),
        "provider: any module whose image has one of these digests",
        toml="modules.allow_images", env="LILYPAD_MODULES_ALLOW_IMAGES")
    module_allow_repositories: tuple[str, ...] = setting(
        (), StringList(r"[^@]{0,100}", "a repository prefix (no '@', at most 100 characters)",
                       tuple),
        "provider: any module whose image is under one of these",
        toml="modules.allow_repositories", env="LILYPAD_MODULES_ALLOW_REPOSITORIES")
    module_allow_any: bool = setting(False, Flag(), "provider: any module at all (its spec must "
                                     "fit)", toml="modules.allow_any",
                                     env="LILYPAD_MODULES_ALLOW_ANY")
    module_any_within: tuple[int, int, int, int] | None = setting(
        None, ResourceLimits(), "provider: any module needing at most these",
        toml="modules.any_within", env="LILYPAD_MODULES_ANY_WITHIN")
    max_image_mb: int = setting(2048, Whole(1, 1 << 30, "MB"), "largest image download accepted",
                                toml="modules.max_image_mb")
    pull_timeout_s: int = setting(300, WEEK, "longest image pull accepted",
                                  toml="modules.pull_timeout_s")
    # Test faults (the simnet and tests use them): a provider that commits to a wrong output
    # (or claims every job failed), a mediator that signs the opposite of what its runs show, a
    # node that sends this many invalid gossip messages a second to every peer
    # (testing/_spam.py): honest nodes must score it out.
    cheat_wrong_output: bool = setting(False, Flag(), "test fault", hidden=True)
    cheat_false_failure: bool = setting(False, Flag(), "test fault", hidden=True)
    mediator_lies: bool = setting(False, Flag(), "test fault", hidden=True)
    spam_gossip_per_s: int = setting(0, Whole(0, 10_000), "test fault", hidden=True)
    # `[[chains]]` entries, in order (empty: the `[chain]` shorthand is the one chain).
    chain_list: tuple[ChainSettings, ...] = ()

    @property
    def chains(self) -> tuple[ChainSettings, ...]:
        """Every settlement chain this node serves; the first is its default."""
        if self.chain_list:
            return self.chain_list
        return (ChainSettings(None, self.rpc_url, self.contract, self.requests_contract),)

    @property
    def keystore_dir(self) -> Path:
        return self.home / "keys"

    @property
    def control_socket(self) -> Path:
        return self.home / CONTROL_SOCKET

    @property
    def control_token_file(self) -> Path:
        return self.home / "control.token"

    @property
    def database(self) -> Path:
        return self.home / "node.sqlite"

    @property
    def net_limits(self) -> NetLimits:
        """The `[limits]` settings as the network's budgets.

        Raises:
            ConfigError: the limits contradict each other.
        """
        from lilypad_p2p.net import NetLimits  # imported late: `node --help` reads this module
        from lilypad_p2p.net._admission import LIMIT_NAMES

        try:
            return NetLimits(**{name: getattr(self, f"limit_{name}") for name in LIMIT_NAMES})
        except ValueError as exc:
            raise ConfigError(f"[limits]: {exc}") from exc

    def has_role(self, role: str) -> bool:
        return role in self.roles

    @property
    def follows_markets(self) -> bool:
        """Whether this node subscribes to its markets' topics (else it only publishes)."""
        return self.follow_markets or not self.roles.isdisjoint(MARKET_FOLLOWING_ROLES)

    @property
    def follows_jobs(self) -> bool:
        """Whether this node also receives its markets' job offers."""
        return self.follow_markets or not self.roles.isdisjoint(JOB_FOLLOWING_ROLES)

    @property
    def publishes_jobs_only(self) -> bool:
        """Whether this node posts job offers without receiving its markets' (a client): it
        sends them to the job followers it is connected to."""
        return not self.roles.isdisjoint(JOB_POSTING_ROLES) and not self.follows_jobs


@dataclass(frozen=True, slots=True)
class Setting:
    """One row of the table: a `NodeConfig` field that a file, a variable or a flag sets."""

    name: str
    toml_key: tuple[str, ...]
    env: str
    flag: str | None
    kind: Kind[Any]
    default: object
    help: str
    hidden: bool

    @property
    def label(self) -> str:
        """The setting as the file spells it: `listen`, `chain.rpc_url`."""
        return ".".join(self.toml_key)

    def parse(self, value: object, source: str, *, from_file: bool = False) -> object:
        """`value` as the setting holds it; `from_file`: TOML gave it (typed), not text."""
        if from_file:
            return self.kind.parse_file(value, self.label, source)
        return self.kind.parse(value, self.label, source)


def _table() -> tuple[Setting, ...]:
    rows = []
    for item in fields(NodeConfig):
        spec = item.metadata.get("setting")
        if spec is not None:
            rows.append(Setting(item.name, tuple((spec.toml or item.name).split(".")),
                                spec.env or f"LILYPAD_{item.name.upper()}", spec.flag,
                                spec.kind, item.default, spec.help, spec.hidden))
    return tuple(rows)


SETTINGS = _table()


def default_home() -> Path:
    return Path(os.environ.get("LILYPAD_HOME") or Path.home() / ".lilypad-p2p")


def check_home(home: Path) -> None:
    """Raise ConfigError if `home` is there but is not a directory (every command's check)."""
    if home.exists() and not home.is_dir():
        raise ConfigError(f"--home {home} is not a directory: pass the node's directory")


def load_config(
    *,
    home: Path | None = None,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, object] | None = None,
    flag_names: Mapping[str, str] | None = None,
) -> NodeConfig:
    """Merge file < environment < flags into a validated NodeConfig.

    `flags` maps attribute names to values given on the command line; a value of None means the
    flag was not given. `flag_names` maps attribute names to the calling command's spelling of
    a flag where it is not the node's (the chain commands' `--rpc` is the node's `--rpc-url`).
    Raises ConfigError naming the setting and its source.
    """
    environ = os.environ if environ is None else environ
    flags = flags or {}
    flag_names = flag_names or {}
    home = Path(home) if home is not None else Path(environ.get("LILYPAD_HOME") or default_home())
    check_home(home)
    config_path = config_file or home / "config.toml"
    if config_file is not None and not config_file.exists():
        raise ConfigError(f"--config {config_file}: no such file")
    file_data = read_toml(config_path, [row.toml_key for row in SETTINGS])

    values: dict[str, Any] = {}  # each what its setting's kind returns: the field's type
    for row in SETTINGS:
        candidates = (
            (lookup(file_data, row.toml_key), str(config_path), True),
            (environ.get(row.env) or None, row.env, False),  # empty means unset
            (flags.get(row.name), flag_names.get(row.name) or row.flag
             or f"--{row.name.replace('_', '-')}", False),
        )
        for raw, source, from_file in candidates:
            if raw is not None:
                values[row.name] = row.parse(raw, source, from_file=from_file)
    if "chains" in file_data:
        shorthand = [name for name in ("rpc_url", "contract", "requests_contract")
                     if values.get(name) is not None]
        if shorthand:
            raise ConfigError(
                f"{config_path}: [[chains]] lists the chains, so {shorthand} (from [chain], "
                "the environment or a flag) would be ambiguous: put them in a [[chains]] entry "
                "(the chain commands pick an entry with --chain-id)"
            )
        values["chain_list"] = chain_list(file_data["chains"], str(config_path))
    config = NodeConfig(home=home, **values)
    config.net_limits  # noqa: B018 - raises ConfigError if the [limits] contradict each other
    return config
