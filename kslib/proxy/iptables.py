"""kube-proxy's iptables proxier: the iptables-restore input it writes, and the node state it leaves.

A model of pkg/proxy/iptables/proxier.go (syncProxyRules), rule text for rule text, including
partial syncs (KEP-3453, MinimizeIPTablesRestore): top-level chains are rewritten every sync,
per-service chains only for Services whose Service or EndpointSlices changed.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import ipaddress
import math
from dataclasses import dataclass, field

from kslib.api.endpointslice import EndpointSlice
from kslib.api.service import Service

from kslib.dataplane.network import NodeDataplane

from . import NodeView, ProxyConfig, SyncResult
from .topology import (CategorizedEndpoints, EndpointInfo, ServicePortInfo, node_family, parse_ip,
                       service_fingerprints, changed_services, service_ports)

KUBE_SERVICES = "KUBE-SERVICES"
KUBE_EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
KUBE_NODEPORTS = "KUBE-NODEPORTS"
KUBE_POSTROUTING = "KUBE-POSTROUTING"
KUBE_MARK_MASQ = "KUBE-MARK-MASQ"
KUBE_FORWARD = "KUBE-FORWARD"
KUBE_PROXY_FIREWALL = "KUBE-PROXY-FIREWALL"
KUBE_FIREWALL = "KUBE-FIREWALL"          # kubelet's anti-martian chain, duplicated by kube-proxy

SERVICE_CHAIN_PREFIXES = ("KUBE-SVC-", "KUBE-SVL-", "KUBE-SEP-", "KUBE-FW-", "KUBE-EXT-")
CT_INVALID_COUNTER = "ct_state_invalid_dropped_pkts"
LOCALHOST_NODEPORT_COUNTER = "localhost_nps_accepted_pkts"
SYNC_PERIOD = 30.0   # --iptables-sync-period default: how often large clusters clean stale chains

BUILTIN_CHAINS = {"filter": ("INPUT", "FORWARD", "OUTPUT"),
                  "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")}
_NEW = "-m conntrack --ctstate NEW"

# proxier.go iptablesJumpChains then iptablesKubeletJumpChains: (table, from, extra args, comment, to),
# each EnsureRule(Prepend)ed on a full sync, so a later entry ends up above an earlier one.
JUMP_CHAINS = (
    ("filter", "INPUT", _NEW, "kubernetes externally-visible service portals", KUBE_EXTERNAL_SERVICES),
    ("filter", "FORWARD", _NEW, "kubernetes externally-visible service portals", KUBE_EXTERNAL_SERVICES),
    ("filter", "INPUT", "", "kubernetes health check service ports", KUBE_NODEPORTS),
    ("filter", "FORWARD", _NEW, "kubernetes service portals", KUBE_SERVICES),
    ("filter", "OUTPUT", _NEW, "kubernetes service portals", KUBE_SERVICES),
    ("filter", "FORWARD", "", "kubernetes forwarding rules", KUBE_FORWARD),
    ("filter", "INPUT", _NEW, "kubernetes load balancer firewall", KUBE_PROXY_FIREWALL),
    ("filter", "OUTPUT", _NEW, "kubernetes load balancer firewall", KUBE_PROXY_FIREWALL),
    ("filter", "FORWARD", _NEW, "kubernetes load balancer firewall", KUBE_PROXY_FIREWALL),
    ("nat", "OUTPUT", "", "kubernetes service portals", KUBE_SERVICES),
    ("nat", "PREROUTING", "", "kubernetes service portals", KUBE_SERVICES),
    ("nat", "POSTROUTING", "", "kubernetes postrouting rules", KUBE_POSTROUTING),
    ("filter", "INPUT", "", "", KUBE_FIREWALL),
    ("filter", "OUTPUT", "", "", KUBE_FIREWALL),
)


# ---- names and small text helpers ----------------------------------------------------------------
@functools.lru_cache(maxsize=1 << 18)        # every node's proxier names the same chains
def _hash16(text: str) -> str:
    # the first 16 base32 characters encode exactly the first 10 bytes of the digest
    return base64.b32encode(hashlib.sha256(text.encode()).digest()[:10]).decode()


def port_proto_hash(spn: str, protocol: str) -> str:
    """portProtoHash: base32(SHA-256(spn + lower-case protocol)), first 16 characters."""
    return _hash16(spn + protocol.lower())


def service_chain(prefix: str, spn: str, protocol: str) -> str:
    """KUBE-SVC-/KUBE-SVL-/KUBE-EXT-/KUBE-FW- chain of a service port (they share the hash)."""
    return prefix + port_proto_hash(spn, protocol)


def endpoint_chain(spn: str, protocol: str, endpoint: str) -> str:
    """servicePortEndpointChainName: KUBE-SEP- + hash of spn, protocol and "ip:port"."""
    return "KUBE-SEP-" + _hash16(spn + protocol.lower() + endpoint)


def compute_probability(n: int) -> str:
    """computeProbability: 1/n printed like Go's %0.10f."""
    return f"{1.0 / n:.10f}"


