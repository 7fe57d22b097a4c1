"""Every `except Exception` in net/ is a marked boundary: a peer may make libp2p raise almost
anything, and such a handler is what keeps that from ending the node. A handler that guards one
known failure names its exception instead; a broad one says `# boundary: <why>` on its line."""

import re
from pathlib import Path

import lilypad_p2p.net

BROAD = re.compile(r"except (Exception|BaseException)\b")


def test_every_broad_except_in_net_says_it_is_a_boundary():
    unmarked = []
    for path in sorted(Path(lilypad_p2p.net.__file__).parent.glob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if BROAD.search(line) and "# boundary:" not in line:
                unmarked.append(f"{path.name}:{number}: {line.strip()}")
    assert not unmarked, "narrow these, or say why each is a boundary:\n" + "\n".join(unmarked)
