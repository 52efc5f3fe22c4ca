"""kube-proxy's nftables proxier: the nft transactions it sends, and the table it leaves.

A model of pkg/proxy/nftables/proxier.go (syncProxyRules, setupNFTables), rule text for rule
text as kube-proxy writes it through knftables, checked against nft-test (proxier_test.go):
TestOverallNFTablesRules, baseRules, TestSyncProxyRulesRepeated, TestSyncProxyRulesStartup.

Everything lives in one table, ``table ip kube-proxy`` (``ip6`` on an IPv6 node). Dispatch is
by verdict maps (``service-ips``, ``service-nodeports``) instead of one rule per Service, the
endpoint choice is one ``numgen random mod N vmap`` rule, and "no endpoints" verdicts are map
elements (``no-endpoint-services``/``no-endpoint-nodeports``) read by filter chains.

Sync model (newest proxier): a *full* sync (first sync, node label change, a full-sync period,
or ``full=True``) re-runs the setup (table, base chains, fixed chains and rules); the set/map
element mirrors are then re-read from the table (kube-proxy's ListAll on restart) rather than
flushed, and endpoint chains that already exist with the right contents are not rewritten
(kubernetes PR 130119, "Optimize kube-proxy restart time"; nft-test TestSyncProxyRulesStartup).
A *partial* sync writes the per-service chains only of Services whose Service or
EndpointSlices changed; set/map elements are always diffed against the in-memory mirror (only
new or changed elements are written, a changed value as delete + add, leftovers deleted).
Chains that are no longer used are flushed at once and deleted in a separate transaction at
the start of a sync more than 1 s later (kernels before 6.2 notice an unreferenced chain late);
unused affinity sets are deleted at once.

NodePort addresses: kube-proxy's nftables mode defaults ``--nodeport-addresses`` to the node's
primary IPs, and kube-proxy's own nft tests run with ``192.168.0.2/32`` (the node IP). kslib
has no nodePortAddresses setting, so the node's primary IP (``NodeView.ip``) is the one NodePort
address: the ``nodeport-ips`` set always exists and holds exactly that IP, and NodePort rules
read ``ip daddr @nodeport-ips``. (The match-all form, ``fib daddr type local ...``, is not used.)

Masquerade mark: like kslib's iptables proxier, the mark is printed as ``0x4000`` (kube-proxy's
tests inject that literal; the real binary formats ``%#08x``, i.e. ``0x00004000`` — the same
value in the kernel).
"""
from __future__ import annotations

import base64
import hashlib
import ipaddress
from dataclasses import dataclass, field

from kslib.api.endpointslice import EndpointSlice
from kslib.api.service import Service

from kslib.dataplane.network import NodeDataplane

from . import NodeView, ProxyConfig, SyncResult
from .topology import (CategorizedEndpoints, EndpointInfo, ServicePortInfo, node_family, parse_ip,
                       service_fingerprints, changed_services, service_ports)

TABLE = "kube-proxy"
TABLE_COMMENT = "rules for kube-proxy"

# base chains (nft-test baseRules, newest: pre-DNAT filter chains at dstnat-10, the rest at
# filter/dstnat/srcnat): name -> (type, hook, priority)
BASE_CHAINS = {
    "filter-prerouting-pre-dnat": ("filter", "prerouting", -110),
    "filter-output-pre-dnat": ("filter", "output", -110),
    "filter-input": ("filter", "input", 0),
    "filter-forward": ("filter", "forward", 0),
    "filter-output": ("filter", "output", 0),
    "nat-prerouting": ("nat", "prerouting", -100),
    "nat-output": ("nat", "output", -100),
    "nat-postrouting": ("nat", "postrouting", 100),
}

SERVICES = "services"
SERVICE_IPS = "service-ips"
SERVICE_NODEPORTS = "service-nodeports"
NODEPORT_IPS = "nodeport-ips"
CLUSTER_IPS = "cluster-ips"
SERVICE_ENDPOINTS_CHECK = "service-endpoints-check"
NODEPORT_ENDPOINTS_CHECK = "nodeport-endpoints-check"
NO_ENDPOINT_SERVICES = "no-endpoint-services"
NO_ENDPOINT_NODEPORTS = "no-endpoint-nodeports"
REJECT_CHAIN = "reject-chain"
CLUSTER_IPS_CHECK = "cluster-ips-check"
FIREWALL_IPS = "firewall-ips"
FIREWALL_CHECK = "firewall-check"
MARK_MASQ = "mark-for-masquerade"
MASQUERADING = "masquerading"