def comment(text: str) -> str:
    """A comment match; kube-proxy writes literal quotes around comments containing spaces."""
    return f'-m comment --comment "{text}"' if " " in text else f"-m comment --comment {text}"


def _line(*parts: str) -> str:
    return " ".join(p for p in parts if p)


@dataclass
class _Lines:
    """One table's chain lines and rule lines (proxier.go's LineBuffers)."""
    chains: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)

    def chain(self, name: str) -> None:
        self.chains.append(f":{name} - [0:0]")

    def rule(self, *parts: str) -> None:
        self.rules.append(_line(*parts))


# ---- the proxier ---------------------------------------------------------------------------------
class IptablesProxier:
    """kube-proxy --proxy-mode=iptables on one node: ``sync`` writes the rules, ``tables`` and
    ``render`` show the node's filter and nat tables afterwards."""

    def __init__(self, node: NodeView, config: ProxyConfig):
        self.node = node
        self.config = config
        self._state: dict[str, dict[str, list[str]]] = {
            t: {c: [] for c in chains} for t, chains in BUILTIN_CHAINS.items()}
        self._fingerprints: dict[str, str] = {}
        self._last_full: float | None = None
        self._synced_labels: dict[str, str] | None = None
        self._last_cleanup = -math.inf

    # ---- derived settings --------------------------------------------------------------------
    @property
    def _family(self) -> int:
        return node_family(self.node)

    @property
    def _mark(self) -> str:
        return f"{1 << self.config.masquerade_bit:#x}"

    @property
    def _localhost_nodeports(self) -> bool:
        # NewDualStackProxier: the IPv6 proxier never allows localhost NodePorts
        return self.config.localhost_nodeports and self._family == 4

    @property
    def _pod_cidr(self) -> str:
        """The ClusterCIDR local traffic detector's CIDR, "" when there is no detector."""
        cidr = self.config.cluster_cidr
        if cidr and ipaddress.ip_network(cidr, strict=False).version == self._family:
            return cidr
        return ""

    # ---- sync --------------------------------------------------------------------------------
    def sync(self, services: list[Service], slices: list[EndpointSlice], now: float = 0.0,
             full: bool = False) -> SyncResult:
        """syncProxyRules: build the restore input, apply it to the node, report on it."""
        do_full = full or self._needs_full_sync(now)
        fingerprints = service_fingerprints(services, slices, self._family)
        changed = changed_services(self._fingerprints, fingerprints)
        if do_full:
            self._ensure_jump_rules()

        ports = service_ports(services, slices, self.node)
        large = sum(len(eps.endpoints) for _, eps in ports) > self.config.large_cluster_threshold
        filt, nat = self._top_level_lines()
        active: set[str] = set()
        synced = 0
        for info, eps in ports:
            write = do_full or info.service_key in changed
            self._write_service_port(info, eps, large, filt, nat, nat if write else _Lines(), active)
            synced += write
        deleted = self._stale_chains(active, large, now, nat)
        self._write_tail(filt, nat)

        payload = _restore_text(filt, nat)
        self._apply(payload)
        self._fingerprints = fingerprints
        self._synced_labels = dict(self.node.labels)
        if do_full:
            self._last_full = now
        return SyncResult(
            full=do_full, payload=payload,
            rules_sent=sum(ln.startswith("-A ") for ln in payload.splitlines()),
            chains_sent=len(filt.chains) + len(nat.chains), services_synced=synced,
            rules_total={t: self._kube_rule_count(t) for t in BUILTIN_CHAINS},
            stale_chains_deleted=deleted)

    def _needs_full_sync(self, now: float) -> bool:
        # needFullSync: startup and node label (topology) changes; plus proxyutil.FullSyncPeriod
        return (self._last_full is None or self.node.labels != self._synced_labels
                or now - self._last_full >= self.config.full_sync_period)

    def _ensure_jump_rules(self) -> None:
        """EnsureChain + EnsureRule(Prepend) for every jump from a built-in chain."""
        for table, src, extra, text, dst in JUMP_CHAINS:
            self._state[table].setdefault(dst, [])
            rule = _line(f"-A {src}", extra, comment(text) if text else "", f"-j {dst}")
            if rule not in self._state[table][src]:
                self._state[table][src].insert(0, rule)

    # ---- fixed rules -------------------------------------------------------------------------
    def _top_level_lines(self) -> tuple[_Lines, _Lines]:
        """The chain lines of the top-level chains and the rules written before any service."""
        filt, nat = _Lines(), _Lines()
        for chain in (KUBE_SERVICES, KUBE_EXTERNAL_SERVICES, KUBE_FORWARD, KUBE_NODEPORTS, KUBE_PROXY_FIREWALL):
            filt.chain(chain)
        for chain in (KUBE_SERVICES, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_MARK_MASQ):
            nat.chain(chain)
        mark = self._mark
        nat.rule(f"-A {KUBE_POSTROUTING} -m mark ! --mark {mark}/{mark} -j RETURN")
        # clear the mark so a packet re-traversing the stack is not masqueraded twice
        nat.rule(f"-A {KUBE_POSTROUTING} -j MARK --xor-mark {mark}")
        nat.rule(f"-A {KUBE_POSTROUTING}", comment("kubernetes service traffic requiring SNAT"),
                 "-j MASQUERADE", "--random-fully" if self.config.random_fully else "")
        nat.rule(f"-A {KUBE_MARK_MASQ} -j MARK --or-mark {mark}")
        if self._localhost_nodeports:
            # route_localnet=1 opens a hole (issue 90259) that this anti-martian rule closes
            filt.chain(KUBE_FIREWALL)
            filt.rule(f"-A {KUBE_FIREWALL}", comment("block incoming localnet connections"),
                      "-d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP")
        return filt, nat

    def _write_tail(self, filt: _Lines, nat: _Lines) -> None:
        """The NodePort hand-off (last rule of nat KUBE-SERVICES) and the KUBE-FORWARD rules."""
        dst = "-m addrtype --dst-type LOCAL"
        if self._family == 6:
            dst += " ! -d ::1/128"
        elif not self._localhost_nodeports:
            dst += " ! -d 127.0.0.0/8"
        nat.rule(f"-A {KUBE_SERVICES}",
                 comment("kubernetes service nodeports; NOTE: this must be the last rule in this chain"),
                 dst, f"-j {KUBE_NODEPORTS}")
        if not self.config.tcp_be_liberal:
            # issue 74839: INVALID packets would reset connections unless conntrack is liberal
            counter = f"-m nfacct --nfacct-name {CT_INVALID_COUNTER}" if self.config.nfacct else ""
            filt.rule(f"-A {KUBE_FORWARD} -m conntrack --ctstate INVALID", counter, "-j DROP")
        filt.rule(f"-A {KUBE_FORWARD}", comment("kubernetes forwarding rules"),
                  f"-m mark --mark {self._mark}/{self._mark} -j ACCEPT")
        filt.rule(f"-A {KUBE_FORWARD}", comment("kubernetes forwarding conntrack rule"),
                  "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")

    def _stale_chains(self, active: set[str], large: bool, now: float, nat: _Lines) -> int:
        """Flush and delete existing service chains that are no longer active (in large clusters
        at most once per sync period); the -X lines precede the NodePort hand-off rule."""
        if large and now - self._last_cleanup <= SYNC_PERIOD:
            return 0
        self._last_cleanup = now
        stale = sorted(c for c in self._state["nat"] if c.startswith(SERVICE_CHAIN_PREFIXES) and c not in active)
        for chain in stale:
            nat.chain(chain)
            nat.rules.append(f"-X {chain}")
        return len(stale)

    # ---- one service port (proxier.go syncProxyRules loop body) -------------------------------
    def _write_service_port(self, sp: ServicePortInfo, eps: CategorizedEndpoints, large: bool,
                            filt: _Lines, nat: _Lines, out: _Lines, active: set[str]) -> None:
        """Capture rules go to ``filt``/``nat`` always; the per-service chains go to ``out``,
        which is a throw-away buffer on a partial sync when the Service did not change."""
        self._write_capture_rules(sp, eps, filt, nat)
        self._write_internal_masq(sp, eps, out)
        self._write_ext_chain(sp, eps, out, active)
        self._write_fw_chain(sp, eps, out, active)
        chains = ((eps.cluster, sp.uses_cluster_endpoints, "KUBE-SVC-"),
                  (eps.local, sp.uses_local_endpoints, "KUBE-SVL-"))
        for endpoints, used, prefix in chains:
            if endpoints and used:
                chain = service_chain(prefix, sp.spn, sp.protocol)
                out.chain(chain)
                active.add(chain)
                self._write_dispatch(sp, chain, endpoints, large, out)
        for ep in eps.reachable:
            self._write_endpoint_chain(sp, ep, large, out, active)

    def _write_capture_rules(self, sp: ServicePortInfo, eps: CategorizedEndpoints,
                             filt: _Lines, nat: _Lines) -> None:
        """Rules matching the service's IPs and ports: nat jumps, or filter REJECT/DROP."""
        proto = sp.protocol.lower()
        match = f"-m {proto} -p {proto}"
        dport = f"--dport {sp.port}"
        internal_verdict, external_verdict = _filter_verdicts(sp, eps)
        ext_chain = service_chain("KUBE-EXT-", sp.spn, sp.protocol)
        fw_chain = service_chain("KUBE-FW-", sp.spn, sp.protocol)
        uses_fw = eps.has_endpoints and sp.lb_ips and sp.source_ranges

        if eps.has_internal_endpoints:
            nat.rule(f"-A {KUBE_SERVICES}", comment(f"{sp.spn} cluster IP"), match,
                     f"-d {sp.cluster_ip}", dport, f"-j {self._internal_chain(sp)}")
        else:
            filt.rule(f"-A {KUBE_SERVICES}", comment(internal_verdict[1]), match,
                      f"-d {sp.cluster_ip}", dport, f"-j {internal_verdict[0]}")
        for ip in sp.external_ips:
            if eps.has_endpoints:
                nat.rule(f"-A {KUBE_SERVICES}", comment(f"{sp.spn} external IP"), match,
                         f"-d {ip}", dport, f"-j {ext_chain}")
            if not eps.has_external_endpoints:
                filt.rule(f"-A {KUBE_EXTERNAL_SERVICES}", comment(external_verdict[1]), match,
                          f"-d {ip}", dport, f"-j {external_verdict[0]}")
        for ip in sp.lb_ips:
            if eps.has_endpoints:
                nat.rule(f"-A {KUBE_SERVICES}", comment(f"{sp.spn} loadbalancer IP"), match,
                         f"-d {ip}", dport, f"-j {fw_chain if uses_fw else ext_chain}")
            if uses_fw:
                filt.rule(f"-A {KUBE_PROXY_FIREWALL}", comment(f"{sp.spn} traffic not accepted by {fw_chain}"),
                          match, f"-d {ip}", dport, "-j DROP")
        if not eps.has_external_endpoints:
            for ip in sp.lb_ips:
                filt.rule(f"-A {KUBE_EXTERNAL_SERVICES}", comment(external_verdict[1]), match,
                          f"-d {ip}", dport, f"-j {external_verdict[0]}")
        if sp.node_port:
            self._write_node_port(sp, eps, external_verdict, ext_chain, filt, nat)
        if sp.health_check_node_port:
            # accepted whether or not this node has local endpoints
            filt.rule(f"-A {KUBE_NODEPORTS}", comment(f"{sp.spn} health check node port"),
                      f"-m tcp -p tcp --dport {sp.health_check_node_port} -j ACCEPT")

    def _write_node_port(self, sp: ServicePortInfo, eps: CategorizedEndpoints, verdict,
                         ext_chain: str, filt: _Lines, nat: _Lines) -> None:
        """NodePorts jump to KUBE-EXT (loadBalancerSourceRanges do not apply to them)."""
        proto = sp.protocol.lower()
        match = f"-m {proto} -p {proto}"
        dport = f"--dport {sp.node_port}"
        if eps.has_endpoints:
            if self._localhost_nodeports and self.config.nfacct:
                # identical rule restricted to 127.0.0.0/8, only to count localhost NodePort packets
                nat.rule(f"-A {KUBE_NODEPORTS}", comment(sp.spn), match, "-d 127.0.0.0/8", dport,
                         f"-m nfacct --nfacct-name {LOCALHOST_NODEPORT_COUNTER}", f"-j {ext_chain}")
            nat.rule(f"-A {KUBE_NODEPORTS}", comment(sp.spn), match, dport, f"-j {ext_chain}")
        if not eps.has_external_endpoints:
            filt.rule(f"-A {KUBE_EXTERNAL_SERVICES}", comment(verdict[1]), "-m addrtype --dst-type LOCAL",
                      match, dport, f"-j {verdict[0]}")

    def _internal_chain(self, sp: ServicePortInfo) -> str:
        return service_chain("KUBE-SVL-" if sp.internal_local else "KUBE-SVC-", sp.spn, sp.protocol)

    def _write_internal_masq(self, sp: ServicePortInfo, eps: CategorizedEndpoints, out: _Lines) -> None:
        """Masquerade ClusterIP traffic from outside the pod network (all of it with masqueradeAll)."""
        if not eps.has_internal_endpoints or not (self.config.masquerade_all or self._pod_cidr):
            return
        proto = sp.protocol.lower()
        not_local = "" if self.config.masquerade_all else f"! -s {self._pod_cidr}"
        out.rule(f"-A {self._internal_chain(sp)}", comment(f"{sp.spn} cluster IP"), f"-m {proto} -p {proto}",
                 f"-d {sp.cluster_ip} --dport {sp.port}", not_local, f"-j {KUBE_MARK_MASQ}")

    def _write_ext_chain(self, sp: ServicePortInfo, eps: CategorizedEndpoints, out: _Lines,
                         active: set[str]) -> None:
        """KUBE-EXT: masquerade (eTP=Cluster) or short-circuit pod and host traffic (eTP=Local).
        Written even without local endpoints, for the short-circuit rules."""
        if not (eps.has_endpoints and sp.externally_accessible):
            return
        ext = service_chain("KUBE-EXT-", sp.spn, sp.protocol)
        svc = service_chain("KUBE-SVC-", sp.spn, sp.protocol)
        out.chain(ext)
        active.add(ext)
        if not sp.external_local:
            out.rule(f"-A {ext}", comment(f"masquerade traffic for {sp.spn} external destinations"),
                     f"-j {KUBE_MARK_MASQ}")
        else:
            if self._pod_cidr:
                out.rule(f"-A {ext}", comment(f"pod traffic for {sp.spn} external destinations"),
                         f"-s {self._pod_cidr}", f"-j {svc}")
            # the host's own source address is local, so it must be masqueraded
            out.rule(f"-A {ext}", comment(f"masquerade LOCAL traffic for {sp.spn} external destinations"),
                     "-m addrtype --src-type LOCAL", f"-j {KUBE_MARK_MASQ}")
            out.rule(f"-A {ext}", comment(f"route LOCAL traffic for {sp.spn} external destinations"),
                     "-m addrtype --src-type LOCAL", f"-j {svc}")
        if eps.has_external_endpoints:
            policy = "KUBE-SVL-" if sp.external_local else "KUBE-SVC-"
            out.rule(f"-A {ext}", f"-j {service_chain(policy, sp.spn, sp.protocol)}")

    def _write_fw_chain(self, sp: ServicePortInfo, eps: CategorizedEndpoints, out: _Lines,
                        active: set[str]) -> None:
        """KUBE-FW: loadBalancerSourceRanges; what falls off its end is dropped in filter."""
        if not (eps.has_endpoints and sp.lb_ips and sp.source_ranges):
            return
        fw = service_chain("KUBE-FW-", sp.spn, sp.protocol)
        ext = service_chain("KUBE-EXT-", sp.spn, sp.protocol)
        out.chain(fw)
        active.add(fw)
        head = _line(f"-A {fw}", comment(f"{sp.spn} loadbalancer IP"))
        for cidr in sp.source_ranges:
            out.rule(head, f"-s {cidr}", f"-j {ext}")
        node_ip = parse_ip(self.node.ip)
        if any(node_ip in ipaddress.ip_network(c) for c in sp.source_ranges):
            # a node connecting to a VIP bound locally loops back with the VIP as source
            for ip in sp.lb_ips:
                out.rule(head, f"-s {ip}", f"-j {ext}")
        out.rule(f"-A {fw}", comment(f"other traffic to {sp.spn} will be dropped by KUBE-PROXY-FIREWALL"))

    def _write_dispatch(self, sp: ServicePortInfo, chain: str, endpoints: list[EndpointInfo],
                        large: bool, out: _Lines) -> None:
        """writeServiceToEndpointRules: affinity checks, then a uniform random choice."""
        def head(ep: EndpointInfo) -> str:
            # large cluster mode drops per-endpoint comments (appendServiceCommentLocked)
            return _line(f"-A {chain}", "" if large else comment(f"{sp.spn} -> {ep.addr}"))

        if sp.affinity_timeout is not None:
            for ep in endpoints:
                sep = endpoint_chain(sp.spn, sp.protocol, ep.addr)
                out.rule(head(ep), f"-m recent --name {sep} --rcheck --seconds {sp.affinity_timeout} --reap",
                         f"-j {sep}")
        n = len(endpoints)
        for i, ep in enumerate(endpoints):
            chance = f"-m statistic --mode random --probability {compute_probability(n - i)}" if i < n - 1 else ""
            out.rule(head(ep), chance, f"-j {endpoint_chain(sp.spn, sp.protocol, ep.addr)}")

    def _write_endpoint_chain(self, sp: ServicePortInfo, ep: EndpointInfo, large: bool, out: _Lines,
                              active: set[str]) -> None:
        """KUBE-SEP: masquerade hairpin traffic, then DNAT (recording affinity)."""
        sep = endpoint_chain(sp.spn, sp.protocol, ep.addr)
        out.chain(sep)
        active.add(sep)
        head = _line(f"-A {sep}", "" if large else comment(sp.spn))
        proto = sp.protocol.lower()
        out.rule(head, f"-s {ep.ip}", f"-j {KUBE_MARK_MASQ}")
        recent = f"-m recent --name {sep} --set" if sp.affinity_timeout is not None else ""
        out.rule(head, recent, f"-m {proto} -p {proto}", f"-j DNAT --to-destination {ep.addr}")

    # ---- node state ----------------------------------------------------------------------------
    def _apply(self, payload: str) -> None:
        """iptables-restore --noflush: a chain named in the input is flushed (or created) and
        refilled, -X deletes one, chains not named are left alone."""
        table = None
        for ln in payload.splitlines():
            if ln.startswith("*"):
                table = self._state[ln[1:]]
            elif ln.startswith(":"):
                table[ln[1:].split()[0]] = []
            elif ln.startswith("-A "):
                table[ln.split()[1]].append(ln)
            elif ln.startswith("-X "):
                del table[ln.split()[1]]

    def _kube_rule_count(self, table: str) -> int:
        return sum(len(rules) for chain, rules in self._state[table].items()
                   if chain not in BUILTIN_CHAINS[table])

    @property
    def tables(self) -> dict[str, dict[str, list[str]]]:
        """table -> chain -> rule lines: built-in chains first, then kube chains by name."""
        return ordered_tables(self._state)

    def render(self) -> str:
        """The node's iptables-save view (in kube-proxy's rule text), loadable by iptables-restore."""
        return save_text(self.tables)

    def dataplane(self) -> NodeDataplane:
        """What this proxier put into the node's kernel, for the engine."""
        return NodeDataplane("iptables", iptables=self.render())


