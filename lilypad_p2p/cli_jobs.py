"""`lilypad-p2p run|deals|dispute`: a job through the local node, from offer to outputs, and
the deals it made."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from lilypad_p2p._cli_common import (
    HomeOption,
    JsonOption,
    _control,
    _fail,
    _fail_on,
    _home,
    _json_shown,
)

# How often `run` asks the node about its deal, and how long it waits in all by default.
RUN_POLL_INTERVAL_S = 0.2
RUN_DEFAULT_WAIT_S = 900.0
# The `deals` table's module column: a name fits; a module ID (59 characters) is cut.
MODULE_COLUMN = 16
# How many of its newest deals `deals` lists unless told otherwise: a node that has run for
# months holds thousands.
DEALS_SHOWN = 50


def _parse_inputs(pairs: list[str]) -> dict[str, str]:
    """`-i name=value` pairs as text: the node reads each by its parameter's kind."""
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            _fail(f"-i {pair!r}: expected key=value")
        if name in params:
            _fail(f"-i {name}= is given twice; give each parameter once")
        params[name] = value
    return params


def _max_price_wei(text: str) -> int:
    """--max-price in wei, refused in one line that names the option."""
    from lilypad_p2p.chain import parse_amount

    if text.strip().startswith("-"):
        _fail(f"--max-price {text}: give the most you pay, more than 0 (e.g. 0.01eth)")
    try:
        wei = parse_amount(text)
    except ValueError as exc:
        _fail(f"--max-price: {exc}")
    if wei == 0:
        _fail(f"--max-price {text}: give the most you pay, more than 0 (e.g. 0.01eth)")
    return wei


def run(
    module: Annotated[str, typer.Argument(
        help="Module to run (`lilypad-p2p modules list`; its parameters: "
             "`lilypad-p2p modules show MODULE`).")],
    inputs: Annotated[list[str] | None, typer.Option(
        "-i", "--input", help="Parameter name=value; repeatable. `lilypad-p2p modules show "
                              "MODULE` lists the module's parameters.")] = None,
    files: Annotated[list[str] | None, typer.Option(
        "--file", help="Input file; repeatable. The job reads it as /inputs/NAME, NAME being "
                       "the file's own name, which may hold only ASCII letters, digits, '.', "
                       "'_', '+' and '-'.")] = None,
    max_price: Annotated[
        str, typer.Option(help="Most you pay for the job, e.g. 0.01eth or wei.")
    ] = "0.01eth",
    target: Annotated[str | None, typer.Option(
        help="Provider (address or peer ID) to run on; skips the solvers. It must own a "
             "resource offer in the market (`lilypad-p2p offers`).")] = None,
    deadline: Annotated[int | None, typer.Option(
        help="Seconds until the result is due (default: the module's max_run_time_s + 240; at "
             "most 604800, 7 days). It must leave the module's whole max_run_time_s + 47 s: "
             "providers refuse deals that could cut a run short.")] = None,
    output: Annotated[str, typer.Option(
        help="Directory for the decrypted outputs, new or empty (created if missing). Files "
             "get the time they are written.")] = "outputs",
    force: Annotated[bool, typer.Option(
        "--force", help="Write into a non-empty --output, replacing files of the same "
                        "names.")] = False,
    market: Annotated[str, typer.Option(help="Market to post the job in.")] = "cpu",
    chain_id: Annotated[
        int | None, typer.Option(help="Settlement chain to pay on (default: the node's first).")
    ] = None,
    wait: Annotated[float, typer.Option(
        help="Stop waiting after this many seconds. The job goes on without `run`: the node "
             "keeps driving it and pays for it (`lilypad-p2p deals`).")] = RUN_DEFAULT_WAIT_S,
    min_provider_deals: Annotated[int | None, typer.Option(
        min=0, help="Only providers with at least this many completed deals on the chain "
                    "(default: the node's require_provider_deals; 0 admits newcomers).")] = None,
    slash_free_blocks: Annotated[int | None, typer.Option(
        min=0, help="Only providers not slashed within this many blocks (default: the "
                    "node's require_slash_free_blocks).")] = None,
    home: HomeOption = None,
) -> None:
    """Run a job on the market through the local node (started with --client).

    Shows the deal's progress and writes the decrypted outputs to --output. Everything that can
    be checked before the job is posted is: the parameters, the files (each lands at
    /inputs/NAME; a module's input file must be among them), the output directory, and the
    market's offers (--target, --max-price). Once posted, the job goes on even if `run` stops
    (Ctrl-C, --wait): `lilypad-p2p deals` follows it. `lilypad-p2p modules show MODULE` lists a
    module's parameters.

    Example: lilypad-p2p run hash -i text=hello --output out/
    """
    import math

    from lilypad_p2p.cli_run import (
        Interrupted,
        check_output_directory,
        extract_outputs,
        input_file_paths,
        interrupts_raised,
        left_running,
    )
    from lilypad_p2p.errors import LilypadError

    params = _parse_inputs(inputs or [])
    if not (math.isfinite(wait) and wait > 0):
        _fail(f"--wait {wait:g}: give a positive number of seconds (the job goes on after it)")
    max_price_wei = _max_price_wei(max_price)
    with _fail_on(LilypadError):
        file_paths = input_file_paths(files or [])
        out = check_output_directory(output, force=force)
    results = _home(home).absolute() / "results"
    key: str | None = None
    deal: dict[str, Any] | None = None
    with interrupts_raised():
        try:
            submitted = _control(home, "submit", {
                "module": module, "params": params, "params_as_text": True,
                "file_paths": file_paths, "max_price_wei": max_price_wei, "target": target,
                "deadline_s": deadline, "market": market, "chain_id": chain_id,
                "min_completed_deals": min_provider_deals,
                "slash_free_blocks": slash_free_blocks,
            })
            key = str(submitted["key"])
            typer.echo(f"job offer {key} posted")
            for warning in submitted.get("warnings", []):
                typer.secho(f"warning: {warning}", err=True, fg=typer.colors.YELLOW)
            deal = _follow(home, key, wait, results)
            with _fail_on(LilypadError):
                names = extract_outputs(Path(deal["result_path"]), out, force=force)
        except Interrupted as stop:
            said = (left_running(key, deal, results) if key is not None else
                    "the node may have posted the job: `lilypad-p2p deals` lists it")
            typer.echo(f"interrupted: {said}", err=True)
            raise typer.Exit(128 + stop.signum) from None
    typer.echo(f"result {deal['result_cid']} verified; outputs in {out}/: {', '.join(names)}")