# nftablesJumpChains: (destination chain, base chain it is jumped to from, extra match), in
# proxier.go order, which is also each base chain's rule order
JUMP_CHAINS = (
    (NODEPORT_ENDPOINTS_CHECK, "filter-input", "ct state new"),
    (SERVICE_ENDPOINTS_CHECK, "filter-input", "ct state new"),
    (SERVICE_ENDPOINTS_CHECK, "filter-forward", "ct state new"),
    (SERVICE_ENDPOINTS_CHECK, "filter-output", "ct state new"),
    (FIREWALL_CHECK, "filter-prerouting-pre-dnat", "ct state new"),
    (FIREWALL_CHECK, "filter-output-pre-dnat", "ct state new"),
    (SERVICES, "nat-output", ""),
    (SERVICES, "nat-prerouting", ""),
    (MASQUERADING, "nat-postrouting", ""),
    (CLUSTER_IPS_CHECK, "filter-forward", "ct state new"),
    (CLUSTER_IPS_CHECK, "filter-output", "ct state new"),
)

# the element containers kube-proxy mirrors in memory (nftElementStorage), in reset order
CONTAINERS = (CLUSTER_IPS, SERVICE_IPS, FIREWALL_IPS, NO_ENDPOINT_SERVICES, NO_ENDPOINT_NODEPORTS,
              SERVICE_NODEPORTS)

# chain/set name prefixes (servicePort*NamePrefix); names are prefix + hashAndTruncate(base)
SERVICE_PREFIX, LOCAL_PREFIX, EXTERNAL_PREFIX = "service-", "local-", "external-"
FIREWALL_PREFIX, ENDPOINT_PREFIX, AFFINITY_PREFIX = "firewall-", "endpoint-", "affinity-"

NAME_LENGTH_MAX = 256            # knftables.NameLengthMax
CHAIN_PREFIX_LENGTH_MAX = 16
CHAIN_BASE_LENGTH_MAX = NAME_LENGTH_MAX - CHAIN_PREFIX_LENGTH_MAX
STALE_CHAIN_DELAY = 1.0          # seconds a flushed chain waits before it is deleted


# ---- names ---------------------------------------------------------------------------------------
def hash_and_truncate(name: str) -> str:
    """hashAndTruncate: first 8 characters of base32(SHA-256(name)), "-", name; cut to 240
    characters (237 + "...") so that a 16-character prefix still fits nft's 256."""
    digest = base64.b32encode(hashlib.sha256(name.encode()).digest()).decode()
    out = digest[:8] + "-" + name
    if len(out) > CHAIN_BASE_LENGTH_MAX:
        out = out[:CHAIN_BASE_LENGTH_MAX - 3] + "..."
    return out


def service_chain_base(namespace: str, name: str, protocol: str, port_name: str) -> str:
    """servicePortChainNameBase: hash + "ns/name/protocol/portName" (protocol lower case)."""
    return hash_and_truncate(f"{namespace}/{name}/{protocol.lower()}/{port_name}")


def endpoint_chain_base(namespace: str, name: str, protocol: str, port_name: str, endpoint: str) -> str:
    """servicePortEndpointChainNameBase: hash + "ns/name/protocol/portName__ip/port"; endpoint is
    "ip:port" or "[ipv6]:port", IPv6 colons become dots (":" is not allowed in a chain name)."""
    host, _, port = endpoint.rpartition(":")
    host = host.strip("[]").replace(":", ".")
    return hash_and_truncate(f"{namespace}/{name}/{protocol.lower()}/{port_name}__{host}/{port}")


def _service_base(sp: ServicePortInfo) -> str:
    return service_chain_base(sp.namespace, sp.name, sp.protocol, sp.port_name)


def _endpoint_base(sp: ServicePortInfo, ep: EndpointInfo) -> str:
    return endpoint_chain_base(sp.namespace, sp.name, sp.protocol, sp.port_name, ep.addr)


def is_service_chain(name: str) -> bool:
    """isServiceChainName: every per-service chain name has a "/" and no fixed chain has one."""
    return "/" in name


# ---- nft-test's sortNFTablesTransaction --------------------------------------------------------
_OBJECT_ORDER = {"table": 10, "chain": 9, "rule": 8, "set": 7, "map": 6, "element": 5}


def sort_nft_transaction(text: str) -> str:
    """Sort "add ..." lines as nft-test does before comparing: blank and '#' lines dropped;
    by object type (table, chain, rule, set, map, element), then object name; rules keep
    their order, other lines of one object sort by the whole line."""
    lines = [ln for ln in text.split("\n") if ln and not ln.startswith("#")]

    def key(line):
        words = line.split(" ")
        if len(words) < 5:
            return (0, "", "")
        return (-_OBJECT_ORDER.get(words[1], 0), words[4], "" if words[1] == "rule" else line)
    return "\n".join(sorted(lines, key=key))


# ---- the table (what the kernel holds) ----------------------------------------------------------
@dataclass
class _Chain:
    base: tuple[str, str, int] | None = None     # (type, hook, priority) for base chains
    comment: str | None = None
    rules: list[str] = field(default_factory=list)


