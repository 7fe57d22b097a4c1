"""The `lilypad-p2p` chain commands run in this process, as the CLI tests here drive them."""

from typer.testing import CliRunner

from lilypad_p2p.cli import app


def run(*args: str, ok: bool = True, env: dict[str, str | None] | None = None) -> str:
    """The command's output; it must succeed (`ok`) or fail, without a traceback. The chain
    and key variables of the test process are unset unless `env` gives them."""
    clean_env = {"LILYPAD_RPC_URL": None, "LILYPAD_CONTRACT": None,  # None: unset
                 "LILYPAD_KEY_PASSWORD": None, "LILYPAD_KEY_PASSWORD_FILE": None, **(env or {})}
    result = CliRunner().invoke(app, list(args), env=clean_env)
    assert (result.exit_code == 0) == ok, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.output


def one_error(output: str) -> str:
    """The one `error:` line of a refused command (no traceback, no raw RPC error)."""
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert "Traceback" not in output and "{'code'" not in output, output
    return errors[0]
