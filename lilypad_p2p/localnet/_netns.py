"""Network-namespace plumbing shared by the NAT lab (`testing/_nat_lab.py`) and the simnet's
namespace groups (`simnet/_netns.py`): whether namespaces can be made here, running
`ip`/`iptables`, and picking an address range no other lab on this machine uses."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Sequence

# One `ip`/`iptables`/`nft` command must finish within this.
COMMAND_TIMEOUT_S = 10.0


def namespaces_missing() -> str | None:
    """Why network namespaces cannot be made here, or None if they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install -y iproute2 iptables)"
    return None


def run_command(args: Sequence[str], error: type[Exception], stdin: str | None = None) -> None:
    """Run `args`; raise `error` with the command's stderr if it fails."""
    done = subprocess.run(list(args), capture_output=True, text=True, input=stdin,
                          timeout=COMMAND_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise error(f"{' '.join(args)} failed: {done.stderr.strip()}")


def free_octet(first_octets: Sequence[str], candidates: range, error: type[Exception]) -> int:
    """A second octet N from `candidates` such that no root-namespace address lies in F.N/16 for
    any F in `first_octets` (labs of concurrent runs must not share an uplink or a wan)."""
    out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True,
                         check=False).stdout
    used = {int(word.split(".")[1]) for word in out.split()
            if word.split(".")[0] in first_octets and word.count(".") == 3}
    free = [octet for octet in candidates if octet not in used]
    if not free:
        prefixes = "/".join(first_octets)
        raise error(f"every {prefixes}.N.0.0/16 for N in {candidates.start}.."
                    f"{candidates.stop - 1} is in use")
    return secrets.choice(free)
