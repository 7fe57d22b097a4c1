"""The client's `submit` control method refuses, before anything is posted, a job no offer this
node holds could take or that could only fail; it posts with a warning what it cannot tell."""

from __future__ import annotations

from pathlib import Path

import pytest

from lilypad_p2p.exec import BUILTIN_MODULES, ExecError, load_definition_file
from lilypad_p2p.identity import Identity
from lilypad_p2p.market import OfferBook
from lilypad_p2p.roles import SubmissionError
from lilypad_p2p.roles._client_control import ClientControl
from lilypad_p2p.roles._client_submission import (
    MAX_DEADLINE_S,
    JobSubmission,
)
from lilypad_p2p.testing import role_pair

pytestmark = pytest.mark.chain
EXAMPLES = Path(__file__).parents[3] / "examples"


async def _no_docker():
    raise ExecError("no Docker here: nothing in these tests runs")


def _control(pair, book: OfferBook | None = None) -> ClientControl:
    """The client's control methods as a node in market `cpu` serves them."""
    client = pair.client
    return ClientControl(client, pair.client_store, book=client._book if book is None else book,
                         modules=client._modules, chains=client._chains, markets=("cpu",),
                         address=pair.client_id.address, clock_ms=pair.clock)


def _posted(pair) -> bool:
    return bool(pair.published) or bool(pair.client_store.client_deals())


def _input_files(module) -> list[str]:
    return sorted(name for name, param in module.params.items() if param.input_file)


def test_the_shipped_modules_name_their_input_files():
    assert _input_files(BUILTIN_MODULES["wordcount"]) == ["file"]
    assert _input_files(BUILTIN_MODULES["python"]) == ["script"]
    assert _input_files(BUILTIN_MODULES["hash"]) == []
    # The example's file is optional: its job runs without it.
    hello = load_definition_file(EXAMPLES / "modules" / "hello" / "module.toml")
    assert _input_files(hello) == []


@pytest.mark.parametrize(("asked", "said"), [
    ({"market": "gpu"}, "this node is not in market 'gpu'; its markets: cpu: post in one of them "
                        "(--market), or add 'gpu' to `markets` in config.toml"),
    ({"max_price_wei": 1}, "--max-price 1 wei is below every offer for module hash in market "
                           "'cpu' that this node holds: the cheapest asks"),
    ({"target": "0x" + "00" * 20}, "is the zero address, no provider; `lilypad-p2p offers "
                                   "--market cpu` lists"),
    ({"target": "own"}, "is this node's own address"),
    ({"target": "stranger"}, "has no resource offer in market 'cpu' that this node holds (a "
                             "solver, a client, a mistyped address, or a provider that has "
                             "withdrawn its offers for now?)"),
    ({"module": "wordcount", "params": {"top": "3"}},
     "module wordcount reads /inputs/input.txt (parameter 'file'), but no input file is named "
     "'input.txt': add --file PATH/input.txt, or -i file=NAME for a --file named NAME"),
    ({"module": "python", "params": {}, "file_paths": {"other.py": "FILE"}},
     "reads /inputs/main.py (parameter 'script'), but no input file is named 'main.py' (given: "
     "other.py)"),
    ({"module": "wordcount", "params": {}, "file_paths": {"input.txt": "FILE"},
      "target": "provider"},
     "offers nothing in market 'cpu' that takes module wordcount on chain"),
    ({"deadline_s": MAX_DEADLINE_S + 1}, f"is over the most a job may ask, {MAX_DEADLINE_S} s "
                                         "(7 days)"),
    ({"deadline_s": 0}, "deadline 0 s: give a positive number of seconds (--deadline)"),
])
async def test_a_job_no_offer_could_take_is_refused_before_it_is_posted(
        tmp_path, autojump, asked, said):
    (tmp_path / "input").write_text("a b a")
    async with role_pair(tmp_path, executor_factory=_no_docker) as pair:
        targets = {"own": pair.client_id.address, "provider": pair.provider_id.address,
                   "stranger": Identity.generate().address}
        params = {"module": "hash", "params": {"text": "hi"}, "params_as_text": True, **asked}
        if "target" in params:
            params["target"] = targets.get(params["target"], params["target"])
        params["file_paths"] = {name: str(tmp_path / "input")
                                for name in params.get("file_paths", {})}
        with pytest.raises(SubmissionError) as refused:
            await _control(pair).handlers()["submit"](params)
        assert said in str(refused.value) and "\n" not in str(refused.value)
        assert not _posted(pair)


async def test_a_target_by_peer_id_that_holds_an_offer_is_posted_without_warnings(
        tmp_path, autojump):
    async with role_pair(tmp_path, executor_factory=_no_docker) as pair:
        answer = await _control(pair).handlers()["submit"]({
            "module": "hash", "params": {"text": "hi"}, "params_as_text": True,
            "target": str(pair.provider_id.peer_id)})
        assert answer["warnings"] == [] and pair.client_store.get(answer["key"]) is not None


async def test_with_no_offers_heard_yet_a_target_is_posted_with_a_warning(tmp_path, autojump):
    async with role_pair(tmp_path, executor_factory=_no_docker) as pair:
        stranger = Identity.generate().address
        answer = await _control(pair, OfferBook()).handlers()["submit"]({
            "module": "hash", "params": {"text": "hi"}, "target": stranger})
        assert answer["warnings"] == [
            f"this node holds no resource offers in market 'cpu' yet, so --target {stranger} is "
            "not checked; the job waits for its offer until the match timeout"]
        assert pair.client_store.get(answer["key"]) is not None


async def test_a_module_no_offer_takes_yet_is_posted_with_a_warning(tmp_path, autojump):
    (tmp_path / "input.txt").write_text("a b a")
    async with role_pair(tmp_path, executor_factory=_no_docker) as pair:
        answer = await _control(pair).handlers()["submit"]({
            "module": "wordcount", "file_paths": {"input.txt": str(tmp_path / "input.txt")}})
        [warning] = answer["warnings"]
        assert warning.startswith("this node holds no resource offer in market 'cpu' that takes "
                                  "module wordcount on chain")
        assert pair.published  # offers come and go: posted all the same


def test_max_price_and_deadline_each_name_their_option():
    with pytest.raises(SubmissionError, match=r"max price 0 wei: give more than 0 wei "
                                              r"\(--max-price"):
        JobSubmission(module="hash", max_price_wei=0, deadline_s=0)
    with pytest.raises(SubmissionError, match=r"deadline -5 s: give a positive number of "
                                              r"seconds \(--deadline\)"):
        JobSubmission(module="hash", deadline_s=-5)
    JobSubmission(module="hash", deadline_s=MAX_DEADLINE_S)
