"""Record chain settings (`[chain] rpc_url`, `contract`, or a `[[chains]]` entry's) in a node's
config.toml.

A line edit rather than a TOML rewrite: comments and everything else in the file stay as the
operator wrote them. Only keys of the `[chain]` table, or of one `[[chains]]` entry, are
touched, and the edit is written only if the file then reads as before but for those keys.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import stat
import tempfile
import tomllib
from pathlib import Path
from typing import Any

_TABLE = re.compile(r"^\s*\[([^\[\]]+)\]\s*(#.*)?$")
_ARRAY_TABLE = re.compile(r"^\s*\[\[([^\[\]]+)\]\]\s*(#.*)?$")


def record_chain_settings(config_path: Path, settings: dict[str, str]) -> None:
    """Set `[chain]` keys in `config_path` (created if missing); other content is preserved.
    A symbolic link stays: the file it points to is edited.

    Raises:
        ValueError: the file is not a plain settings file, or the edit would change more than
            these keys (the file is then left unchanged).
        OSError: it cannot be written.
    """
    target = _target(config_path)
    text, data = _read(target)
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _table_name(line) == "chain"), None)
    if start is None:
        if lines and lines[-1].strip():
            lines.append("")
        lines.append("[chain]")
        start = len(lines) - 1
    _set_keys(lines, start, settings)
    expected = copy.deepcopy(data)
    if not isinstance(expected.setdefault("chain", {}), dict):
        raise ValueError(f"{config_path}: `chain` is not a table; make it [chain]")
    expected["chain"].update(settings)
    _write_checked(config_path, target, lines, expected, "[chain]")


def record_chains_entry(
    config_path: Path, chain_id: int, rpc_url: str, settings: dict[str, str]
) -> int | None:
    """Set keys of the one `[[chains]]` entry for `chain_id` at `rpc_url`; its index, or None
    (nothing written) where no entry, or more than one, is that chain at that URL, or the list is
    not written as `[[chains]]` tables that a line edit can change safely.

    Raises:
        ValueError: the file is not a plain settings file.
        OSError: it cannot be written.
    """
    target = _target(config_path)
    text, data = _read(target)
    lines = text.splitlines()
    entries = data.get("chains")
    headers = [i for i, line in enumerate(lines) if _array_table_name(line) == "chains"]
    if not isinstance(entries, list) or len(headers) != len(entries):
        return None
    matching = [index for index, entry in enumerate(entries) if isinstance(entry, dict)
                and entry.get("chain_id") == chain_id and entry.get("rpc_url") == rpc_url]
    if len(matching) != 1:
        return None
    index = matching[0]
    _set_keys(lines, headers[index], settings)
    expected = copy.deepcopy(data)
    expected["chains"][index].update(settings)
    try:
        _write_checked(config_path, target, lines, expected, f"[[chains]] #{index + 1}")
    except ValueError:  # written in a way lines cannot edit: the caller says what to add
        return None
    return index


def _target(config_path: Path) -> Path:
    """The file to replace: a link's destination (dotfiles keep config.toml as one, and
    replacing the link would quietly fork the settings), refused where it is missing or is not
    a regular file."""
    target = Path(os.path.realpath(config_path)) if config_path.is_symlink() else config_path
    if config_path.is_symlink() and not target.exists():
        raise ValueError(f"{config_path}: a symbolic link to {os.readlink(config_path)}, which "
                         "does not exist; point it at the settings file or remove it")
    if target.exists() and not stat.S_ISREG(target.stat().st_mode):
        raise ValueError(f"{config_path}: not a regular file; the settings file must be one")
    return target


def _read(target: Path) -> tuple[str, dict[str, Any]]:
    text = target.read_text(encoding="utf-8") if target.exists() else ""
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{target}: not valid TOML ({exc}); fix it first") from exc


def _set_keys(lines: list[str], start: int, settings: dict[str, str]) -> None:
    """Set each key in the table whose header is at `start`: its line replaced, or a new line
    added at the table's end."""
    end = next((i for i in range(start + 1, len(lines)) if _is_header(lines[i])), len(lines))
    for key, value in settings.items():
        # json.dumps of a str is a valid TOML basic string (same escapes for what we write).
        rendered = f"{key} = {json.dumps(value)}"
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        index = next((i for i in range(start + 1, end) if pattern.match(lines[i])), None)
        if index is None:
            lines.insert(end, rendered)
            end += 1
        else:
            lines[index] = rendered


def _write_checked(config_path: Path, target: Path, lines: list[str], expected: object,
                   where: str) -> None:
    """Write `lines` if they read as `expected` (else the line edit missed, e.g. a key in a
    multi-line string or a dotted key, and the file is left as it was)."""
    new_text = "\n".join(lines) + "\n"
    try:
        written = tomllib.loads(new_text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{config_path}: editing {where} would break the file ({exc}); "
                         "set the keys by hand") from exc
    if written != expected:
        raise ValueError(f"{config_path}: editing {where} line by line would change more than "
                         "its keys; set them by hand")
    _replace(target, new_text)


def _replace(target: Path, text: str) -> None:
    """Replace `target` with `text` all at once, keeping its mode: a new file beside it (the
    same file system) renamed over it."""
    mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else 0o600
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                     suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _table_name(line: str) -> str | None:
    match = _TABLE.match(line)
    return match.group(1).strip() if match else None


def _array_table_name(line: str) -> str | None:
    match = _ARRAY_TABLE.match(line)
    return match.group(1).strip() if match else None


def _is_header(line: str) -> bool:
    return _TABLE.match(line) is not None or _ARRAY_TABLE.match(line) is not None
