"""kube-proxy's IPVS proxier: the virtual servers, ipsets, kube-ipvs0 addresses and iptables rules
it leaves on a node, and what each sync sends to the kernel.

A model of pkg/proxy/ipvs/proxier.go (syncProxyRules, syncService, syncEndpoint, writeIptablesRules),
graceful_termination.go and ipset.go. The kernel side (schedulers, lookup tables) is
kslib.dataplane.ipvs; ``virtual_servers`` is what that module's ``build`` takes.

Choices where kube-proxy's order is a Go map's (random) order:
- service ports are walked in kslib.proxy.topology.service_ports order (by "ns/name:port");
- new endpoints are added in sorted "ip:port" order. The kernel puts each new destination at the
  head of its list, so after one sync adding A, B, C the list (and the rr/wrr cycle) is C, B, A;
- ``virtual_servers`` is in `ipvsadm -Ln` order: ipvsadm sorts services by (protocol, address,
  port) and destinations by (address, port), comparing addresses as C's ``int r = a - b`` of two
  host-order u32s, so addresses more than 2^31 apart compare "wrapped" (172.18.0.2 sorts before
  10.96.0.10). Each VirtualServer.destinations is nevertheless in the kernel's list order;
- ipset members are listed sorted (bitmap:port ascending, as the kernel lists them; hash sets
  by string, where the kernel lists them in hash-bucket order).

Graceful termination: a removed endpoint is deleted at once when the service is UDP or SCTP or its
ActiveConn+InActConn is 0, else set to weight 0 and put on a list that a goroutine retries every
minute (wait.Until from the proxier's start, here the first sync): on a sync whose ``now`` has
passed the next tick (first sync + k*60 s) the list is retried with the counts ``conn_counts``
gives at that sync. An endpoint that reappears while on the list is deleted and re-added.

The payload of a sync is the kernel changes, in sections, each in its tool's input syntax:
``# ip``: ip link/addr commands for kube-ipvs0; ``# ipvsadm-restore``: -A/-E/-D for services, -a/-e/-d
for destinations (-e ... -w 0 is graceful termination); ``# ipset restore``: create (first sync) and
add/del lines; ``# iptables-restore --noflush``: the full nat and filter text kube-proxy writes every
sync. IPVS mode has no partial syncs: every sync is full.
"""
from __future__ import annotations

import functools
import ipaddress
import math
from dataclasses import dataclass, field

from kslib.api.endpointslice import EndpointSlice
from kslib.api.service import Service
from kslib.dataplane.ipvs import SCHEDULERS

from kslib.dataplane.network import NodeDataplane

from . import NodeView, ProxyConfig, SyncResult
from .iptables import BUILTIN_CHAINS, ordered_tables, save_text
from .topology import EndpointInfo, ServicePortInfo, join_host_port, node_family, parse_ip, service_ports

DUMMY_DEVICE = "kube-ipvs0"
RS_CHECK_DELETE_INTERVAL = 60.0          # graceful_termination.go rsCheckDeleteInterval
HEADER = "IP Virtual Server version 1.2.1 (size=4096)"   # size = 2^CONFIG_IP_VS_TAB_BITS (12)

KUBE_SERVICES = "KUBE-SERVICES"
KUBE_PROXY_FIREWALL = "KUBE-PROXY-FIREWALL"
KUBE_SOURCE_RANGES_FIREWALL = "KUBE-SOURCE-RANGES-FIREWALL"
KUBE_POSTROUTING = "KUBE-POSTROUTING"
KUBE_MARK_MASQ = "KUBE-MARK-MASQ"
KUBE_NODE_PORT = "KUBE-NODE-PORT"
KUBE_FORWARD = "KUBE-FORWARD"
KUBE_LOAD_BALANCER = "KUBE-LOAD-BALANCER"
KUBE_IPVS_FILTER = "KUBE-IPVS-FILTER"
KUBE_IPVS_OUT_FILTER = "KUBE-IPVS-OUT-FILTER"

# proxier.go iptablesJumpChain: (table, from, to, comment), each EnsureRule(Prepend)ed
JUMP_CHAINS = (
    ("nat", "OUTPUT", KUBE_SERVICES, "kubernetes service portals"),
    ("nat", "PREROUTING", KUBE_SERVICES, "kubernetes service portals"),
    ("nat", "POSTROUTING", KUBE_POSTROUTING, "kubernetes postrouting rules"),
    ("filter", "FORWARD", KUBE_FORWARD, "kubernetes forwarding rules"),
    ("filter", "INPUT", KUBE_NODE_PORT, "kubernetes health check rules"),
    ("filter", "INPUT", KUBE_PROXY_FIREWALL, "kube-proxy firewall rules"),
    ("filter", "FORWARD", KUBE_PROXY_FIREWALL, "kube-proxy firewall rules"),
    ("filter", "INPUT", KUBE_IPVS_FILTER, "kubernetes ipvs access filter"),
    ("filter", "OUTPUT", KUBE_IPVS_OUT_FILTER, "kubernetes ipvs access filter"),
)
# proxier.go iptablesChains, in its order
KUBE_CHAINS = (("nat", KUBE_SERVICES), ("nat", KUBE_POSTROUTING), ("nat", KUBE_NODE_PORT),
               ("nat", KUBE_LOAD_BALANCER), ("nat", KUBE_MARK_MASQ), ("filter", KUBE_FORWARD),
               ("filter", KUBE_NODE_PORT), ("filter", KUBE_PROXY_FIREWALL), ("filter", KUBE_SOURCE_RANGES_FIREWALL),
               ("filter", KUBE_IPVS_FILTER), ("filter", KUBE_IPVS_OUT_FILTER))

