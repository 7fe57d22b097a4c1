"""`lilypad-p2p run` against a stand-in for the node's control socket: what it refuses before
anything is posted, what it says when it stops waiting, and what its help tells."""

import os
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lilypad_p2p import cli_jobs
from lilypad_p2p.cli import app
from lilypad_p2p.roles._client_submission import MAX_DEADLINE_S

KEY = "bafkreijobkey"


def _not_polled() -> None:
    raise AssertionError("run polled a deal this test never expects posted")


class FakeNode:
    """Answers `submit` with KEY (and `warnings`), `deal` with `deal`; `on_deal` runs first
    (unless a test sets it, a poll fails the test: nothing was meant to be posted)."""

    def __init__(self, deal: dict | None = None, warnings: tuple[str, ...] = ()) -> None:
        self.calls: list[str] = []
        self.deal = deal or {"phase": "offered", "transitions": [], "provider": None}
        self.warnings = list(warnings)
        self.on_deal = _not_polled

    def __call__(self, home: object, method: str, params: dict | None = None) -> object:
        self.calls.append(method)
        if method == "submit":
            return {"key": KEY, "warnings": self.warnings}
        assert method == "deal"
        self.on_deal()
        return self.deal


@pytest.fixture
def node(monkeypatch, tmp_path):
    fake = FakeNode()
    monkeypatch.setattr(cli_jobs, "_control", fake)
    monkeypatch.chdir(tmp_path)
    return fake


def _run(tmp_path: Path, *args: str) -> object:
    return CliRunner().invoke(app, ["run", "hash", "-i", "text=hi", "--home",
                                    str(tmp_path / "home"), *args])


def _said(result: object) -> list[str]:
    return result.output.strip().splitlines()


@pytest.mark.parametrize("wait", ["0", "-1", "nan", "inf", "-inf"])
def test_a_wait_that_is_not_a_positive_number_is_refused_before_posting(node, tmp_path, wait):
    result = _run(tmp_path, "--wait", wait)
    assert result.exit_code == 1 and node.calls == []
    assert len(_said(result)) == 1
    assert "--wait" in result.output and "give a positive number of seconds" in result.output


@pytest.mark.parametrize("price", ["-1", "0", "0eth", "-0.5eth"])
def test_a_max_price_below_one_wei_names_the_option_not_withdraw(node, tmp_path, price):
    result = _run(tmp_path, "--max-price", price)
    assert result.exit_code == 1 and node.calls == []
    assert _said(result) == [f"error: --max-price {price}: give the most you pay, more than 0 "
                             "(e.g. 0.01eth)"]


def test_a_default_output_that_holds_files_is_refused_before_posting(node, tmp_path):
    Path("outputs").mkdir()
    Path("outputs/digest.txt").write_text("an earlier run's, or the user's own")
    result = _run(tmp_path)
    assert result.exit_code == 1 and node.calls == []
    assert _said(result) == ["error: --output outputs is not empty (digest.txt): give a new or "
                             "empty directory, or --force to write into it (replacing files "
                             "of the same names)"]


@pytest.mark.parametrize("output", ["", "/proc/out"])
def test_an_output_that_cannot_be_made_is_refused_before_posting(node, tmp_path, output):
    result = _run(tmp_path, "--output", output)
    assert result.exit_code == 1 and node.calls == [] and len(_said(result)) == 1


def test_a_file_named_empty_is_not_the_current_directory(node, tmp_path):
    result = _run(tmp_path, "--file", "")
    assert _said(result) == ["error: --file '' names no file: give a file's path"]
    assert node.calls == []


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_run_says_the_job_goes_on_and_how_to_get_its_outputs(
        node, tmp_path, signum, code):
    # As at a terminal, whatever this test process inherited (a background job ignores SIGINT).
    at_terminal = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
    previous = signal.signal(signum, at_terminal)
    try:
        node.on_deal = lambda: os.kill(os.getpid(), signum)
        result = _run(tmp_path, "--output", "out")
        assert signal.getsignal(signum) is at_terminal  # put back
    finally:
        signal.signal(signum, previous)
    assert result.exit_code == code
    last = _said(result)[-1]
    results = (tmp_path / "home").absolute() / "results" / f"{KEY}.tar"
    assert last.startswith(f"interrupted: the node keeps driving deal {KEY}"), last
    assert "`lilypad-p2p deals`" in last and f"tar -xf {results} -C DIR" in last


