"""What every `lilypad-p2p` command file shares: the --home option and the one-line error."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        envvar="LILYPAD_HOME",
        help="Node directory: keys, config.toml, control socket, database. "
        "Default: ~/.lilypad-p2p.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _home(home: Path | None) -> Path:
    from lilypad_p2p.config import default_home

    return home if home is not None else default_home()


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def _control(home: Path | None, method: str, params: dict[str, Any] | None = None) -> Any:
    from lilypad_p2p.control import ControlError, call

    try:
        return call(_home(home), method, params)
    except ControlError as exc:
        _fail(str(exc))
