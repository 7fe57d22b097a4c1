"""The fault bookkeeping behind a node's degraded states, and its retry backoff."""

import pytest

from lilypad_p2p.health import MAX_ERROR_CHARS, Backoff, Fault, Health, error_line


def test_faults_appear_once_count_attempts_and_clear():
    health = Health()
    assert health.state == "ok" and health.why_no_jobs() is None
    assert health.record(Fault.DOCKER_UNREACHABLE, "no engine", 1_000)
    assert not health.record(Fault.DOCKER_UNREACHABLE, "still none", 3_000)
    assert health.state == "degraded"
    assert health.why_no_jobs() == "docker unreachable (still none)"
    shown = health.describe(5_000)
    assert shown["state"] == "degraded"
    assert shown["faults"] == [{"fault": "docker_unreachable", "error": "still none",
                                "meaning": shown["faults"][0]["meaning"], "for_s": 4.0,
                                "attempts": 2}]
    assert "offers withdrawn" in shown["faults"][0]["meaning"]
    assert health.clear(Fault.DOCKER_UNREACHABLE)
    assert not health.clear(Fault.DOCKER_UNREACHABLE)
    assert health.state == "ok"


def test_backoff_doubles_to_its_cap_and_resets():
    backoff = Backoff(1.0, 8.0)
    assert [backoff.next_s() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    backoff.reset()
    assert backoff.next_s() == 1.0
    with pytest.raises(ValueError):
        Backoff(0, 1)


def test_a_long_error_loses_its_middle_and_keeps_its_advice():
    head, advice = "connecting to Docker: no engine answers (", "); start one with `dockerd`"
    long_error = RuntimeError(head + "library detail " * 60 + advice + "\nsecond line")
    line = error_line(long_error)
    assert line.startswith(head) and line.endswith(advice) and " ... " in line
    assert len(line) <= MAX_ERROR_CHARS and "\n" not in line
    assert error_line(RuntimeError("short\nmore")) == "short"
    assert error_line(RuntimeError()) == "RuntimeError"
