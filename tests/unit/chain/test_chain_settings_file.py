"""Recording the deployed contract in config.toml keeps everything else intact: comments, a
symbolic link and the file's mode; a `[[chains]]` entry is edited only where it is plainly that
chain."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from lilypad_p2p.chain import record_chain_settings, record_chains_entry
from lilypad_p2p.config import load_config

ADDRESS = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def test_creates_the_file(tmp_path: Path) -> None:
    path = tmp_path / "home" / "config.toml"
    record_chain_settings(path, {"contract": ADDRESS})
    assert tomllib.loads(path.read_text()) == {"chain": {"contract": ADDRESS}}


def test_updates_chain_table_and_keeps_comments(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '# my node\nroles = ["provider"]\n\n[chain]\n# local anvil\n'
        'rpc_url = "http://127.0.0.1:1"\ncontract = "0x0000000000000000000000000000000000000001"\n'
    )
    record_chain_settings(path, {"contract": ADDRESS, "rpc_url": "http://127.0.0.1:8545"})
    text = path.read_text()
    assert "# my node" in text and "# local anvil" in text
    assert tomllib.loads(text) == {
        "roles": ["provider"],
        "chain": {"rpc_url": "http://127.0.0.1:8545", "contract": ADDRESS},
    }
    config = load_config(home=tmp_path, environ={})
    assert (config.contract, config.rpc_url) == (ADDRESS, "http://127.0.0.1:8545")


def test_adds_keys_before_the_next_table(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[chain]\nrpc_url = "http://127.0.0.1:8545"\n\n[other]\nx = 1\n')
    record_chain_settings(path, {"contract": ADDRESS})
    assert tomllib.loads(path.read_text()) == {
        "chain": {"rpc_url": "http://127.0.0.1:8545", "contract": ADDRESS},
        "other": {"x": 1},
    }


def test_a_symlinked_file_keeps_its_link_and_the_target_its_mode(tmp_path: Path) -> None:
    # Dotfiles keep config.toml as a link into a repository: the edit belongs in that file.
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    target = dotfiles / "lilypad.toml"
    target.write_text('# mine\nroles = ["provider"]\n')
    target.chmod(0o640)
    home = tmp_path / "home"
    home.mkdir()
    link = home / "config.toml"
    link.symlink_to(Path("..") / "dotfiles" / "lilypad.toml")  # relative, as dotfiles tools do
    record_chain_settings(link, {"contract": ADDRESS})
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert target.stat().st_mode & 0o777 == 0o640
    assert target.read_text().startswith("# mine\n")
    assert tomllib.loads(target.read_text())["chain"] == {"contract": ADDRESS}
    assert sorted(p.name for p in dotfiles.iterdir()) == ["lilypad.toml"]  # no temporary left
    assert sorted(p.name for p in home.iterdir()) == ["config.toml"]


def test_a_regular_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("")
    path.chmod(0o644)
    record_chain_settings(path, {"contract": ADDRESS})
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_dangling_link_or_a_directory_is_refused_and_left_alone(tmp_path: Path) -> None:
    link = tmp_path / "config.toml"
    link.symlink_to(tmp_path / "gone.toml")
    with pytest.raises(ValueError, match="does not exist"):
        record_chain_settings(link, {"contract": ADDRESS})
    assert link.is_symlink() and not (tmp_path / "gone.toml").exists()
    link.unlink()
    (tmp_path / "elsewhere").mkdir()
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="not a regular file"):
        record_chain_settings(link, {"contract": ADDRESS})
    assert link.is_symlink() and list((tmp_path / "elsewhere").iterdir()) == []


def test_an_edit_the_lines_would_get_wrong_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    text = 'chain.rpc_url = "http://127.0.0.1:8545"\n'  # a dotted key: no [chain] line to edit
    path.write_text(text)
    with pytest.raises(ValueError, match="by hand"):
        record_chain_settings(path, {"contract": ADDRESS})
    assert path.read_text() == text


CHAINS = '''# two chains
mediators = []

[[chains]]   # the default
chain_id = 31337
rpc_url = "http://127.0.0.1:8545"
contract = "0x0000000000000000000000000000000000000001"

[[chains]]
chain_id = 31338
rpc_url = "http://127.0.0.1:9545"
contract = "0x0000000000000000000000000000000000000002"  # old
'''


def test_a_chains_entry_that_is_this_chain_at_this_url_is_updated(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(CHAINS)
    index = record_chains_entry(path, 31338, "http://127.0.0.1:9545", {"contract": ADDRESS,
                                                                        "requests": ADDRESS})
    assert index == 1
    text = path.read_text()
    assert text.startswith("# two chains\n") and "[[chains]]   # the default" in text
    entries = tomllib.loads(text)["chains"]
    assert entries[0]["contract"] == "0x0000000000000000000000000000000000000001"
    assert entries[1] == {"chain_id": 31338, "rpc_url": "http://127.0.0.1:9545",
                          "contract": ADDRESS, "requests": ADDRESS}
    assert load_config(home=tmp_path, environ={}).chains[1].contract == ADDRESS


@pytest.mark.parametrize(("chain_id", "url"), [(31339, "http://127.0.0.1:9545"),
                                               (31338, "http://127.0.0.1:8545")])
def test_no_chains_entry_is_touched_unless_chain_and_url_match(tmp_path: Path, chain_id: int,
                                                               url: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(CHAINS)
    assert record_chains_entry(path, chain_id, url, {"contract": ADDRESS}) is None
    assert path.read_text() == CHAINS


def test_chains_written_inline_are_left_to_the_operator(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    text = 'chains = [{chain_id = 31337, rpc_url = "http://127.0.0.1:8545", contract = "0x' + \
        "00" * 19 + '01"}]\n'
    path.write_text(text)
    assert record_chains_entry(path, 31337, "http://127.0.0.1:8545", {"contract": ADDRESS}) \
        is None
    assert path.read_text() == text