LOOP_BACK = "KUBE-LOOP-BACK"
CLUSTER_IP = "KUBE-CLUSTER-IP"
EXTERNAL_IP = "KUBE-EXTERNAL-IP"
EXTERNAL_IP_LOCAL = "KUBE-EXTERNAL-IP-LOCAL"
LOAD_BALANCER = "KUBE-LOAD-BALANCER"
LOAD_BALANCER_FW = "KUBE-LOAD-BALANCER-FW"
LOAD_BALANCER_LOCAL = "KUBE-LOAD-BALANCER-LOCAL"
LOAD_BALANCER_SOURCE_IP = "KUBE-LOAD-BALANCER-SOURCE-IP"
LOAD_BALANCER_SOURCE_CIDR = "KUBE-LOAD-BALANCER-SOURCE-CIDR"
NODE_PORT_TCP = "KUBE-NODE-PORT-TCP"
NODE_PORT_LOCAL_TCP = "KUBE-NODE-PORT-LOCAL-TCP"
NODE_PORT_UDP = "KUBE-NODE-PORT-UDP"
NODE_PORT_LOCAL_UDP = "KUBE-NODE-PORT-LOCAL-UDP"
NODE_PORT_SCTP = "KUBE-NODE-PORT-SCTP-HASH"
NODE_PORT_LOCAL_SCTP = "KUBE-NODE-PORT-LOCAL-SCTP-HASH"
HEALTH_CHECK_NODE_PORT = "KUBE-HEALTH-CHECK-NODE-PORT"
IPVS_IPS = "KUBE-IPVS-IPS"

# proxier.go ipsetInfo (its order) with ipset.go's comments
IPSET_INFO = (
    (LOOP_BACK, "hash:ip,port,ip", "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose"),
    (CLUSTER_IP, "hash:ip,port", "Kubernetes service cluster ip + port for masquerade purpose"),
    (EXTERNAL_IP, "hash:ip,port", "Kubernetes service external ip + port for masquerade and filter purpose"),
    (EXTERNAL_IP_LOCAL, "hash:ip,port", "Kubernetes service external ip + port with externalTrafficPolicy=local"),
    (LOAD_BALANCER, "hash:ip,port", "Kubernetes service lb portal"),
    (LOAD_BALANCER_FW, "hash:ip,port",
     "Kubernetes service load balancer ip + port for load balancer with sourceRange"),
    (LOAD_BALANCER_LOCAL, "hash:ip,port",
     "Kubernetes service load balancer ip + port with externalTrafficPolicy=local"),
    (LOAD_BALANCER_SOURCE_IP, "hash:ip,port,ip",
     "Kubernetes service load balancer ip + port + source IP for packet filter purpose"),
    (LOAD_BALANCER_SOURCE_CIDR, "hash:ip,port,net",
     "Kubernetes service load balancer ip + port + source cidr for packet filter purpose"),
    (NODE_PORT_TCP, "bitmap:port", "Kubernetes nodeport TCP port for masquerade purpose"),
    (NODE_PORT_LOCAL_TCP, "bitmap:port", "Kubernetes nodeport TCP port with externalTrafficPolicy=local"),
    (NODE_PORT_UDP, "bitmap:port", "Kubernetes nodeport UDP port for masquerade purpose"),
    (NODE_PORT_LOCAL_UDP, "bitmap:port", "Kubernetes nodeport UDP port with externalTrafficPolicy=local"),
    (NODE_PORT_SCTP, "hash:ip,port", "Kubernetes nodeport SCTP port for masquerade purpose with type 'hash ip:port'"),
    (NODE_PORT_LOCAL_SCTP, "hash:ip,port",
     "Kubernetes nodeport SCTP port with externalTrafficPolicy=local with type 'hash ip:port'"),
    (HEALTH_CHECK_NODE_PORT, "bitmap:port", "Kubernetes health check node port"),
    (IPVS_IPS, "hash:ip", "Addresses on the ipvs interface"),
)
# proxier.go ipsetWithIptablesChain: (set, table, from chain, to, match type, protocol match)
IPSET_WITH_IPTABLES_CHAIN = (
    (LOOP_BACK, "nat", KUBE_POSTROUTING, "MASQUERADE", "dst,dst,src", ""),
    (LOAD_BALANCER, "nat", KUBE_SERVICES, KUBE_LOAD_BALANCER, "dst,dst", ""),
    (LOAD_BALANCER_LOCAL, "nat", KUBE_LOAD_BALANCER, "RETURN", "dst,dst", ""),
    (NODE_PORT_LOCAL_TCP, "nat", KUBE_NODE_PORT, "RETURN", "dst", "tcp"),
    (NODE_PORT_TCP, "nat", KUBE_NODE_PORT, KUBE_MARK_MASQ, "dst", "tcp"),
    (NODE_PORT_LOCAL_UDP, "nat", KUBE_NODE_PORT, "RETURN", "dst", "udp"),
    (NODE_PORT_UDP, "nat", KUBE_NODE_PORT, KUBE_MARK_MASQ, "dst", "udp"),
    (NODE_PORT_LOCAL_SCTP, "nat", KUBE_NODE_PORT, "RETURN", "dst,dst", "sctp"),
    (NODE_PORT_SCTP, "nat", KUBE_NODE_PORT, KUBE_MARK_MASQ, "dst,dst", "sctp"),
    (LOAD_BALANCER_FW, "filter", KUBE_PROXY_FIREWALL, KUBE_SOURCE_RANGES_FIREWALL, "dst,dst", ""),
    (LOAD_BALANCER_SOURCE_CIDR, "filter", KUBE_SOURCE_RANGES_FIREWALL, "RETURN", "dst,dst,src", ""),
    (LOAD_BALANCER_SOURCE_IP, "filter", KUBE_SOURCE_RANGES_FIREWALL, "RETURN", "dst,dst,src", ""),
)
# `ipset list` Revision of each type (the kernels before 5.11's "bucketsize" revisions)
IPSET_REVISIONS = {"hash:ip": 4, "hash:ip,port": 5, "hash:ip,port,ip": 5, "hash:ip,port,net": 7, "bitmap:port": 3}
PROTO_NUMBERS = {"TCP": 6, "UDP": 17, "SCTP": 132}
PROTO_OPTIONS = {"TCP": "-t", "UDP": "-u", "SCTP": "--sctp-service"}   # ipvsadm option_from_protocol


