"""What every `lilypad-p2p` command file shares: the --home option and the one-line error."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

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


def _home(home: Path | None) -> Path:
    from lilypad_p2p.config import default_home

    return home if home is not None else default_home()


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)
