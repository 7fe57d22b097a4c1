"""Failure results, the pure parts: which run errors are the job's, the claim a provider
commits to (reproducible by a mediator), and the signed report a job creator checks."""

import hashlib
import tarfile
from io import BytesIO

import pytest

from lilypad_p2p import wire
from lilypad_p2p.exec import (
    BUILTIN_MODULES,
    BadParameters,
    DockerFailed,
    ImageMissing,
    InputDecryptionFailed,
    JobFailed,
    JobTimedOut,
    MalformedInputs,
    OutOfMemory,
    OutputOverLimit,
    OutputRejected,
    tar_directory,
)
from lilypad_p2p.identity import Identity
from lilypad_p2p.roles._failure import (
    CLAIM_MAGIC,
    MAX_REPORT_BYTES,
    REPORT_MAGIC,
    BadFailureReport,
    FailureClaim,
    FailureClass,
    FailureReport,
    check_delivered_file,
    check_delivery,
    classify,
    failure_report,
    write_failure,
)
from lilypad_p2p.roles._spot_check import fee_shares

MODULE = BUILTIN_MODULES["hash"]  # max_run_time_s = 60


@pytest.mark.parametrize(("error", "claim"), [
    (JobFailed(1, b"boom"), FailureClaim(FailureClass.EXIT, 1)),
    (JobFailed(137, b""), FailureClaim(FailureClass.EXIT, 137)),
    (OutOfMemory(64 << 20, b""), FailureClaim(FailureClass.OUT_OF_MEMORY)),
    (OutputOverLimit(16 << 20), FailureClaim(FailureClass.OUTPUT_OVER_LIMIT)),
    (OutputRejected("outputs hold a symlink"), FailureClaim(FailureClass.OUTPUT_OVER_LIMIT)),
    (JobTimedOut(60), FailureClaim(FailureClass.TIMEOUT)),
    (MalformedInputs("not a map"), FailureClaim(FailureClass.BAD_INPUTS)),
    (BadParameters("text missing"), FailureClaim(FailureClass.BAD_INPUTS)),
])
def test_the_jobs_own_failures_are_claims(error, claim):
    assert classify(error, timeout_s=60, module=MODULE) == claim


@pytest.mark.parametrize("error", [
    DockerFailed("engine refused"), ImageMissing("no image"),
    InputDecryptionFailed("sealed to another key"),  # unprovable to a third party
])
def test_the_nodes_own_failures_are_not_claims(error):
    assert classify(error, timeout_s=60, module=MODULE) is None


def test_a_timeout_shorter_than_the_modules_maximum_is_not_the_jobs_failure():
    # Cut by the deal's deadline: the provider took a deal it could not finish.
    assert classify(JobTimedOut(10), timeout_s=10, module=MODULE) is None


def test_a_claim_is_canonical_and_its_hash_is_what_a_rerun_computes():
    claim = FailureClaim(FailureClass.EXIT, 3)
    encoded = claim.encode()
    assert encoded.startswith(CLAIM_MAGIC)
    assert wire.decode(encoded[len(CLAIM_MAGIC):]) == {"exit_code": 3, "failure": "exit"}
    assert claim.digest() == hashlib.sha256(encoded).digest()
    assert FailureClaim(FailureClass.EXIT, 3).digest() == claim.digest()
    assert FailureClaim(FailureClass.EXIT, 4).digest() != claim.digest()
    assert FailureClaim(FailureClass.TIMEOUT).digest() != FailureClaim(
        FailureClass.OUT_OF_MEMORY).digest()


@pytest.mark.parametrize(("failure", "code"), [
    (FailureClass.EXIT, 0), (FailureClass.TIMEOUT, 1), (FailureClass.EXIT, 256),
])
def test_inconsistent_claims_are_refused(failure, code):
    with pytest.raises(ValueError):
        FailureClaim(failure, code)


def _report(provider: Identity, logs: bytes = b"Traceback: boom\n") -> FailureReport:
    return failure_report(FailureClaim(FailureClass.EXIT, 1), JobFailed(1, logs), run_ms=1234,
                          module=MODULE, account=provider.eth_account())