def test_an_ignored_signal_stays_ignored_while_run_waits(node, tmp_path):
    # Under nohup a hangup must not stop `run`, nor, in a background job, a Ctrl-C.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        seen = []
        node.on_deal = lambda: seen.append(signal.getsignal(signal.SIGINT))
        _run(tmp_path, "--output", "out", "--wait", "0.3")  # the deal stays offered
    finally:
        signal.signal(signal.SIGINT, previous)
    assert seen and all(handler is signal.SIG_IGN for handler in seen)


def test_giving_up_the_wait_says_how_to_get_the_outputs_later(node, tmp_path):
    node.on_deal = lambda: None
    result = _run(tmp_path, "--output", "out", "--wait", "0.01")
    assert result.exit_code == 1
    last = _said(result)[-1]
    assert last.startswith(f"error: still offered after 0.01 s; the node keeps driving deal "
                           f"{KEY}") and "lilypad-p2p deals" in last


def test_the_nodes_warnings_are_shown(node, tmp_path):
    node.warnings = ["this node holds no resource offers in market 'cpu' yet"]
    node.on_deal = lambda: None
    result = _run(tmp_path, "--output", "out", "--wait", "0.01")
    assert "warning: this node holds no resource offers in market 'cpu' yet" in _said(result)


def test_help_says_how_to_list_parameters_where_files_land_and_that_jobs_outlive_it():
    result = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "250"})
    shown = " ".join(result.output.split())
    assert "lilypad-p2p modules show MODULE" in shown
    assert "/inputs/NAME" in shown and "ASCII letters, digits, '.', '_', '+' and '-'" in shown
    assert "The job goes on without `run`" in shown  # --wait
    assert f"at most {MAX_DEADLINE_S}, 7 days" in shown
    assert "--force" in shown


def test_deals_shows_one_deal_by_the_start_of_its_key(monkeypatch):
    listed = [
        {"key": key, "side": "client", "phase": "settled", "module": "hash",
         "provider": "0xP", "job_creator": "0xC", "chain_id": 31337, "deal_id": deal_id,
         "payment_wei": 10**15, "result_cid": "bafkrei", "result_path": "/h/results/x.tar",
         "failure": None, "outcome": None, "check_outcome": None, "error": None,
         "transitions": [{"from": None, "to": "offered", "event": None,
                          "at_ms": 1_700_000_000_000},
                         {"from": "running", "to": "accepted", "event": "result",
                          "at_ms": 1_700_000_000_000}]}
        for key, deal_id in (("abc123", "0x01"), ("abd456", "0x02"))
    ]
    # What the node finds for each key (DealStore.deals_named, tested with the store).
    found = {"0xABC": listed[:1], "0x02": listed[1:], "ab": listed, "ffff": [], " ": []}
    monkeypatch.setattr(cli_jobs, "_control",
                        lambda home, method, params=None: found[params["key"]])

    def deals(*args: str) -> object:
        return CliRunner().invoke(app, ["deals", *args])

    shown = deals("0xABC")
    assert shown.exit_code == 0, shown.output
    assert "outputs       /h/results/x.tar" in shown.stdout
    assert "2023-11-14 22:13:20 UTC  running -> accepted (result)" in shown.stdout
    assert "2023-11-14 22:13:20 UTC  offered (new deal)\n" in shown.stdout
    assert "None" not in shown.stdout
    assert "failure" not in shown.stdout  # what a deal lacks is left out
    assert "key           abd456" in deals("0x02").stdout  # by its on-chain deal ID
    for key, said in (("ab", "ab starts several deals' keys or IDs: give more of it"),
                      ("ffff", "no deal ffff on this node"), (" ", "give a deal's key")):
        refused = deals(key)
        assert refused.exit_code == 1 and said in refused.stderr, refused.output


