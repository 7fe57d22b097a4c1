"""`lilypad-p2p run|deals|dispute`: a job through the local node, from offer to outputs, and
the deals it made."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lilypad_p2p._cli_common import HomeOption, JsonOption, _control, _fail, _fail_on, _json_shown
from lilypad_p2p.cli_chain import _amount

# How often `run` asks the node about its deal, and how long it waits in all by default.
RUN_POLL_INTERVAL_S = 0.2
RUN_DEFAULT_WAIT_S = 900.0


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


def run(
    module: Annotated[str, typer.Argument(help="Module to run (see `lilypad-p2p modules list`).")],
    inputs: Annotated[
        list[str] | None, typer.Option("-i", "--input", help="Parameter key=value; repeatable.")
    ] = None,
    files: Annotated[
        list[Path] | None, typer.Option("--file", help="Input file for the job; repeatable.")
    ] = None,
    max_price: Annotated[
        str, typer.Option(help="Most you pay for the job, e.g. 0.01eth or wei.")
    ] = "0.01eth",
    target: Annotated[
        str | None, typer.Option(help="Provider (address or peer ID) to run on; skips the solvers.")
    ] = None,
    deadline: Annotated[int | None, typer.Option(
        help="Seconds until the result is due (default: the module's max_run_time_s + 240). "
             "It must leave the module's whole max_run_time_s + 47 s: providers refuse deals "
             "that could cut a run short.")] = None,
    output: Annotated[
        Path, typer.Option(help="Directory for the decrypted outputs.")
    ] = Path("outputs"),
    market: Annotated[str, typer.Option(help="Market to post the job in.")] = "cpu",
    chain_id: Annotated[
        int | None, typer.Option(help="Settlement chain to pay on (default: the node's first).")
    ] = None,
    wait: Annotated[float, typer.Option(help="Give up waiting after this many seconds.")] = (
        RUN_DEFAULT_WAIT_S
    ),
    min_provider_deals: Annotated[int | None, typer.Option(
        min=0, help="Only providers with at least this many completed deals on the chain "
                    "(default: the node's require_provider_deals; 0 admits newcomers).")] = None,
    slash_free_blocks: Annotated[int | None, typer.Option(
        min=0, help="Only providers not slashed within this many blocks (default: the "
                    "node's require_slash_free_blocks).")] = None,
    home: HomeOption = None,
) -> None:
    """Run a job on the market through the local node (started with --client).

    Shows the deal's progress and writes the decrypted outputs to --output.

    Example: lilypad-p2p run hash -i text=hello --output out/
    """
    import time

    from lilypad_p2p.cli_run import (
        Next,
        check_output_directory,
        extract_outputs,
        input_file_paths,
        judge,
        logs_tail,
    )
    from lilypad_p2p.errors import LilypadError

    params = _parse_inputs(inputs or [])
    with _fail_on(LilypadError):
        file_paths = input_file_paths(files or [])
        check_output_directory(output)
    submitted = _control(home, "submit", {
        "module": module, "params": params, "params_as_text": True, "file_paths": file_paths,
        "max_price_wei": _amount(max_price), "target": target, "deadline_s": deadline,
        "market": market, "chain_id": chain_id, "min_completed_deals": min_provider_deals,
        "slash_free_blocks": slash_free_blocks,
    })
    key = submitted["key"]
    typer.echo(f"job offer {key} posted")
    shown: set[str] = set()
    give_up = time.monotonic() + wait
    while True:
        deal = _control(home, "deal", {"key": key})
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
            break
        if time.monotonic() > give_up:
            _fail(f"still {deal['phase']} after {wait} s; the node keeps driving it "
                  f"(`lilypad-p2p deals`)")
        time.sleep(RUN_POLL_INTERVAL_S)
    with _fail_on(LilypadError):
        names = extract_outputs(Path(deal["result_path"]), output)
    typer.echo(f"result {deal['result_cid']} verified; outputs in {output}/: {', '.join(names)}")


def deals(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """List this node's deals (as client and as provider) and their states."""
    listed = _control(home, "deals")
    if _json_shown(listed, as_json):
        return
    if not listed:
        typer.echo("no deals")
        return
    typer.echo(f"{'side':<9}{'phase':<17}{'module':<10}{'payment (wei)':>20}  key")
    for deal in listed:
        payment = "" if deal["payment_wei"] is None else str(deal["payment_wei"])
        typer.echo(f"{deal['side']:<9}{deal['phase']:<17}{deal['module'] or '':<10}"
                   f"{payment:>20}  {deal['key']}")


def dispute(
    key: Annotated[str, typer.Argument(help="The deal's key (see `lilypad-p2p deals`).")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send a deal whose result you doubt to its mediators (before it settles).

    The job creator's node records the result on chain if needed, disputes it, and the deal's
    consortium re-runs the job; `lilypad-p2p deals` shows it disputed, then resolved.
    """
    deal = _control(home, "dispute", {"key": key})
    if _json_shown(deal, as_json):
        return
    typer.echo(f"deal {key} is {deal['phase']}: its mediators are re-running the job")