@dataclass
class _Set:
    kind: str                                    # "set" or "map"
    type: str
    flags: tuple[str, ...] = ()
    timeout: int | None = None                   # seconds
    comment: str | None = None
    elements: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)  # key -> (value, comment)


@dataclass
class _Table:
    comment: str | None = None
    chains: dict[str, _Chain] = field(default_factory=dict)
    sets: dict[str, _Set] = field(default_factory=dict)


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _chain_spec(ch: _Chain) -> str:
    parts = []
    if ch.base:
        parts.append(f"type {ch.base[0]} hook {ch.base[1]} priority {ch.base[2]} ;")
    if ch.comment:
        parts.append(f"comment {_q(ch.comment)} ;")
    return " { " + " ".join(parts) + " }" if parts else ""


def _set_spec(s: _Set) -> str:
    parts = [f"type {s.type} ;"]
    if s.flags:
        parts.append(f"flags {','.join(s.flags)} ;")
    if s.timeout is not None:
        parts.append(f"timeout {s.timeout}s ;")
    if s.comment:
        parts.append(f"comment {_q(s.comment)} ;")
    return " { " + " ".join(parts) + " }"


def _element_body(key: str, value: str | None, comment: str | None) -> str:
    # comment before the value, as kube-proxy's knftables writes it (nft accepts this order)
    return key + (f" comment {_q(comment)}" if comment else "") + (f" : {value}" if value else "")


class _Tx:
    """One nft transaction (knftables.Transaction): its "nft -f" lines, one per operation,
    and the same operations to apply to the table model when it is run."""

    def __init__(self, family: str):
        self.head = f"{family} {TABLE}"
        self.lines: list[str] = []
        self._ops: list = []

    def __len__(self) -> int:
        return len(self.lines)

    def _op(self, line: str, fn) -> None:
        self.lines.append(line)
        self._ops.append(fn)

    def text(self) -> str:
        return "".join(ln + "\n" for ln in self.lines)

    def run(self, table: _Table) -> None:
        for fn in self._ops:
            fn(table)

    # tables and chains
    def add_table(self, comment: str) -> None:
        def fn(t):
            t.comment = comment
        self._op(f"add table {self.head} {{ comment {_q(comment)} ; }}", fn)

    def add_chain(self, name: str, base=None, comment=None) -> None:
        ch = _Chain(base=base, comment=comment)

        def fn(t):
            old = t.chains.setdefault(name, _Chain())
            old.base, old.comment = base or old.base, comment or old.comment
        self._op(f"add chain {self.head} {name}{_chain_spec(ch)}", fn)

    def flush_chain(self, name: str) -> None:
        def fn(t):
            t.chains[name].rules.clear()
        self._op(f"flush chain {self.head} {name}", fn)

    def delete_chain(self, name: str) -> None:
        def fn(t):
            del t.chains[name]
        self._op(f"delete chain {self.head} {name}", fn)

    def add_rule(self, chain: str, rule: str, comment: str | None = None) -> None:
        text = rule + (f" comment {_q(comment)}" if comment else "")

        def fn(t):
            t.chains[chain].rules.append(text)
        self._op(f"add rule {self.head} {chain} {text}", fn)

    # sets, maps and elements
    def add_set(self, name: str, kind: str, type_: str, flags=(), timeout=None, comment=None) -> None:
        spec = _Set(kind, type_, tuple(flags), timeout, comment)

        def fn(t):
            t.sets.setdefault(name, _Set(kind, type_, tuple(flags), timeout, comment))
        self._op(f"add {kind} {self.head} {name}{_set_spec(spec)}", fn)

    def flush_set(self, name: str, kind: str) -> None:
        def fn(t):
            t.sets[name].elements.clear()
        self._op(f"flush {kind} {self.head} {name}", fn)

    def delete_set(self, name: str, kind: str) -> None:
        def fn(t):
            del t.sets[name]
        self._op(f"delete {kind} {self.head} {name}", fn)

    def add_element(self, name: str, key: str, value: str | None = None, comment: str | None = None) -> None:
        def fn(t):
            t.sets[name].elements.setdefault(key, (value, comment))   # nft add: an existing key stays
        self._op(f"add element {self.head} {name} {{ {_element_body(key, value, comment)} }}", fn)

    def delete_element(self, name: str, key: str) -> None:
        def fn(t):
            del t.sets[name].elements[key]
        self._op(f"delete element {self.head} {name} {{ {key} }}", fn)


