"""The live status page: plain server-rendered HTML, refreshed in place every few seconds.

Every value shown comes from the node's own status snapshot and is HTML-escaped: offers,
peer addresses and deal errors can carry text other parties chose.
"""

from __future__ import annotations

import datetime
import html
from collections.abc import Mapping, Sequence
from typing import Any

REFRESH_MS = 3000
RECENT_DEALS = 20
RECENT_EVENTS = 20

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.3em;margin:0 0 .2em} h2{font-size:1.05em;margin:1.4em 0 .4em;color:#444}
table{border-collapse:collapse;background:#fff} td,th{border:1px solid #ddd;padding:.25em .6em;
text-align:left;font-variant-numeric:tabular-nums} th{background:#f0f0f0}
code{font-size:.9em} .ok{color:#07702f;font-weight:600} .bad{color:#b00020;font-weight:600}
.muted{color:#777}
"""

_SCRIPT = f"""
setInterval(async () => {{
  try {{
    const r = await fetch(location.href, {{cache: "no-store"}});
    if (!r.ok) return;
    const doc = new DOMParser().parseFromString(await r.text(), "text/html");
    document.body.innerHTML = doc.body.innerHTML;
  }} catch (e) {{}}
}}, {REFRESH_MS});
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], empty: str) -> str:
    if not rows:
        return f'<p class="muted">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _time(at_ms: int | None) -> str:
    if at_ms is None:
        return "-"
    return datetime.datetime.fromtimestamp(at_ms / 1000, datetime.UTC).strftime("%H:%M:%S")


def _ether(wei: int | None) -> str:
    return "-" if wei is None else f"{wei / 10**18:.6f}"


def render(
    status: Mapping[str, Any],
    peers: Sequence[Mapping[str, Any]],
    deals: Sequence[Mapping[str, Any]],
    deals_held: int,
    offers: Mapping[str, Sequence[Mapping[str, Any]]],
    ready: Mapping[str, bool],
) -> str:
    """The whole page for one snapshot: `deals` the recent ones, of `deals_held` in all."""
    failing = [name for name, passing in ready.items() if not passing]
    readiness = (
        '<span class="ok">ready</span>' if not failing
        else f'<span class="bad">not ready: {_e(", ".join(sorted(failing)))}</span>'
    )
    nat = status.get("nat", {})
    sections = [
        f"<h1>lilypad-p2p node</h1><p>{readiness} · up {_e(status['uptime_s'])} s · roles "
        f"<b>{_e(', '.join(status['roles']) or 'none')}</b></p>",
        "<h2>Identity and reachability</h2>",
        _table(["", ""], [
            ["address", status["address"]],
            ["peer ID", status["peer_id"]],
            ["listening on", " ".join(status["listen_addrs"])],
            ["reachability", nat.get("reachability", "unknown")],
            ["relay addresses", " ".join(nat.get("circuit_addrs", ())) or "-"],
        ], ""),
        "<h2>Balances</h2>",
        _table(["chain", "contract", "RPC", "head", "free (ETH)", "locked (ETH)"], [
            [c["chain_id"], c["contract"], "up" if c.get("connected") else "DOWN",
             c.get("head", "-"), _ether(c.get("free_wei")), _ether(c.get("locked_wei"))]
            for c in status.get("chains", ())
        ], "no settlement chain configured"),
        f"<h2>Peers ({len(peers)})</h2>",
        _table(["peer", "score", "meshes", "address"], [
            [p["peer_id"], f"{p['score']:.1f}" if p.get("score") is not None else "-",
             ", ".join(p.get("mesh_topics", ())) or "-", (p.get("addrs") or ["-"])[0]]
            for p in sorted(peers, key=lambda p: p["peer_id"])
        ], "no peers connected"),
        "<h2>Markets and offers</h2>",
        _table(["market", "resource offers", "job offers", "cheapest (wei/job)"], [
            [market, sum(1 for o in rows if o["kind"] == "resource"),
             sum(1 for o in rows if o["kind"] == "job"),
             min((o["price_wei"] for o in rows if o.get("price_wei") is not None), default="-")]
            for market, rows in sorted(offers.items())
        ], "no markets"),
        *(f'<p><span class="bad">not offered</span>: {_e(module)}: more than this provider '
          "offers, so no job of it matches</p>"
          for module in status.get("modules_beyond_offer", ())),
        f"<h2>Deals (latest {RECENT_DEALS} of {deals_held})</h2>",
        _table(["deal", "side", "phase", "module", "counterparty", "started", "last change",
                "error"], [
            [d["key"][:16], d["side"], d["phase"], d.get("module") or "-",
             (d.get("provider") if d["side"] == "client" else d.get("job_creator")) or "-",
             _time(_first_at(d)), _time(_last_at(d)), d.get("error") or ""]
            for d in _latest(deals)[:RECENT_DEALS]
        ], "no deals yet"),
        "<h2>Recent events</h2>",
        _table(["time", "deal", "from", "to", "event"], [
            [_time(t["at_ms"]), key[:16], t["from"] or "-", t["to"], t["event"]]
            for key, t in _events(deals)[:RECENT_EVENTS]
        ], "nothing has happened yet"),
    ]
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        "<title>lilypad-p2p node</title>"
        f"<style>{_STYLE}</style><script>{_SCRIPT}</script></head><body>"
        + "".join(sections)
        + "</body></html>"
    )


def _first_at(deal: Mapping[str, Any]) -> int | None:
    transitions = deal.get("transitions") or []
    return transitions[0]["at_ms"] if transitions else None


def _last_at(deal: Mapping[str, Any]) -> int | None:
    transitions = deal.get("transitions") or []
    return transitions[-1]["at_ms"] if transitions else None


def _latest(deals: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(deals, key=lambda d: _last_at(d) or 0, reverse=True)


def _events(deals: Sequence[Mapping[str, Any]]) -> list[tuple[str, Mapping[str, Any]]]:
    events = [(d["key"], t) for d in deals for t in d.get("transitions") or []]
    return sorted(events, key=lambda item: item[1]["at_ms"], reverse=True)
