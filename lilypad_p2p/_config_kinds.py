"""The kinds of value a setting holds: each parses what a file, a variable or a flag gave, and
refuses anything else with one line naming the setting, the source and what is allowed.

A kind also says in words what it allows (`allowed`), for `node --help` and the README.
Pure and light: `node --help` imports it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Generic, TypeVar

from lilypad_p2p.errors import ConfigError

T = TypeVar("T")
Strings = tuple[str, ...]

_UNIT_WORDS = {"s": "seconds", "bytes": "bytes", "wei": "wei", "blocks": "blocks", "MB": "MB"}


class Kind(Generic[T]):
    """How a setting's value is read; `name` is the setting as the file spells it."""

    # What the file writes without quotes (TOML types numbers and booleans), or None where a
    # string is the value itself. Variables and flags are always text, so `parse` takes text.
    unquoted: ClassVar[str | None] = None

    def allowed(self) -> str:
        raise NotImplementedError

    def parse(self, value: object, name: str, source: str) -> T:
        raise NotImplementedError

    def parse_file(self, value: object, name: str, source: str) -> T:
        """What the settings file gave: as `parse`, except that a number or a boolean in quotes
        is refused: TOML types the file's values, and a quoted one is text to every other
        reader of the file."""
        if self.unquoted is not None and isinstance(value, str):
            try:
                bare = self.show(self.parse(value, name, source))
            except ConfigError:  # not even the text is right: show any good value
                bare = self.example()
            raise _fail(name, source, f"{value!r} is in quotes, so TOML reads it as text, not "
                                      f"{self.unquoted}: write it without quotes, e.g. "
                                      f"{name.rsplit('.', 1)[-1]} = {bare}")
        return self.parse(value, name, source)

    def example(self) -> str:
        """A value the file could hold, for an error's hint."""
        raise NotImplementedError

    def show(self, value: T) -> str:
        """A default as an operator would write it."""
        return "none" if value in (None, (), frozenset()) else str(value)


def _fail(name: str, source: str, problem: str) -> ConfigError:
    return ConfigError(f"{name} ({source}): {problem}")


def _number(number: int) -> str:
    """86 400; 2^50; 2^256 − 1."""
    if number >= 1 << 20 and number & (number - 1) == 0:
        return f"2^{number.bit_length() - 1}"
    if number >= 1 << 20 and number & (number + 1) == 0:
        return f"2^{number.bit_length()} − 1"
    return f"{number:,}".replace(",", " ")