class _Elements:
    """nftElementStorage: the in-memory copy of one set/map's elements (key -> value) that
    element writes are diffed against."""

    def __init__(self, name: str):
        self.name = name
        self.elements: dict[str, str | None] = {}
        self.leftover: set[str] = set()

    def reload(self, table: _Table) -> None:
        """Full sync: start from what the table holds (ListAll), nothing flushed."""
        s = table.sets.get(self.name)
        self.elements = {k: v for k, (v, _) in s.elements.items()} if s else {}
        self.leftover = set(self.elements)

    def ensure(self, tx: _Tx, key: str, value: str | None = None, comment: str | None = None) -> None:
        """ensureElem: add a new element; a changed value is deleted and re-added."""
        if key in self.elements:
            if self.elements[key] != value:
                tx.delete_element(self.name, key)
                tx.add_element(self.name, key, value, comment)
                self.elements[key] = value
            self.leftover.discard(key)
        else:
            tx.add_element(self.name, key, value, comment)
            self.elements[key] = value

    def cleanup(self, tx: _Tx) -> None:
        """cleanupLeftoverKeys: delete the elements no service asked for in this sync."""
        for key in sorted(self.leftover, key=_element_sort_key):
            tx.delete_element(self.name, key)
            del self.elements[key]
        self.leftover = set(self.elements)


def _element_sort_key(key: str):
    out = []
    for part in key.split(" . "):
        ip = parse_ip(part)
        if ip is not None:
            out.append((0, ip.version, int(ip), ""))
        elif part.isdigit():
            out.append((1, 0, int(part), ""))
        else:
            out.append((2, 0, 0, part))
    return out


