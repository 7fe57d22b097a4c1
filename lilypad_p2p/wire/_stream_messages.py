"""Every message of the stream protocols, and `deal_message_from_wire` that builds one.

The deal, mediation and module protocols share one framing (`_deal_messages._DealMessage`);
this module only gathers their messages, so each protocol's module imports nothing but the base.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from lilypad_p2p.wire import _deal_messages as deal
from lilypad_p2p.wire._errors import MalformedMessage
from lilypad_p2p.wire._fields import expect_map
from lilypad_p2p.wire._mediation_messages import (
    MediationRequest,
    VerdictNotice,
    VerdictWithOutput,
)
from lilypad_p2p.wire._module_messages import ModuleDefinition, ModuleRequest

DealMessage = (
    deal.DealProposal | deal.DealAccepted | deal.DealRefused | deal.JobRequest
    | deal.SendInputs | deal.JobResultMessage | deal.AcceptanceNotice | deal.AcceptanceAck
    | MediationRequest | VerdictNotice | ModuleRequest | ModuleDefinition
)
DEAL_MESSAGE_TYPES: dict[str, type[DealMessage]] = {
    cls.TYPE: cls
    for cls in (deal.DealProposal, deal.DealAccepted, deal.DealRefused, deal.JobRequest,
                deal.SendInputs, deal.JobResultMessage, deal.AcceptanceNotice, deal.AcceptanceAck,
                MediationRequest, VerdictNotice, VerdictWithOutput, ModuleRequest,
                ModuleDefinition)
}


def deal_message_from_wire(raw: object) -> DealMessage:
    """Build the message `raw["type"]` names; any defect raises `MalformedMessage`."""
    raw = expect_map(raw, "a deal message")
    if raw.get("v") != deal.DEAL_MESSAGE_VERSION:
        raise MalformedMessage(f"deal message version {raw.get('v')!r}")
    kind = raw.get("type")
    cls = DEAL_MESSAGE_TYPES.get(kind) if type(kind) is str else None
    if cls is None:
        raise MalformedMessage(f"unknown deal message type {raw.get('type')!r}")
    names = {f.name for f in fields(cls)}
    if set(raw) != names | {"type", "v"}:
        raise MalformedMessage(f"{cls.TYPE}: fields must be {sorted(names)}")
    values: dict[str, Any] = {name: raw[name] for name in names}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise MalformedMessage(f"{cls.TYPE}: {exc}") from exc