@dataclass(frozen=True)
class Whole(Kind[int]):
    """A whole number in [low, high]: never truncated (1.5 is refused, not read as 1)."""

    low: int
    high: int
    unit: str = ""

    unquoted: ClassVar[str | None] = "a number"

    def allowed(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"{_number(self.low)} … {_number(self.high)}{unit}"

    def example(self) -> str:
        return str(max(self.low, 1))

    def parse_file(self, value: object, name: str, source: str) -> int:
        # An amount in wei outgrows TOML's 64-bit integers at about 9.2 ETH, and readers other
        # than Python's may refuse a larger bare one: in quotes it is the portable spelling.
        if self.unit == "wei":
            return self.parse(value, name, source)
        return super().parse_file(value, name, source)

    def parse(self, value: object, name: str, source: str) -> int:
        unit = f" {self.unit}" if self.unit else ""
        # Text in ASCII digits with an optional sign: a sign makes "-5" a number out of range,
        # not "no number", and str.isdigit() would pass digits int() refuses ("²").
        text = value.strip() if isinstance(value, str) else None
        if type(value) is int:
            number = value
        elif text is not None and re.fullmatch(r"[+-]?[0-9]+", text):
            number = int(text)
        else:
            of_unit = f" of {_UNIT_WORDS[self.unit]}" if self.unit else ""
            key = name.rsplit(".", 1)[-1]
            raise _fail(name, source, f"{value!r} is not a whole number{of_unit}; write e.g. "
                                      f"{key} = {self.example()}")
        if not self.low <= number <= self.high:
            raise _fail(name, source, f"{value!r} is out of range: at least {self.low}{unit} "
                                      f"and at most {self.high}{unit}")
        return number


@dataclass(frozen=True)
class Flag(Kind[bool]):
    unquoted: ClassVar[str | None] = "true or false"

    def allowed(self) -> str:
        return "true or false"

    def example(self) -> str:
        return "true"

    def parse(self, value: object, name: str, source: str) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        raise _fail(name, source, f"{value!r} is not true or false")

    def show(self, value: bool) -> str:
        return str(value).lower()


@dataclass(frozen=True)
class Choice(Kind[str]):
    """One word of `choices`; `fold_case` also takes it in capitals."""

    choices: Strings
    fold_case: bool = False

    def allowed(self) -> str:
        return ", ".join(self.choices)

    def parse(self, value: object, name: str, source: str) -> str:
        word = value.lower() if isinstance(value, str) and self.fold_case else value
        if word not in self.choices:
            raise _fail(name, source, f"{value!r} is not one of {list(self.choices)}")
        return str(word)


def _as_list(value: object, name: str, source: str) -> Strings:
    """A TOML list of strings, or a comma-separated string (environment, flags)."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value)
    raise _fail(name, source, f"expected a list of strings, got {value!r}")


@dataclass(frozen=True)
class StringList(Kind[T]):
    """A list of strings, each matching `pattern`, made into the setting's value by `make`."""

    pattern: str
    hint: str
    make: Callable[[Strings], T]
    at_least_one: bool = False

    def allowed(self) -> str:
        return f"a list: each {self.hint}"

    def parse(self, value: object, name: str, source: str) -> T:
        items = _as_list(value, name, source)
        for item in items:
            if not re.fullmatch(self.pattern, item):
                raise _fail(name, source, f"{item!r} is not {self.hint}")
        if self.at_least_one and not items:
            raise _fail(name, source, f"an empty list; name at least one, each {self.hint}")
        return self.make(items)

    def show(self, value: T) -> str:
        shown = sorted(value) if isinstance(value, frozenset) else value
        return ", ".join(shown) if isinstance(shown, tuple | list) and shown else "none"


# What a node listens on: TCP only, at an address the OS can bind. py-libp2p listens on every
# interface when it finds no IP in the address (/dns4/localhost), and on plain TCP whatever
# follows the port (/ws), while advertising the address as given.
_LISTENABLE = (["ip4", "tcp"], ["ip6", "tcp"])
# What a node can dial: an IP or a DNS name, then TCP; a relay's circuit may follow.
_DIALABLE_FIRST = frozenset({"ip4", "ip6", "dns", "dns4", "dns6"})


@dataclass(frozen=True)
class Multiaddrs(Kind[Strings]):
    need_peer_id: bool = False  # addresses to dial: a host, TCP, and the peer
    listenable: bool = False  # addresses to listen on: /ip4|ip6/ADDRESS/tcp/PORT

    def allowed(self) -> str:
        if self.listenable:
            return "a list of /ip4/ADDRESS/tcp/PORT or /ip6/ADDRESS/tcp/PORT"
        return "a list of multiaddrs" + (" with /p2p/<peer id>" if self.need_peer_id else "")

    def parse(self, value: object, name: str, source: str) -> Strings:
        from multiaddr import Multiaddr  # a libp2p dependency; imported late to keep --help fast

        addrs = _as_list(value, name, source)
        for addr in addrs:
            try:
                parsed = Multiaddr(addr)
            except Exception as exc:  # multiaddr raises a zoo of types for bad input
                raise _fail(name, source, f"{addr!r} is not a multiaddr: {exc}") from exc
            protocols = [protocol.name for protocol in parsed.protocols()]
            if self.need_peer_id and parsed.get_peer_id() is None:
                raise _fail(name, source, f"{addr!r} lacks /p2p/<peer id>; a bootstrap address "
                            "must name the peer, e.g. /ip4/203.0.113.7/tcp/4001/p2p/16Uiu2HAm...")
            if self.need_peer_id and (protocols[0] not in _DIALABLE_FIRST
                                      or protocols[1:2] != ["tcp"]):
                raise _fail(name, source, f"{addr!r} is not host, TCP port and peer, e.g. "
                            "/ip4/203.0.113.7/tcp/4001/p2p/16Uiu2HAm... (nodes speak TCP)")
            if self.listenable and protocols not in _LISTENABLE:
                raise _fail(name, source, f"{addr!r} cannot be listened on: give "
                            "/ip4/ADDRESS/tcp/PORT or /ip6/ADDRESS/tcp/PORT (a node listens on "
                            "TCP at an IP address; 0.0.0.0 is every interface)")
        return addrs

    def show(self, value: Strings) -> str:
        return ", ".join(value) or "none"


@dataclass(frozen=True)
class PeerListFile(Kind[Strings]):
    """A peer list (bootstrap/README.md): one multiaddr with /p2p/ per line, `#` comments."""

    def allowed(self) -> str:
        return "a file: one multiaddr with /p2p/<peer id> a line"

    def parse(self, value: object, name: str, source: str) -> Strings:
        if not isinstance(value, str | Path) or not str(value):
            raise _fail(name, source, f"expected a file path, got {value!r}")
        try:
            text = Path(value).expanduser().read_text()
        except OSError as exc:
            raise _fail(name, source, f"cannot read {value}: {exc}") from exc
        lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
        addrs = [line for line in lines if line]
        return Multiaddrs(need_peer_id=True).parse(addrs, name, f"{source}: {value}")


@dataclass(frozen=True)
class MaybeText(Kind["str | None"]):
    """A string matching `pattern`, or nothing: None, "" or one of `absent` leave it unset."""

    pattern: str
    hint: str
    absent: Strings = ()

    def allowed(self) -> str:
        return self.hint

    def parse(self, value: object, name: str, source: str) -> str | None:
        if value in (None, "", *self.absent):
            return None
        if not isinstance(value, str) or not re.fullmatch(self.pattern, value, re.DOTALL):
            raise _fail(name, source, f"{value!r} is not {self.hint}")
        return value


@dataclass(frozen=True)
class HostPort(Kind["str | None"]):
    def allowed(self) -> str:
        return "HOST:PORT, or empty for off"

    def parse(self, value: object, name: str, source: str) -> str | None:
        if value in (None, ""):
            return None
        match = re.fullmatch(r"(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})", str(value))
        if not isinstance(value, str) or match is None or not 0 < int(match.group(2)) < 65536:
            raise _fail(name, source, f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:9464; "
                                      "[::1]:9464)")
        return value


@dataclass(frozen=True)
class Fraction(Kind[int]):
    """A fraction in [0, 1] (e.g. 0.1), kept as parts per million."""

    unquoted: ClassVar[str | None] = "a number"

    def allowed(self) -> str:
        return "a fraction 0 … 1"

    def example(self) -> str:
        return "0.1"

    def parse(self, value: object, name: str, source: str) -> int:
        try:
            rate = float(value) if isinstance(value, int | float | str) else -1.0
        except (ValueError, OverflowError):  # "half", an int too large for a float
            rate = -1.0
        if isinstance(value, bool) or not 0.0 <= rate <= 1.0:
            raise _fail(name, source, f"{value!r} is not a fraction between 0 and 1")
        return round(rate * 1_000_000)

    def show(self, value: int) -> str:
        return f"{value / 1_000_000:g}"


Resources = tuple[int, int, int, int]


@dataclass(frozen=True)
class ResourceLimits(Kind["Resources | None"]):
    """The most a module may need, as "mcpu/ram_mb/disk_mb/gpus" (e.g. "2000/4096/10000/0")."""

    def allowed(self) -> str:
        return "\"mcpu/ram_mb/disk_mb/gpus\""

    def parse(self, value: object, name: str, source: str) -> Resources | None:
        pattern = r"([0-9]{1,9})/([0-9]{1,9})/([0-9]{1,10})/([0-9]{1,3})"
        match = re.fullmatch(pattern, value) if isinstance(value, str) else None
        if match is None:
            raise _fail(name, source, "expected \"mcpu/ram_mb/disk_mb/gpus\" such as "
                                      f"\"2000/4096/10000/0\", got {value!r}")
        cpu, ram, disk, gpus = (int(part) for part in match.groups())
        return cpu, ram, disk, gpus