# ---- the kernel objects ----------------------------------------------------------------------------------
@dataclass
class RealServer:
    """An IPVS destination. ``added`` numbers the AddRealServer call that created it, so that a
    destination deleted and added again is told from one that stayed (the kernel moves it to the
    list head and resets scheduler state; kslib.dataplane.ipvs.build needs it)."""
    address: str
    port: int
    weight: int = 1
    forward: str = "Masq"
    added: int = 0

    @property
    def key(self) -> tuple[str, int]:
        return (self.address, self.port)

    @property
    def addr(self) -> str:
        return join_host_port(self.address, self.port)


@dataclass
class VirtualServer:
    """An IPVS virtual service. ``flags`` are ipvsadm's scheduler flag names ("mh-port", "sh-fallback",
    ...); persistence is ``persistent`` (seconds). ``destinations`` is in the kernel's list order."""
    address: str
    protocol: str
    port: int
    scheduler: str
    flags: tuple = ()
    persistent: int | None = None
    destinations: list[RealServer] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.address, self.protocol, self.port)

    def same_service(self, other: "VirtualServer") -> bool:
        """utilipvs VirtualServer.Equal: address, protocol, port, scheduler, flags and timeout."""
        return (self.key == other.key and self.scheduler == other.scheduler and self.flags == other.flags
                and self.persistent == other.persistent)


@dataclass
class IPSet:
    """One ipset: name, type, entries in kube-proxy's Entry.String() format."""
    name: str
    type: str
    entries: list[str] = field(default_factory=list)
    comment: str = ""
    family: str = "inet"

    @property
    def header(self) -> str:
        """`ipset list`'s Header line, as kube-proxy creates the set (CreateSet defaults)."""
        if self.type == "bitmap:port":
            return "range 0-65535"
        return f"family {self.family} hashsize 1024 maxelem 65536"

    @property
    def create_line(self) -> str:
        return f"create {self.name} {self.type} {self.header} -exist"


# ---- ipvsadm text helpers ----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1 << 16)
def _words(ip: str) -> tuple[int, ...]:
    a = ipaddress.ip_address(ip)
    n = int(a)
    return (n,) if a.version == 4 else tuple((n >> s) & 0xFFFFFFFF for s in (96, 64, 32, 0))


def _c_int_diff(a: int, b: int) -> int:
    """C's ``int r = ntohl(a) - ntohl(b)``: the u32 difference read as a signed int."""
    r = (a - b) & 0xFFFFFFFF
    return r - (1 << 32) if r >= 1 << 31 else r


def _cmp_addr(a: str, b: str) -> int:
    for wa, wb in zip(_words(a), _words(b)):
        r = _c_int_diff(wa, wb)
        if r:
            return r
    return 0


def _cmp_services(a: VirtualServer, b: VirtualServer) -> int:
    """libipvs ipvs_cmp_services (fwmark and af equal here): protocol, address, port."""
    r = PROTO_NUMBERS[a.protocol] - PROTO_NUMBERS[b.protocol]
    return r or _cmp_addr(a.address, b.address) or a.port - b.port


def _cmp_dests(a: RealServer, b: RealServer) -> int:
    """libipvs ipvs_cmp_dests: address, port."""
    return _cmp_addr(a.address, b.address) or a.port - b.port


