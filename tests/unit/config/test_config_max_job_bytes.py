"""`max_job_bytes`: a whole number of bytes, 4 GiB unless set, at least a MiB."""

import pytest

from lilypad_p2p.config import DEFAULT_MAX_JOB_BYTES, load_config
from lilypad_p2p.errors import ConfigError


def test_default_file_and_environment(tmp_path, monkeypatch):
    assert load_config(home=tmp_path, flags={}).max_job_bytes == DEFAULT_MAX_JOB_BYTES == 2**32
    (tmp_path / "config.toml").write_text("max_job_bytes = 10485760\n")
    assert load_config(home=tmp_path, flags={}).max_job_bytes == 10 * 2**20
    monkeypatch.setenv("LILYPAD_MAX_JOB_BYTES", "2097152")
    assert load_config(home=tmp_path, flags={}).max_job_bytes == 2 * 2**20


@pytest.mark.parametrize(("line", "says"), [
    ("max_job_bytes = 1.5e9", "is not a whole number"),
    ("max_job_bytes = 1000", "is out of range: at least 1048576 bytes"),
    ("max_job_bytes = true", "max_job_bytes"),
])
def test_bad_values_are_refused_naming_the_setting(tmp_path, line, says):
    (tmp_path / "config.toml").write_text(line + "\n")
    with pytest.raises(ConfigError, match=says) as caught:
        load_config(home=tmp_path, flags={})
    assert str(caught.value).startswith("max_job_bytes")
