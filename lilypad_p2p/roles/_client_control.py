"""The client's control methods (`submit`, `deal`, `dispute`), and a deal as they show it.

`submit` first checks the job against what this node knows (its markets, the resource offers it
holds, the module's input files), so a job that cannot be taken is refused before it is posted;
its answer carries the warnings for what the node cannot tell yet. The checks are the control
interface's (`lilypad-p2p run`): the chain bridge posts through `ClientRole.submit` directly,
having already put a bond at stake on the request.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Awaitable, Callable, Collection
from typing import TYPE_CHECKING, Any

from lilypad_p2p import wire
from lilypad_p2p.blocking import run_blocking
from lilypad_p2p.deal_detail import ClientDetail, DealDetail
from lilypad_p2p.errors import LilypadError
from lilypad_p2p.exec import ModuleCatalog
from lilypad_p2p.market import OfferBook
from lilypad_p2p.roles._client_submission import (
    DEFAULT_MAX_PRICE_WEI,
    JobSubmission,
    SubmissionError,
    check_against_offers,
    check_input_files_named,
    check_market,
)
from lilypad_p2p.roles._input_files import InputFileError, check_input_files
from lilypad_p2p.roles._settlement import DealChains
from lilypad_p2p.roles._terms import BUILTIN_NAMES
from lilypad_p2p.store import DealStore, StoredDeal

if TYPE_CHECKING:
    from lilypad_p2p.roles._client import ClientRole


class ClientControl:
    """The control handlers of a `ClientRole` over its deal store; `book`, `modules`, `chains`
    and `markets` (None: not checked) are the client's, for the checks before posting."""

    def __init__(self, client: ClientRole, store: DealStore, *, book: OfferBook,
                 modules: ModuleCatalog, chains: DealChains, markets: Collection[str] | None,
                 address: str, clock_ms: Callable[[], int]) -> None:
        self._client = client
        self._store = store
        self._book = book
        self._modules = modules
        self._chains = chains
        self._markets = markets
        self._address = address
        self._clock_ms = clock_ms

    def handlers(self) -> dict[str, Callable[[dict[str, Any]], Awaitable[object]]]:
        return {"submit": self._submit, "deal": self._deal, "dispute": self._dispute}

    async def _dispute(self, params: dict[str, Any]) -> dict[str, Any]:
        """`lilypad-p2p dispute <key>`: send a deal with a committed result to mediation."""
        stored = self._store.client_deal(str(params.get("key", "")))
        if stored is None:
            raise LilypadError(f"no client deal {params.get('key')!r}")
        await self._client.dispute(stored)
        saved = self._store.get(stored.record.key)
        assert saved is not None  # saved just above
        return describe(saved, self._store)

    async def _submit(self, params: dict[str, Any]) -> dict[str, Any]:
        files = {name: base64.b64decode(data) for name, data in params.get("files", {}).items()}
        try:
            paths = await run_blocking(check_input_files, dict(params.get("file_paths", {})))
        except InputFileError as exc:
            raise SubmissionError(str(exc)) from exc
        job = JobSubmission(
            module=str(params["module"]),
            params=dict(params.get("params", {})),
            params_as_text=params.get("params_as_text") is True,
            files=files, file_paths=paths,
            max_price_wei=int(params.get("max_price_wei", DEFAULT_MAX_PRICE_WEI)),
            target=params.get("target"),
            deadline_s=_optional_int(params.get("deadline_s")),
            market=str(params.get("market", "cpu")),
            chain_id=None if params.get("chain_id") is None else int(params["chain_id"]),
            min_completed_deals=_optional_int(params.get("min_completed_deals")),
            slash_free_blocks=_optional_int(params.get("slash_free_blocks")),
        )
        warnings = self._check(job)
        return {"key": await self._client.submit(job), "warnings": warnings}

    def _check(self, job: JobSubmission) -> list[str]:
        """Refuse what could never be matched or could only fail, before anything is posted
        (roles/_client_submission.py); the warnings about what cannot be told yet."""
        try:  # the same errors `submit` would give, before the checks that need the module
            module_id, module = self._modules.resolve(job.module)
            params = job.resolved_params(module)
            chain_id = self._chains.require(job.chain_id).chain_id
        except LilypadError as exc:
            raise SubmissionError(str(exc)) from exc
        check_input_files_named(module, params, {*job.files, *job.file_paths})
        check_market(job.market, self._markets)
        offers = [envelope.body for envelope in self._book.offers(job.market, wire.ResourceOffer)
                  if isinstance(envelope.body, wire.ResourceOffer)]
        return check_against_offers(job, module_id, module, chain_id, offers,
                                    own_address=self._address, now_ms=self._clock_ms())

    async def _deal(self, params: dict[str, Any]) -> dict[str, Any]:
        stored = self._store.get(str(params.get("key", "")))
        if stored is None:
            raise LilypadError(f"no deal {params.get('key')!r}")
        return describe(stored, self._store)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def describe(stored: StoredDeal[DealDetail], store: DealStore) -> dict[str, Any]:
    """A deal as the control interface shows it (no secrets, no inputs)."""
    detail = stored.detail
    client = detail if isinstance(detail, ClientDetail) else None
    deal = detail.deal
    shown: dict[str, Any] = {
        **dataclasses.asdict(stored.record),
        "chain_id": stored.chain_id,
        # Shown by name (shipped modules, and the client's own); `module_id` is the ID.
        "module": (client.module_name if client else None) or BUILTIN_NAMES.get(detail.module,
                                                                               detail.module),
        "module_id": detail.module,
        "provider": deal.provider if deal else None,
        "job_creator": deal.job_creator if deal else None,
        "payment_wei": deal.payment if deal else None,
        "deal_id": (
            "0x" + stored.record.key if client is None
            else "0x" + client.deal_id.hex() if client.deal_id is not None else None
        ),
        "result_cid": detail.result_cid,
        "result_path": client.result_path if client else None,
        # A failure result (roles/_failure.py): the claimed class, e.g. "out_of_memory".
        "failure": detail.failure,
        "outcome": detail.outcome,  # a mediation's verdict
        "check_outcome": client.check_outcome if client else None,  # a check that agreed
        "error": detail.error or (client.refusal or client.last_refusal if client else None),
        "transitions": [
            {"from": t.from_phase, "to": t.to_phase, "event": t.event, "at_ms": t.at_ms}
            for t in store.transitions(stored.record.key)
        ],
    }
    return shown
