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


def require_anvil() -> None:
    """`require_real` for anvil, the npm-installed chain the multi-process tests share."""
    from lilypad_p2p.localnet import anvil_binary

    if anvil_binary() is None:
        require_real("anvil", "npm ci in contracts/ installs it")


def require_docker(why_needed: str, *, image: str | None = None) -> None:
    """`require_real` for a Docker engine that answers (and holds `image`, if named)."""
    import docker

    try:
        engine = docker.from_env()
        engine.ping()
        if image is not None:
            engine.images.get(image)
    except Exception:
        require_real("docker", why_needed)