def ipvsadm_sorted_services(vss) -> list[VirtualServer]:
    return sorted(vss, key=functools.cmp_to_key(_cmp_services))


def ipvsadm_sorted_dests(dests) -> list[RealServer]:
    return sorted(dests, key=functools.cmp_to_key(_cmp_dests))


def _svc_arg(vs: VirtualServer) -> str:
    return f"{PROTO_OPTIONS[vs.protocol]} {join_host_port(vs.address, vs.port)}"


def _service_rule(op: str, vs: VirtualServer) -> str:
    """ipvsadm -S style: -A -t 10.96.0.10:80 -s rr [-p 10800] [-b mh-port]."""
    line = f"{op} {_svc_arg(vs)} -s {vs.scheduler}"
    if vs.persistent is not None:
        line += f" -p {vs.persistent}"
    if vs.flags:
        line += f" -b {','.join(vs.flags)}"
    return line


def _dest_rule(op: str, vs: VirtualServer, rs: RealServer) -> str:
    if op == "-d":
        return f"-d {_svc_arg(vs)} -r {rs.addr}"
    return f"{op} {_svc_arg(vs)} -r {rs.addr} -m -w {rs.weight}"


def _comment(text: str) -> str:
    return f'-m comment --comment "{text}"' if " " in text else f"-m comment --comment {text}"


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


