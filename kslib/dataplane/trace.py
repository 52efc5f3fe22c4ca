"""What the engine did, in words: trace records mapped back to rule text, and the Connection result."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from . import codes as C

VERDICTS = {C.T_JUMP: "jump", C.T_GOTO: "goto", C.T_RETURN: "return", C.T_ACCEPT: "ACCEPT", C.T_DROP: "DROP",
            C.T_REJECT: "REJECT", C.T_DNAT: "DNAT", C.T_SNAT: "SNAT", C.T_MASQ: "MASQUERADE", C.T_MARK: "MARK",
            C.T_LOG: "LOG", C.T_NONE: "match", C.T_UPDATE: "set updated", C.T_VMAP: "map lookup",
            C.T_NUMGEN: "numgen"}
ROUTES = {C.R_LOCAL: "a local address", C.R_POD: "a pod on this node", C.R_NODE: "on another node",
          C.R_EXTERNAL: "outside the cluster", C.R_NO_POD: "an unused address of this node's pod range"}


def ip(v: int) -> str:
    return str(ipaddress.IPv4Address(int(v) & 0xFFFFFFFF))


@dataclass
class Step:
    """One thing the engine did: a rule that matched, a chain policy, conntrack, routing, NAT, delivery."""
    node: str
    what: str                 # "rule", "policy", "conntrack", "route", "nat", "deliver", "drop", ...
    hook: str = ""
    table: str = ""
    chain: str = ""
    rule: str = ""            # the rule's text, as in iptables-save
    verdict: str = ""
    rule_index: int = -1      # position of the rule in its chain (1-based, like iptables -L --line-numbers)
    reply: bool = False       # a step of the reply packet

    def __str__(self) -> str:
        where = " ".join(x for x in (self.node, "(reply)" if self.reply else "", self.hook, self.table) if x)
        if self.what in ("rule", "policy"):
            return f"{where}: {self.rule or self.chain} => {self.verdict}"
        return f"{where}: {self.verdict}"


@dataclass
class Connection:
    """The fate of one connection (shared/API.md): outcome, backend, the source the backend saw, trace."""
    src: str
    dst: str
    port: int
    protocol: str
    outcome: str = "dropped"
    pod: str | None = None
    endpoint: str | None = None
    source_ip: str | None = None
    source_port: int | None = None
    node: str | None = None             # where it was delivered (or where its fate was decided)
    reply_source: str | None = None     # the address the reply came from, as the client saw it
    reason: str = ""
    rules_visited: int = 0
    trace: list[Step] = field(default_factory=list)
    held: bool = False                  # opened with hold=True and not closed yet
    latency: float | None = None        # seconds to establish it, measured by the kernel lab (kslib.lab)
    _close: object = field(default=None, repr=False, compare=False)

    def close(self) -> None:
        """Close a connection opened with ``hold=True``: it goes to TIME_WAIT (conntrack, and IPVS
        counts it as inactive instead of active) and expires 120 s later on the cluster clock."""
        if not self.held:
            raise ValueError("close(): only a connection opened with hold=True and still open can be closed")
        self._close()
        self.held = False

    def __repr__(self) -> str:
        who = self.pod or self.endpoint or ""
        return (f"<Connection {self.src} -> {self.dst}:{self.port}/{self.protocol}: {self.outcome}"
                f"{' to ' + who if who else ''}{', source ' + self.source_ip if self.source_ip else ''}>")


@dataclass
class Names:
    """What trace rows are mapped back to: the names of nodes, pods, chains (with their table), rules,
    IPVS virtual services and real servers, eBPF frontends and backends."""
    nodes: list
    pods: list
    chains: list
    tables: list
    rules: list
    positions: list
    vs: list
    dests: list
    frontends: list
    backends: list


VMAP_VERDICTS = {C.V_JUMP: "jump", C.V_GOTO: "goto", C.V_ACCEPT: "accept", C.V_DROP: "drop",
                 C.V_REJECT: "reject", C.V_RETURN: "return", C.V_CONTINUE: "no match: next rule"}


def steps(records, n: int, names: Names) -> list[Step]:
    """Turn the engine's trace rows into Steps."""
    out = []
    for row in records[:n]:
        kind, node, hook, table, chain, rule, a, b, c = (int(x) for x in row)
        nn = names.nodes[node]
        h = C.HOOK_NAMES[hook] if hook >= 0 else ""
        t = names.tables[chain] if chain >= 0 else ""
        ch = names.chains[chain] if chain >= 0 else ""
        if kind == C.E_RULE:
            out.append(Step(nn, "rule", h, t, ch, names.rules[rule], VERDICTS[a], names.positions[rule]))
        elif kind == C.E_VMAP:
            to = f" {names.chains[b]}" if b >= 0 and a in (C.V_JUMP, C.V_GOTO) else ""
            out.append(Step(nn, "rule", h, t, ch, names.rules[rule], f"map lookup: {VMAP_VERDICTS[a]}{to}",
                            names.positions[rule]))
        elif kind == C.E_IPVS:
            out.append(Step(nn, "ipvs", h, verdict=f"IPVS {names.vs[rule]}: scheduled to real server "
                                                   f"{names.dests[a]} (Masq: destination NAT)"))
        elif kind == C.E_IPVS_NONE:
            out.append(Step(nn, "ipvs", h, verdict=f"IPVS {names.vs[rule]}: no real server available"))
        elif kind == C.E_SOCK_LB:
            what = (f"backend {names.backends[a]}: the socket connects there directly, no packet carries "
                    f"{ip(b)}:{c} and no NAT happens" if a >= 0 else "the service has no backend: connect() fails")
            out.append(Step(nn, "socket-lb", verdict=f"connect() to {names.frontends[rule]} (Cilium cgroup/connect4, "
                                                     f"service map): {what}"))
        elif kind == C.E_TC_LB:
            what = (f"backend {names.backends[a]}" if a >= 0 else
                    "source outside loadBalancerSourceRanges: drop (DROP_NOT_IN_SRC_RANGE)" if a == -2 else
                    "no usable backend: ICMP port unreachable (DROP_NO_SERVICE, service-no-backend-response=reject)")
            out.append(Step(nn, "tc-lb", verdict=f"{names.frontends[rule]} at the node's device (Cilium tc "
                                                 f"bpf_host, service map): {what}"))
        elif kind == C.E_POLICY:
            v = {C.V_ACCEPT: "policy ACCEPT", C.V_DROP: "policy DROP"}.get(a, "end of chain")
            out.append(Step(nn, "policy", h, t, ch, f"(end of {ch})", v))
        elif kind == C.E_CT_NEW:
            out.append(Step(nn, "conntrack", verdict="conntrack: no entry, a NEW connection: the nat table decides"))
        elif kind == C.E_CT_FOUND:
            d = "reply" if a else "original"
            out.append(Step(nn, "conntrack", verdict=f"conntrack: entry found ({d} direction): NAT follows the "
                                                      "entry, the nat table is not walked"))
        elif kind == C.E_CT_NAT:
            out.append(Step(nn, "nat", h, verdict=f"conntrack NAT: now {ip(a)}:{c & 0xFFFF} -> {ip(b)}:{c >> 16}"))
        elif kind == C.E_ROUTE:
            where = ROUTES[a] + (f" ({names.nodes[b]})" if a == C.R_NODE else "")
            out.append(Step(nn, "route", verdict=f"routing: {ip(c)} is {where}"))
        elif kind == C.E_DNAT:
            out.append(Step(nn, "nat", h, t, ch, names.rules[rule], f"DNAT to {ip(a)}:{b}", names.positions[rule]))
        elif kind == C.E_SNAT:
            out.append(Step(nn, "nat", h, t, ch, names.rules[rule], f"source NAT to {ip(a)}:{b}", names.positions[rule]))
        elif kind == C.E_CONFIRM:
            out.append(Step(nn, "conntrack", verdict="conntrack: entry confirmed"))
        elif kind == C.E_FORWARD:
            out.append(Step(nn, "route", verdict=f"sent over the node network to {names.nodes[a]}"))
        elif kind == C.E_DELIVER:
            to = names.pods[a] if a >= 0 else f"the host's socket on {nn}"
            out.append(Step(nn, "deliver", verdict=f"delivered to {to} at {ip(b)}:{c}"))
        elif kind == C.E_REFUSED:
            to = names.pods[a] if a >= 0 else f"{nn}'s host network"
            out.append(Step(nn, "deliver", verdict=f"nothing listens on {ip(b)}:{c} in {to}: connection refused"))
        elif kind == C.E_DROP:
            why = {1: "no pod has this address",
                   2: f"no rule claimed {ip(b)}:{c}, and nothing outside the cluster answers for a ClusterIP"
                   }.get(a, "dropped")
            out.append(Step(nn, "drop", verdict=f"{why}: the packet is gone (the client times out)"))
        elif kind == C.E_REJECT:
            out.append(Step(nn, "reject", verdict="rejected: " + ("TCP reset" if a == 1 else
                                                                  "ICMP port unreachable (connection refused)")))
        elif kind == C.E_LEAVE:
            out.append(Step(nn, "route", verdict=f"leaves the cluster towards {ip(b)}:{c}"))
    return out
