"""`lilypad-p2p offers` shows each owner's address whole: it is what `run --target` takes."""

from typer.testing import CliRunner

from lilypad_p2p import cli_node
from lilypad_p2p.cli import app

OWNER = "0x8167C1536097E130b13e087Af920728084EF0C3A"


def test_the_owner_address_is_never_cut_short(monkeypatch):
    offer = {"kind": "resource", "id": "bafkrei" + "a" * 52, "owner": OWNER,
             "summary": "4000 mCPU, 8192 MB RAM, 20000 MB disk, modules hash, wordcount, "
                        "python; 0.001 ETH per job, collateral 0.002 ETH",
             "expires_in_s": 1800.0}
    monkeypatch.setattr(cli_node, "_control", lambda home, method, params=None: [offer])
    for columns in ("80", "120"):
        shown = CliRunner().invoke(app, ["offers"], env={"COLUMNS": columns}).output
        assert OWNER in "".join(line.strip(" │") for line in shown.splitlines()), shown