def _follow(home: Path | None, key: str, wait: float, results: Path) -> dict[str, Any]:
    """Show deal `key`'s progress until it has outputs (returned), fails or `wait` passes
    (both end the command); `results` is the node's results directory."""
    import time

    from lilypad_p2p.cli_run import Next, judge, left_running, logs_tail

    shown: set[str] = set()
    give_up = time.monotonic() + wait
    while True:
        deal: dict[str, Any] = _control(home, "deal", {"key": key})
        for step in deal["transitions"]:
            label = f"{step['to']}"
            if label not in shown:
                shown.add(label)
                extra = f" (provider {deal['provider']})" if step["to"] == "matched" else ""
                typer.echo(f"  {label}{extra}")
        verdict = judge(deal)
        if verdict.next is Next.FAIL:
            if verdict.logs is not None and (tail := logs_tail(verdict.logs)):
                typer.echo("the job's logs end:", err=True)
                typer.echo("\n".join(f"  | {line}" for line in tail), err=True)
            _fail(verdict.message)
        if verdict.next is Next.OUTPUTS:
            return deal
        if time.monotonic() > give_up:
            _fail(f"still {deal['phase']} after {wait:g} s; {left_running(key, deal, results)}")
        time.sleep(RUN_POLL_INTERVAL_S)


