import os

import pytest


def require_real(part: str, why_missing: str) -> None:
    """Skip a test whose real part (Docker engine, anvil, ...) is missing, with the reason.

    In CI (`LILYPAD_REQUIRE_REAL=1`, set by scripts/test when CI is set) a missing real part is a
    failure instead: real-part tests must never skip silently there.
    """
    message = f"{part} unavailable: {why_missing}"
    if os.environ.get("LILYPAD_REQUIRE_REAL") == "1":
        pytest.fail(message + " (LILYPAD_REQUIRE_REAL=1: real-part tests may not skip)")
    pytest.skip(message)
