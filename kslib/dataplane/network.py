"""The cluster's network as the engine sees it: nodes, pods, every node's compiled dataplane
(iptables or nftables rules, ipsets, IPVS virtual services, eBPF service maps), conntrack and the
other kernel state (``recent`` tables, dynamic sets, IPVS connections, affinity), plus the calls
that carry connections through it."""
from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from . import codes as C
from . import engine as E
from . import ipvs as IPVS
from . import nft as NFT
from .program import Compiler
from .rules import Ruleset, parse
from .trace import Connection, Names, Step, ip, steps

PROTO_NUMBERS = {"TCP": 6, "UDP": 17, "SCTP": 132}
PROTO_NAMES = {v: k for k, v in PROTO_NUMBERS.items()}
# conntrack lifetimes after kslib's request/response exchange (nf_conntrack sysctl defaults):
# a closed TCP connection lingers in TIME_WAIT 120 s; a UDP flow with a reply lasts 30 s
CT_TTL = {6: 120.0, 17: 30.0, 132: 30.0}
# a connection held open: nf_conntrack_tcp_timeout_established (5 days), udp_timeout_stream (180 s)
CT_HELD = {6: 432000.0, 17: 180.0, 132: 432000.0}
MODES = {"iptables": C.MODE_NETFILTER, "nftables": C.MODE_NETFILTER, "ipvs": C.MODE_IPVS, "ebpf": C.MODE_EBPF}
FE_KINDS = {"ClusterIP": C.KIND_CLUSTERIP, "NodePort": C.KIND_NODEPORT, "LoadBalancer": C.KIND_LOADBALANCER,
            "ExternalIP": C.KIND_EXTERNALIP}
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
class NodeDataplane:
    """What one node's proxier put into its kernel, or (eBPF) into Cilium's maps."""
    mode: str = "iptables"                 # iptables | nftables | ipvs | ebpf
    iptables: str = ""                     # iptables-save text
    nft: str = ""                          # nft list ruleset text
    ipsets: dict = field(default_factory=dict)        # name -> (type, entries)
    ipvs: list = field(default_factory=list)          # VirtualServer objects (kslib.proxy.ipvs)
    local_addresses: tuple = ()            # addresses on kube-ipvs0
    frontends: list = field(default_factory=list)     # Frontend objects (kslib.proxy.ebpf)
    backends: dict = field(default_factory=dict)      # backend id -> Backend
    maglev: dict = field(default_factory=dict)        # rev-NAT id -> M backend ids


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
        self._ports: dict[int, int] = {}
        self.compiler = Compiler()
        self.program = self.compiler.program()
        self.ipvs = IPVS.build([])
        self.lb = None
        self.planes = []
        self.net = None
        self.state = None
        self.elements = None
        self._static = 0
        self._group_templates: dict[int, Counter] = {}   # held batch -> IPVS templates it controls
        self.ct = _new_conntrack(1024)
        self._tables_of = None
        # nothing outside the cluster answers for a ClusterIP: a packet that leaves towards one is lost
        self.service_cidr = ipaddress.IPv4Network(service_cidr, strict=False)

    # ---- loading ------------------------------------------------------------------------------------
    def load(self, nodes: list[NodeSpec], pods: list[PodSpec], rules: dict, now: float = 0.0) -> None:
        """(Re)build the network from node and pod facts and each node's dataplane: iptables-save text,
        or a ``NodeDataplane``. Kernel state (conntrack, recent tables, dynamic set elements, IPVS
        counters and connections, affinity) carries over to what still exists."""
        saved = self._save_state(now)
        old_names = [n.name for n in self.nodes]
        self.nodes = sorted(nodes, key=lambda n: n.name)
        self.pods = sorted(pods, key=lambda p: ip_int(p.ip))
        names = [n.name for n in self.nodes]
        planes = [rules.get(n, "") for n in names]
        planes = [dp if isinstance(dp, NodeDataplane) else NodeDataplane(iptables=dp) for dp in planes]
        comp = Compiler()
        kernel_sets = []
        for i, (n, dp) in enumerate(zip(names, planes)):
            comp.add_node(i, self._parse(n, "iptables", dp.iptables), self._parse(n, "nft", dp.nft), dp.ipsets,
                          ipvs=dp.mode == "ipvs")
            local = comp.kernel_set(i, "kube-ipvs0") if dp.local_addresses else -1
            lb = dp.mode in ("ipvs", "ebpf")
            kernel_sets.append((local, *(comp.kernel_set(i, f"{dp.mode}:{t}") if lb else -1
                                         for t in ("services", "affinity", "connections"))))
        self.compiler, self.program = comp, comp.program()
        self.planes = planes
        self.ipvs = IPVS.build([(i, v) for i, dp in enumerate(planes) for v in dp.ipvs],
                               self.ipvs if old_names == names else None)
        self.lb, lb_index = self._lb_tables(planes)
        self.net = self._network(planes, kernel_sets)
        self.elements = self._elements(planes, kernel_sets, lb_index, saved if old_names == names else None)
        self.state = self._state(saved)
        # what trace rows are mapped back to, built once per load (not per traced connection)
        vs, dests = self.ipvs.vs, self.ipvs.dests
        self._names = Names(
            nodes=names, pods=[p.key for p in self.pods], chains=[name for (_, _, name) in comp.chains],
            tables=[t for (_, t, _) in comp.chains], rules=[r.text for (_, r) in comp.rules],
            positions=comp.positions,
            vs=[f"{PROTO_NAMES.get(int(r[IPVS.V_PROTO]), '?')}  {ip(r[IPVS.V_ADDR])}:{r[IPVS.V_PORT]} "
                f"{IPVS.SCHEDULERS[int(r[IPVS.V_SCHED])]}" for r in vs],
            dests=[f"{ip(r[IPVS.D_ADDR])}:{r[IPVS.D_PORT]}" for r in dests],
            frontends=[f"{ip(r[C.FE_ADDR])}:{r[C.FE_PORT]}/{PROTO_NAMES.get(int(r[C.FE_PROTO]), '?')}"
                       f"{'/i' if r[C.FE_SCOPE] == C.SCOPE_INT else ''}" for r in self.lb.fe],
            backends=[f"{ip(r[C.B_ADDR])}:{r[C.B_PORT]} (backend {r[C.B_ID]})" for r in self.lb.be])
        if old_names != names:
            self._remap_conntrack(old_names)

    def _parse(self, node: str, kind: str, text: str):
        if not text:
            return None
        cached = self._parsed.get((node, kind))
        if cached is None or cached[0] != text:
            src = f"{node} {'rules' if kind == 'iptables' else 'nft ruleset'}"
            cached = (text, parse(text, source=src) if kind == "iptables" else NFT.parse(text, source=src))
            self._parsed[(node, kind)] = cached
        return cached[1]

    def _lb_tables(self, planes) -> tuple[E.Lb, dict]:
        """Cilium's service, backend and Maglev maps of every node, packed; and {(node, backend id): row}."""
        node_index = {n.name: i for i, n in enumerate(self.nodes)}
        fe, be, slots, mag, ranges, index = [], [], [], [], [], {}
        self._fe_nodes = []
        for i, dp in enumerate(planes):
            for bid, b in sorted(dp.backends.items()):
                index[(i, bid)] = len(be)
                be.append((ip_int(b.address), b.port, node_index.get(b.node, -1), bid))
            for f in dp.frontends:
                s0 = len(slots)
                slots.extend(index[(i, bid)] for bid in f.backends)
                m0, m = -1, 0
                table = dp.maglev.get(f.rev_nat_id)
                if table and f.kind != "ClusterIP":
                    m0, m = len(mag), len(table)
                    mag.extend(index[(i, bid)] for bid in table)
                r0 = len(ranges)
                for cidr in f.source_ranges:
                    net = ipaddress.IPv4Network(cidr, strict=False)
                    ranges.append((int(net.network_address), int(net.netmask)))
                self._fe_nodes.append(i)
                fe.append((ip_int(f.address), f.port, PROTO_NUMBERS[f.protocol],
                           C.SCOPE_INT if f.scope == "int" else C.SCOPE_EXT, FE_KINDS[f.kind], len(f.backends), s0,
                           f.rev_nat_id, f.affinity_timeout or 0, m0, m, r0, len(ranges), int("dsr" in f.flags)))

        def table(rows, cols):
            return np.asarray(rows, dtype=np.int64).reshape(len(rows), cols)
        return E.Lb(fe=table(fe, C.FE_COLS), be=table(be, C.B_COLS), slots=np.asarray(slots or [0], np.int64),
                    maglev=np.asarray(mag or [0], np.int64), ranges=table(ranges, 2)), index

    def _network(self, planes, kernel_sets) -> E.Network:
        nets = [ipaddress.IPv4Network(n.pod_cidr) if n.pod_cidr else None for n in self.nodes]
        node_index = {n.name: i for i, n in enumerate(self.nodes)}
        listen, pods = [], []
        for p in self.pods:
            start = len(listen)
            listen.extend(p.ports or ())
            pods.append((node_index[p.node], p.ports is None, start, len(listen)))
        # a node without a pod CIDR gets a pod network that matches nothing (mask all ones, net 0)
        nodes = [(ip_int(n.ip), int(net.network_address) + 1 if net else 0, int(net.network_address) if net else 0,
                  int(net.netmask) if net else 0xFFFFFFFF, MODES[dp.mode], *ks)
                 for n, net, dp, ks in zip(self.nodes, nets, planes, kernel_sets)]
        hosts = [(i, proto, port) for i, n in enumerate(self.nodes) for proto, port in n.host_ports]

        def table(rows, cols):
            return np.asarray(rows, dtype=np.int64).reshape(len(rows), cols)
        return E.Network(nodes=table(nodes, C.N_COLS), pod_ip=np.asarray([ip_int(p.ip) for p in self.pods], np.int64),
                         pods=table(pods, 4), listen=table(listen, 2), host=table(hosts, 3),
                         lost=np.array([int(self.service_cidr.network_address), int(self.service_cidr.netmask)],
                                       np.int64))

    # ---- elements: static ones from the tables, dynamic ones carried over by name -------------------------
    def _elements(self, planes, kernel_sets, lb_index, saved) -> E.Elements:
        rows = [(*e, 0) for e in self.compiler.elements]
        for i, dp in enumerate(planes):
            local, svc, _, _ = kernel_sets[i]
            rows += [(local, ip_int(a), 0, 0, 0, 0, 0, 0) for a in dp.local_addresses]
            if dp.mode == "ebpf":
                rows += [(svc, r[C.FE_ADDR], r[C.FE_PROTO], r[C.FE_PORT], r[C.FE_SCOPE], f, 0, 0)
                         for f, r in enumerate(self.lb.fe) if self._fe_nodes[f] == i]
        for (node, addr, proto, port), v in self.ipvs.vs_index.items():
            rows.append((kernel_sets[node][1], addr, proto, port, 0, v, 0, 0))
        static = len(rows)
        dynamic = self._restore(saved, lb_index) if saved else []
        size = 1 << int(np.ceil(np.log2(max(1024, 2 * (static + len(dynamic) + 256)))))
        els = _new_elements(size)
        n = static + len(dynamic)
        if rows:
            els.el[:static] = np.asarray(rows, np.int64)
        els.el_exp[:static] = np.inf
        for k, (row, exp) in enumerate(dynamic):
            els.el[static + k] = row
            els.el_exp[static + k] = exp
        els.el_meta[0] = n
        E.el_rehash(els.el, els.el_slot, els.el_meta)
        self._static = static
        return els

    def _save_state(self, now: float):
        """xt_recent tables and dynamic elements in portable form: sets by (node, name), IPVS services and
        destinations by their keys, eBPF backends by id (row numbers change with every load)."""
        if self.state is None:
            return None
        recent = {(self.nodes[node].name, name): (self.state.recent[t].copy(), self.state.recent_clock[t])
                  for t, (node, name) in enumerate(self.compiler.recent)}
        vs_key = {v: k for k, v in self.ipvs.vs_index.items()}
        dest_key = {r: k for k, r in self.ipvs.dest_index.items()}
        self.expire(now)
        els, items = self.elements, []
        live = (els.el_exp[:els.el_meta[0]] > now) | self._held_template_rows(int(els.el_meta[0]))
        live[:self._static] = False
        for i in np.flatnonzero(live):
            row = els.el[i].copy()
            node, name = self.compiler.sets[int(row[C.EL_SET])]
            if name == "ipvs:affinity":
                ref = (vs_key[int(row[C.EL_K1])], dest_key[int(row[C.EL_VA])])
            elif name == "ipvs:connections":
                ref = dest_key[int(row[C.EL_VA])]
            elif name == "ebpf:affinity":
                ref = (node, int(self.lb.be[int(row[C.EL_VA]), C.B_ID]))     # backends are per node
            else:
                ref = None
            items.append((self.nodes[node].name, name, ref, row, float(els.el_exp[i])))
        return recent, items

    def _restore(self, saved, lb_index) -> list:
        """The saved dynamic elements that still have a home, renumbered for the new tables."""
        sid = {(self.nodes[node].name, name): k for k, (node, name) in enumerate(self.compiler.sets)}
        out = []
        for node, name, ref, row, exp in saved[1]:
            s = sid.get((node, name))
            if s is None:
                continue
            row = row.copy()
            row[C.EL_SET] = s
            if name == "ipvs:affinity":
                v, d = self.ipvs.vs_index.get(ref[0]), self.ipvs.dest_index.get(ref[1])
                if v is None or d is None:
                    continue
                row[C.EL_K1], row[C.EL_VA] = v, d
            elif name == "ipvs:connections":
                d = self.ipvs.dest_index.get(ref)
                if d is None:
                    continue
                if row[C.EL_K0] == -1:
                    row[C.EL_K1] = d
                row[C.EL_VA] = d
            elif name == "ebpf:affinity":
                b = lb_index.get(ref)
                if b is None:
                    continue
                row[C.EL_VA] = b
            out.append((row, exp))
        return out

    def _state(self, saved) -> E.State:
        n = len(self.compiler.recent)
        st = E.State(rng=self.rng, recent=np.zeros((n, C.RECENT_SIZE, 3), np.int64),
                     recent_clock=np.zeros(n, np.int64))
        rows = saved[0] if saved else {}
        for t, (node, name) in enumerate(self.compiler.recent):
            if (self.nodes[node].name, name) in rows:
                st.recent[t], st.recent_clock[t] = rows[(self.nodes[node].name, name)]
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
            state = ("ESTABLISHED " if row[C.CT_STATUS] & E.ST_OPEN else "TIME_WAIT " if replied else "SYN_SENT ") \
                if proto == 6 else ""
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
        kind, _ = E.route(self._tables(), node, dst)
        if kind in (C.R_POD, C.R_NO_POD):
            return int(self.net.nodes[node, C.N_GW])
        if kind == C.R_LOCAL:
            return 0x7F000001 if dst >> 24 == 127 else dst
        return src

    def ephemeral_port(self, src: int, node: int, kind: int) -> int:
        """The next local port for a socket on ``src``. A host socket passes over a port that a conntrack
        entry of its node already answers to (a connection masqueraded to a node address): the kernel
        would remap such a clash at POSTROUTING (nf_nat_core.c: every new connection gets at least a
        null binding, and get_unique_tuple moves its source port off a used tuple); the model picks a
        free port at once. Pods and outside clients own their addresses: nothing is masqueraded to them.
        Found by tests/test_properties.py (a host socket clashing with a NodePort's masquerade)."""
        taken: set = set()
        if kind == C.LOCAL_OUT:
            ent = self.ct.entries[:int(self.ct.meta[0])]
            taken = set(ent[(ent[:, C.CT_NODE] == node) & (ent[:, C.CT_R + 1] == src), C.CT_R + 3].tolist())
        while True:
            k = self._ports.get(src, 0)
            self._ports[src] = k + 1
            port = C.EPHEMERAL_LO + k % (C.EPHEMERAL_HI - C.EPHEMERAL_LO + 1)
            if port not in taken or len(taken) > C.EPHEMERAL_HI - C.EPHEMERAL_LO:
                return port

    def _tables(self) -> E.Tables:
        """The engine's tables as one structure, built again only when an array was replaced (a load,
        or conntrack or the elements grown)."""
        parts = (self.program, self.net, self.state, self.elements, self.ipvs, self.lb, self.ct)
        if self._tables_of is None or any(a is not b for a, b in zip(parts, self._tables_of[0])):
            self._tables_of = (parts, E.tables(*self.program, *self.net, *self.state, *self.elements,
                                               *self.ipvs[:3], *self.lb, *self.ct))
        return self._tables_of[1]

    # ---- kernel state that ages: IPVS connection counts ------------------------------------------------
    def _ensure_elements(self, now: float, room: int = 64) -> None:
        els = self.elements
        if els.el_meta[0] + room <= els.el.shape[0]:
            return
        self.expire(now)
        n = int(els.el_meta[0])
        keep = np.flatnonzero((els.el_exp[:n] > now) | (els.el[:n, C.EL_FLAG] > 0) | self._held_template_rows(n))
        keep = keep[keep >= self._static]
        size = 1 << int(np.ceil(np.log2(2 * (self._static + len(keep) + room))))
        new = _new_elements(size)
        m = self._static + len(keep)
        new.el[:self._static], new.el_exp[:self._static] = els.el[:self._static], els.el_exp[:self._static]
        new.el[self._static:m], new.el_exp[self._static:m] = els.el[keep], els.el_exp[keep]
        new.el_meta[0] = m
        E.el_rehash(new.el, new.el_slot, new.el_meta)
        self.elements = new

    def expire(self, now: float) -> None:
        """IPVS connections whose time is up stop counting (ip_vs_conn_expire): their real servers'
        active/inactive counters drop."""
        els = self.elements
        if els is None:
            return
        n = int(els.el_meta[0])
        gone = np.flatnonzero((els.el[:n, C.EL_FLAG] > 0) & (els.el_exp[:n] <= now))
        for i in gone:
            col = IPVS.D_ACTIVE if els.el[i, C.EL_FLAG] == 2 else IPVS.D_INACT
            self.ipvs.dests[els.el[i, C.EL_VA], col] -= els.el[i, C.EL_VB]
            els.el[i, C.EL_FLAG] = 0

    # ---- IPVS persistence templates held by established connections (n_control) -------------------------
    def _held_template_rows(self, n: int) -> np.ndarray:
        """Rows that are persistence templates controlling an open connection (EL_VB > 0): they outlive
        their timer (ip_vs_conn_expire re-arms a template that still controls connections)."""
        els = self.elements
        return np.isin(els.el[:n, C.EL_SET], self.net.nodes[:, C.N_AFFSET]) & (els.el[:n, C.EL_VB] > 0)

    def _templates_of(self, src: int) -> dict:
        """The templates of client ``src`` as {row: held count}."""
        els, n = self.elements, int(self.elements.el_meta[0])
        mine = np.flatnonzero(np.isin(els.el[:n, C.EL_SET], self.net.nodes[:, C.N_AFFSET]) & (els.el[:n, C.EL_K0] == src))
        return {int(i): int(els.el[i, C.EL_VB]) for i in mine}

    def _template_ref(self, row: int) -> tuple:
        """A template's identity that survives a reload: (virtual server key, client address)."""
        vs_key = {v: k for k, v in self.ipvs.vs_index.items()}[int(self.elements.el[row, C.EL_K1])]
        return vs_key, int(self.elements.el[row, C.EL_K0])

    def _release_template(self, ref: tuple, k: int, now: float, life: float) -> None:
        """``k`` connections the template controls close and then live ``life`` s in TIME_WAIT: once none is
        left the template's timer (its last expiry, re-armed every 60 s) lets it go at the first tick after."""
        (vs_key, src), v = ref, self.ipvs.vs_index.get(ref[0])
        if v is None:
            return
        els = self.elements
        _, i = E.el_slot_of(self._tables(), int(self.net.nodes[vs_key[0], C.N_AFFSET]), src, v, 0, 0)
        if i < 0 or els.el[i, C.EL_VB] <= 0:
            return
        els.el[i, C.EL_VB] = max(0, int(els.el[i, C.EL_VB]) - k)
        if els.el[i, C.EL_VB] == 0 and now + life >= els.el_exp[i]:
            els.el_exp[i] += 60.0 * (np.floor((now + life - els.el_exp[i]) / 60.0) + 1.0)

    def ipvs_counts(self, node: str, now: float):
        """(ActiveConn, InActConn) of a real server on ``node``: f((vaddr, protocol, vport), (daddr, dport))."""
        self.expire(now)
        i = self.node_index(node)

        def counts(vs_key, dest_key):
            key = (i, ip_int(vs_key[0]), PROTO_NUMBERS[vs_key[1]], vs_key[2])
            r = self.ipvs.dest_index.get((key, ip_int(dest_key[0]), dest_key[1]))
            if r is None:
                return 0, 0
            return int(self.ipvs.dests[r, IPVS.D_ACTIVE]), int(self.ipvs.dests[r, IPVS.D_INACT])
        return counts

    def _flow(self, node, kind, pk, now, commit, ttl, reply):
        tr = np.zeros((TRACE_ROWS, 9), np.int64)
        trn = np.zeros(2, np.int64)
        out = np.zeros(10, np.int64)
        stack = np.empty((E.MAXDEPTH, 2), np.int64)
        E.run_flow(self._tables(), node, kind, pk, now, commit, ttl, reply, 0, stack, tr, trn, out)
        return out, tr, trn

    def connect(self, conn: Connection, node: int, kind: int, src: int, dst: int, now: float,
                hold: bool = False, clock=None) -> Connection:
        """Open one connection, carry its first packet and the reply, and fill in ``conn``. A held
        connection stays established (conntrack, IPVS ActiveConn) until ``conn.close()``."""
        proto = PROTO_NUMBERS[conn.protocol]
        if kind == C.FROM_POD and dst >> 24 == 127:
            return self._pod_loopback(conn, src, proto)
        self._ensure_conntrack(now)
        self._ensure_elements(now)
        self.expire(now)
        src = self.source_address(node, kind, src, dst)
        sport = self.ephemeral_port(src, node, kind)
        pk = np.zeros(C.P_LEN, np.int64)
        pk[C.P_SRC], pk[C.P_DST], pk[C.P_SPORT], pk[C.P_DPORT], pk[C.P_PROTO] = src, dst, sport, conn.port, proto
        ttl = CT_HELD[proto] if hold else CT_TTL[proto]
        ct_before = int(self.ct.meta[0])
        out, tr, trn = self._flow(node, kind, pk, now, True, ttl, False)
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
        if out[8]:        # socket LB: the socket was routed to its backend, whose route gave its source
            src = int(out[5])
        if out[0] != C.O_LEFT:
            # the reply: from the backend back to the client, following conntrack
            back = np.zeros(C.P_LEN, np.int64)
            back[C.P_SRC], back[C.P_DST], back[C.P_SPORT], back[C.P_DPORT], back[C.P_PROTO] = \
                out[3], out[5], out[4], out[6], proto
            rnode = int(self.net.pods[out[2], C.POD_NODE]) if out[2] >= 0 else int(out[1])
            rout, rtr, rtrn = self._flow(rnode, C.FROM_POD if out[2] >= 0 else C.LOCAL_OUT, back, now, True,
                                         ttl, True)
            conn.trace += self._steps(rtr, rtrn[0], reply=True)
            if rout[0] in (C.O_DELIVERED, C.O_LEFT) and rout[3] == src:
                # a socket-LB connection's reply comes from the backend; recvmsg/getpeername show the
                # service address the application connected to (cilium_lb4_reverse_sk)
                conn.reply_source = ip(out[8]) if out[8] else ip(rout[5])
        if hold:
            self._hold(conn, src, sport, dst, proto, ct_before, clock or (lambda: now))
        return conn

    def _hold(self, conn: Connection, src: int, sport: int, dst: int, proto: int, ct_before: int, clock) -> None:
        """Mark the connection established: its IPVS connection counts as active, its conntrack
        entries live on; ``conn.close()`` turns both into TIME_WAIT."""
        entries = list(range(ct_before, int(self.ct.meta[0])))
        self.ct.entries[entries, C.CT_STATUS] |= E.ST_OPEN
        tuples = [tuple(int(x) for x in self.ct.entries[e, :C.CT_COLS - 1]) for e in entries]
        ipvs_el, templates = [], []
        els = self.elements
        for node in range(len(self.nodes)):
            cs = int(self.net.nodes[node, C.N_CONNSET])
            i = E.el_find(self._tables(), cs, src, sport, dst, conn.port * 256 + proto, 0.0) \
                if cs >= 0 else -1
            if i >= 0 and els.el[i, C.EL_FLAG] == 1:
                d = int(els.el[i, C.EL_VA])
                self.ipvs.dests[d, IPVS.D_INACT] -= 1
                self.ipvs.dests[d, IPVS.D_ACTIVE] += 1
                els.el[i, C.EL_FLAG], els.el_exp[i] = 2, np.inf
                ipvs_el.append((cs, src, sport, dst, conn.port * 256 + proto))
                _, t = E.el_slot_of(self._tables(), int(self.net.nodes[node, C.N_AFFSET]), src,
                                    int(self.ipvs.dests[d, IPVS.D_VS]), 0, 0)
                if t >= 0 and els.el[t, C.EL_VA] == d:         # the template now controls an open stream
                    els.el[t, C.EL_VB] += 1
                    templates.append(self._template_ref(t))
        conn.held = True
        conn._close = lambda: self._close(tuples, ipvs_el, templates, proto, clock())

    def _close(self, tuples, ipvs_el, templates, proto, now: float) -> None:
        ct = self.ct
        for t in tuples:
            for e in range(int(ct.meta[0])):
                if tuple(int(x) for x in ct.entries[e, :C.CT_COLS - 1]) == t and ct.expires[e] > now:
                    ct.expires[e] = now + CT_TTL[proto]
                    ct.entries[e, C.CT_STATUS] &= ~E.ST_OPEN
        els = self.elements
        for key in ipvs_el:
            i = E.el_find(self._tables(), *key, now)
            if i >= 0 and els.el[i, C.EL_FLAG] == 2:
                self.ipvs.dests[els.el[i, C.EL_VA], IPVS.D_ACTIVE] -= 1
                self.ipvs.dests[els.el[i, C.EL_VA], IPVS.D_INACT] += 1
                els.el[i, C.EL_FLAG], els.el_exp[i] = 1, now + (300.0 if proto == 17 else 120.0)
        for ref in templates:
            self._release_template(ref, 1, now, 300.0 if proto == 17 else 120.0)

    def connect_many(self, node: int, kind: int, src: int, dst: int, port: int, protocol: str, n: int,
                     now: float, hold: int = 0) -> Counter:
        """``n`` new connections in one engine batch: a Counter over pod keys (and "host", "rejected",
        "dropped", "left the cluster"). ``last_batch_seen`` then maps each pod that got some to the
        source address it saw. ``hold`` > 0 keeps them open as that group (see ``close_group``)."""
        if kind == C.FROM_POD and dst >> 24 == 127:
            conn = self._pod_loopback(Connection("", ip(dst), port, protocol), src, PROTO_NUMBERS[protocol])
            self.last_batch_seen = {conn.pod: src} if conn.pod else {}
            return Counter({conn.pod or "rejected": n} if n else {})
        self._ensure_elements(now, room=64 + 2 * len(self.ipvs.dests))
        self.expire(now)
        counts = np.zeros(len(self.pods) + 4, np.int64)
        seen = np.zeros(len(self.pods), np.int64)
        src = self.source_address(node, kind, src, dst)
        sport0 = self._ports.get(src, 0)
        self._ports[src] = sport0 + n
        before = self._templates_of(src) if hold else {}
        self.last_batch_rules = int(E.run_batch(self._tables(), node, kind, src, dst, port,
                                                PROTO_NUMBERS[protocol], n, sport0, now, hold, counts, seen))
        if hold:                                         # the templates this group's streams now hold
            for row, k in self._templates_of(src).items():
                if k > before.get(row, 0):
                    self._group_templates.setdefault(hold, Counter())[self._template_ref(row)] += k - before.get(row, 0)
        hit = np.flatnonzero(counts[:len(self.pods)])
        result = Counter({self.pods[i].key: int(counts[i]) for i in hit})
        self.last_batch_seen = {self.pods[i].key: int(seen[i]) for i in hit}
        for label, c in zip(("host", "rejected", "dropped", "left the cluster"), counts[len(self.pods):]):
            if c:
                result[label] += int(c)
        return result

    def close_group(self, hold: int, protocol: str, now: float) -> None:
        """Close a held batch: its IPVS connections leave ActiveConn for InActConn (TIME_WAIT)."""
        els = self.elements
        if els is None:
            return
        n = int(els.el_meta[0])
        mine = np.flatnonzero((els.el[:n, C.EL_FLAG] == 2) & (els.el[:n, C.EL_K0] == -2) & (els.el[:n, C.EL_K2] == hold))
        for i in mine:
            d, k = int(els.el[i, C.EL_VA]), int(els.el[i, C.EL_VB])
            self.ipvs.dests[d, IPVS.D_ACTIVE] -= k
            self.ipvs.dests[d, IPVS.D_INACT] += k
            els.el[i, C.EL_FLAG], els.el_exp[i] = 1, now + (300.0 if protocol == "UDP" else 120.0)
        for ref, k in self._group_templates.pop(hold, Counter()).items():
            self._release_template(ref, k, now, 300.0 if protocol == "UDP" else 120.0)

    def _steps(self, tr, n, reply=False):
        out = steps(tr, int(n), self._names)
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