# ---- the proxier -------------------------------------------------------------------------------------------
class IpvsProxier:
    """kube-proxy --proxy-mode=ipvs on one node."""

    def __init__(self, node: NodeView, config: ProxyConfig, scheduler: str = "rr"):
        scheduler = scheduler or "rr"            # proxier.go: an empty scheduler means rr
        if scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler: unsupported IPVS scheduler {scheduler!r} "
                             f"(valid: {', '.join(SCHEDULERS)})")
        self.node = node
        self.config = config
        self.scheduler = scheduler
        self._vs: dict[tuple, VirtualServer] = {}
        self._graceful: set[tuple] = set()   # {(vs key, dest key)}: GracefulTerminationManager.rsList
        self._dummy: list[str] = []
        self._sets: dict[str, IPSet] = {}
        for name, typ, text in IPSET_INFO:
            set_name = self._set_name(name)
            self._sets[name] = IPSet(set_name, typ, [], text, "inet6" if self._family == 6 else "inet")
        self._tables: dict[str, dict[str, list[str]]] = {t: {c: [] for c in cs} for t, cs in BUILTIN_CHAINS.items()}
        self._seq = 0
        self._started: float | None = None
        self._next_tick = 0.0

    # ---- derived settings ----------------------------------------------------------------------------
    @property
    def _family(self) -> int:
        return node_family(self.node)

    def _set_name(self, name: str) -> str:
        # NewIPSet: the IPv6 proxier's sets are KUBE-6-..., cut to ipset's 31 characters
        return name.replace("KUBE-", "KUBE-6-", 1)[:31] if self._family == 6 else name

    @property
    def _mark(self) -> str:
        # kube-proxy writes fmt.Sprintf("%#08x") = 0x00004000; iptables-save shows it as 0x4000
        return f"{1 << self.config.masquerade_bit:#x}"

    @property
    def _pod_cidr(self) -> str:
        cidr = self.config.cluster_cidr
        if cidr and ipaddress.ip_network(cidr, strict=False).version == self._family:
            return cidr
        return ""

    @property
    def _host_prefix(self) -> int:
        return 128 if self._family == 6 else 32

    # ---- public views ------------------------------------------------------------------------------
    @property
    def virtual_servers(self) -> list[VirtualServer]:
        """The kernel's virtual servers in `ipvsadm -Ln` order (destinations in kernel list order)."""
        return [VirtualServer(v.address, v.protocol, v.port, v.scheduler, v.flags, v.persistent,
                              [RealServer(d.address, d.port, d.weight, d.forward, d.added) for d in v.destinations])
                for v in ipvsadm_sorted_services(self._vs.values())]

    @property
    def ipsets(self) -> dict[str, IPSet]:
        """Set name -> IPSet, in proxier.go ipsetInfo order."""
        out = {}
        for name, _, _ in IPSET_INFO:
            s = self._sets[name]
            out[s.name] = IPSet(s.name, s.type, _sorted_entries(s), s.comment, s.family)
        return out

    @property
    def dummy_addresses(self) -> list[str]:
        """Addresses bound on kube-ipvs0, in the order they were bound."""
        return list(self._dummy)

    @property
    def graceful_list(self) -> list[str]:
        """GracefulTerminationManager's list: "vip:port/PROTO/ip:port" of destinations at weight 0."""
        return sorted(f"{join_host_port(k[0][0], k[0][2])}/{k[0][1]}/{join_host_port(*k[1])}"
                      for k in self._graceful)

    # ---- sync --------------------------------------------------------------------------------------
    def sync(self, services: list[Service], slices: list[EndpointSlice], now: float = 0.0,
             full: bool | None = None, conn_counts=None) -> SyncResult:
        """syncProxyRules (always a full sync; ``full`` is accepted for symmetry and ignored).
        ``conn_counts(vs_key, dest_key) -> (active, inactive)`` gives the kernel's counters,
        vs_key = (address, protocol, port), dest_key = (address, port); None: no connections.
        SyncResult: rules_sent/chains_sent count the iptables-restore part; ops counts the ip,
        ipvsadm and ipset lines plus one iptables-restore; stale_chains_deleted is always 0."""
        counts = conn_counts or (lambda vs_key, dest_key: (0, 0))
        ip_ops: list[str] = []
        ipvs_ops: list[str] = []
        set_ops: list[str] = []
        if self._started is None:
            self._started = now
            self._next_tick = now
            ip_ops.append(f"ip link add {DUMMY_DEVICE} type dummy")
            set_ops += [s.create_line for s in self._sets.values()]
        self._tick(now, counts, ipvs_ops)

        ports = service_ports(services, slices, self.node)
        entries: dict[str, set[str]] = {name: set() for name in self._sets}
        active: set[tuple] = set()
        bind: set[str] = set()                  # addresses to keep on kube-ipvs0
        already = set(self._dummy)
        node_addresses = {str(parse_ip(self.node.ip))}
        node_ips = [str(parse_ip(self.node.ip))] if any(sp.node_port for sp, _ in ports) else []
        lb_no_node_access: list[tuple[str, str, int]] = []
        for sp, eps in ports:
            self._sync_port(sp, eps, counts, entries, active, bind, already, node_addresses, node_ips,
                            lb_no_node_access, ip_ops, ipvs_ops)
        entries[IPVS_IPS] = set(bind)
        for name, s in self._sets.items():
            old = set(s.entries)
            set_ops += [f"del {s.name} {e}" for e in sorted(old - entries[name])]
            set_ops += [f"add {s.name} {e} -exist" for e in sorted(entries[name] - old)]
            s.entries = sorted(entries[name])

        nat, filt = self._iptables_lines(lb_no_node_access)
        self._ensure_jump_rules()
        restore = "\n".join(nat + filt) + "\n"
        self._apply(restore)

        for addr in [a for a in self._dummy if a not in bind]:
            ip_ops.append(f"ip addr del {addr}/{self._host_prefix} dev {DUMMY_DEVICE}")
            self._dummy.remove(addr)
        for vs in ipvsadm_sorted_services(self._vs.values()):    # cleanLegacyService
            if vs.key not in active:
                ipvs_ops.append(f"-D {_svc_arg(vs)}")
                del self._vs[vs.key]

        sections = [("# ip", ip_ops), ("# ipvsadm-restore", ipvs_ops), ("# ipset restore", set_ops)]
        payload = "".join(f"{title}\n" + "".join(f"{ln}\n" for ln in lines) for title, lines in sections if lines)
        payload += "# iptables-restore --noflush\n" + restore
        return SyncResult(
            full=True, payload=payload,
            rules_sent=sum(ln.startswith("-A ") for ln in restore.splitlines()),
            chains_sent=sum(ln.startswith(":") for ln in restore.splitlines()),
            services_synced=len(ports),
            rules_total={t: self._kube_rule_count(t) for t in BUILTIN_CHAINS},
            stale_chains_deleted=0,
            ops=len(ip_ops) + len(ipvs_ops) + len(set_ops) + 1)

    def _sync_port(self, sp: ServicePortInfo, eps, counts, entries, active, bind, already, node_addresses,
                   node_ips, lb_no_node_access, ip_ops, ipvs_ops) -> None:
        """The syncProxyRules loop body for one service port."""
        proto = sp.protocol.lower()
        flags = ("mh-port",) if self.scheduler == "mh" else ()      # FlagSourceHash

        def server(addr: str, port: int) -> VirtualServer:
            return VirtualServer(addr, sp.protocol, port, self.scheduler, flags, sp.affinity_timeout)

        def serve(vs: VirtualServer, should_bind: bool, only_local: bool) -> None:
            self._sync_service(vs, should_bind, already, ip_ops, ipvs_ops)
            active.add(vs.key)
            if should_bind:
                bind.add(vs.address)
            # syncEndpoint: Local policy takes the local endpoints, or all (cluster) ones if there are
            # none (PR 97081: pods on this node can still reach the service)
            endpoints = (eps.local or eps.cluster) if only_local else eps.cluster
            self._sync_endpoints(vs.key, endpoints, counts, ipvs_ops)

        for e in eps.endpoints:
            if e.is_local:
                entries[LOOP_BACK].add(f"{e.ip},{proto}:{e.port},{e.ip}")
        entries[CLUSTER_IP].add(f"{sp.cluster_ip},{proto}:{sp.port}")
        serve(server(sp.cluster_ip, sp.port), True, sp.internal_local)

        for ip in sp.external_ips:
            entries[EXTERNAL_IP_LOCAL if sp.external_local else EXTERNAL_IP].add(f"{ip},{proto}:{sp.port}")
            serve(server(ip, sp.port), ip not in node_addresses, sp.external_local)

        node_ip = parse_ip(self.node.ip)
        for ip in sp.lb_ips:
            entry = f"{ip},{proto}:{sp.port}"
            entries[LOAD_BALANCER].add(entry)
            if sp.external_local:
                entries[LOAD_BALANCER_LOCAL].add(entry)
            if sp.source_ranges:
                entries[LOAD_BALANCER_FW].add(entry)
                for cidr in sp.source_ranges:
                    entries[LOAD_BALANCER_SOURCE_CIDR].add(f"{ip},{proto}:{sp.port},{cidr}")
                if any(node_ip in ipaddress.ip_network(c) for c in sp.source_ranges):
                    entries[LOAD_BALANCER_SOURCE_IP].add(f"{ip},{proto}:{sp.port},{ip}")
                else:
                    lb_no_node_access.append((ip, proto, sp.port))
            serve(server(ip, sp.port), ip not in node_addresses, sp.external_local)

        if sp.node_port and node_ips:
            if proto == "sctp":
                np_entries = [f"{nip},{proto}:{sp.node_port}" for nip in node_ips]
                sets = (NODE_PORT_SCTP, NODE_PORT_LOCAL_SCTP)
            else:
                np_entries = [str(sp.node_port)]
                sets = (NODE_PORT_TCP, NODE_PORT_LOCAL_TCP) if proto == "tcp" else (NODE_PORT_UDP, NODE_PORT_LOCAL_UDP)
            entries[sets[0]].update(np_entries)
            if sp.external_local:
                entries[sets[1]].update(np_entries)
            for nip in node_ips:             # one virtual server per node address, never bound
                serve(server(nip, sp.node_port), False, sp.external_local)

        if sp.health_check_node_port:
            entries[HEALTH_CHECK_NODE_PORT].add(str(sp.health_check_node_port))

    def _sync_service(self, vs: VirtualServer, should_bind: bool, already: set[str], ip_ops, ipvs_ops) -> None:
        """syncService: add or update the virtual server, bind its address to kube-ipvs0."""
        cur = self._vs.get(vs.key)
        if cur is None:
            self._vs[vs.key] = vs
            ipvs_ops.append(_service_rule("-A", vs))
        elif not cur.same_service(vs):
            cur.scheduler, cur.flags, cur.persistent = vs.scheduler, vs.flags, vs.persistent
            ipvs_ops.append(_service_rule("-E", cur))
        if should_bind and vs.address not in already:
            already.add(vs.address)
            self._dummy.append(vs.address)
            ip_ops.append(f"ip addr add {vs.address}/{self._host_prefix} dev {DUMMY_DEVICE}")

    def _sync_endpoints(self, key: tuple, endpoints: list[EndpointInfo], counts, ipvs_ops) -> None:
        """syncEndpoint: add the new endpoints (sorted "ip:port" order; each goes to the list head),
        then gracefully delete the ones that went away."""
        vs = self._vs[key]
        current = {rs.key for rs in vs.destinations}
        wanted: dict[tuple[str, int], str] = {}
        for e in endpoints:
            wanted[(e.ip, e.port)] = e.addr
        for dest in sorted(wanted, key=lambda d: wanted[d]):
            if dest in current:
                if (key, dest) not in self._graceful:
                    continue
                # MoveRSOutofGracefulDeleteList: delete it now, then add it again
                self._graceful.discard((key, dest))
                self._delete_dest(vs, dest, ipvs_ops)
            self._seq += 1
            rs = RealServer(dest[0], dest[1], 1, "Masq", self._seq)
            vs.destinations.insert(0, rs)
            ipvs_ops.append(_dest_rule("-a", vs, rs))
        for dest in sorted(current - set(wanted), key=lambda d: join_host_port(*d)):
            if (key, dest) in self._graceful:
                continue
            self._graceful_delete(vs, dest, counts, ipvs_ops)

    def _deletable(self, vs: VirtualServer, dest: tuple[str, int], counts) -> bool:
        # deleteRsFunc: no graceful termination for UDP and SCTP (IsRsGracefulTerminationNeeded)
        if vs.protocol in ("UDP", "SCTP"):
            return True
        active, inactive = counts(vs.key, dest)
        return active + inactive == 0

    def _graceful_delete(self, vs: VirtualServer, dest: tuple[str, int], counts, ipvs_ops) -> None:
        """GracefulDeleteRS: delete at once if possible, else weight 0 and onto the list."""
        if self._deletable(vs, dest, counts):
            self._delete_dest(vs, dest, ipvs_ops)
            return
        rs = next(r for r in vs.destinations if r.key == dest)
        rs.weight = 0
        ipvs_ops.append(_dest_rule("-e", vs, rs))
        self._graceful.add((vs.key, dest))

    def _delete_dest(self, vs: VirtualServer, dest: tuple[str, int], ipvs_ops) -> None:
        rs = next(r for r in vs.destinations if r.key == dest)
        vs.destinations.remove(rs)
        ipvs_ops.append(_dest_rule("-d", vs, rs))

    def _tick(self, now: float, counts, ipvs_ops) -> None:
        """The graceful-termination goroutine (every minute since the start), caught up at a sync."""
        if now < self._next_tick:
            return
        for key in sorted(self._graceful):
            vs_key, dest = key
            vs = self._vs.get(vs_key)
            if vs is None:                       # GetRealServers of a deleted service fails: kept
                continue
            if dest not in {rs.key for rs in vs.destinations}:
                self._graceful.discard(key)      # "can't find the real server": dropped from the list
                continue
            if self._deletable(vs, dest, counts):
                self._delete_dest(vs, dest, ipvs_ops)
                self._graceful.discard(key)
        ticks = math.floor((now - self._started) / RS_CHECK_DELETE_INTERVAL) + 1
        self._next_tick = self._started + ticks * RS_CHECK_DELETE_INTERVAL

    # ---- iptables --------------------------------------------------------------------------------------
    def _iptables_lines(self, lb_no_node_access) -> tuple[list[str], list[str]]:
        """writeIptablesRules: (nat lines, filter lines) of the iptables-restore input, each with its
        table header, chain lines and COMMIT."""
        nat_chains = ["*nat"] + [f":{c} - [0:0]" for t, c in KUBE_CHAINS if t == "nat"]
        filt_chains = ["*filter"] + [f":{c} - [0:0]" for t, c in KUBE_CHAINS if t == "filter"]
        nat: list[str] = []
        filt: list[str] = []
        s = self._sets
        lo = "::1/128" if self._family == 6 else "127.0.0.0/8"
        nat.append(f"-A {KUBE_SERVICES} -s {lo} -j RETURN")
        for name, table, frm, to, match, proto in IPSET_WITH_IPTABLES_CHAIN:
            if s[name].entries:
                (filt if table == "filter" else nat).append(_join(
                    f"-A {frm}", f"-p {proto}" if proto else "", _comment(s[name].comment),
                    f"-m set --match-set {s[name].name} {match}", f"-j {to}"))
        if s[CLUSTER_IP].entries:
            head = _join(f"-A {KUBE_SERVICES}", _comment(s[CLUSTER_IP].comment),
                         f"-m set --match-set {s[CLUSTER_IP].name}")
            if self.config.masquerade_all:
                nat.append(f"{head} dst,dst -j {KUBE_MARK_MASQ}")
            elif self._pod_cidr:
                nat.append(f"{head} dst,dst ! -s {self._pod_cidr} -j {KUBE_MARK_MASQ}")
            else:
                # node processes pick the VIP on kube-ipvs0 as source: masquerade VIP -> VIP:port
                nat.append(f"{head} src,dst -j {KUBE_MARK_MASQ}")
        for name, masq in ((EXTERNAL_IP, True), (EXTERNAL_IP_LOCAL, False)):
            if s[name].entries:
                args = _join(f"-A {KUBE_SERVICES}", _comment(s[name].comment),
                             f"-m set --match-set {s[name].name} dst,dst")
                if masq:
                    nat.append(f"{args} -j {KUBE_MARK_MASQ}")
                nat.append(f"{args} -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT")
                nat.append(f"{args} -m addrtype --dst-type LOCAL -j ACCEPT")
        nat.append(f"-A {KUBE_SERVICES} -m addrtype --dst-type LOCAL -j {KUBE_NODE_PORT}")
        nat.append(f"-A {KUBE_LOAD_BALANCER} -j {KUBE_MARK_MASQ}")
        filt.append(f"-A {KUBE_SOURCE_RANGES_FIREWALL} -j DROP")
        for ip, proto, port in lb_no_node_access:
            filt.append(f"-A {KUBE_IPVS_OUT_FILTER} -s {ip} -m ipvs --vaddr {ip} --vproto {proto} "
                        f"--vport {port} -j DROP")
        for name in (CLUSTER_IP, LOAD_BALANCER):        # acceptIPVSTraffic
            if s[name].entries:
                nat.append(f"-A {KUBE_SERVICES} -m set --match-set {s[name].name} dst,dst -j ACCEPT")
        mark = self._mark
        filt.append(f'-A {KUBE_FORWARD} -m comment --comment "kubernetes forwarding rules" '
                    f"-m mark --mark {mark}/{mark} -j ACCEPT")
        filt.append(f'-A {KUBE_FORWARD} -m comment --comment "kubernetes forwarding conntrack rule" '
                    "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
        hc = s[HEALTH_CHECK_NODE_PORT]
        filt.append(_join(f"-A {KUBE_NODE_PORT}", _comment(hc.comment), f"-m set --match-set {hc.name} dst -j ACCEPT"))
        for name, match in ((LOAD_BALANCER, "dst,dst"), (CLUSTER_IP, "dst,dst"), (EXTERNAL_IP, "dst,dst"),
                            (EXTERNAL_IP_LOCAL, "dst,dst"), (HEALTH_CHECK_NODE_PORT, "dst")):
            filt.append(f"-A {KUBE_IPVS_FILTER} -m set --match-set {s[name].name} {match} -j RETURN")
        filt.append(f"-A {KUBE_IPVS_FILTER} -m conntrack --ctstate NEW "
                    f"-m set --match-set {s[IPVS_IPS].name} dst -j REJECT")
        nat.append(f"-A {KUBE_POSTROUTING} -m mark ! --mark {mark}/{mark} -j RETURN")
        nat.append(f"-A {KUBE_POSTROUTING} -j MARK --xor-mark {mark}")
        nat.append(_join(f'-A {KUBE_POSTROUTING} -m comment --comment "kubernetes service traffic requiring SNAT" '
                         "-j MASQUERADE", "--random-fully" if self.config.random_fully else ""))
        nat.append(f"-A {KUBE_MARK_MASQ} -j MARK --or-mark {mark}")
        # proxier.go writes natChains, natRules, filterChains, filterRules
        return nat_chains + nat + ["COMMIT"], filt_chains + filt + ["COMMIT"]

    def _ensure_jump_rules(self) -> None:
        """createAndLinkKubeChain: EnsureChain, then EnsureRule(Prepend) of every jump."""
        for table, chain in KUBE_CHAINS:
            self._tables[table].setdefault(chain, [])
        for table, src, dst, text in JUMP_CHAINS:
            rule = f"-A {src} {_comment(text)} -j {dst}"
            if rule not in self._tables[table][src]:
                self._tables[table][src].insert(0, rule)

    def _apply(self, payload: str) -> None:
        """iptables-restore --noflush: chains named in the input are flushed and refilled."""
        table = None
        for ln in payload.splitlines():
            if ln.startswith("*"):
                table = self._tables[ln[1:]]
            elif ln.startswith(":"):
                table[ln[1:].split()[0]] = []
            elif ln.startswith("-A "):
                table[ln.split()[1]].append(ln)

    def _kube_rule_count(self, table: str) -> int:
        return sum(len(rules) for chain, rules in self._tables[table].items() if chain not in BUILTIN_CHAINS[table])

    @property
    def tables(self) -> dict[str, dict[str, list[str]]]:
        """table -> chain -> rule lines: built-in chains first, then kube chains by name."""
        return ordered_tables(self._tables)

    def iptables_text(self) -> str:
        """The node's iptables-save view of what IPVS mode installs (kube-proxy's rule text)."""
        return save_text(self.tables)

    # ---- text views ------------------------------------------------------------------------------------
    def ipvsadm_text(self, counts=None) -> str:
        """`ipvsadm -Ln` (ipvsadm.c print_title/print_service_entry, default --sort)."""
        counts = counts or (lambda vs_key, dest_key: (0, 0))
        lines = [HEADER, "Prot LocalAddress:Port Scheduler Flags",
                 "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn"]
        for vs in ipvsadm_sorted_services(self._vs.values()):
            name = f"{vs.protocol:<4} {join_host_port(vs.address, vs.port)}"
            line = f"{name[:33] if self._family == 4 else name} {vs.scheduler}"
            if vs.flags:
                line += f" ({','.join(vs.flags)})"
            if vs.persistent is not None:
                line += f" persistent {vs.persistent}"
            lines.append(line)
            for rs in ipvsadm_sorted_dests(vs.destinations):
                active, inactive = counts(vs.key, rs.key)
                dname = rs.addr[:28] if self._family == 4 else rs.addr
                lines.append(f"  -> {dname:<28} {rs.forward:<7} {rs.weight:<6} {active:<10} {inactive:<10}")
        return "\n".join(lines) + "\n"

    def ipset_text(self) -> str:
        """`ipset list` of every set (no "Size in memory" line: that is the kernel's allocation)."""
        refs = self.iptables_text()
        blocks = []
        for name, _, _ in IPSET_INFO:
            s = self._sets[name]
            n_refs = sum(f"--match-set {s.name} " in ln for ln in refs.splitlines())
            members = _sorted_entries(s)
            blocks.append("\n".join([f"Name: {s.name}", f"Type: {s.type}", f"Revision: {IPSET_REVISIONS[s.type]}",
                                     f"Header: {s.header}", f"References: {n_refs}",
                                     f"Number of entries: {len(members)}", "Members:", *members]))
        return "\n\n".join(blocks) + "\n"

    def dataplane(self) -> NodeDataplane:
        """What this proxier put into the node's kernel, for the engine: the iptables rules and ipsets,
        the virtual servers and the addresses on kube-ipvs0."""
        return NodeDataplane("ipvs", iptables=self.iptables_text(),
                             ipsets={s.name: (s.type, list(s.entries)) for s in self.ipsets.values()},
                             ipvs=self.virtual_servers, local_addresses=tuple(self.dummy_addresses))

    def render(self, counts=None) -> str:
        """`ipvsadm -Ln`, then `ipset list`, then `iptables-save`, each separated by a blank line.
        ``counts(vs_key, dest_key) -> (active, inactive)`` fills ActiveConn/InActConn."""
        return "\n".join([self.ipvsadm_text(counts), self.ipset_text(), self.iptables_text()])


def _sorted_entries(s: IPSet) -> list[str]:
    if s.type == "bitmap:port":
        return sorted(s.entries, key=int)
    return sorted(s.entries)


__all__ = ["IPSet", "IpvsProxier", "RealServer", "VirtualServer", "ipvsadm_sorted_dests", "ipvsadm_sorted_services"]
