"""Which endpoints a node's proxier uses for each service port, in every proxy mode.

The equivalent of kube-proxy's pkg/proxy/serviceport.go (what a service port is),
endpointslicecache.go (which endpoints it has) and topology.go (CategorizeEndpoints: which of
them Cluster and Local traffic policy use, topology hints, the terminating fallback).
"""
from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

from kslib.api.endpointslice import Endpoint, EndpointSlice
from kslib.api.service import Service

from . import NodeView

PREFER_SAME_NODE = "PreferSameNode"
PREFER_SAME_ZONE = "PreferSameZone"
# Feature gate PreferSameTrafficDistribution (alpha 1.33, beta 1.34): modelled on, as in the
# EndpointSlice controller (kslib.controllers.topology). Off, kube-proxy ignores node hints.
PREFER_SAME_TRAFFIC_DISTRIBUTION = True


# ---- IP text, read as Go's netutils.ParseIPSloppy / ParseCIDRSloppy do -------------------------
def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An IP, with IPv4 leading zeros read as decimal ("172.30.0.041" is 172.30.0.41,
    ipt-test TestBadIPs); None when it is not an IP."""
    text = text.strip() if isinstance(text, str) else ""
    parts = text.split(".")
    if ":" not in text and len(parts) == 4 and all(p.isdigit() for p in parts):
        octets = [int(p) for p in parts]
        return ipaddress.IPv4Address(bytes(octets)) if all(o < 256 for o in octets) else None
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        return None


def parse_cidr(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """A CIDR, masked to its network like Go's ParseCIDR ("203.0.113.000/025" is 203.0.113.0/25)."""
    addr, _, bits = text.strip().partition("/")
    ip = parse_ip(addr)
    if ip is None or not bits.isdigit():
        return None
    try:
        return ipaddress.ip_network(f"{ip}/{int(bits)}", strict=False)
    except ValueError:
        return None


def node_family(node: NodeView) -> int:
    """4 or 6: the IP family of the node's proxier (kube-proxy runs one proxier per family)."""
    ip = parse_ip(node.ip)
    return ip.version if ip is not None else 4


