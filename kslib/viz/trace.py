"""The path of one connection, drawn: ``trace_figure(conn)`` turns ``Cluster.connect(...)``'s trace
into a plotly figure with one lane per node and netfilter hook (plus conntrack, routing and
delivery), the step number across, and marks where the packet's addresses change (DNAT, SNAT,
conntrack undoing them on the reply), where it is routed and where it ends.

``lanes``, ``marks`` and ``nat_points`` are the pieces the figure is built from; they read the trace
(kslib/dataplane/trace.py) and hold no model logic of their own."""
from __future__ import annotations

from dataclasses import dataclass

import plotly.graph_objects as go

from ..dataplane.trace import Connection, Step
from .figures import PALETTE, figure

# the order of a node's lanes, top to bottom: what a packet meets on its way through a node
STAGES = ("socket", "conntrack", "PREROUTING", "OUTPUT", "routing", "tc", "INPUT", "FORWARD", "POSTROUTING",
          "delivery")
# kinds of marks: (legend name, colour, marker symbol); colour and shape both differ (colour-blind safe)
KINDS = {
    "DNAT": ("DNAT (destination rewritten)", PALETTE[3], "diamond"),
    "SNAT": ("SNAT / masquerade (source rewritten)", PALETTE[1], "square"),
    "un-NAT": ("conntrack reverses the NAT (reply)", PALETTE[4], "triangle-up"),
    "routing": ("routing decision", PALETTE[2], "circle-open"),
    "delivered": ("delivered", PALETTE[0], "star"),
    "failed": ("dropped / rejected / refused", PALETTE[7], "x"),
    "socket": ("socket-level load balancing (no NAT)", PALETTE[5], "hexagon"),
}


def _steps(conn) -> list[Step]:
    steps = conn.trace if isinstance(conn, Connection) else conn
    steps = list(steps)
    if not all(isinstance(s, Step) for s in steps):
        raise ValueError("trace: expected a Connection (cluster.connect(...)) or its .trace, a list of Steps")
    return steps


def stage(step: Step) -> str:
    """Where on its node a step happened: the netfilter hook for rules and NAT, else what it was."""
    if step.what == "conntrack":
        return "conntrack"
    if step.what == "route":
        return "routing"
    if step.what in ("deliver", "drop", "reject"):
        return "delivery"
    if step.what == "socket-lb":
        return "socket"
    if step.what == "tc-lb":
        return "tc"
    return step.hook or step.what


def lane(step: Step) -> str:
    """The lane a step is drawn in: ``"<node> <stage>"``, e.g. ``"node-1 PREROUTING"``."""
    return f"{step.node} {stage(step)}"


def lanes(conn) -> list[str]:
    """The lanes the trace uses, top to bottom: nodes in the order the packet first reaches them,
    and on each node its stages in the order of ``STAGES``."""
    steps = _steps(conn)
    nodes = list(dict.fromkeys(s.node for s in steps))
    used = {(s.node, stage(s)) for s in steps}
    order = {st: i for i, st in enumerate(STAGES)}
    out = []
    for n in nodes:
        out += [f"{n} {st}" for st in sorted({st for nn, st in used if nn == n}, key=lambda st: order.get(st, 99))]
    return out


@dataclass(frozen=True)
class Mark:
    """A step worth a marker: ``step`` is its 1-based number in the trace (the figure's x)."""
    step: int
    lane: str
    kind: str           # a key of KINDS
    label: str          # the short text drawn beside the marker
    text: str           # the step's full line, str(step)


def _kind(s: Step) -> tuple[str, str] | None:
    v = s.verdict
    if s.what == "nat" and v.startswith("DNAT to "):
        return "DNAT", v
    if s.what == "nat" and v.startswith("source NAT to "):
        return "SNAT", "SNAT to " + v.removeprefix("source NAT to ")
    if s.what == "nat" and v.startswith("conntrack NAT: "):
        return "un-NAT", "reply un-NAT: " + v.removeprefix("conntrack NAT: now ")
    if s.what == "ipvs" and "scheduled to real server" in v:
        return "DNAT", "IPVS DNAT to " + v.split("real server ", 1)[1].split(" ", 1)[0]
    if s.what == "socket-lb":
        return "socket", "socket LB"
    if s.what == "route":
        if v.startswith("sent over the node network to "):
            return "routing", "to " + v.removeprefix("sent over the node network to ")
        if v.startswith("routing: "):
            return "routing", "route: " + v.split(" is ", 1)[-1]
        return "routing", v
    if s.what == "deliver":
        if v.startswith("delivered to "):
            return "delivered", ("reply " if s.reply else "") + "delivered to " + \
                v.removeprefix("delivered to ").split(" at ", 1)[0]
        return "failed", "refused"
    if s.what in ("drop", "reject"):
        return "failed", "dropped" if s.what == "drop" else "rejected"
    return None


