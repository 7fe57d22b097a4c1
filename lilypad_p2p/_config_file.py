"""The settings file, `config.toml`: read it, refuse keys no setting has, and read the
`[[chains]]` list (the one part of the file that is a list of tables, not a setting each)."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from lilypad_p2p._config_kinds import MaybeText
from lilypad_p2p.errors import ConfigError
from lilypad_p2p.files import read_bounded

# Largest chain ID (EIP-2294's bound; the same as the wire's `MAX_CHAIN_ID`) and the most
# chains one node serves (a resource offer lists at most this many).
MAX_CHAIN_ID = (1 << 63) - 36
MAX_CHAINS = 16
# A settings file is a few kilobytes; this bounds what a wrong path makes the node read.
MAX_SETTINGS_BYTES = 1 << 20
_CHAIN_ENTRY_KEYS = frozenset({"chain_id", "rpc_url", "contract", "requests"})

RPC_URL = MaybeText(r"https?://.*", "an http(s):// URL (leave it out, or say 'embedded', for the "
                    "in-process chain)", absent=("embedded",))
ADDRESS = MaybeText(r"0x[0-9a-fA-F]{40}", "a 0x-prefixed 20-byte address")


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


def read_toml(path: Path, keys: Iterable[tuple[str, ...]]) -> dict[str, Any]:
    """The file's settings (none if it does not exist), every key one of `keys` (a top-level
    name, or a table and a name in it) or `[[chains]]`.

    Raises:
        ConfigError: the file cannot be read, is not TOML, or has a key no setting has.
    """
    if path.is_symlink() and not path.exists():
        raise ConfigError(f"{path}: a symbolic link to {os.readlink(path)}, which does not "
                          "exist; point it at the settings file or remove it")
    try:
        data = tomllib.loads(read_bounded(path, MAX_SETTINGS_BYTES).decode())
    except FileNotFoundError:
        return {}
    except OSError as exc:  # a directory, a FIFO, unreadable, too large
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc}); the settings "
                          "file must be a TOML file") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8, "
                          "as TOML requires") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except RecursionError as exc:  # tomllib recurses once per nested array or table
        raise ConfigError(f"{path}: nested too deeply to be a settings file") from exc
    top = sorted(key[0] for key in keys if len(key) == 1)
    tables: dict[str, list[str]] = {}
    for key in keys:
        if len(key) == 2:
            tables.setdefault(key[0], []).append(key[1])
    unknown = sorted(set(data) - set(top) - set(tables) - {"chains"})
    if unknown:
        everything = [*top, *tables, "chains"]
        close = [match for key in unknown for match in get_close_matches(key, everything, 1)]
        guess = f" (did you mean {close}?)" if close else ""
        raise ConfigError(f"{path}: unknown setting(s) {unknown}{guess}; `lilypad-p2p node "
                          "--help` lists every setting")
    for table, known in sorted(tables.items()):
        given = data.get(table, {})
        if not isinstance(given, dict):
            raise ConfigError(f"{path}: [{table}] must be a table of {sorted(known)}")
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise ConfigError(f"{path}: unknown [{table}] setting(s) {unknown}; "
                              f"known: {sorted(known)}")
    return data


def lookup(data: Mapping[str, Any], key: tuple[str, ...]) -> object:
    """The value at `key` (a name, or a table and a name), None if it is not there."""
    value: object = data
    for part in key:
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def chain_list(raw: object, source: str) -> tuple[ChainSettings, ...]:
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
        rpc_url = RPC_URL.parse(entry["rpc_url"], "rpc_url", where)
        contract = ADDRESS.parse(entry.get("contract"), "contract", where)
        if rpc_url is not None and contract is None:
            raise ConfigError(f"{where}: a JSON-RPC chain needs `contract` (the settlement "
                              "contract's address)")
        requests = ADDRESS.parse(entry.get("requests"), "requests", where)
        chains.append(ChainSettings(chain_id, rpc_url, contract, requests))
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise ConfigError(f"[[chains]] ({source}): chain_id {duplicated} listed twice")
    if sum(chain.rpc_url is None for chain in chains) > 1:
        raise ConfigError(f"[[chains]] ({source}): at most one chain may be \"embedded\"")
    return tuple(chains)