def join_host_port(ip: str, port: int) -> str:
    """Go's net.JoinHostPort: "10.0.0.1:80", "[fd00::1]:80"."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _ips_of_family(texts, family: int) -> tuple[str, ...]:
    ips = (parse_ip(t) for t in texts)
    return tuple(str(ip) for ip in ips if ip is not None and ip.version == family)


# ---- service ports (serviceport.go) --------------------------------------------------------------
@dataclass(frozen=True)
class ServicePortInfo:
    """One port of one Service, as the proxier of one IP family sees it."""
    namespace: str
    name: str
    port_name: str
    protocol: str                    # "TCP", "UDP" or "SCTP"
    cluster_ip: str
    port: int
    node_port: int = 0
    external_ips: tuple[str, ...] = ()
    lb_ips: tuple[str, ...] = ()                 # LoadBalancer ingress IPs with ipMode VIP (or unset)
    source_ranges: tuple[str, ...] = ()          # loadBalancerSourceRanges, trimmed and masked
    internal_local: bool = False                 # internalTrafficPolicy: Local
    external_local: bool = False                 # externalTrafficPolicy: Local, externally accessible
    health_check_node_port: int = 0              # only when the Service needs one
    affinity_timeout: int | None = None          # ClientIP session affinity, seconds

    @property
    def service_key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def spn(self) -> str:
        """ServicePortName.String(): "ns/name:port", or "ns/name" for an unnamed port."""
        return f"{self.service_key}:{self.port_name}" if self.port_name else self.service_key

    @property
    def externally_accessible(self) -> bool:
        return bool(self.node_port or self.lb_ips or self.external_ips)

    @property
    def uses_cluster_endpoints(self) -> bool:
        # serviceport.go: even with eTP=Local, external traffic short-circuits to Cluster endpoints
        return not self.internal_local or self.externally_accessible

    @property
    def uses_local_endpoints(self) -> bool:
        return self.internal_local or (self.external_local and self.externally_accessible)


def _cluster_ip(svc: Service, family: int) -> str | None:
    # proxyutil.GetClusterIPByFamily: the clusterIPs entry of this family
    for text in svc.cluster_ips or [svc.cluster_ip]:
        ip = parse_ip(text)
        if ip is not None and ip.version == family:
            return str(ip)
    return None


def _source_ranges(svc: Service, family: int) -> tuple[str, ...]:
    # serviceport.go reads spec.loadBalancerSourceRanges only (not the annotation), trimming
    # the whitespace validation lets through; ranges of the other family or unparsable are dropped
    nets = (parse_cidr(r) for r in svc.load_balancer_source_ranges)
    return tuple(str(n) for n in nets if n is not None and n.version == family)


def _lb_ips(svc: Service, family: int) -> tuple[str, ...]:
    # proxyutil.IsVIPMode: ipMode Proxy ingress is left to the load balancer
    vips = [ing.ip for ing in svc.ingress if ing.ip and ing.ip_mode in (None, "VIP")]
    return _ips_of_family(vips, family)


def service_port_infos(svc: Service, family: int) -> list[ServicePortInfo]:
    """The ports kube-proxy programs for a Service: none for ExternalName, headless or
    clusterIP-less Services (proxyutil.ShouldSkipService), or without a clusterIP of this family."""
    if svc.type == "ExternalName" or svc.cluster_ip in ("", "None"):
        return []
    cluster_ip = _cluster_ip(svc, family)
    if cluster_ip is None:
        return []
    common = dict(
        namespace=svc.namespace, name=svc.name, cluster_ip=cluster_ip,
        external_ips=_ips_of_family(svc.external_ips, family),
        lb_ips=_lb_ips(svc, family),
        source_ranges=_source_ranges(svc, family),
        internal_local=svc.internal_traffic_policy == "Local",
        external_local=svc.externally_accessible and svc.external_traffic_policy == "Local",
        health_check_node_port=svc.health_check_node_port if svc.needs_health_check else 0,
        affinity_timeout=svc.affinity_timeout,
    )
    return [ServicePortInfo(port_name=p.name, protocol=p.protocol or "TCP", port=p.port,
                            node_port=p.node_port, **common) for p in svc.ports]


# ---- endpoints (endpointslicecache.go) -----------------------------------------------------------
@dataclass(frozen=True)
class EndpointInfo:
    """One endpoint of one service port: the first address of an EndpointSlice endpoint."""
    ip: str
    port: int
    ready: bool
    serving: bool
    terminating: bool
    is_local: bool
    zone_hints: frozenset[str] = frozenset()
    node_hints: frozenset[str] = frozenset()
    pod: str | None = None

    @property
    def addr(self) -> str:
        """Endpoint.String(), "ip:port": the sort key and the KUBE-SEP hash input."""
        return join_host_port(self.ip, self.port)


def _endpoint_info(ep: Endpoint, port: int, node_name: str, family: int) -> EndpointInfo | None:
    ip = parse_ip(ep.addresses[0]) if ep.addresses else None
    if ip is None or ip.version != family:
        return None
    c = ep.conditions
    # endpointslicecache.go: nil ready and nil serving both read as true, nil terminating as false
    return EndpointInfo(
        ip=str(ip), port=port, ready=c.ready is not False, serving=c.serving is not False,
        terminating=bool(c.terminating), is_local=bool(node_name) and ep.node_name == node_name,
        zone_hints=frozenset(ep.hints_zones or ()), node_hints=frozenset(ep.hints_nodes or ()),
        pod=ep.pod)


def slice_matches(es: EndpointSlice, namespace: str, name: str, family: int) -> bool:
    """Is this EndpointSlice one of the Service's, of the proxier's address type?"""
    return (es.namespace == namespace and es.service_name == name
            and es.address_type == f"IPv{family}")


def port_endpoints(info: ServicePortInfo, slices: list[EndpointSlice], node_name: str,
                   family: int) -> list[EndpointInfo]:
    """Every endpoint of the service port, merged over its slices and sorted by "ip:port" string."""
    by_addr: dict[str, EndpointInfo] = {}
    for es in slices:
        if not slice_matches(es, info.namespace, info.name, family):
            continue
        for p in es.ports:
            # EndpointSlice ports carry the Service port's name; nil name or port is skipped
            if p.name is None or not p.port or (p.name, p.protocol) != (info.port_name, info.protocol):
                continue
            for ep in es.endpoints:
                e = _endpoint_info(ep, p.port, node_name, family)
                # a duplicate ip:port is merged, a local copy winning
                if e is not None and (e.addr not in by_addr or e.is_local):
                    by_addr[e.addr] = e
    return sorted(by_addr.values(), key=lambda e: e.addr)


# ---- categorisation (topology.go) ----------------------------------------------------------------
@dataclass
class CategorizedEndpoints:
    """CategorizeEndpoints' answer for one service port on one node."""
    endpoints: list[EndpointInfo]       # all of the port's endpoints
    cluster: list[EndpointInfo]         # used by Cluster traffic policy
    local: list[EndpointInfo]           # used by Local traffic policy
    reachable: list[EndpointInfo]       # cluster + local: the endpoints this node sends to
    has_endpoints: bool                 # usable endpoints anywhere in the cluster
    has_internal_endpoints: bool        # the ClusterIP has somewhere to go
    has_external_endpoints: bool        # external traffic from outside has somewhere to go


