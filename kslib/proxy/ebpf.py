"""Cilium's kube-proxy replacement (KPR) on one node: the BPF service maps its agent writes.

A model of the agent's load-balancing control plane (Cilium >= 1.17 layout), written from:
- pkg/loadbalancer/reflectors (convertService): which frontends a Service gets. ClusterIP and
  externalIPs have one (external) scope; NodePort (wildcard 0.0.0.0:nodePort) and LoadBalancer
  ingress IPs get a second, internal scope when exactly one of eTP/iTP is Local.
- pkg/loadbalancer/writer (shouldUseLocalBackends): the external scope of NodePort/LB/externalIP
  uses node-local backends when eTP=Local, a ClusterIP when iTP=Local; the internal scope when
  iTP=Local.
- pkg/loadbalancer/reconciler/bpf_reconciler.go: NodePort frontends expanded to every node
  address; rev-NAT (service) IDs per frontend address incl. scope and backend IDs per backend
  address, both from 1, never reused at once (id_allocator.go); slots ordered active first, then
  by address and port; count = active backends (the terminating ones when none is active),
  terminating ones kept after them as qcount; orphan backends deleted; routable unless ClusterIP
  or the 0.0.0.0 surrogate; source ranges on LoadBalancer frontends only; affinity-match
  entries for active backends; Maglev tables (algorithm maglev) for every non-ClusterIP,
  non-wildcard frontend, built from the selectable backends.
- pkg/loadbalancer (ServiceFlags.String) for the flags; cilium-dbg/cmd/bpf_lb_list.go and
  service_list.go for render().
Which endpoints are usable is kube-proxy's reading (topology.categorize, incl. the
serving-terminating fallback and topology hints), shared with the other proxy modes.

The SyncResult payload is the list of map operations, one per line:
  update <map> key <key> value <value>      (written or changed entry)
  delete <map> key <key>                    (entry removed)
e.g. ``update cilium_lb4_services_v2 key 10.96.0.10:80/TCP (0) value backend_id=0 count=2
qcount=0 rev_nat=1 flags=ClusterIP+non-routable``. Per frontend (in reconcile order) backends
come first, then slots, affinity-match, Maglev, source ranges, rev-NAT and the slot-0 master;
deletions come last. SyncResult fields: rules_sent = update lines, chains_sent = 0 (no chains in
eBPF), services_synced = frontends with an entry written, rules_total = {map: entries},
stale_chains_deleted = delete lines, ops = all lines.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace

from kslib.api.endpointslice import EndpointSlice
from kslib.api.service import Service
from kslib.dataplane.hashes import maglev_flow_hash

from kslib.dataplane.network import NodeDataplane

from . import NodeView, ProxyConfig, SyncResult
from . import maglev as mg
from .topology import (CategorizedEndpoints, EndpointInfo, ServicePortInfo, node_family, parse_ip,
                       service_ports)

ALGORITHMS = ("random", "maglev")               # loadBalancer.algorithm
LB_MODES = ("snat", "dsr", "hybrid")            # loadBalancer.mode
KINDS = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalIP")
_SVC_TYPE = {"ClusterIP": "ClusterIP", "NodePort": "NodePort", "LoadBalancer": "LoadBalancer",
             "ExternalIP": "ExternalIPs"}     # loadbalancer.SVCType strings
_PROTO_NUM = {"TCP": 6, "UDP": 17, "SCTP": 132}
_MAX_SERVICE_ID = 0xFFFF                        # exclusive bounds (id_allocator.go)
_MAX_BACKEND_ID = 0xFFFFFFFF


@dataclass
class Backend:
    """One cilium_lb{4,6}_backends_v3 entry: a backend address, shared by all frontends using it."""
    id: int
    address: str
    port: int
    protocol: str
    state: str = "active"     # active | terminating | quarantined | maintenance
    node: str = ""            # EndpointSlice nodeName, for the reader

    @property
    def addr(self) -> str:
        """L3n4Addr.String(): "10.244.1.5:8080/TCP"."""
        return f"{_host(self.address)}:{self.port}/{self.protocol}"


@dataclass
class Frontend:
    """One service frontend (slot 0 of cilium_lb{4,6}_services_v2) and its backend slots."""
    address: str
    port: int
    protocol: str
    kind: str                 # "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalIP"
    scope: str                # "ext", or "int" for the /i entry of a two-scope service
    rev_nat_id: int
    backends: list[int]       # backend ids in slot order, slots 1..count (selectable)
    local: bool = False       # this scope uses node-local backends only
    two_scopes: bool = False  # two-scopes flag: exactly one of eTP/iTP is Local (on every non-ClusterIP
    #                           frontend, externalIPs too although they get no /i entry)
    affinity_timeout: int | None = None
    source_ranges: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()   # ServiceFlags.String() parts, e.g. ("NodePort", "Local", "two-scopes")
    inactive: list[int] = field(default_factory=list)   # slots count+1..count+qcount (terminating)
    service: str = ""         # ServicePortName ("ns/name:port")

    @property
    def key(self) -> str:
        """The frontend as `cilium-dbg` prints it: "10.96.0.10:80/TCP", "0.0.0.0:30080/TCP/i"."""
        return f"{_host(self.address)}:{self.port}/{self.protocol}" + ("/i" if self.scope == "int" else "")

    @property
    def wildcard(self) -> bool:
        return ipaddress.ip_address(self.address).is_unspecified


def _host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def _ip_key(ip: str):
    a = ipaddress.ip_address(ip)
    return a.version, a.packed


def _choices(name: str, value, allowed) -> ValueError:
    return ValueError(f"{name}: Invalid value: {value!r}: must be one of {', '.join(allowed)}")


class _IDs:
    """id_allocator.go: the next free ID from a cursor that only moves forward (wrapping)."""

    def __init__(self, first: int, limit: int):
        self.first, self.limit, self.next = first, limit, first
        self.by_key: dict = {}
        self.used: set[int] = set()

    def get(self, key) -> int:
        if key in self.by_key:
            return self.by_key[key]
        for _ in range(self.limit - self.first):
            if self.next >= self.limit:
                self.next = self.first
            candidate, self.next = self.next, self.next + 1
            if candidate not in self.used:
                self.by_key[key] = candidate
                self.used.add(candidate)
                return candidate
        raise RuntimeError("no ID available")

    def release(self, key) -> None:
        if key in self.by_key:
            self.used.discard(self.by_key.pop(key))


class CiliumProxier:
    """Cilium KPR on one node: ``sync`` computes and writes the service maps, ``frontends``,
    ``backends``, ``rev_nat`` and ``maglev`` show them, ``render`` prints them as cilium-dbg does."""

    def __init__(self, node: NodeView, config: ProxyConfig, algorithm: str = "random", lb_mode: str = "snat",
                 maglev_table_size: int = mg.DEFAULT_TABLE_SIZE, maglev_hash_seed: str = mg.DEFAULT_SEED):
        if algorithm not in ALGORITHMS:
            raise _choices("loadBalancer.algorithm", algorithm, ALGORITHMS)
        if lb_mode not in LB_MODES:
            raise _choices("loadBalancer.mode", lb_mode, LB_MODES)
        self.node = node
        self.config = config
        self.algorithm = algorithm
        self.lb_mode = lb_mode
        self.maglev_table_size = mg.check_table_size(maglev_table_size)
        self.maglev_hash_seed = maglev_hash_seed
        _, self.hash_seed4, self.hash_seed6 = mg.seeds(maglev_hash_seed)   # validates the seed too
        self.frontends: list[Frontend] = []
        self.backends: dict[int, Backend] = {}
        self.rev_nat: dict[int, tuple[str, int]] = {}
        self.maglev: dict[int, list[int]] = {}
        self._svc_ids = _IDs(1, _MAX_SERVICE_ID)
        self._be_ids = _IDs(1, _MAX_BACKEND_ID)
        self._entries: dict[tuple[str, str], str] = {}
        self._tables: dict[tuple[str, ...], list[int]] = {}
        self._synced = False

    # ---- naming --------------------------------------------------------------------------------
    @property
    def _family(self) -> int:
        return node_family(self.node)

    def _map(self, name: str) -> str:
        return f"cilium_lb{self._family}_{name}"

    # ---- sync ----------------------------------------------------------------------------------
    def sync(self, services: list[Service], slices: list[EndpointSlice], now: float = 0.0,
             full: bool | None = None) -> SyncResult:
        """Reconcile the maps with the Services and EndpointSlices. ``full`` rewrites every entry
        (None: only on the first sync); otherwise only changed entries are written, as Cilium's
        reconciler does. ``now`` is accepted for the proxier contract; nothing here is timed."""
        do_full = (not self._synced) if full is None else bool(full)
        node_names = self._node_names(slices)
        planned = self._plan(services, slices)

        # allocate IDs in reconcile order: frontend IDs per address+scope, backend IDs per address
        frontends: list[Frontend] = []
        backends: dict[tuple, Backend] = {}
        for fe, info, members in planned:
            fe.rev_nat_id = self._svc_ids.get((fe.address, fe.port, fe.protocol, fe.scope))
            head, tail = members
            ids = []
            for ep, state in head + tail:
                key = (ep.ip, ep.port, info.protocol)
                if key not in backends:
                    backends[key] = Backend(self._be_ids.get(key), ep.ip, ep.port, info.protocol, state,
                                            node_names.get(ep.ip, ""))
                ids.append(backends[key].id)
            # count: the active backends; when there is none, the usable (terminating) ones
            count = sum(1 for _, state in head if state == "active") or len(head)
            fe.backends, fe.inactive = ids[:count], ids[count:]
            frontends.append(fe)
        for key in set(self._svc_ids.by_key) - {(f.address, f.port, f.protocol, f.scope) for f in frontends}:
            self._svc_ids.release(key)
        for key in set(self._be_ids.by_key) - set(backends):
            self._be_ids.release(key)

        self.frontends = frontends
        self.backends = {b.id: b for b in sorted(backends.values(), key=lambda b: b.id)}
        self.rev_nat = {f.rev_nat_id: (f.address, f.port) for f in frontends}
        cache, self._tables = self._tables, {}
        self.maglev = {f.rev_nat_id: self._maglev_table(f, cache) for f in frontends
                       if self._uses_maglev(f) and f.backends}

        entries, owner = self._map_entries()
        lines: list[str] = []
        written: set[int] = set()
        for k, v in entries.items():
            if do_full or self._entries.get(k) != v:
                lines.append(f"update {k[0]} key {k[1]} value {v}")
                if owner.get(k) is not None:
                    written.add(owner[k])
        deletes = [f"delete {k[0]} key {k[1]}" for k in self._entries if k not in entries]
        lines += deletes
        self._entries = entries
        self._synced = True
        totals: dict[str, int] = {}
        for name, _ in entries:
            totals[name] = totals.get(name, 0) + 1
        payload = "\n".join(lines) + ("\n" if lines else "")
        return SyncResult(full=do_full, payload=payload, rules_sent=len(lines) - len(deletes), chains_sent=0,
                          services_synced=len(written), rules_total=totals, stale_chains_deleted=len(deletes),
                          ops=len(lines))

    def _node_names(self, slices: list[EndpointSlice]) -> dict[str, str]:
        out = {}
        for es in slices:
            for ep in es.endpoints:
                for a in ep.addresses[:1]:
                    ip = parse_ip(a)
                    if ip is not None and ep.node_name:
                        out[str(ip)] = ep.node_name
        return out

    # ---- frontends and their backends ------------------------------------------------------------
    def _plan(self, services, slices):
        """[(frontend without IDs, port info, [(endpoint, state) in slot order])] in reconcile order:
        frontends sorted by address, port, protocol and scope, each NodePort's node-address copy
        right after its 0.0.0.0 entry (the reconciler expands it in the same update)."""
        primary = []
        for info, eps in service_ports(services, slices, self.node):
            primary += self._frontends_of(info, eps)
        primary.sort(key=lambda t: (_ip_key(t[0].address), t[0].port, t[0].protocol, t[0].scope))
        out = []
        node_ip = parse_ip(self.node.ip)
        for fe, info, eps in primary:
            out.append((fe, info, self._members(fe, eps)))
            if fe.kind == "NodePort" and node_ip is not None and node_ip.version == self._family:
                copy = replace(fe, address=str(node_ip), backends=[], inactive=[])
                copy.flags = self._flags(info, copy)
                out.append((copy, info, self._members(copy, eps)))
        return out

    def _frontends_of(self, info: ServicePortInfo, eps: CategorizedEndpoints):
        ext_local, int_local = info.external_local, info.internal_local
        scopes = ("ext", "int") if ext_local != int_local else ("ext",)
        wildcard = "::" if self._family == 6 else "0.0.0.0"
        addrs = [("ClusterIP", info.cluster_ip, info.port, ("ext",))]
        if info.node_port:
            addrs.append(("NodePort", wildcard, info.node_port, scopes))
        addrs += [("LoadBalancer", ip, info.port, scopes) for ip in info.lb_ips]
        addrs += [("ExternalIP", ip, info.port, ("ext",)) for ip in info.external_ips]
        out = []
        for kind, addr, port, fe_scopes in addrs:
            for scope in fe_scopes:
                if kind == "ClusterIP" or scope == "int":
                    local = int_local
                else:
                    local = ext_local
                fe = Frontend(address=addr, port=port, protocol=info.protocol, kind=kind, scope=scope,
                              rev_nat_id=0, backends=[], local=local,
                              affinity_timeout=info.affinity_timeout,
                              source_ranges=info.source_ranges if kind == "LoadBalancer" else (),
                              service=info.spn)
                fe.flags = self._flags(info, fe)
                fe.two_scopes = "two-scopes" in fe.flags
                out.append((fe, info, eps))
        return out

    def _flags(self, info: ServicePortInfo, fe: Frontend) -> tuple[str, ...]:
        """NewSvcFlag + ServiceFlags.String for this frontend's master entry."""
        flags = [_SVC_TYPE[fe.kind]]
        if info.external_local:
            flags.append("Local")
        if info.internal_local:
            flags.append("InternalLocal")
        if info.external_local != info.internal_local and fe.kind != "ClusterIP":
            flags.append("two-scopes")
        if fe.affinity_timeout is not None:
            flags.append("sessionAffinity")
        if fe.wildcard or fe.kind == "ClusterIP":
            flags.append("non-routable")
        if fe.source_ranges:
            flags.append("check source-range")
        if self.lb_mode == "dsr" or (self.lb_mode == "hybrid" and fe.protocol == "TCP"):
            flags.append("dsr")
        return tuple(flags)

    @staticmethod
    def _state(e: EndpointInfo) -> str | None:
        if e.terminating:
            return "terminating" if e.serving else None
        return "active" if e.ready else None

    def _members(self, fe: Frontend, eps: CategorizedEndpoints):
        """(usable, retired): [(endpoint, state)] in slot order. Usable is kube-proxy's Cluster or
        Local list for this scope (active first); retired are the scope's other terminating
        endpoints, kept in the maps after the selectable slots until they go away."""
        usable = eps.local if fe.local else eps.cluster
        chosen = {e.addr for e in usable}
        tail = [e for e in eps.endpoints if e.addr not in chosen and self._state(e) == "terminating"
                and (e.is_local or not fe.local)]

        def order(e: EndpointInfo):
            return ipaddress.ip_address(e.ip), e.port

        head = sorted(((e, self._state(e) or "active") for e in usable),
                      key=lambda t: (t[1] != "active", order(t[0])))
        return head, [(e, "terminating") for e in sorted(tail, key=order)]

    # ---- Maglev ----------------------------------------------------------------------------------
    def _uses_maglev(self, fe: Frontend) -> bool:
        # useMaglev: never for the 0.0.0.0 surrogate, nor ClusterIP (bpf.lbExternalClusterIP off)
        return self.algorithm == "maglev" and not fe.wildcard and fe.kind != "ClusterIP"

    def _maglev_table(self, fe: Frontend, cache: dict) -> list[int]:
        """The frontend's table of backend ids; tables are kept per backend set between syncs."""
        bes = [self.backends[i] for i in fe.backends]
        names = [mg.backend_hash_string(b.address, b.port, b.protocol) for b in bes]
        order = sorted(range(len(names)), key=lambda i: names[i].encode())
        key = tuple(names[i] for i in order)
        if key not in self._tables:
            # Cilium gives every backend weight 100: weights are then equal and change nothing
            self._tables[key] = cache.get(key) or mg.table(list(key), self.maglev_table_size,
                                                           self.maglev_hash_seed)
        ids = [bes[i].id for i in order]
        return [ids[k] for k in self._tables[key]]

    def maglev_backend(self, rev_nat_id: int, saddr: str | int, sport: int, proto: str | int = "TCP") -> int:
        """The backend id the datapath's Maglev lookup picks for a new connection from
        saddr:sport to this frontend (sport is ignored with session affinity), IPv4 only."""
        fe = next(f for f in self.frontends if f.rev_nat_id == rev_nat_id)
        table = self.maglev[rev_nat_id]
        src = int(ipaddress.IPv4Address(saddr)) if isinstance(saddr, str) else int(saddr)
        proto_num = _PROTO_NUM[proto] if isinstance(proto, str) else int(proto)
        sport = 0 if fe.affinity_timeout is not None else sport
        return table[maglev_flow_hash(src, sport, fe.port, proto_num, self.hash_seed4) % len(table)]

    # ---- map entries -----------------------------------------------------------------------------
    def _map_entries(self):
        svc, be, rev = self._map("services_v2"), self._map("backends_v3"), self._map("reverse_nat")
        mgv, src = self._map("maglev"), self._map("source_range")
        entries: dict[tuple[str, str], str] = {}
        owner: dict[tuple[str, str], int] = {}

        def put(name, key, value, fe):
            entries[(name, key)] = value
            owner[(name, key)] = fe.rev_nat_id

        for fe in self.frontends:
            rid = fe.rev_nat_id
            for bid in fe.backends + fe.inactive:
                if (be, str(bid)) not in entries:
                    put(be, str(bid), f"{self.backends[bid].addr} state={self.backends[bid].state}", fe)
            slot_flags = "+".join(f for f in fe.flags if f != "check source-range")
            for slot, bid in enumerate(fe.backends + fe.inactive, start=1):
                put(svc, f"{fe.key} ({slot})", f"backend_id={bid} rev_nat={rid} flags={slot_flags}", fe)
            if fe.affinity_timeout is not None:
                for bid in fe.backends + fe.inactive:
                    if self.backends[bid].state == "active":
                        put("cilium_lb_affinity_match", f"backend={bid} rev_nat={rid}", "0", fe)
            if rid in self.maglev:
                owned = ", ".join(f"{b}({n})" for b, n in sorted(mg.slots_owned(self.maglev[rid]).items()))
                put(mgv, str(rid), f"M={self.maglev_table_size} [{owned}]", fe)
            for cidr in fe.source_ranges:
                put(src, f"{rid} {cidr}", "allow", fe)
            put(rev, str(rid), f"{_host(fe.address)}:{fe.port}", fe)
            first = (f"affinity_timeout={fe.affinity_timeout}" if fe.affinity_timeout is not None
                     else "backend_id=0")
            put(svc, f"{fe.key} (0)", f"{first} count={len(fe.backends)} qcount={len(fe.inactive)} "
                f"rev_nat={rid} flags={'+'.join(fe.flags)}", fe)
        return entries, owner

    # ---- output ----------------------------------------------------------------------------------
    def dataplane(self) -> NodeDataplane:
        """What this proxier put into Cilium's maps, for the engine."""
        return NodeDataplane("ebpf", frontends=self.frontends, backends=self.backends, maglev=self.maglev)

    def render(self) -> str:
        """`cilium-dbg bpf lb list` (one line per slot; sorted, where the tool prints map order),
        then `cilium-dbg service list`, then each Maglev table as backend ID(entries owned)."""
        zero = "[::]" if self._family == 6 else "0.0.0.0"
        rows = [("SERVICE ADDRESS", "BACKEND ADDRESS (REVNAT_ID) (SLOT)")]
        for fe in self.frontends:
            rid = fe.rev_nat_id
            rows.append((f"{fe.key} (0)", f"{zero}:0 ({rid}) (0) [{', '.join(fe.flags)}]"))
            for slot, bid in enumerate(fe.backends + fe.inactive, start=1):
                rows.append((f"{fe.key} ({slot})", f"{self.backends[bid].addr} ({rid}) ({slot})"))
        out = _table(rows)

        rows = [("ID", "Frontend", "Service Type", "Backend")]
        for fe in sorted(self.frontends, key=lambda f: f.rev_nat_id):
            bes = [f"{i} => {self.backends[b].addr} ({self.backends[b].state})"
                   for i, b in enumerate(fe.backends + fe.inactive, start=1)]
            rows.append((str(fe.rev_nat_id), fe.key, _SVC_TYPE[fe.kind], bes[0] if bes else ""))
            rows += [("", "", "", b) for b in bes[1:]]
        out += "\n" + _table(rows)

        if self.maglev:
            rows = [("SVC ID", f"LOOKUP TABLE (M={self.maglev_table_size}): BACKEND ID(ENTRIES)")]
            for rid in sorted(self.maglev):
                owned = mg.slots_owned(self.maglev[rid])
                rows.append((str(rid), ", ".join(f"{b}({n})" for b, n in sorted(owned.items()))))
            out += "\n" + _table(rows)
        return out


def _table(rows: list[tuple[str, ...]]) -> str:
    """Go's tabwriter as cilium-dbg sets it up (minwidth 5, padding 3), trailing blanks dropped."""
    widths = [max(5, max(len(r[i]) for r in rows) + 3) for i in range(len(rows[0]) - 1)]
    lines = ("".join(c.ljust(w) for c, w in zip(r, widths)) + r[-1] for r in rows)
    return "".join(ln.rstrip() + "\n" for ln in lines)


__all__ = ["ALGORITHMS", "Backend", "CiliumProxier", "Frontend", "KINDS", "LB_MODES"]