def marks(conn) -> list[Mark]:
    """The steps drawn with a marker, in trace order."""
    out = []
    for i, s in enumerate(_steps(conn), 1):
        k = _kind(s)
        if k is not None:
            out.append(Mark(i, lane(s), k[0], k[1], str(s)))
    return out


@dataclass(frozen=True)
class NatPoints:
    """Where a connection's addresses were rewritten: the DNAT target ("ip:port") and the node and
    hook that did it; the SNAT source address (None: the backend sees the client's own address)
    and where; and whether conntrack reversed a NAT on the reply."""
    dnat: str | None
    dnat_at: str | None
    snat: str | None
    snat_at: str | None
    reply_unnat: bool

    @property
    def masqueraded(self) -> bool:
        return self.snat is not None


def nat_points(conn) -> NatPoints:
    """The NAT a connection went through, read from its trace."""
    steps = _steps(conn)
    d = next((s for s in steps if not s.reply and s.what == "nat" and s.verdict.startswith("DNAT to ")), None)
    n = next((s for s in steps if not s.reply and s.what == "nat" and s.verdict.startswith("source NAT to ")), None)
    return NatPoints(
        dnat=d.verdict.removeprefix("DNAT to ") if d else None,
        dnat_at=f"{d.node} {d.hook}" if d else None,
        snat=n.verdict.removeprefix("source NAT to ").rsplit(":", 1)[0] if n else None,
        snat_at=f"{n.node} {n.hook}" if n else None,
        reply_unnat=any(s.reply and s.what == "nat" and s.verdict.startswith("conntrack NAT") for s in steps))


def trace_figure(conn, title: str | None = None) -> go.Figure:
    """The trace as a figure: x the step number, y one lane per node and hook (``lanes``), the
    request's path and the reply's path as lines, and a marker per ``marks`` entry (hover any point
    for the step's full line). ``conn``: a Connection or its ``.trace``."""
    steps = _steps(conn)
    if not steps:
        raise ValueError("trace: the trace is empty")
    if title is None:
        title = (f"The path of {conn.src} -> {conn.dst}:{conn.port}/{conn.protocol}: {conn.outcome}"
                 if isinstance(conn, Connection) else "The path of one connection")
    order = lanes(steps)
    fig = figure(title, "step of the trace", "node and hook", height=max(360, 40 * len(order) + 160))
    for reply, name, dash in ((False, "request path", "solid"), (True, "reply path", "dash")):
        pts = [(i, s) for i, s in enumerate(steps, 1) if s.reply == reply]
        if reply and pts:           # the reply line starts where the request ended
            pts = [(pts[0][0] - 1, steps[pts[0][0] - 2])] + pts
        if pts:
            fig.add_scatter(x=[i for i, _ in pts], y=[lane(s) for _, s in pts], name=name, mode="lines+markers",
                            line=dict(color="#999999", dash=dash, width=1.5), marker=dict(size=4, color="#999999"),
                            hovertext=[str(s) for _, s in pts], hoverinfo="text")
    ms = marks(steps)
    for kind, (name, color, symbol) in KINDS.items():
        mine = [m for m in ms if m.kind == kind]
        if mine:
            fig.add_scatter(x=[m.step for m in mine], y=[m.lane for m in mine], name=name, mode="markers+text",
                            marker=dict(size=13, color=color, symbol=symbol, line=dict(width=1, color=color)),
                            text=[m.label for m in mine], textposition="top center", textfont=dict(size=10),
                            hovertext=[m.text for m in mine], hoverinfo="text")
    fig.update_yaxes(categoryorder="array", categoryarray=order, autorange="reversed", type="category")
    fig.update_xaxes(range=[0, len(steps) + 1])
    return fig


__all__ = ["KINDS", "Mark", "NatPoints", "STAGES", "lane", "lanes", "marks", "nat_points", "stage", "trace_figure"]
