"""One `NodeConfig` per node: TOML file < `LILYPAD_*` environment < command-line flags.

Every setting is declared once in `SETTINGS` (its TOML key, its environment variable, how to
parse and check it), so the three sources cannot drift apart and an error always names the
setting and the source that gave the bad value. Validation happens at start, before any socket
opens.

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
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lilypad_p2p._module_config import MODULE_SETTINGS, check_module_table
from lilypad_p2p.errors import ConfigError
from lilypad_p2p.net._admission import LIMIT_NAMES, NetLimits

_DEFAULT_LIMITS = NetLimits()
ROLES = ("client", "provider", "solver", "mediator", "relay", "chain-bridge")
DEFAULT_LISTEN = ("/ip4/0.0.0.0/tcp/4001",)
DEFAULT_MARKETS = ("cpu",)
LOG_LEVELS = ("debug", "info", "warning", "error")
MARKET_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")

# How often a node re-publishes its NodeRecord (seconds; market.REPUBLISH_INTERVAL_MS for its
# offers): newcomers get both by offer sync, so this only renews them before they go stale.
NODE_RECORD_INTERVAL_S = 60.0
# How long a control-interface client waits for the node to answer.
CONTROL_TIMEOUT_S = 10.0
# Largest control request or response line accepted (bytes).
CONTROL_MAX_LINE = 4 * 1024 * 1024


# Largest chain ID (EIP-2294's bound; the same as the wire's `MAX_CHAIN_ID`) and the most
# chains one node serves (a resource offer lists at most this many).
MAX_CHAIN_ID = (1 << 63) - 36
MAX_CHAINS = 16
_CHAIN_ENTRY_KEYS = frozenset({"chain_id", "rpc_url", "contract", "requests"})


# A job's inputs at most (and the output a client takes back): inputs and outputs are streamed
# in sealed chunks (roles/_transfer.py), so this bounds disk, not memory.
DEFAULT_MAX_JOB_BYTES = 4 * 1024**3


def default_home() -> Path:
    return Path(os.environ.get("LILYPAD_HOME") or Path.home() / ".lilypad-p2p")


@dataclass(frozen=True, slots=True)
class ChainSettings:
    """One settlement chain of a node. `chain_id` None (the `[chain]` shorthand) takes the
    chain's own ID; otherwise the chain must report that ID at start. `rpc_url` None is the
    embedded chain; `requests` is its LilypadRequests contract, if the node bridges it."""

    chain_id: int | None = None
    rpc_url: str | None = None
    contract: str | None = None
    requests: str | None = None

    def __post_init__(self) -> None:
        if self.chain_id is not None and (
            type(self.chain_id) is not int or not 1 <= self.chain_id <= MAX_CHAIN_ID
        ):
            raise ConfigError(f"chain_id {self.chain_id!r} is not in 1..{MAX_CHAIN_ID}")


@dataclass(frozen=True, slots=True)
class NodeConfig:
    home: Path
    roles: frozenset[str] = frozenset()
    listen: tuple[str, ...] = DEFAULT_LISTEN
    bootstrap: tuple[str, ...] = ()
    markets: tuple[str, ...] = DEFAULT_MARKETS
    log_level: str = "info"
    rpc_url: str | None = None
    contract: str | None = None
    # On-chain job requests (roles/_bridge.py): the LilypadRequests contract on the
    # same chain, whose requests a chain-bridge node serves, once this many blocks are mined
    # on top of a request (reorg safety; 0 for a dev chain that mines only on demand).
    requests_contract: str | None = None
    bridge_confirmations: int = 12
    # Mediators this node trusts (addresses): put in its offers; a deal's consortium is drawn
    # from the mediators both sides trust.
    mediators: tuple[str, ...] = ()
    # Deal timeouts (seconds; see market/_deal.py) and the acceptance window a client's deals
    # carry on chain. Short values are for tests; defaults suit a real market.
    match_timeout_s: int = 60
    agreement_timeout_s: int = 30
    acceptance_timeout_s: int = 30
    settlement_timeout_s: int = 30
    acceptance_window_s: int = 120
    # NAT (net/_nat.py, bootstrap/README.md): bootstrap peers read from a peer-list file,
    # reservations a private node keeps, a relay's limits, UPnP port mapping.
    bootstrap_file_peers: tuple[str, ...] = ()
    relay_reservations: int = 2
    relay_max_reservations: int = 128
    relay_max_circuits: int = 64
    relay_circuit_duration_s: int = 7200
    relay_circuit_bytes: int = 1 << 30
    upnp: bool = False
    # Stream muxer proposed first: "yamux" (default) or "mplex". Both are always offered, so
    # nodes with different settings still connect; relayed connections work over both.
    muxer: str = "yamux"
    # A public node's budgets (`[limits]`, net/_admission.py NetLimits; README "What a public
    # node withstands"): connections, streams, request bytes in flight, ban length.
    limit_max_connections: int = _DEFAULT_LIMITS.max_connections
    limit_max_inbound: int = _DEFAULT_LIMITS.max_inbound
    limit_max_outbound: int = _DEFAULT_LIMITS.max_outbound
    limit_max_per_ip: int = _DEFAULT_LIMITS.max_per_ip
    limit_max_per_subnet: int = _DEFAULT_LIMITS.max_per_subnet
    limit_max_per_peer: int = _DEFAULT_LIMITS.max_per_peer
    limit_max_streams_per_protocol_per_peer: int = _DEFAULT_LIMITS.max_streams_per_protocol_per_peer
    limit_max_inflight_bytes_per_peer: int = _DEFAULT_LIMITS.max_inflight_bytes_per_peer
    limit_max_inflight_bytes: int = _DEFAULT_LIMITS.max_inflight_bytes
    limit_ban_s: int = int(_DEFAULT_LIMITS.ban_s)
    # Mediation (roles/_mediator.py, market/_consortium.py): a mediator's stake; a
    # client's spot-check rate (parts per million of its jobs sent to mediation; it only takes
    # offers whose collateral >= price / rate), mediation fee and consortium size per deal.
    mediator_stake_wei: int = 10**18
    check_rate_ppm: int = 0
    # A provider's asking price per job (roles/_provider.py DEFAULT_PRICE_PER_JOB_WEI).
    price_per_job_wei: int = 10**15
    # A client's policy on providers' track records (roles/_client_records.py).
    require_provider_deals: int = 0
    require_slash_free_blocks: int = 0
    prefer_provider_records: bool = False
    mediation_fee_wei: int = 10**14
    consortium_size: int = 3
    # k of a client's deals; 0: the default floor(2n/3) + 1 (any strict majority is accepted).
    consortium_threshold: int = 0
    # Test faults (hidden from --help; the simnet and tests use them): a provider that commits
    # to a wrong output (or claims every job failed), a mediator that signs the opposite of
    # what its runs show.
    cheat_wrong_output: bool = False
    cheat_false_failure: bool = False
    mediator_lies: bool = False
    # The operator's listener (observe/): "host:port" serving /metrics, /healthz, /readyz and
    # the status page; None: off. Off loopback it asks for <home>/metrics.token.
    metrics_listen: str | None = None
    # A node that also sends this many invalid gossip messages a second to every peer (0: off;
    # testing/_spam.py): honest nodes must score it out.
    spam_gossip_per_s: int = 0
    # `[[chains]]` entries, in order (empty: the `[chain]` shorthand is the one chain).
    chain_list: tuple[ChainSettings, ...] = ()
    # A provider's module policy (`[modules]`, market/_module_policy.py): module IDs (or shipped
    # names; empty: the shipped modules), image digests, repository prefixes, any module
    # (within per-job limits "mcpu/ram MB/disk MB/GPUs"); and the limits of image pulls.
    module_allow: tuple[str, ...] = ()
    module_allow_images: tuple[str, ...] = ()
    module_allow_repositories: tuple[str, ...] = ()
    module_allow_any: bool = False
    module_any_within: tuple[int, int, int, int] | None = None
    max_image_mb: int = 2048
    pull_timeout_s: int = 300
    # The most bytes of inputs one job may have (as a client: refused at submit; as a
    # provider: refused before the first byte is read) and of output a client takes back.
    max_job_bytes: int = DEFAULT_MAX_JOB_BYTES

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
        return self.home / "control.sock"

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
        try:
            return NetLimits(**{name: getattr(self, f"limit_{name}") for name in LIMIT_NAMES})
        except ValueError as exc:
            raise ConfigError(f"[limits]: {exc}") from exc

    def has_role(self, role: str) -> bool:
        return role in self.roles


def _as_list(value: object, setting: str, source: str) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        items = [v.strip() for v in value]
    else:
        raise ConfigError(f"{setting} ({source}): expected a list of strings, got {value!r}")
    return tuple(items)


def _roles(value: object, source: str) -> frozenset[str]:
    roles = _as_list(value, "roles", source)
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ConfigError(f"roles ({source}): unknown role(s) {unknown}; choose from {list(ROLES)}")
    return frozenset(roles)


def _multiaddrs(setting: str, *, need_peer_id: bool) -> Callable[[object, str], tuple[str, ...]]:
    def parse(value: object, source: str) -> tuple[str, ...]:
        from multiaddr import Multiaddr  # a libp2p dependency; imported late to keep --help fast

        addrs = _as_list(value, setting, source)
        for addr in addrs:
            try:
                parsed = Multiaddr(addr)
            except Exception as exc:  # multiaddr raises a zoo of types for bad input
                raise ConfigError(
                    f"{setting} ({source}): {addr!r} is not a multiaddr: {exc}"
                ) from exc
            if need_peer_id and parsed.get_peer_id() is None:
                raise ConfigError(
                    f"{setting} ({source}): {addr!r} lacks /p2p/<peer id>; a bootstrap address "
                    "must name the peer, e.g. /ip4/203.0.113.7/tcp/4001/p2p/16Uiu2HAm..."
                )
        return addrs

    return parse


def _markets(value: object, source: str) -> tuple[str, ...]:
    markets = _as_list(value, "markets", source)
    for market in markets:
        if not MARKET_NAME.match(market):
            raise ConfigError(
                f"markets ({source}): {market!r} is not a market name "
                "(lowercase letters, digits, '-' or '_', at most 32 characters)"
            )
    if not markets:
        raise ConfigError(f"markets ({source}): at least one market is needed")
    return tuple(dict.fromkeys(markets))


def _log_level(value: object, source: str) -> str:
    if not isinstance(value, str) or value.lower() not in LOG_LEVELS:
        raise ConfigError(f"log_level ({source}): {value!r} is not one of {list(LOG_LEVELS)}")
    return value.lower()


def _metrics_listen(value: object, source: str) -> str | None:
    if value in (None, ""):
        return None
    match = re.fullmatch(r"(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})", str(value))
    if not isinstance(value, str) or match is None or not 0 < int(match.group(2)) < 65536:
        raise ConfigError(
            f"metrics_listen ({source}): {value!r} is not HOST:PORT "
            "(e.g. 127.0.0.1:9464; [::1]:9464)"
        )
    return value


def _rpc_url(value: object, source: str) -> str | None:
    if value in (None, "", "embedded"):
        return None
    if not isinstance(value, str) or not re.match(r"^(https?|wss?)://", value):
        raise ConfigError(
            f"chain.rpc_url ({source}): {value!r} is not an http(s):// or ws(s):// URL "
            "(leave it out, or say 'embedded', for the in-process chain)"
        )
    return value


def _contract(value: object, source: str) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not ADDRESS.match(value):
        raise ConfigError(
            f"chain.contract ({source}): {value!r} is not a 0x-prefixed 20-byte address"
        )
    return value


def _mediators(value: object, source: str) -> tuple[str, ...]:
    addresses = _as_list(value, "mediators", source)
    for address in addresses:
        if not ADDRESS.match(address):
            raise ConfigError(f"mediators ({source}): {address!r} is not a 0x address")
    # Offers list them sorted by their lowercase form, without duplicates.
    return tuple(sorted({a.lower(): a for a in addresses}.values(), key=str.lower))


def _whole(setting: str, low: int, high: int, unit: str = "") -> Callable[[object, str], int]:
    """A whole number in [low, high]: never truncated (1.5 is refused, not read as 1)."""
    def parse(value: object, source: str) -> int:
        if type(value) is int:
            number = value
        elif isinstance(value, str) and value.strip().isdigit():
            number = int(value.strip())
        else:
            raise ConfigError(f"{setting} ({source}): {value!r} is not a whole number"
                              f"{unit}; write e.g. {setting} = {max(low, 1)}")
        if not low <= number <= high:
            raise ConfigError(f"{setting} ({source}): {value!r} is out of range: at least "
                              f"{low}{unit} and at most {high}{unit}")
        return number

    return parse


DAY_S = 86_400
MAX_WEI = (1 << 256) - 1
# Bounds of the duration and count settings: a deal timeout of a day at most, an acceptance
# window of a week (the contract holds the money meanwhile), relay limits far above need.
_BOUNDS: dict[str, tuple[int, int, str]] = {
    "match_timeout_s": (1, DAY_S, " s"), "agreement_timeout_s": (1, DAY_S, " s"),
    "acceptance_timeout_s": (1, DAY_S, " s"), "settlement_timeout_s": (1, DAY_S, " s"),
    "acceptance_window_s": (1, 7 * DAY_S, " s"),
    "relay_reservations": (1, 64, ""), "relay_max_reservations": (1, 65_536, ""),
    "relay_max_circuits": (1, 65_536, ""), "relay_circuit_duration_s": (1, 7 * DAY_S, " s"),
    "relay_circuit_bytes": (1, 1 << 40, " bytes"),
    # A public node's budgets (net/_admission.py): at least one of each, far above any need.
    **{f"limits.{name}": (1, 1 << 40, " bytes" if "bytes" in name else "")
       for name in LIMIT_NAMES if name != "ban_s"},
    "limits.ban_s": (1, 7 * DAY_S, " s"),
}


def _seconds(setting: str) -> Callable[[object, str], int]:
    return _whole(setting, *_BOUNDS[setting])


def _peer_list_file(value: object, source: str) -> tuple[str, ...]:
    """A peer list (bootstrap/README.md): one multiaddr with /p2p/ per line, `#` comments."""
    if not isinstance(value, str | Path) or not str(value):
        raise ConfigError(f"bootstrap_file ({source}): expected a file path, got {value!r}")
    try:
        text = Path(value).expanduser().read_text()
    except OSError as exc:
        raise ConfigError(f"bootstrap_file ({source}): cannot read {value}: {exc}") from exc
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    addrs = [line for line in lines if line]
    return _multiaddrs("bootstrap_file", need_peer_id=True)(addrs, f"{source}: {value}")


def _flag(setting: str) -> Callable[[object, str], bool]:
    def parse(value: object, source: str) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{setting} ({source}): {value!r} is not true or false")

    return parse


def _wei(setting: str) -> Callable[[object, str], int]:
    return _whole(setting, 0, MAX_WEI, " wei")


def _check_rate(value: object, source: str) -> int:
    """A fraction in [0, 1] (e.g. 0.1), kept as parts per million."""
    try:
        rate = float(value) if isinstance(value, int | float | str) else -1.0
    except (ValueError, OverflowError):  # "half", an int too large for a float
        rate = -1.0
    if isinstance(value, bool) or not 0.0 <= rate <= 1.0:
        raise ConfigError(f"check_rate ({source}): {value!r} is not a fraction between 0 and 1")
    return round(rate * 1_000_000)


def _consortium_size(value: object, source: str) -> int:
    return _whole("consortium_size", 1, 32)(value, source)  # the contract's bound


def _muxer(value: object, source: str) -> str:
    if value not in ("mplex", "yamux"):
        raise ConfigError(f"muxer ({source}): {value!r} is not 'mplex' or 'yamux'")
    return str(value)


@dataclass(frozen=True, slots=True)
class _Setting:
    attribute: str
    toml_key: tuple[str, ...]
    env: str
    parse: Callable[[object, str], object]


SETTINGS: tuple[_Setting, ...] = (
    _Setting("roles", ("roles",), "LILYPAD_ROLES", _roles),
    _Setting("listen", ("listen",), "LILYPAD_LISTEN", _multiaddrs("listen", need_peer_id=False)),
    _Setting(
        "bootstrap",
        ("bootstrap",),
        "LILYPAD_BOOTSTRAP",
        _multiaddrs("bootstrap", need_peer_id=True),
    ),
    _Setting("markets", ("markets",), "LILYPAD_MARKETS", _markets),
    _Setting("log_level", ("log_level",), "LILYPAD_LOG_LEVEL", _log_level),
    _Setting("rpc_url", ("chain", "rpc_url"), "LILYPAD_RPC_URL", _rpc_url),
    _Setting("contract", ("chain", "contract"), "LILYPAD_CONTRACT", _contract),
    _Setting("requests_contract", ("chain", "requests"), "LILYPAD_REQUESTS_CONTRACT", _contract),
    _Setting("bridge_confirmations", ("bridge_confirmations",), "LILYPAD_BRIDGE_CONFIRMATIONS",
             _whole("bridge_confirmations", 0, 10_000, " blocks")),
    _Setting("mediators", ("mediators",), "LILYPAD_MEDIATORS", _mediators),
    *(
        _Setting(name, (name,), f"LILYPAD_{name.upper()}", _seconds(name))
        for name in ("match_timeout_s", "agreement_timeout_s", "acceptance_timeout_s",
                     "settlement_timeout_s", "acceptance_window_s")
    ),
    _Setting(
        "bootstrap_file_peers", ("bootstrap_file",), "LILYPAD_BOOTSTRAP_FILE", _peer_list_file
    ),
    *(
        _Setting(name, ("relay", name.removeprefix("relay_")), f"LILYPAD_{name.upper()}",
                 _seconds(name))
        for name in ("relay_reservations", "relay_max_reservations", "relay_max_circuits",
                     "relay_circuit_duration_s", "relay_circuit_bytes")
    ),
    _Setting("upnp", ("upnp",), "LILYPAD_UPNP", _flag("upnp")),
    _Setting("muxer", ("muxer",), "LILYPAD_MUXER", _muxer),
    *(
        _Setting(f"limit_{name}", ("limits", name), f"LILYPAD_LIMIT_{name.upper()}",
                 _seconds(f"limits.{name}"))
        for name in LIMIT_NAMES
    ),
    _Setting("mediator_stake_wei", ("mediator_stake_wei",), "LILYPAD_MEDIATOR_STAKE_WEI",
             _wei("mediator_stake_wei")),
    _Setting("check_rate_ppm", ("check_rate",), "LILYPAD_CHECK_RATE", _check_rate),
    _Setting("price_per_job_wei", ("price_per_job_wei",), "LILYPAD_PRICE_PER_JOB_WEI",
             _wei("price_per_job_wei")),
    _Setting("require_provider_deals", ("require_provider_deals",),
             "LILYPAD_REQUIRE_PROVIDER_DEALS", _whole("require_provider_deals", 0, 2**63)),
    _Setting("require_slash_free_blocks", ("require_slash_free_blocks",),
             "LILYPAD_REQUIRE_SLASH_FREE_BLOCKS", _whole("require_slash_free_blocks", 0, 2**63,
                                                         " blocks")),
    _Setting("prefer_provider_records", ("prefer_provider_records",),
             "LILYPAD_PREFER_PROVIDER_RECORDS", _flag("prefer_provider_records")),
    _Setting("mediation_fee_wei", ("mediation_fee_wei",), "LILYPAD_MEDIATION_FEE_WEI",
             _wei("mediation_fee_wei")),
    _Setting("consortium_size", ("consortium_size",), "LILYPAD_CONSORTIUM_SIZE",
             _consortium_size),
    _Setting("consortium_threshold", ("consortium_threshold",), "LILYPAD_CONSORTIUM_THRESHOLD",
             _whole("consortium_threshold", 0, 32)),
    _Setting("cheat_wrong_output", ("cheat_wrong_output",), "LILYPAD_CHEAT_WRONG_OUTPUT",
             _flag("cheat_wrong_output")),
    _Setting("cheat_false_failure", ("cheat_false_failure",), "LILYPAD_CHEAT_FALSE_FAILURE",
             _flag("cheat_false_failure")),
    _Setting("mediator_lies", ("mediator_lies",), "LILYPAD_MEDIATOR_LIES",
             _flag("mediator_lies")),
    _Setting("spam_gossip_per_s", ("spam_gossip_per_s",), "LILYPAD_SPAM_GOSSIP_PER_S",
             _whole("spam_gossip_per_s", 0, 10_000)),
    _Setting("metrics_listen", ("metrics_listen",), "LILYPAD_METRICS_LISTEN", _metrics_listen),
    # At least a MiB (a job's header and a module's small inputs), at most a PiB.
    _Setting("max_job_bytes", ("max_job_bytes",), "LILYPAD_MAX_JOB_BYTES",
             _whole("max_job_bytes", 1 << 20, 1 << 50, " bytes")),
    *(_Setting(*entry) for entry in MODULE_SETTINGS),
)
_KNOWN_TOP_LEVEL = {setting.toml_key[0] for setting in SETTINGS if len(setting.toml_key) == 1}
# Command-line flags whose name is not the attribute's (`lilypad-p2p node --help`).
_FLAGS = {"roles": "the role flags", "markets": "--market", "check_rate_ppm": "--check-rate"}
_KNOWN_CHAIN_KEYS = {s.toml_key[1] for s in SETTINGS if s.toml_key[0] == "chain"}
_KNOWN_RELAY_KEYS = {s.toml_key[1] for s in SETTINGS if s.toml_key[0] == "relay"}
_KNOWN_LIMIT_KEYS = set(LIMIT_NAMES)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except OSError as exc:  # a directory, unreadable
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc}); the settings "
                          "file must be a TOML file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    unknown = sorted(
        set(data) - _KNOWN_TOP_LEVEL - {"chain", "chains", "relay", "limits", "modules"}
    )
    if unknown:
        known = sorted(_KNOWN_TOP_LEVEL)
        raise ConfigError(
            f"{path}: unknown setting(s) {unknown}; known: {known}, [chain], [[chains]], "
            "[relay] and [modules]"
        )
    chain = data.get("chain", {})
    if not isinstance(chain, dict):
        raise ConfigError(f"{path}: [chain] must be a table")
    unknown_chain = sorted(set(chain) - _KNOWN_CHAIN_KEYS)
    if unknown_chain:
        raise ConfigError(f"{path}: unknown [chain] setting(s) {unknown_chain}")
    check_module_table(data, path)
    relay = data.get("relay", {})
    if not isinstance(relay, dict) or set(relay) - _KNOWN_RELAY_KEYS:
        raise ConfigError(f"{path}: [relay] must be a table of {sorted(_KNOWN_RELAY_KEYS)}")
    limits = data.get("limits", {})
    if not isinstance(limits, dict) or set(limits) - _KNOWN_LIMIT_KEYS:
        raise ConfigError(f"{path}: [limits] must be a table of {sorted(_KNOWN_LIMIT_KEYS)}")
    return data


def _lookup(data: Mapping[str, Any], key: tuple[str, ...]) -> object:
    value: object = data
    for part in key:
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _chain_list(raw: object, source: str) -> tuple[ChainSettings, ...]:
    """`[[chains]]`: one table per chain, each with chain_id, rpc_url, contract, [requests]."""
    if not isinstance(raw, list) or not all(isinstance(entry, dict) for entry in raw):
        raise ConfigError(f"[[chains]] ({source}): must be an array of tables")
    if not 1 <= len(raw) <= MAX_CHAINS:
        raise ConfigError(f"[[chains]] ({source}): list 1 to {MAX_CHAINS} chains")
    chains = []
    ids: list[int] = []
    for index, entry in enumerate(raw):
        where = f"[[chains]] #{index + 1} ({source})"
        unknown = sorted(set(entry) - _CHAIN_ENTRY_KEYS)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; "
                              f"known: {sorted(_CHAIN_ENTRY_KEYS)}")
        missing = sorted({"chain_id", "rpc_url"} - set(entry))
        if missing:
            raise ConfigError(f"{where}: {missing} missing (rpc_url may be \"embedded\")")
        chain_id = entry["chain_id"]
        if type(chain_id) is not int or not 1 <= chain_id <= MAX_CHAIN_ID:
            raise ConfigError(f"{where}: chain_id {chain_id!r} is not in 1..{MAX_CHAIN_ID}")
        ids.append(chain_id)
        rpc_url = _rpc_url(entry["rpc_url"], where)
        contract = _contract(entry.get("contract"), where)
        if rpc_url is not None and contract is None:
            raise ConfigError(f"{where}: a JSON-RPC chain needs `contract` (the settlement "
                              "contract's address)")
        chains.append(ChainSettings(chain_id, rpc_url, contract,
                                    _contract(entry.get("requests"), where)))
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise ConfigError(f"[[chains]] ({source}): chain_id {duplicated} listed twice")
    if sum(chain.rpc_url is None for chain in chains) > 1:
        raise ConfigError(f"[[chains]] ({source}): at most one chain may be \"embedded\"")
    return tuple(chains)


def load_config(
    *,
    home: Path | None = None,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, object] | None = None,
) -> NodeConfig:
    """Merge file < environment < flags into a validated NodeConfig.

    `flags` maps attribute names to values given on the command line; a value of None means the
    flag was not given. Raises ConfigError naming the setting and its source.
    """
    environ = os.environ if environ is None else environ
    flags = flags or {}
    home = Path(home) if home is not None else Path(environ.get("LILYPAD_HOME") or default_home())
    if home.exists() and not home.is_dir():
        raise ConfigError(f"--home {home} is not a directory: pass the node's directory")
    config_path = config_file or home / "config.toml"
    if config_file is not None and not config_file.exists():
        raise ConfigError(f"--config {config_file}: no such file")
    file_data = _read_toml(config_path)

    values: dict[str, Any] = {}  # each what its setting's parser returns: the field's type
    for setting in SETTINGS:
        candidates = (
            (_lookup(file_data, setting.toml_key), str(config_path)),
            (environ.get(setting.env) or None, setting.env),  # empty means unset
            (flags.get(setting.attribute), _FLAGS.get(setting.attribute,
                                                      f"--{setting.attribute.replace('_', '-')}")),
        )
        for raw, source in candidates:
            if raw is not None:
                values[setting.attribute] = setting.parse(raw, source)
    if "chains" in file_data:
        shorthand = [name for name in ("rpc_url", "contract", "requests_contract")
                     if values.get(name) is not None]
        if shorthand:
            raise ConfigError(
                f"{config_path}: [[chains]] lists the chains, so {shorthand} (from [chain], "
                "the environment or a flag) would be ambiguous: put them in a [[chains]] entry"
            )
        values["chain_list"] = _chain_list(file_data["chains"], str(config_path))
    config = NodeConfig(home=home, **values)
    config.net_limits  # noqa: B018 - raises ConfigError if the [limits] contradict each other
    return config
