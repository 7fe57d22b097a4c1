"""A job's deadline leaves its module's whole maximum run time, or the submission is refused."""

import pytest

from lilypad_p2p.exec import BUILTIN_MODULES
from lilypad_p2p.roles import SubmissionError
from lilypad_p2p.roles._client_submission import DEADLINE_SLACK_S, MATCH_ALLOWANCE_S, job_deadline_s
from lilypad_p2p.roles._terms import required_deal_time_s


@pytest.mark.parametrize("name", ["hash", "python"])
def test_the_default_deadline_follows_the_module(name):
    module = BUILTIN_MODULES[name]
    deadline_s = job_deadline_s(module, None)
    assert deadline_s == module.max_run_time_s + DEADLINE_SLACK_S
    # Providers sign a deal posted with the default even after a slow match.
    assert deadline_s - MATCH_ALLOWANCE_S >= required_deal_time_s(module.max_run_time_s)


def test_a_deadline_providers_would_refuse_is_refused_with_what_to_give():
    module = BUILTIN_MODULES["python"]
    least_s = required_deal_time_s(module.max_run_time_s) + MATCH_ALLOWANCE_S
    assert job_deadline_s(module, least_s) == least_s
    with pytest.raises(SubmissionError) as refused:
        job_deadline_s(module, least_s - 1)
    message = str(refused.value)
    assert f"may run {module.max_run_time_s} s" in message
    assert f"at least {least_s} s" in message