def ordered_tables(state: dict[str, dict[str, list[str]]]) -> dict[str, dict[str, list[str]]]:
    """A copy of table -> chain -> rules with the built-in chains first, then the others by name."""
    out = {}
    for table, builtins in BUILTIN_CHAINS.items():
        chains = state[table]
        order = list(builtins) + sorted(c for c in chains if c not in builtins)
        out[table] = {c: list(chains[c]) for c in order}
    return out


def save_text(tables: dict[str, dict[str, list[str]]]) -> str:
    """iptables-save text of table -> chain -> rules: loadable by iptables-restore."""
    lines = []
    for table, chains in tables.items():
        lines.append(f"*{table}")
        lines += [f":{c} ACCEPT [0:0]" if c in BUILTIN_CHAINS[table] else f":{c} - [0:0]" for c in chains]
        lines += [rule for rules in chains.values() for rule in rules]
        lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def _filter_verdicts(sp: ServicePortInfo, eps: CategorizedEndpoints):
    """(target, comment) for internal and external traffic that finds no endpoint, or None."""
    if not eps.has_endpoints:
        reject = ("REJECT", f"{sp.spn} has no endpoints")
        return reject, reject
    drop = ("DROP", f"{sp.spn} has no local endpoints")
    return (None if eps.has_internal_endpoints else drop), (None if eps.has_external_endpoints else drop)


def _restore_text(filt: _Lines, nat: _Lines) -> str:
    lines = ["*filter", *filt.chains, *filt.rules, "COMMIT", "*nat", *nat.chains, *nat.rules, "COMMIT"]
    return "\n".join(lines) + "\n"