# ---- the proxier ---------------------------------------------------------------------------------
class NftablesProxier:
    """kube-proxy --proxy-mode=nftables on one node: ``sync`` sends the transactions,
    ``render`` shows the table as ``nft list ruleset`` does, ``transaction_dump`` as the
    "add ..." lines kube-proxy's tests compare."""

    def __init__(self, node: NodeView, config: ProxyConfig):
        self.node = node
        self.config = config
        self._table: _Table | None = None        # the kernel's table ip kube-proxy (None: absent)
        self.restart()

    def restart(self) -> None:
        """A kube-proxy restart: every in-memory state is lost, the kernel's table is kept;
        the next sync is a full one (and the first to add+delete the base chains again)."""
        self._storage = {name: _Elements(name) for name in CONTAINERS}
        self._fingerprints: dict[str, str] = {}
        self._stale: dict[str, float] = {}
        self._needs_full = True
        self._flushed = False
        self._last_full: float | None = None
        self._synced_labels: dict[str, str] | None = None

    # ---- derived settings --------------------------------------------------------------------
    @property
    def _family(self) -> int:
        return node_family(self.node)

    @property
    def _ipx(self) -> str:
        return "ip6" if self._family == 6 else "ip"

    @property
    def _addr_type(self) -> str:
        return "ipv6_addr" if self._family == 6 else "ipv4_addr"

    @property
    def _mark(self) -> str:
        return f"{1 << self.config.masquerade_bit:#x}"

    def _cidrs_of_family(self, text: str) -> list[str]:
        out = []
        for part in (text or "").split(","):
            try:
                net = ipaddress.ip_network(part.strip(), strict=False)
            except ValueError:
                continue
            if net.version == self._family:
                out.append(str(net))
        return out

    @property
    def _pod_cidr(self) -> str:
        """The ClusterCIDR local traffic detector's CIDR, "" when there is none."""
        cidrs = self._cidrs_of_family(self.config.cluster_cidr)
        return cidrs[0] if cidrs else ""

    @property
    def _service_cidrs(self) -> str:
        # OnServiceCIDRsChanged: the CIDRs of the proxier's family, comma-joined
        return ",".join(self._cidrs_of_family(self.config.service_cidr))

    # ---- sync --------------------------------------------------------------------------------
    def sync(self, services: list[Service], slices: list[EndpointSlice], now: float = 0.0,
             full: bool | None = None) -> SyncResult:
        """syncProxyRules. ``full=True`` forces a full sync; otherwise (None or False) it is
        full when kube-proxy would make it one (first sync, node labels changed, full-sync
        period passed)."""
        do_full = full is True or self._needs_full_sync(now)
        table_before = self._table or _Table()

        # stale chains old enough are deleted in their own transaction, before the sync
        deleted = sorted(c for c, t in self._stale.items() if t < now - STALE_CHAIN_DELAY)
        del_tx = _Tx(self._ipx)
        for chain in deleted:
            del self._stale[chain]
            if chain in table_before.chains:
                del_tx.delete_chain(chain)
        if len(del_tx) and self._table is not None:
            del_tx.run(self._table)

        fingerprints = service_fingerprints(services, slices, self._family)
        changed = changed_services(self._fingerprints, fingerprints)

        existing = self._table or _Table()       # what ListAll would show now
        tx = _Tx(self._ipx)
        if do_full:
            self._setup(tx, existing)
        active_chains: set[str] = set()
        active_affinity: set[str] = set()
        synced = 0
        for sp, eps in service_ports(services, slices, self.node):
            skip = not do_full and sp.service_key not in changed
            self._write_service_port(tx, sp, eps, skip, do_full, existing, active_chains, active_affinity)
            synced += not skip

        # unused service chains: flushed now, deleted later (STALE_CHAIN_DELAY)
        for chain in existing.chains:
            if is_service_chain(chain):
                if chain not in active_chains:
                    tx.flush_chain(chain)
                    self._stale[chain] = now
                else:
                    self._stale.pop(chain, None)
        # unused affinity sets go at once
        for name, s in existing.sets.items():
            if name.startswith(AFFINITY_PREFIX) and name not in active_affinity:
                tx.delete_set(name, s.kind)
        for storage in self._storage.values():
            storage.cleanup(tx)

        if self._table is None:
            self._table = _Table()
        tx.run(self._table)
        self._fingerprints = fingerprints
        self._synced_labels = dict(self.node.labels)
        self._needs_full = False
        if do_full:
            self._last_full = now

        payload = del_tx.text() + tx.text()
        return SyncResult(
            full=do_full, payload=payload,
            rules_sent=sum(ln.startswith("add rule ") for ln in payload.splitlines()),
            chains_sent=sum(ln.startswith("add chain ") for ln in payload.splitlines()),
            services_synced=synced,
            rules_total={TABLE: sum(len(ch.rules) for ch in self._table.chains.values())},
            stale_chains_deleted=len(del_tx), ops=len(tx))

    def _needs_full_sync(self, now: float) -> bool:
        # needFullSync: startup (and failed transactions), node label changes (OnNodeUpdate);
        # plus proxyutil.FullSyncPeriod
        return (self._needs_full or self._last_full is None or self.node.labels != self._synced_labels
                or now - self._last_full >= self.config.full_sync_period)

    # ---- setupNFTables ------------------------------------------------------------------------
    def _setup(self, tx: _Tx, existing: _Table) -> None:
        """The table, base chains, fixed chains and rules, and the sets/maps, on a full sync."""
        ipx, addr = self._ipx, self._addr_type
        tx.add_table(TABLE_COMMENT)
        if not self._flushed:
            # once per process: add+delete every base chain so changed properties
            # (e.g. priorities of an older kube-proxy's chains) take effect
            for name in BASE_CHAINS:
                tx.add_chain(name)
                tx.delete_chain(name)
            self._flushed = True
        for name, base in BASE_CHAINS.items():
            tx.add_chain(name, base=base)
            tx.flush_chain(name)

        created: set[str] = set()

        def ensure_chain(name: str) -> None:
            if name not in created:
                created.add(name)
                tx.add_chain(name)
                tx.flush_chain(name)

        for dst, src, extra in JUMP_CHAINS:
            ensure_chain(dst)
            tx.add_rule(src, f"{extra} jump {dst}".strip())
        for name in (SERVICES, CLUSTER_IPS_CHECK, MASQUERADING, MARK_MASQ):
            ensure_chain(name)

        mark = self._mark
        tx.add_rule(MARK_MASQ, f"mark set mark or {mark}")
        tx.add_rule(MASQUERADING, f"mark and {mark} == 0 return")
        # clear the mark so a packet re-traversing the stack is not masqueraded twice
        tx.add_rule(MASQUERADING, f"mark set mark xor {mark}")
        tx.add_rule(MASQUERADING, "masquerade fully-random")

        tx.add_set(CLUSTER_IPS, "set", addr, comment="Active ClusterIPs")
        tx.add_rule(CLUSTER_IPS_CHECK, f"{ipx} daddr @{CLUSTER_IPS} reject",
                    comment="Reject traffic to invalid ports of ClusterIPs")
        if self._service_cidrs:
            tx.add_rule(CLUSTER_IPS_CHECK, f"{ipx} daddr {{ {self._service_cidrs} }} drop",
                        comment="Drop traffic to unallocated ClusterIPs")

        # nodePortAddresses is never match-all here: the node's primary IP (module docstring)
        tx.add_set(NODEPORT_IPS, "set", addr, comment="IPs that accept NodePort traffic")
        tx.flush_set(NODEPORT_IPS, "set")
        node_ip = parse_ip(self.node.ip)
        if node_ip is not None and node_ip.version == self._family and not node_ip.is_loopback:
            tx.add_element(NODEPORT_IPS, str(node_ip))

        tx.add_set(NO_ENDPOINT_SERVICES, "map", f"{addr} . inet_proto . inet_service : verdict",
                   comment="vmap to drop or reject packets to services with no endpoints")
        tx.add_set(NO_ENDPOINT_NODEPORTS, "map", "inet_proto . inet_service : verdict",
                   comment="vmap to drop or reject packets to service nodeports with no endpoints")
        tx.add_chain(REJECT_CHAIN, comment="helper for @no-endpoint-services / @no-endpoint-nodeports")
        tx.flush_chain(REJECT_CHAIN)
        tx.add_rule(REJECT_CHAIN, "reject")
        tx.add_rule(SERVICE_ENDPOINTS_CHECK,
                    f"{ipx} daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES}")
        tx.add_rule(NODEPORT_ENDPOINTS_CHECK,
                    f"{ipx} daddr @{NODEPORT_IPS} meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}")

        tx.add_set(FIREWALL_IPS, "map", f"{addr} . inet_proto . inet_service : verdict",
                   comment="destinations that are subject to LoadBalancerSourceRanges")
        ensure_chain(FIREWALL_CHECK)
        tx.add_rule(FIREWALL_CHECK, f"{ipx} daddr . meta l4proto . th dport vmap @{FIREWALL_IPS}")

        tx.add_set(SERVICE_IPS, "map", f"{addr} . inet_proto . inet_service : verdict",
                   comment="ClusterIP, ExternalIP and LoadBalancer IP traffic")
        tx.add_set(SERVICE_NODEPORTS, "map", "inet_proto . inet_service : verdict", comment="NodePort traffic")
        tx.add_rule(SERVICES, f"{ipx} daddr . meta l4proto . th dport vmap @{SERVICE_IPS}")
        tx.add_rule(SERVICES, f"{ipx} daddr @{NODEPORT_IPS} meta l4proto . th dport vmap @{SERVICE_NODEPORTS}")

        # the element mirrors start from what the table holds (ListAll), nothing is flushed
        for storage in self._storage.values():
            storage.reload(existing)

    # ---- one service port (syncProxyRules loop body) ------------------------------------------
    def _endpoint_chain_current(self, existing: _Table, chain: str, affinity_set: str, sticky: bool) -> bool:
        """Restart optimisation (PR 130119): an endpoint chain's contents follow from its name
        (IP and port) and from whether its affinity set exists, so one already in the table, not
        flushed, with the affinity set present exactly when the service is sticky, is kept."""
        ch = existing.chains.get(chain)
        return bool(ch and ch.rules) and (affinity_set in existing.sets) == sticky

    def _write_service_port(self, tx: _Tx, sp: ServicePortInfo, eps: CategorizedEndpoints, skip: bool,
                            full: bool, existing: _Table, active: set[str], active_affinity: set[str]) -> None:
        ipx = self._ipx
        proto = sp.protocol.lower()
        base = _service_base(sp)
        sticky = sp.affinity_timeout is not None

        def ensure_chain(name: str, skip_creation: bool) -> None:
            if name not in active:
                active.add(name)
                if not skip_creation:
                    tx.add_chain(name)
                    tx.flush_chain(name)

        kept_endpoints: set[str] = set()
        for ep in eps.reachable:
            ep_base = _endpoint_base(sp, ep)
            chain, aff = ENDPOINT_PREFIX + ep_base, AFFINITY_PREFIX + ep_base
            keep = skip or (full and self._endpoint_chain_current(existing, chain, aff, sticky))
            if keep:
                kept_endpoints.add(chain)
            ensure_chain(chain, keep)
            if sticky:
                active_affinity.add(aff)

        cluster_chain, local_chain = SERVICE_PREFIX + base, LOCAL_PREFIX + base
        uses_cluster = bool(eps.cluster) and sp.uses_cluster_endpoints
        uses_local = bool(eps.local) and sp.uses_local_endpoints
        if uses_cluster:
            ensure_chain(cluster_chain, skip)
        if uses_local:
            ensure_chain(local_chain, skip)
        internal_chain = local_chain if sp.internal_local else cluster_chain
        external_policy_chain = local_chain if sp.external_local else cluster_chain
        external_chain = EXTERNAL_PREFIX + base
        # based on has_endpoints, not has_external_endpoints: the short-circuit rules are
        # needed even when no endpoint takes external traffic
        uses_external = eps.has_endpoints and sp.externally_accessible
        if uses_external:
            ensure_chain(external_chain, skip)

        if not eps.has_endpoints:
            internal_verdict = external_verdict = f"goto {REJECT_CHAIN}"
        else:
            internal_verdict = None if eps.has_internal_endpoints else "drop"
            external_verdict = None if eps.has_external_endpoints else "drop"

        st = self._storage
        port_key = f"{proto} . {sp.port}"
        st[CLUSTER_IPS].ensure(tx, sp.cluster_ip)
        if eps.has_internal_endpoints:
            st[SERVICE_IPS].ensure(tx, f"{sp.cluster_ip} . {port_key}", f"goto {internal_chain}")
        else:
            st[NO_ENDPOINT_SERVICES].ensure(tx, f"{sp.cluster_ip} . {port_key}", internal_verdict, sp.spn)

        for ip in sp.external_ips:
            if eps.has_endpoints:
                st[SERVICE_IPS].ensure(tx, f"{ip} . {port_key}", f"goto {external_chain}")
            if not eps.has_external_endpoints:
                st[NO_ENDPOINT_SERVICES].ensure(tx, f"{ip} . {port_key}", external_verdict, sp.spn)

        # no has_endpoints condition in nft: the firewall runs before DNAT
        uses_fw = bool(sp.lb_ips) and bool(sp.source_ranges)
        fw_chain = FIREWALL_PREFIX + base
        if uses_fw:
            ensure_chain(fw_chain, skip)
        for ip in sp.lb_ips:
            if eps.has_endpoints:
                st[SERVICE_IPS].ensure(tx, f"{ip} . {port_key}", f"goto {external_chain}")
            if uses_fw:
                st[FIREWALL_IPS].ensure(tx, f"{ip} . {port_key}", f"goto {fw_chain}")
        if not eps.has_external_endpoints:
            for ip in sp.lb_ips:
                st[NO_ENDPOINT_SERVICES].ensure(tx, f"{ip} . {port_key}", external_verdict, sp.spn)

        if sp.node_port:
            # NodePorts are not subject to loadBalancerSourceRanges
            if eps.has_endpoints:
                st[SERVICE_NODEPORTS].ensure(tx, f"{proto} . {sp.node_port}", f"goto {external_chain}")
            if not eps.has_external_endpoints:
                st[NO_ENDPOINT_NODEPORTS].ensure(tx, f"{proto} . {sp.node_port}", external_verdict, sp.spn)

        if skip:
            return

        # internal traffic: masquerade ClusterIP traffic from outside the pod network
        if eps.has_internal_endpoints:
            if self.config.masquerade_all:
                tx.add_rule(internal_chain, f"{ipx} daddr {sp.cluster_ip} jump {MARK_MASQ}")
            elif self._pod_cidr:
                tx.add_rule(internal_chain, f"{ipx} daddr {sp.cluster_ip} {ipx} saddr != {self._pod_cidr} "
                                            f"jump {MARK_MASQ}")

        if uses_external:
            if not sp.external_local:
                # endpoints may be on another node: masquerade
                tx.add_rule(external_chain, f"jump {MARK_MASQ}")
            else:
                if self._pod_cidr:
                    # pod traffic to an external IP behaves as if it went out and came back
                    tx.add_rule(external_chain, f"{ipx} saddr {self._pod_cidr} goto {cluster_chain}",
                                comment="short-circuit pod traffic")
                # the node's own source address would be the VIP's: masquerade it
                tx.add_rule(external_chain, f"fib saddr type local jump {MARK_MASQ}",
                            comment="masquerade local traffic")
                tx.add_rule(external_chain, f"fib saddr type local goto {cluster_chain}",
                            comment="short-circuit local traffic")
            if eps.has_external_endpoints:
                tx.add_rule(external_chain, f"goto {external_policy_chain}")

        if uses_fw:
            sources = list(sp.source_ranges)
            node_ip = parse_ip(self.node.ip)
            if any(node_ip in ipaddress.ip_network(c) for c in sp.source_ranges):
                # a node connecting to a VIP bound locally loops back with the VIP as source
                sources += list(sp.lb_ips)
            tx.add_rule(fw_chain, f"{ipx} saddr != {{ {' , '.join(sources)} }} drop")

        if sticky:
            for ep in eps.reachable:
                tx.add_set(AFFINITY_PREFIX + _endpoint_base(sp, ep), "set", self._addr_type,
                           flags=("dynamic", "timeout"), timeout=sp.affinity_timeout)

        if uses_cluster:
            self._write_dispatch(tx, sp, cluster_chain, eps.cluster)
        if uses_local:
            self._write_dispatch(tx, sp, local_chain, eps.local)

        for ep in eps.reachable:
            ep_base = _endpoint_base(sp, ep)
            chain = ENDPOINT_PREFIX + ep_base
            if chain in kept_endpoints:
                continue
            # hairpin: an endpoint reaching itself through the service is masqueraded
            tx.add_rule(chain, f"{ipx} saddr {ep.ip} jump {MARK_MASQ}")
            if sticky:
                tx.add_rule(chain, f"update @{AFFINITY_PREFIX + ep_base} {{ {ipx} saddr }}")
            tx.add_rule(chain, f"meta l4proto {proto} dnat to {ep.addr}")

    def _write_dispatch(self, tx: _Tx, sp: ServicePortInfo, chain: str, endpoints: list[EndpointInfo]) -> None:
        """writeServiceToEndpointRules: affinity lookups, then one numgen vmap over the
        endpoints in their sorted order."""
        ipx = self._ipx
        if sp.affinity_timeout is not None:
            for ep in endpoints:
                ep_base = _endpoint_base(sp, ep)
                tx.add_rule(chain, f"{ipx} saddr @{AFFINITY_PREFIX + ep_base} goto {ENDPOINT_PREFIX + ep_base}")
        vmap = " , ".join(f"{i} : goto {ENDPOINT_PREFIX + _endpoint_base(sp, ep)}" for i, ep in enumerate(endpoints))
        tx.add_rule(chain, f"numgen random mod {len(endpoints)} vmap {{ {vmap} }}")

    # ---- node state ----------------------------------------------------------------------------
    @property
    def chains(self) -> dict[str, list[str]]:
        """chain -> its rules (kube-proxy's rule text), in the table's order."""
        t = self._table or _Table()
        return {name: list(ch.rules) for name, ch in t.chains.items()}

    @property
    def elements(self) -> dict[str, dict[str, str | None]]:
        """set/map -> {key: value (None for a set)}."""
        t = self._table or _Table()
        return {name: {k: v for k, (v, _) in s.elements.items()} for name, s in t.sets.items()}

    def transaction_dump(self) -> str:
        """The table as knftables' Fake.Dump() writes it: "add table", every "add chain",
        "add set", "add map" (by name), then every chain's "add rule" lines, then the
        elements. Compare through sort_nft_transaction, as nft-test does."""
        t = self._table
        if t is None:
            return ""
        head = f"{self._ipx} {TABLE}"
        out = [f"add table {head}" + (f" {{ comment {_q(t.comment)} ; }}" if t.comment else "")]
        chains = sorted(t.chains)
        sets = sorted(n for n, s in t.sets.items() if s.kind == "set")
        maps = sorted(n for n, s in t.sets.items() if s.kind == "map")
        out += [f"add chain {head} {c}{_chain_spec(t.chains[c])}" for c in chains]
        out += [f"add {t.sets[n].kind} {head} {n}{_set_spec(t.sets[n])}" for n in sets + maps]
        out += [f"add rule {head} {c} {r}" for c in chains for r in t.chains[c].rules]
        out += [f"add element {head} {n} {{ {_element_body(k, v, cm)} }}"
                for n in sets + maps for k, (v, cm) in t.sets[n].elements.items()]
        return "\n".join(out) + "\n"

    def dataplane(self) -> NodeDataplane:
        """What this proxier put into the node's kernel, for the engine."""
        return NodeDataplane("nftables", nft=self.render())

    def render(self) -> str:
        """The table as ``nft list ruleset`` prints it (sets and maps first, then chains, each
        in creation order; elements sorted), with kube-proxy's own rule spelling. Loadable by
        ``nft -f``."""
        t = self._table
        if t is None:
            return ""
        blocks = []
        for name, s in t.sets.items():
            lines = [f"\t{s.kind} {name} {{", f"\t\ttype {s.type}"]
            if s.flags:
                lines.append(f"\t\tflags {','.join(s.flags)}")
            if s.timeout is not None:
                lines.append(f"\t\ttimeout {s.timeout}s")
            if s.comment:
                lines.append(f"\t\tcomment {_q(s.comment)}")
            if s.elements:
                items = [_element_body(k, v, cm) for k, (v, cm) in
                         sorted(s.elements.items(), key=lambda kv: _element_sort_key(kv[0]))]
                if s.kind == "set" and " . " not in s.type:
                    lines.append("\t\telements = { " + ", ".join(items) + " }")
                else:
                    lines.append("\t\telements = { " + ",\n\t\t\t     ".join(items) + " }")
            lines.append("\t}")
            blocks.append("\n".join(lines))
        for name, ch in t.chains.items():
            lines = [f"\tchain {name} {{"]
            if ch.base:
                kind, hook, prio = ch.base
                lines.append(f"\t\ttype {kind} hook {hook} priority {_priority_name(kind, hook, prio)}; "
                             "policy accept;")
            if ch.comment:
                lines.append(f"\t\tcomment {_q(ch.comment)}")
            lines += [f"\t\t{r}" for r in ch.rules]
            lines.append("\t}")
            blocks.append("\n".join(lines))
        head = [f"table {self._ipx} {TABLE} {{"] + ([f"\tcomment {_q(t.comment)}"] if t.comment else [])
        return "\n".join(head) + "\n" + "\n\n".join(blocks) + ("\n" if blocks else "") + "}\n"


_STANDARD_PRIORITIES = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100}


def _priority_name(kind: str, hook: str, prio: int) -> str:
    """How nft (1.0.x) prints a base chain priority: a standard name valid for the hook
    (dstnat only at prerouting, srcnat only at postrouting) when the value is within 10 of it
    ("filter", "dstnat - 10"), the plain number otherwise (an output chain at -110 is "-110")."""
    for name, value in _STANDARD_PRIORITIES.items():
        if name == "dstnat" and hook != "prerouting" or name == "srcnat" and hook != "postrouting":
            continue
        off = prio - value
        if abs(off) <= 10:
            return name if off == 0 else f"{name} {'+' if off > 0 else '-'} {abs(off)}"
    return str(prio)


__all__ = ["NftablesProxier", "endpoint_chain_base", "hash_and_truncate", "is_service_chain",
           "service_chain_base", "sort_nft_transaction", "BASE_CHAINS", "JUMP_CHAINS", "TABLE"]