def test_a_signed_report_round_trips_and_checks_against_the_commitment():
    provider = Identity.generate()
    report = _report(provider)
    delivered = report.encode()
    assert delivered.startswith(REPORT_MAGIC)
    checked = check_delivery(delivered, report.claim.digest(), provider.address)
    assert checked == report
    assert checked.logs == b"Traceback: boom\n"
    assert (checked.run_ms, checked.run_time_limit_s) == (1234, 60)
    assert checked.memory_limit_bytes == MODULE.resources.memory_bytes


def test_a_report_of_another_claim_than_committed_is_refused():
    provider = Identity.generate()
    with pytest.raises(BadFailureReport, match="not the committed"):
        check_delivery(_report(provider).encode(), FailureClaim(FailureClass.TIMEOUT).digest(),
                       provider.address)


def test_a_report_signed_by_someone_else_is_refused():
    provider, other = Identity.generate(), Identity.generate()
    report = _report(other)
    with pytest.raises(BadFailureReport, match="not signed by the deal's provider"):
        check_delivery(report.encode(), report.claim.digest(), provider.address)


def test_tampered_logs_are_refused():
    provider = Identity.generate()
    report = _report(provider)
    tampered = report.encode().replace(b"boom", b"fine")
    with pytest.raises(BadFailureReport):
        check_delivery(tampered, report.claim.digest(), provider.address)


@pytest.mark.parametrize("junk", [REPORT_MAGIC, REPORT_MAGIC + b"\x01", REPORT_MAGIC + wire.encode(
    {"claim": b"x"})])
def test_malformed_reports_are_refused_with_one_error_type(junk):
    with pytest.raises(BadFailureReport):
        check_delivery(junk, b"\0" * 32, Identity.generate().address)


def test_an_output_tarball_is_checked_by_its_hash(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.txt").write_text("hello")
    tarball = tar_directory(tmp_path / "out", max_bytes=1 << 20)
    with tarfile.open(fileobj=BytesIO(tarball)) as archive:
        assert archive.getnames() == ["a.txt"]
    provider = Identity.generate().address
    assert check_delivery(tarball, hashlib.sha256(tarball).digest(), provider) is None
    with pytest.raises(BadFailureReport, match="outputs do not match"):
        check_delivery(tarball, b"\1" * 32, provider)


def test_an_empty_tarball_is_not_taken_for_a_report(tmp_path):
    (tmp_path / "empty").mkdir()
    tarball = tar_directory(tmp_path / "empty", max_bytes=1 << 20)
    assert not tarball.startswith(REPORT_MAGIC)
    assert check_delivery(tarball, hashlib.sha256(tarball).digest(),
                          Identity.generate().address) is None


def test_the_job_creators_copy_is_private(tmp_path):
    report = _report(Identity.generate())
    path = write_failure(tmp_path / "results", "k1", report)
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "results" / "k1.logs").read_bytes() == report.logs
    assert (tmp_path / "results" / "k1.logs").stat().st_mode & 0o777 == 0o600
    assert '"failure": "exit"' in path.read_text()


def test_an_agreeing_checks_fee_is_split_like_the_contracts_claim():
    assert fee_shares(10, ["0xa", "0xb", "0xc"]) == {"0xa": 4, "0xb": 3, "0xc": 3}
    assert sum(fee_shares(10**14 + 2, ["0xa", "0xb"]).values()) == 10**14 + 2
    with pytest.raises(ValueError):
        fee_shares(10, [])


def test_a_delivery_received_into_a_file_is_checked_the_same_way(tmp_path):
    provider = Identity.generate()
    report = _report(provider)
    path = tmp_path / "delivered"
    path.write_bytes(report.encode())
    digest = hashlib.sha256(report.encode()).digest()
    assert check_delivered_file(path, digest, report.claim.digest(), provider.address) == report
    with pytest.raises(BadFailureReport):  # a report of another claim
        check_delivered_file(path, digest, b"\2" * 32, provider.address)
    path.write_bytes(REPORT_MAGIC + b"\0" * (MAX_REPORT_BYTES + 1))  # too large to be a report
    with pytest.raises(BadFailureReport, match="outputs do not match"):
        check_delivered_file(path, b"\3" * 32, report.claim.digest(), provider.address)
    path.write_bytes(b"an output")
    output_hash = hashlib.sha256(b"an output").digest()
    assert check_delivered_file(path, output_hash, output_hash, provider.address) is None