def deals(
    key: Annotated[str | None, typer.Argument(
        help="Show this deal in full: its key or on-chain deal ID (0x...), or the start of "
             "either that no other deal shares.",
        show_default=False)] = None,
    limit: Annotated[int, typer.Option(
        "--limit", min=1, help="List the newest this many deals.")] = DEALS_SHOWN,
    every: Annotated[bool, typer.Option(
        "--all", help="List every deal, however many the node holds.")] = False,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """List this node's newest deals (as client and as provider) and their states, or show one.

    One deal is shown with its parties, result (CID, and for a job you posted the path of its
    outputs' archive), outcome and every phase it passed through."""
    if key is not None:
        _show_deal(_one_deal(_control(home, "deals", {"key": key}), key), as_json)
        return
    listed = _control(home, "deals", {} if every else {"limit": limit + 1})
    older = not every and len(listed) > limit
    listed = listed[-limit:] if older else listed
    if _json_shown(listed, as_json):
        return
    if not listed:
        typer.echo("no deals")
        return
    typer.echo(f"{'side':<9}{'phase':<17}{'module':<{MODULE_COLUMN}}{'payment (wei)':>20}  key")
    for deal in listed:
        payment = "" if deal["payment_wei"] is None else str(deal["payment_wei"])
        typer.echo(f"{deal['side']:<9}{deal['phase']:<17}{_module_cell(deal['module'])}"
                   f"{payment:>20}  {deal['key']}")
    if older:
        typer.echo(f"(the newest {limit} shown; older deals: --limit N or --all)")


def _module_cell(module: str | None) -> str:
    """A module's name, or the start of the ID of one this node knows by ID only (a provider
    running another's module); `deals KEY` shows it whole."""
    shown = module or ""
    if len(shown) >= MODULE_COLUMN:
        shown = shown[:MODULE_COLUMN - 2] + "…"
    return f"{shown:<{MODULE_COLUMN}}"


def _one_deal(found: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The deal `key` names, of those the node `found` for it (`deals` with `key`: the deal
    whose key or 0x deal ID it is, or some whose key or ID it starts)."""
    if not key.strip().lower().removeprefix("0x"):
        _fail("give a deal's key (`lilypad-p2p deals` lists them)")
    if not found:
        _fail(f"no deal {key} on this node: `lilypad-p2p deals` lists its deals")
    if len(found) > 1:
        _fail(f"{key} starts several deals' keys or IDs: give more of it")
    return found[0]


def _show_deal(deal: dict[str, Any], as_json: bool) -> None:
    if _json_shown(deal, as_json):
        return
    from lilypad_p2p.chain import format_wei, utc

    rows = {
        "key": deal["key"], "side": deal["side"], "phase": deal["phase"],
        "module": deal["module"], "provider": deal["provider"],
        "job creator": deal["job_creator"], "chain": deal["chain_id"],
        "deal id": deal["deal_id"],
        "payment": None if deal["payment_wei"] is None else format_wei(deal["payment_wei"]),
        "result CID": deal["result_cid"], "outputs": deal["result_path"],
        "failure": deal["failure"], "outcome": deal["outcome"] or deal["check_outcome"],
        "error": deal["error"],
    }
    for name, value in rows.items():
        if value is not None:
            typer.echo(f"{name:<14}{value}")
    for step in deal["transitions"]:
        moved = (f"{step['from']} -> {step['to']}" if step["from"] is not None
                 else f"{step['to']} (new deal)")
        why = f" ({step['event']})" if step["event"] is not None else ""
        typer.echo(f"{'':<14}{utc(step['at_ms'] // 1000)}  {moved}{why}")


def dispute(
    key: Annotated[str, typer.Argument(
        help="The deal's key or on-chain deal ID (0x...), or the start of either that no other "
             "deal shares (see `lilypad-p2p deals`).")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send a deal whose result you doubt to its mediators (before it settles).

    The job creator's node records the result on chain if needed, disputes it, and the deal's
    consortium re-runs the job; `lilypad-p2p deals` shows it disputed, then resolved.
    """
    named = _one_deal(_control(home, "deals", {"key": key}), key)
    if named["side"] != "client":
        _fail(f"deal {named['key']} is one this node serves as provider: only the job "
              "creator's node disputes a result")
    deal = _control(home, "dispute", {"key": named["key"]})
    if _json_shown(deal, as_json):
        return
    typer.echo(f"deal {named['key']} is {deal['phase']}: its mediators are re-running the job")
