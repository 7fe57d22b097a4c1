"""Record chain settings (`[chain] rpc_url`, `contract`) in a node's config.toml.

A line edit rather than a TOML rewrite: comments and everything else in the file stay as the
operator wrote them. Only keys of the `[chain]` table are touched.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path

_TABLE = re.compile(r"^\s*\[([^\]]+)\]\s*(#.*)?$")


def record_chain_settings(config_path: Path, settings: dict[str, str]) -> None:
    """Set `[chain]` keys in `config_path` (created if missing); other content is preserved.

    Raises ValueError if the result would not be valid TOML (the file is then left unchanged).
    """
    text = config_path.read_text() if config_path.exists() else ""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _table_name(line) == "chain"), None)
    if start is None:
        if lines and lines[-1].strip():
            lines.append("")
        lines.append("[chain]")
        start = len(lines) - 1
    end = next(
        (i for i in range(start + 1, len(lines)) if _table_name(lines[i]) is not None), len(lines)
    )
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
    new_text = "\n".join(lines) + "\n"
    try:
        tomllib.loads(new_text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{config_path}: editing [chain] would break the file: {exc}") from exc
    config_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = config_path.with_name(config_path.name + ".tmp")
    temporary.write_text(new_text)
    os.replace(temporary, config_path)


def _table_name(line: str) -> str | None:
    match = _TABLE.match(line)
    return match.group(1).strip() if match else None
