"""`node --help` and the README list every setting, from the table in config.py."""

from pathlib import Path

from typer.testing import CliRunner

from lilypad_p2p.cli import app
from lilypad_p2p.config import SETTINGS
from lilypad_p2p.config_doc import BEGIN, END, main, rewrite

README = Path(__file__).resolve().parents[3] / "README.md"
SHOWN = [row for row in SETTINGS if not row.hidden]


def test_the_readme_settings_list_is_current():
    text = README.read_text()
    assert rewrite(text) == text, (
        "README's settings list is stale: run python -m lilypad_p2p.config_doc README.md")


def test_the_readme_list_has_a_row_for_every_setting():
    text = README.read_text()
    listed = text[text.index(BEGIN):text.index(END)]
    for row in SETTINGS:
        assert (f"`{row.env}`" in listed) is not row.hidden, row.name


def test_node_help_lists_every_setting():
    result = CliRunner().invoke(app, ["node", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for row in SETTINGS:
        assert (f"{row.label}  {row.env}" in result.output) is not row.hidden, row.name
    assert "([chain] requests)" in result.output  # the markup of a key is shown, not eaten


def test_check_fails_on_a_stale_list_and_the_rewrite_mends_it(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{BEGIN}\n| old |\n{END}\n\nafter\n")
    assert main(["--check", str(readme)]) == 1
    assert "stale" in capsys.readouterr().err
    assert main([str(readme)]) == 0
    assert main(["--check", str(readme)]) == 0
    assert readme.read_text().endswith(f"{END}\n\nafter\n")
    assert "`LILYPAD_MARKETS`" in readme.read_text()