def test_dispute_names_a_deal_as_deals_does_and_only_the_job_creators(monkeypatch):
    listed = [{"key": "abc123", "side": "client", "deal_id": "0x01"},
              {"key": "abd456", "side": "client", "deal_id": "0x02"},
              {"key": "ff0011", "side": "provider", "deal_id": "0xff0011"}]
    sent: list[dict] = []

    # What the node finds for each key (DealStore.deals_named, tested with the store).
    found = {"0x02": listed[1:2], "abc": listed[:1], "ab": listed[:2], "ff00": listed[2:],
             "9999": []}

    def control(home, method, params=None):
        if method == "deals":
            assert set(params) == {"key"}  # the node picks the candidates, not the CLI
            return found[params["key"]]
        sent.append(params)
        return {"phase": "disputed"}

    monkeypatch.setattr(cli_jobs, "_control", control)

    def dispute(key: str) -> object:
        return CliRunner().invoke(app, ["dispute", key])

    by_id = dispute("0x02")
    assert by_id.exit_code == 0, by_id.output
    assert by_id.stdout == "deal abd456 is disputed: its mediators are re-running the job\n"
    assert dispute("abc").exit_code == 0
    assert sent == [{"key": "abd456"}, {"key": "abc123"}]
    for key, said in (("ab", "ab starts several deals' keys or IDs: give more of it"),
                      ("ff00", "deal ff0011 is one this node serves as provider"),
                      ("9999", "no deal 9999 on this node")):
        refused = dispute(key)
        assert refused.exit_code == 1 and said in refused.stderr, refused.output
    assert len(sent) == 2  # nothing refused reached the node


def test_the_deals_table_keeps_its_columns_for_a_module_known_by_id_only(monkeypatch):
    module_id = "bafkreic3qocbj6xfkj336p4t4zlqa5x4hzr2umsjhrstkkzvizokgaathe"
    listed = [{"key": "k1", "side": "client", "phase": "settled", "module": "hello",
               "payment_wei": 10**15},
              {"key": "k2", "side": "provider", "phase": "settled", "module": module_id,
               "payment_wei": 10**15},
              {"key": "k3", "side": "client", "phase": "offered", "module": None,
               "payment_wei": None}]
    monkeypatch.setattr(cli_jobs, "_control", lambda home, method, params=None: listed)
    shown = CliRunner().invoke(app, ["deals"])
    assert shown.exit_code == 0, shown.output
    header, *rows = shown.stdout.splitlines()
    assert [row.index(f"k{n}") for n, row in enumerate(rows, 1)] == [header.index("key")] * 3
    assert "bafkreic3qocbj…" in rows[1] and module_id not in shown.stdout


def test_deals_lists_the_newest_and_says_how_to_list_older_ones(monkeypatch):
    listed = [{"key": f"k{n}", "side": "client", "phase": "settled", "module": "hash",
               "payment_wei": 1} for n in range(5)]
    asked: list[dict] = []

    def control(home, method, params=None):
        asked.append(params)
        return listed[-params["limit"]:] if "limit" in params else listed

    monkeypatch.setattr(cli_jobs, "_control", control)

    def keys_listed(*args: str) -> tuple[list[str], str]:
        shown = CliRunner().invoke(app, ["deals", *args])
        assert shown.exit_code == 0, shown.output
        rows = shown.stdout.splitlines()[1:]
        return [row.split()[-1] for row in rows if row.startswith("client")], rows[-1]

    assert keys_listed("--limit", "2") == (
        ["k3", "k4"], "(the newest 2 shown; older deals: --limit N or --all)")
    assert asked[-1] == {"limit": 3}  # one more than shown: whether there are older ones
    assert keys_listed()[0] == ["k0", "k1", "k2", "k3", "k4"]  # fewer than the default 50
    assert asked[-1] == {"limit": 51}
    assert keys_listed("--all")[0] == ["k0", "k1", "k2", "k3", "k4"] and asked[-1] == {}
    assert CliRunner().invoke(app, ["deals", "--limit", "0"]).exit_code == 2
