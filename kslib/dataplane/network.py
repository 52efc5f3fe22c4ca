"""The cluster's network as the engine sees it: nodes, pods, every node's compiled rules, conntrack
and the ``recent`` tables, plus the calls that carry connections through it."""
from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass

import numpy as np

from . import codes as C
from . import engine as E
from .program import Compiler
from .rules import Ruleset, parse
from .trace import Connection, Step, ip, steps

PROTO_NUMBERS = {"TCP": 6, "UDP": 17, "SCTP": 132}
PROTO_NAMES = {v: k for k, v in PROTO_NUMBERS.items()}
# conntrack lifetimes after kslib's request/response exchange (nf_conntrack sysctl defaults):
# a closed TCP connection lingers in TIME_WAIT 120 s; a UDP flow with a reply lasts 30 s
CT_TTL = {6: 120.0, 17: 30.0, 132: 30.0}
TRACE_ROWS = 200_000


def ip_int(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


@dataclass
class NodeSpec:
    name: str
    ip: str
    pod_cidr: str
    host_ports: tuple = ()          # (protocol number, port) the host network listens on


@dataclass
class PodSpec:
    key: str                         # "namespace/name"
    ip: str
    node: str
    ports: tuple | None = None       # (protocol number, port) it listens on; None: any port


class ClusterNetwork:
    """Holds the compiled tables and the kernel state of every node, and runs the engine on them."""

    def __init__(self, seed: int = 0, service_cidr: str = "10.96.0.0/12"):
        self.rng = np.array([(int(seed) * 0x9E3779B97F4A7C15 + 1) & (2 ** 64 - 1)], dtype=np.uint64)
        self.nodes: list[NodeSpec] = []
        self.pods: list[PodSpec] = []
        self._parsed: dict[str, tuple[str, Ruleset]] = {}
        self._recent_rows: dict[tuple[str, str], tuple] = {}
        self._ports: dict[int, int] = {}
        self.compiler = Compiler()
        self.program = self.compiler.program()
        self.net = None
        self.state = None
        self.ct = _new_conntrack(1024)
        # nothing outside the cluster answers for a ClusterIP: a packet that leaves towards one is lost
        self.service_cidr = ipaddress.IPv4Network(service_cidr, strict=False)

    # ---- loading ------------------------------------------------------------------------------------
    def load(self, nodes: list[NodeSpec], pods: list[PodSpec], rules: dict[str, str]) -> None:
        """(Re)build the network from node and pod facts and each node's iptables-save text."""
        self._save_recent()
        old_names = [n.name for n in self.nodes]
        self.nodes = sorted(nodes, key=lambda n: n.name)
        self.pods = sorted(pods, key=lambda p: ip_int(p.ip))
        comp = Compiler()
        for i, n in enumerate(self.nodes):
            text = rules.get(n.name, "")
            cached = self._parsed.get(n.name)
            if cached is None or cached[0] != text:
                cached = (text, parse(text, source=f"{n.name} rules"))
                self._parsed[n.name] = cached
            comp.add_node(i, cached[1])
        self.compiler, self.program = comp, comp.program()
        # what trace rows are mapped back to, built once per load (not per traced connection)
        self._names = ([n.name for n in self.nodes], [p.key for p in self.pods],
                       [name for (_, _, name) in comp.chains], [r.text for (_, r) in comp.rules], comp.positions)
        self.net = self._network()
        self.state = self._state()
        if old_names != [n.name for n in self.nodes]:
            self._remap_conntrack(old_names)

    def _network(self) -> E.Network:
        nets = [ipaddress.IPv4Network(n.pod_cidr) if n.pod_cidr else None for n in self.nodes]
        node_index = {n.name: i for i, n in enumerate(self.nodes)}
        listen, pods = [], []
        for p in self.pods:
            start = len(listen)
            listen.extend(p.ports or ())
            pods.append((node_index[p.node], p.ports is None, start, len(listen)))
        # a node without a pod CIDR gets a pod network that matches nothing (mask all ones, net 0)
        nodes = [(ip_int(n.ip), int(net.network_address) + 1 if net else 0, int(net.network_address) if net else 0,
                  int(net.netmask) if net else 0xFFFFFFFF) for n, net in zip(self.nodes, nets)]
        hosts = [(i, proto, port) for i, n in enumerate(self.nodes) for proto, port in n.host_ports]

        def table(rows, cols):
            return np.asarray(rows, dtype=np.int64).reshape(len(rows), cols)
        return E.Network(nodes=table(nodes, 4), pod_ip=np.asarray([ip_int(p.ip) for p in self.pods], np.int64),
                         pods=table(pods, 4), listen=table(listen, 2), host=table(hosts, 3),
                         lost=np.array([int(self.service_cidr.network_address), int(self.service_cidr.netmask)],
                                       np.int64))

    # ---- xt_recent tables survive a reload when their name is still used (refcounted in the kernel) ------
    def _save_recent(self) -> None:
        if self.state is None:
            return
        self._recent_rows = {(self.nodes[node].name, name): (self.state.recent[t].copy(), self.state.recent_clock[t])
                             for t, (node, name) in enumerate(self.compiler.recent)}

    def _state(self) -> E.State:
        n = len(self.compiler.recent)
        st = E.State(rng=self.rng, recent=np.zeros((n, C.RECENT_SIZE, 3), np.int64),
                     recent_clock=np.zeros(n, np.int64))
        for t, (node, name) in enumerate(self.compiler.recent):
            saved = self._recent_rows.get((self.nodes[node].name, name))
            if saved is not None:
                st.recent[t], st.recent_clock[t] = saved
        return st

    def recent_table(self, node: str, name: str, now: float) -> list[tuple[str, float]]:
        """``/proc/net/xt_recent/<name>`` on ``node``: (address, seconds since last seen), oldest first."""
        for t, (n, nm) in enumerate(self.compiler.recent):
            if self.nodes[n].name == node and nm == name:
                rows = sorted((r for r in self.state.recent[t] if r[C.RC_SEQ] > 0), key=lambda r: r[C.RC_SEQ])
                return [(ip(r[C.RC_IP]), now - r[C.RC_STAMP] / 1e6) for r in rows]
        return []

    # ---- conntrack ------------------------------------------------------------------------------------
    def _ensure_conntrack(self, now: float, room: int = 64) -> None:
        ct = self.ct
        if ct.meta[0] + room <= ct.entries.shape[0]:
            return
        alive = np.nonzero(ct.expires[:ct.meta[0]] > now)[0]
        new = _new_conntrack(max(1024, 1 << int(np.ceil(np.log2(2 * (len(alive) + room))))))
        new.entries[:len(alive)] = ct.entries[alive]
        new.expires[:len(alive)] = ct.expires[alive]
        new.meta[0] = len(alive)
        E.ct_rehash(new.slot_o, new.slot_r, new.entries, new.meta)
        self.ct = new

    def _remap_conntrack(self, old_names: list[str]) -> None:
        index = {n.name: i for i, n in enumerate(self.nodes)}
        ct = self.ct
        for e in range(ct.meta[0]):
            old = old_names[ct.entries[e, C.CT_NODE]] if ct.entries[e, C.CT_NODE] < len(old_names) else None
            if old in index:
                ct.entries[e, C.CT_NODE] = index[old]
            else:
                ct.expires[e] = -1.0         # the node is gone, and its conntrack with it
        E.ct_rehash(ct.slot_o, ct.slot_r, ct.entries, ct.meta)

    def conntrack(self, node: str, now: float) -> list[str]:
        """``conntrack -L`` on ``node``: live entries, in the tool's format."""
        i = self.node_index(node)
        ct, lines = self.ct, []
        for e in range(ct.meta[0]):
            row = ct.entries[e]
            if row[C.CT_NODE] != i or ct.expires[e] <= now:
                continue
            proto = int(row[C.CT_PROTO])
            o, r = row[C.CT_O:C.CT_O + 4], row[C.CT_R:C.CT_R + 4]
            replied = row[C.CT_STATUS] & E.ST_SEEN_REPLY
            state = ("TIME_WAIT " if replied else "SYN_SENT ") if proto == 6 else ""
            flags = " [ASSURED]" if replied else " [UNREPLIED]"
            lines.append(f"{PROTO_NAMES.get(proto, str(proto)).lower():<8} {proto} {int(ct.expires[e] - now)} "
                         f"{state}src={ip(o[0])} dst={ip(o[1])} sport={o[2]} dport={o[3]} "
                         f"src={ip(r[0])} dst={ip(r[1])} sport={r[2]} dport={r[3]}{flags} mark=0 use=1")
        return lines

    # ---- running connections -----------------------------------------------------------------------------
    def node_index(self, name: str) -> int:
        return [n.name for n in self.nodes].index(name)

    def _pod_loopback(self, conn: Connection, src: int, proto: int) -> Connection:
        """127.0.0.0/8 inside a pod is the pod's own loopback: the packet never reaches the node."""
        pod = next(p for p in self.pods if ip_int(p.ip) == src)
        ok = pod.ports is None or (proto, conn.port) in pod.ports
        conn.outcome, conn.node = ("delivered" if ok else "rejected"), pod.node
        conn.pod, conn.endpoint = (pod.key, f"{conn.dst}:{conn.port}") if ok else (None, None)
        conn.source_ip = conn.reply_source = conn.dst if ok else None
        conn.reason = (f"{conn.dst} is {pod.key}'s own loopback: the packet never leaves the pod"
                       + ("" if ok else f", and nothing listens on port {conn.port} there: connection refused"))
        conn.trace = [Step(pod.node, "route", verdict=conn.reason)]
        return conn

    def source_address(self, node: int, kind: int, src: int, dst: int) -> int:
        """A host's socket takes the source address of the route to ``dst`` (chosen before any NAT):
        the pod bridge's address towards a local pod, the address itself for a local one, else
        the node's InternalIP. Pods and external clients have only their own address."""
        if kind != C.LOCAL_OUT:
            return src
        kind, _ = E.route(self.net.nodes, self.net.pod_ip, node, dst)
        if kind in (C.R_POD, C.R_NO_POD):
            return int(self.net.nodes[node, C.N_GW])
        if kind == C.R_LOCAL:
            return 0x7F000001 if dst >> 24 == 127 else dst
        return src

    def ephemeral_port(self, src: int) -> int:
        k = self._ports.get(src, 0)
        self._ports[src] = k + 1
        return C.EPHEMERAL_LO + k % (C.EPHEMERAL_HI - C.EPHEMERAL_LO + 1)

    def _tables(self) -> tuple:
        """The engine's table arguments, in its order."""
        return (*self.program, *self.net, *self.state, *self.ct)

    def _flow(self, node, kind, pk, now, commit, ttl, reply):
        tr = np.zeros((TRACE_ROWS, 9), np.int64)
        trn = np.zeros(2, np.int64)
        out = np.zeros(8, np.int64)
        E.run_flow(*self._tables(), node, kind, pk, now, commit, ttl, reply, tr, trn, out)
        return out, tr, trn

    def connect(self, conn: Connection, node: int, kind: int, src: int, dst: int, now: float) -> Connection:
        """Open one connection, carry its first packet and the reply, and fill in ``conn``."""
        proto = PROTO_NUMBERS[conn.protocol]
        if kind == C.FROM_POD and dst >> 24 == 127:
            return self._pod_loopback(conn, src, proto)
        self._ensure_conntrack(now)
        src = self.source_address(node, kind, src, dst)
        sport = self.ephemeral_port(src)
        pk = np.zeros(C.P_LEN, np.int64)
        pk[C.P_SRC], pk[C.P_DST], pk[C.P_SPORT], pk[C.P_DPORT], pk[C.P_PROTO] = src, dst, sport, conn.port, proto
        out, tr, trn = self._flow(node, kind, pk, now, True, CT_TTL[proto], False)
        conn.trace = self._steps(tr, trn[0])
        conn.rules_visited = int(trn[1])
        conn.node = self.nodes[out[1]].name
        conn.outcome = {C.O_DELIVERED: "delivered", C.O_LEFT: "delivered", C.O_REJECTED: "rejected",
                        C.O_DROPPED: "dropped"}[int(out[0])]
        conn.reason = conn.trace[-1].verdict if conn.trace else ""
        if out[0] not in (C.O_DELIVERED, C.O_LEFT):
            return conn
        conn.pod = self.pods[out[2]].key if out[2] >= 0 else None
        conn.endpoint = f"{ip(out[3])}:{out[4]}"
        conn.source_ip, conn.source_port = ip(out[5]), int(out[6])
        if out[0] == C.O_LEFT:
            return conn
        # the reply: from the backend back to the client, following conntrack
        back = np.zeros(C.P_LEN, np.int64)
        back[C.P_SRC], back[C.P_DST], back[C.P_SPORT], back[C.P_DPORT], back[C.P_PROTO] = \
            out[3], out[5], out[4], out[6], proto
        rnode = int(self.net.pods[out[2], C.POD_NODE]) if out[2] >= 0 else int(out[1])
        rout, rtr, rtrn = self._flow(rnode, C.FROM_POD if out[2] >= 0 else C.LOCAL_OUT, back, now, True,
                                     CT_TTL[proto], True)
        conn.trace += self._steps(rtr, rtrn[0], reply=True)
        if rout[0] in (C.O_DELIVERED, C.O_LEFT) and rout[3] == src:
            conn.reply_source = ip(rout[5])
        return conn

    def connect_many(self, node: int, kind: int, src: int, dst: int, port: int, protocol: str, n: int,
                     now: float) -> Counter:
        if kind == C.FROM_POD and dst >> 24 == 127:
            conn = self._pod_loopback(Connection("", ip(dst), port, protocol), src, PROTO_NUMBERS[protocol])
            return Counter({conn.pod or "rejected": n} if n else {})
        counts = np.zeros(len(self.pods) + 4, np.int64)
        src = self.source_address(node, kind, src, dst)
        sport0 = self._ports.get(src, 0)
        self._ports[src] = sport0 + n
        self.last_batch_rules = int(E.run_batch(*self._tables(), node, kind, src, dst, port,
                                                PROTO_NUMBERS[protocol], n, sport0, now, counts))
        hit = np.flatnonzero(counts[:len(self.pods)])
        result = Counter({self.pods[i].key: int(counts[i]) for i in hit})
        for label, c in zip(("host", "rejected", "dropped", "left the cluster"), counts[len(self.pods):]):
            if c:
                result[label] += int(c)
        return result

    def _steps(self, tr, n, reply=False):
        out = steps(tr, int(n), *self._names)
        for s in out:
            s.reply = reply
        return out

    def counters(self) -> dict[tuple[str, str, str], list[int]]:
        """Packets matched per rule: (node, table, chain) -> counts in rule order (iptables -L -v)."""
        out: dict = {}
        for i, (node, rule) in enumerate(self.compiler.rules):
            out.setdefault((self.nodes[node].name, rule.table, rule.chain), []).append(
                int(self.program.rules[i, C.R_PKTS]))
        return out


def _new_conntrack(size: int) -> E.Conntrack:
    return E.Conntrack(slot_o=np.full(2 * size, -1, np.int64), slot_r=np.full(2 * size, -1, np.int64),
                       entries=np.zeros((size, C.CT_COLS), np.int64), expires=np.zeros(size, np.float64),
                       meta=np.zeros(1, np.int64))


def warmup() -> None:
    """Compile the engine's kernels (numba caches them on disk): one traced connection, one batch,
    and a conntrack resize, on a two-node cluster."""
    from kslib import Cluster          # the facade imports this module
    c = Cluster(nodes=2, seed=0)
    c.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "warm"},
             "spec": {"ports": [{"port": 80}], "selector": {"app": "warm"}}})
    c.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "warm", "labels": {"app": "warm"}},
             "spec": {"containers": [{"name": "c"}]}})
    ip = c.get("svc", "warm").cluster_ip
    c.connect("warm", ip, 80)
    c.connect_many("warm", ip, 80, 10)
    c.network._ensure_conntrack(c.clock, room=c.network.ct.entries.shape[0])