def _new_elements(size: int) -> E.Elements:
    return E.Elements(el=np.zeros((size, C.EL_COLS), np.int64), el_exp=np.zeros(size, np.float64),
                      el_slot=np.full(2 * size, -1, np.int64), el_meta=np.zeros(1, np.int64))


def _new_conntrack(size: int) -> E.Conntrack:
    return E.Conntrack(slot_o=np.full(2 * size, -1, np.int64), slot_r=np.full(2 * size, -1, np.int64),
                       entries=np.zeros((size, C.CT_COLS), np.int64), expires=np.zeros(size, np.float64),
                       meta=np.zeros(1, np.int64))


def warmup() -> None:
    """Compile the engine's kernels (numba caches them on disk): in every mode one traced, held and
    closed connection and one batch, then a conntrack and an element-table resize, on two nodes."""
    from kslib import Cluster          # the facade imports this module
    c = Cluster(nodes=2, seed=0)
    c.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "warm"},
             "spec": {"ports": [{"port": 80}], "selector": {"app": "warm"}}})
    c.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "warm", "labels": {"app": "warm"}},
             "spec": {"containers": [{"name": "c"}]}})
    ip = c.get("svc", "warm").cluster_ip
    for mode, options in (("iptables", {}), ("nftables", {}), ("ipvs", {"scheduler": "mh"}),
                          ("ebpf", {"algorithm": "maglev", "maglev_table_size": 251})):
        c.set_mode(mode, **options)
        c.connect("warm", ip, 80, hold=True).close()
        c.connect_many("warm", ip, 80, 10)
    c.network._ensure_conntrack(c.clock, room=c.network.ct.entries.shape[0])
    c.network._ensure_elements(c.clock, room=c.network.elements.el.shape[0])