@dataclass(frozen=True)
class TopologyDecision:
    """topologyModeFromHints' answer for one service port on one node, with the reasons it logs
    (klog) when it ignores hints that are there."""
    mode: str                          # PreferSameNode | PreferSameZone | "" (every Ready endpoint)
    log: tuple[str, ...] = ()


def topology_decision(endpoints: list[EndpointInfo], node_name: str, zone: str | None,
                      prefer_same_node: bool = PREFER_SAME_TRAFFIC_DISTRIBUTION) -> TopologyDecision:
    """pkg/proxy/topology.go topologyModeFromHints. Only Ready endpoints count: PreferSameNode (gate
    on) when every one has a node hint and one names this node; else PreferSameZone when every one
    has a zone hint and one names this node's zone; else "" -- the fallback is decided here, once."""
    ready = [e for e in endpoints if e.ready]
    if not ready:
        return TopologyDecision("")
    zone = zone or ""                  # kube-proxy reads a missing zone label as ""
    log = []
    if prefer_same_node:
        if all(e.node_hints for e in ready):
            if any(node_name in e.node_hints for e in ready):
                return TopologyDecision(PREFER_SAME_NODE)
            log.append("Ignoring same-node topology hints for service since no hints were provided for node")
        else:
            log.append("Ignoring same-node topology hints for service since one or more endpoints is missing "
                       "a node hint")
    if all(e.zone_hints for e in ready):
        if any(zone in e.zone_hints for e in ready):
            return TopologyDecision(PREFER_SAME_ZONE, tuple(log))
        log.append("Ignoring same-zone topology hints for service since node is missing label" if not zone else
                   "Ignoring same-zone topology hints for service since no hints were provided for zone")
    else:
        log.append("Ignoring same-zone topology hints for service since one or more endpoints is missing a "
                   "zone hint")
    return TopologyDecision("", tuple(log))


def topology_mode(endpoints: list[EndpointInfo], node_name: str, zone: str | None,
                  prefer_same_node: bool = PREFER_SAME_TRAFFIC_DISTRIBUTION) -> str:
    """PreferSameNode when every Ready endpoint has a node hint and one names this node;
    else PreferSameZone likewise for zone hints; else "" (no filtering)."""
    return topology_decision(endpoints, node_name, zone, prefer_same_node).mode


