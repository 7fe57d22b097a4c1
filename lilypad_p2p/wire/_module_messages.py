"""Messages of the module stream protocol `/lilypad/module/1`.

    ModuleRequest -> ModuleDefinition | DealRefused

A provider matched with a job for a module it does not hold asks the job creator for the
definition; the answer is the canonical definition bytes, which the asker checks against the
module ID (the ID is their CID), so the job creator cannot substitute another module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lilypad_p2p.wire._deal_messages import _DealMessage
from lilypad_p2p.wire._errors import InvalidMessage
from lilypad_p2p.wire._fields import require_bytes, require_chars

MAX_DEFINITION_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class ModuleRequest(_DealMessage):
    TYPE: ClassVar[str] = "module_request"
    module: str

    def _check(self) -> None:
        require_chars("module", self.module, 128)


@dataclass(frozen=True, slots=True)
class ModuleDefinition(_DealMessage):
    TYPE: ClassVar[str] = "module_definition"
    module: str
    definition: bytes

    def _check(self) -> None:
        require_chars("module", self.module, 128)
        require_bytes("definition", self.definition)
        if len(self.definition) > MAX_DEFINITION_BYTES:
            raise InvalidMessage(f"definition must be at most {MAX_DEFINITION_BYTES} bytes")
