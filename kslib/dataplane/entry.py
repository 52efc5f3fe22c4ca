"""Where a connection starts and where it enters the cluster: ``src`` as a pod, a node (host
traffic) or an external address, and ``via``/the load balancer's choice for external clients
(shared/API.md "Meaning of the arguments")."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from . import codes as C

PROTOCOLS = ("TCP", "UDP", "SCTP")


@dataclass
class Entry:
    node: str            # the node whose stack the first packet meets
    kind: int            # codes.FROM_POD / FROM_WIRE / LOCAL_OUT
    src_ip: str
    label: str           # how the source is named in results


def check_protocol(protocol: str) -> str:
    p = str(protocol).upper()
    if p not in PROTOCOLS:
        raise ValueError(f'protocol: Unsupported value: "{protocol}": supported values: "SCTP", "TCP", "UDP"')
    return p


def check_port(port) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"port: Invalid value: {port!r}: must be between 1 and 65535, inclusive")
    return port


def is_ipv4(text) -> bool:
    try:
        ipaddress.IPv4Address(str(text))
        return True
    except ValueError:
        return False


def source(cluster, src) -> Entry:
    """Resolve ``src``: a pod ("name" or "namespace/name"), a node name, or an external IPv4 address."""
    if not isinstance(src, str) or not src:
        raise ValueError(f"src: {src!r} must be a pod name, a node name or an IPv4 address")
    key = src if "/" in src else f"default/{src}"
    pod = cluster.api.get("Pod", key)
    if pod is not None:
        if pod.host_network:
            node = cluster.api.get("Node", pod.node_name)
            return Entry(pod.node_name, C.LOCAL_OUT, node.internal_ip, key)
        if not pod.pod_ip or not pod.node_name:
            raise ValueError(f'src: pod "{key}" has no IP yet (phase {pod.phase}): it cannot send packets')
        return Entry(pod.node_name, C.FROM_POD, pod.pod_ip, key)
    node = cluster.api.get("Node", src)
    if node is not None:
        return Entry(node.name, C.LOCAL_OUT, node.internal_ip, node.name)
    if is_ipv4(src):
        owner = _owner(cluster, src)
        if owner:
            raise ValueError(f"src: {src} belongs to {owner}: name it instead of its address")
        if ipaddress.IPv4Address(src) in ipaddress.ip_network(cluster.service_cidr, strict=False):
            raise ValueError(f"src: {src} is in the service CIDR {cluster.service_cidr}: no client has that address")
        return Entry("", C.FROM_WIRE, src, src)
    raise ValueError(f'src: {src!r} is not a pod ("name" or "namespace/name"), a node ({", ".join(n.name for n in cluster.nodes)}) '
                     "or an IPv4 address")


def _owner(cluster, ip: str) -> str | None:
    for n in cluster.api.list("Node"):
        if n.internal_ip == ip:
            return f"node {n.name}"
    for p in cluster.api.list("Pod"):
        if p.pod_ip == ip and not p.host_network:
            return f"pod {p.key}"
    return None


def destination(dst, resolve_name) -> str:
    """``dst`` as an IPv4 address: given as one, or a DNS name that ``resolve_name(name)`` looks up
    with the source's resolver (shared/API.md)."""
    if not isinstance(dst, str) or not dst:
        raise ValueError(f"dst: {dst!r} must be an IPv4 address or a DNS name")
    if is_ipv4(dst):
        return str(ipaddress.IPv4Address(dst))
    if ":" in dst:
        raise ValueError(f"dst: {dst!r}: IPv6 is not modelled (the cluster is single-stack IPv4)")
    return resolve_name(dst)


def lb_service(cluster, ip: str):
    """The Service whose load-balancer ingress is ``ip``, or None."""
    for svc in cluster.api.list("Service"):
        if svc.type == "LoadBalancer" and any(i.ip == ip for i in svc.ingress):
            return svc
    return None


def healthy_nodes(cluster, svc) -> list[str]:
    """Nodes the load balancer in front of ``svc`` sends new connections to, as its provider sees
    them (kslib/controllers/cloud.py): the nodes passing its health checks (healthCheckNodePort
    with externalTrafficPolicy Local, kube-proxy's healthz with Cluster), or MetalLB's announcers."""
    from ..controllers.cloud import lb_nodes
    return lb_nodes(cluster, svc)


def unreachable(cluster, dst: str) -> str:
    """Why an external client's packet to ``dst`` cannot enter the cluster (entry_node gave None)."""
    return (f"no route from outside the cluster to {dst}" if lb_service(cluster, dst) is None
            else f"the load balancer for {dst} has no healthy node")


def entry_node(cluster, entry: Entry, dst: str, via: str | None, rng) -> str | None:
    """The node an external packet enters at (None: it cannot reach the cluster)."""
    if via is not None:
        if cluster.api.get("Node", via) is None:
            raise ValueError(f'via: node "{via}" not found; nodes: {", ".join(n.name for n in cluster.nodes)}')
        return via
    for n in cluster.nodes:
        if n.internal_ip == dst:
            return n.name
    svc = lb_service(cluster, dst)
    if svc is not None:
        nodes = healthy_nodes(cluster, svc)
        return rng.choice(nodes) if nodes else None
    if ipaddress.IPv4Address(dst) in ipaddress.ip_network(cluster.service_cidr, strict=False):
        return None                     # ClusterIPs are not routed outside the cluster
    raise ValueError(f"via: an external client's packet to {dst} must enter the cluster at a node: "
                     "pass via=<node name>")