def _available(e: EndpointInfo, mode: str, node_name: str, zone: str | None) -> bool:
    # availableForTopology: no fallback here; it was decided when the mode was chosen
    if mode == PREFER_SAME_NODE:
        return node_name in e.node_hints
    if mode == PREFER_SAME_ZONE:
        return (zone or "") in e.zone_hints
    return True


def _cluster_endpoints(endpoints, node_name, zone) -> list[EndpointInfo]:
    mode = topology_mode(endpoints, node_name, zone)
    ready = [e for e in endpoints if e.ready and _available(e, mode, node_name, zone)]
    # no Ready endpoint anywhere: fall back to Serving+Terminating ones, topology ignored
    return ready or [e for e in endpoints if e.serving and e.terminating]


def _local_endpoints(endpoints) -> list[EndpointInfo]:
    local = [e for e in endpoints if e.is_local]
    return [e for e in local if e.ready] or [e for e in local if e.serving and e.terminating]


def categorize(info: ServicePortInfo, endpoints: list[EndpointInfo], node: NodeView) -> CategorizedEndpoints:
    """Split a port's endpoints into the Cluster and Local policy lists for this node."""
    cluster = _cluster_endpoints(endpoints, node.name, node.zone) if info.uses_cluster_endpoints else []
    local = _local_endpoints(endpoints) if info.uses_local_endpoints else []
    has = bool(cluster)
    if info.uses_local_endpoints:
        has = has or any(e.ready or (e.serving and e.terminating) for e in endpoints)
    union = {e.addr: e for e in cluster} | {e.addr: e for e in local}
    has_local = bool(local)
    return CategorizedEndpoints(
        endpoints=endpoints, cluster=cluster, local=local,
        reachable=sorted(union.values(), key=lambda e: e.addr), has_endpoints=has,
        has_internal_endpoints=has and (has_local or not info.internal_local),
        has_external_endpoints=has and (has_local or not info.external_local))


def service_ports(services: list[Service], slices: list[EndpointSlice],
                  node: NodeView) -> list[tuple[ServicePortInfo, CategorizedEndpoints]]:
    """Every programmed service port with its categorised endpoints, sorted by spn and protocol
    (kube-proxy walks a Go map; sorting makes the output deterministic)."""
    family = node_family(node)
    infos = [i for svc in services for i in service_port_infos(svc, family)]
    infos.sort(key=lambda i: (i.spn, i.protocol))
    mine = slices_by_service(slices)
    return [(i, categorize(i, port_endpoints(i, mine.get((i.namespace, i.name), []), node.name, family), node))
            for i in infos]


def slices_by_service(slices: list[EndpointSlice]) -> dict[tuple[str, str], list[EndpointSlice]]:
    """(namespace, service name) -> its EndpointSlices, sorted by name (one pass, not one per Service)."""
    out: dict[tuple[str, str], list[EndpointSlice]] = {}
    for es in sorted(slices, key=lambda s: s.name):
        out.setdefault((es.namespace, es.service_name), []).append(es)
    return out


def service_fingerprints(services: list[Service], slices: list[EndpointSlice], family: int) -> dict[str, str]:
    """What each Service's per-service rules depend on (its spec and status, and its own slices), by
    "namespace/name": a partial sync rewrites the Services whose fingerprint changed."""
    grouped = slices_by_service(slices)
    out = {}
    for svc in services:
        mine = [s for s in grouped.get((svc.namespace, svc.name), [])
                if slice_matches(s, svc.namespace, svc.name, family)]
        d = svc.to_dict()
        out[svc.key] = json.dumps([d["spec"], d["status"], [s.to_dict() for s in mine]], sort_keys=True)
    return out


def changed_services(before: dict[str, str], after: dict[str, str]) -> set[str]:
    """The Services whose fingerprint differs between two syncs (added and removed ones included)."""
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
