"""What every `lilypad-p2p` command file shares: the --home option and the one-line error."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from contextlib import contextmanager
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
PasswordFileOption = Annotated[
    Path | None,
    typer.Option("--password-file", envvar="LILYPAD_KEY_PASSWORD_FILE",
                 help="File (mode 0600) holding the keystore password; else "
                      "LILYPAD_KEY_PASSWORD, else a prompt.", show_default=False),
]


def _home(home: Path | None) -> Path:
    from lilypad_p2p.config import check_home, default_home
    from lilypad_p2p.errors import ConfigError

    chosen = home if home is not None else default_home()
    with _fail_on(ConfigError):
        check_home(chosen)
    return chosen


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


@contextmanager
def _fail_on(*errors: type[Exception]) -> Iterator[None]:
    """End the command with the one line of any of `errors` raised inside."""
    try:
        yield
    except errors as exc:
        _fail(str(exc))


def _json_shown(value: Any, as_json: bool, *, sort_keys: bool = False) -> bool:
    """Print `value` as JSON if --json was given; whether it was."""
    if as_json:
        typer.echo(json.dumps(value, indent=2, sort_keys=sort_keys))
    return as_json


def _control(home: Path | None, method: str, params: dict[str, Any] | None = None) -> Any:
    from lilypad_p2p.control import ControlError, call

    try:
        return call(_home(home), method, params)
    except ControlError as exc:
        _fail(str(exc))


def reflow_help(app: typer.Typer) -> None:
    """Join the lines of each help paragraph of every command below `app`.

    In rich markup mode typer shows a docstring's paragraphs after the first with their line
    breaks, so a paragraph wrapped at 100 columns in the source came out ragged at every other
    width. A paragraph with an indented line (an example) or starting with \\b keeps its lines.
    """
    for info in app.registered_commands:
        text = info.help or inspect.getdoc(info.callback)
        if text:
            info.help = "\n\n".join(_joined(paragraph) for paragraph in text.split("\n\n"))
    for group in app.registered_groups:
        if group.typer_instance is not None:
            reflow_help(group.typer_instance)


def _joined(paragraph: str) -> str:
    lines = paragraph.split("\n")
    if paragraph.startswith("\b") or any(line[:1].isspace() for line in lines):
        return paragraph
    return " ".join(line.strip() for line in lines)
