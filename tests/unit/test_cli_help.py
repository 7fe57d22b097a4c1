"""Every command's `--help` shows its text as written: square brackets in a help text are
rich markup unless escaped, so an unescaped `[[chains]]` printed as `[]` and `[modules]` as
nothing."""

import re

import pytest
import typer
from typer.testing import CliRunner

from lilypad_p2p.cli import app


def _command_paths(group: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and sub-command below `group` (typer's groups hold `commands`)."""
    paths = []
    for name, command in group.commands.items():
        paths.append((*prefix, name))
        if hasattr(command, "commands"):
            paths += _command_paths(command, (*prefix, name))
    return paths


COMMANDS = _command_paths(typer.main.get_command(app))


def test_the_walk_finds_the_commands():
    assert ("deposit",) in COMMANDS and ("chain", "deploy") in COMMANDS


def _command(path: tuple[str, ...]) -> object:
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return command


def _bracketed(command: object) -> set[str]:
    """Each `[text]` its help texts mean to show (an escaped `\\[` shows as `[`)."""
    texts = [command.help or "", *(getattr(p, "help", None) or "" for p in command.params)]
    return {token for text in texts for token in re.findall(r"\[[^\]\s]+\]",
                                                          text.replace("\\[", "["))}


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_no_help_text_loses_its_brackets(path):
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "[]" not in result.output
    shown = " ".join(result.output.split())
    assert not {t for t in _bracketed(_command(path)) if t not in shown}


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_each_summary_is_one_line(path):
    # A group's listing shows a command's first paragraph with its line breaks kept, so a
    # summary written over two lines breaks mid-sentence at any terminal width but one.
    first = (_command(path).help or "").strip().split("\n\n")[0]
    assert "\n" not in first, first


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_help_paragraphs_wrap_to_the_terminal(path):
    # Typer's rich mode keeps a docstring's line breaks after its first paragraph, so a source
    # paragraph shows ragged at any width but 100: `reflow_help` joins them, except examples.
    for paragraph in (_command(path).help or "").split("\n\n"):
        lines = paragraph.split("\n")
        assert len(lines) == 1 or any(line[:1].isspace() for line in lines), paragraph


def _shown_lines(*args: str) -> list[str]:
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "80"})
    return [line.strip() for line in result.output.splitlines()]


def test_prose_wraps_at_the_terminal_and_an_example_keeps_its_lines():
    # At 80 columns the source's break after "and" would have left "the deal's" on its own.
    assert any(line.startswith("and the deal's consortium re-runs")
               or line.startswith("the deal's consortium re-runs")
               for line in _shown_lines("dispute"))
    assert "lilypad-p2p node --chain-bridge" in _shown_lines("chain", "deploy-requests")
