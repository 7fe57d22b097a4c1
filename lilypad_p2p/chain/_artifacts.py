"""Compiled contract artifacts (committed JSON written by contracts/compile.sh)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

SETTLEMENT = "LilypadSettlement"


@cache
def artifact(name: str) -> dict[str, Any]:
    """The artifact of contract `name`: abi, bytecode, deployedBytecode, compiler settings."""
    text = resources.files("lilypad_p2p.chain").joinpath("artifacts", f"{name}.json").read_text()
    return json.loads(text)


def settlement_abi() -> list[dict[str, Any]]:
    return artifact(SETTLEMENT)["abi"]
