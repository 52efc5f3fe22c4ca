"""Hypothesis strategies for valid clusters of every shape (tests/test_properties.py).

A drawn ``World`` is plain data: nodes in zones, pods (labels, container ports, node, readiness,
termination) and Services (type, 1-4 ports over TCP/UDP/SCTP with named or numbered target ports,
traffic policies, session affinity, source ranges, publishNotReadyAddresses, a selector that may
match some, all or none of the pods). ``World.manifests()`` is real Kubernetes YAML as dicts;
``World.build(mode)`` is the cluster. A World written out literally is a regression example.
"""
from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from kslib import Cluster, CloudProvider

ZONES = ("zone-a", "zone-b", "zone-c")
APPS = ("a", "b", "c")
TIERS = ("front", "back")
LB_POOL = "198.18.0.0/24"             # RFC 2544 benchmarking addresses: no real network uses them
CLIENTS = ("203.0.113.7", "198.51.100.7")   # external clients (TEST-NET-3, TEST-NET-2)
SOURCE_RANGES = ("203.0.113.0/28", "198.51.100.0/24", "192.0.2.0/24")
# container ports a pod may declare: (name, protocol, numbers a pod may give it)
PORTS = (("http", "TCP", (8080, 8081)), ("dns", "UDP", (5353,)), ("dns-tcp", "TCP", (5353,)),
         ("sctp", "SCTP", (9000,)), ("metrics", "TCP", (9090,)))
TARGET_NAMES = tuple(n for n, _, _ in PORTS) + ("missing",)
TARGET_NUMBERS = (8080, 8081, 5353, 9000, 9090, 7000)


@dataclass(frozen=True)
class PodDraw:
    name: str
    node: int                          # index into the node names
    labels: tuple                      # ((key, value), ...)
    ports: tuple | None                # ((name, protocol, number), ...); None declares no ports
    ready: bool = True
    terminating: bool = False


@dataclass(frozen=True)
class PortDraw:
    name: str
    protocol: str
    port: int
    target: int | str


@dataclass(frozen=True)
class ServiceDraw:
    name: str
    type: str                          # ClusterIP, NodePort, LoadBalancer, Headless, ExternalName
    selector: tuple                    # ((key, value), ...); () is a Service without a selector
    ports: tuple                       # of PortDraw
    etp: str = "Cluster"
    itp: str = "Cluster"
    affinity: int | None = None        # sessionAffinity ClientIP with this timeout (None: no affinity)
    source_ranges: tuple = ()
    publish_not_ready: bool = False


@dataclass(frozen=True)
class World:
    nodes: int
    zones: int
    pods: tuple
    services: tuple
    seed: int = 0

    @property
    def node_names(self) -> list[str]:
        return [f"node-{i + 1}" for i in range(self.nodes)]

    def manifests(self) -> list[dict]:
        """The pods and Services as the user would write them (Pods pinned by nodeName), and a client
        pod on every node (``client-1``...; its label is in no selector)."""
        clients = [PodDraw(f"client-{i + 1}", i, (("role", "client"),), ()) for i in range(self.nodes)]
        return [pod_manifest(p, self.node_names) for p in self.pods + tuple(clients)] + \
            [service_manifest(s) for s in self.services]

    def build(self, mode: str, docs: list[dict] | None = None) -> Cluster:
        """The cluster in ``mode``: ``docs`` (by default ``manifests()``) applied, then readiness and
        termination set as drawn (a terminating pod was deleted and is in its grace period)."""
        c = Cluster(mode=mode, nodes=self.nodes, zones=list(ZONES[:self.zones]), seed=self.seed,
                    cloud=CloudProvider(pool=LB_POOL))
        c.apply(self.manifests() if docs is None else docs)
        for p in self.pods:
            if not p.ready:
                c.set_ready(p.name, False)
        for p in self.pods:
            if p.terminating:
                c.delete("pod", p.name)
        return c


def pinned(world: World, c: Cluster) -> list[dict]:
    """``world.manifests()`` with every address and port ``c`` allocated written in, as a user pins
    them (spec.clusterIP, nodePort, healthCheckNodePort, loadBalancerIP; a pod's status.podIP, which
    the model honours), so that another cluster built from them allocates nothing of its own."""
    out = []
    for doc in world.manifests():
        obj = c.get(doc["kind"], doc["metadata"]["name"])
        if doc["kind"] == "Pod":
            doc["status"] = {"podIP": obj.pod_ip}
        elif doc["spec"].get("type") != "ExternalName":
            spec = doc["spec"]
            spec["clusterIP"] = obj.cluster_ip
            for port, allocated in zip(spec["ports"], obj.ports):
                if allocated.node_port:
                    port["nodePort"] = allocated.node_port
            if obj.health_check_node_port:
                spec["healthCheckNodePort"] = obj.health_check_node_port
            if obj.ingress:
                spec["loadBalancerIP"] = obj.ingress[0].ip
        out.append(doc)
    return out


def pod_manifest(p: PodDraw, nodes: list[str]) -> dict:
    container = {"name": "app", "image": "registry.k8s.io/e2e-test-images/agnhost:2.47"}
    if p.ports is not None:
        container["ports"] = [{"name": n, "containerPort": num, "protocol": proto} for n, proto, num in p.ports]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": p.name, "namespace": "default", "labels": dict(p.labels)},
            "spec": {"nodeName": nodes[p.node], "terminationGracePeriodSeconds": 30, "containers": [container]}}


def service_manifest(s: ServiceDraw) -> dict:
    spec: dict = {}
    if s.type == "ExternalName":
        spec = {"type": "ExternalName", "externalName": "db.example.com"}
    else:
        spec["type"] = "ClusterIP" if s.type == "Headless" else s.type
        if s.type == "Headless":
            spec["clusterIP"] = "None"
        if s.selector:
            spec["selector"] = dict(s.selector)
        if s.type in ("NodePort", "LoadBalancer"):
            spec["externalTrafficPolicy"] = s.etp
        if s.type != "Headless":
            spec["internalTrafficPolicy"] = s.itp
        if s.affinity is not None and s.type != "Headless":
            spec["sessionAffinity"] = "ClientIP"
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": s.affinity}}
        if s.source_ranges:
            spec["loadBalancerSourceRanges"] = list(s.source_ranges)
        if s.publish_not_ready:
            spec["publishNotReadyAddresses"] = True
    spec["ports"] = [{**({"name": p.name} if p.name else {}), "protocol": p.protocol, "port": p.port,
                      "targetPort": p.target} for p in s.ports]
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": s.name, "namespace": "default"},
            "spec": spec}


# ---- strategies --------------------------------------------------------------------------------------------
def labels():
    return st.fixed_dictionaries({"app": st.sampled_from(APPS)},
                                 optional={"tier": st.sampled_from(TIERS)}).map(lambda d: tuple(sorted(d.items())))


@st.composite
def container_ports(draw):
    if draw(st.integers(0, 5)) == 0:
        return None                                   # declares none: listens on any port
    chosen = draw(st.lists(st.sampled_from(PORTS), min_size=1, max_size=len(PORTS), unique_by=lambda p: p[0]))
    return tuple((name, proto, draw(st.sampled_from(nums))) for name, proto, nums in chosen)


@st.composite
def pods(draw, nodes: int, index: int):
    return PodDraw(name=f"p{index}", node=draw(st.integers(0, nodes - 1)), labels=draw(labels()),
                   ports=draw(container_ports()), ready=draw(st.integers(0, 3)) > 0,
                   terminating=draw(st.integers(0, 4)) == 0)


# a target port that the pods' catalogue serves for each protocol (most draws), or any other
SERVED = {"TCP": ("http", "metrics", 8080, 8081, 9090), "UDP": ("dns", 5353), "SCTP": ("sctp", 9000)}


@st.composite
def service_ports(draw):
    """1-4 ports, (port, protocol) unique; names required (and unique) when there are several."""
    n = draw(st.integers(1, 4))
    keys = draw(st.lists(st.tuples(st.sampled_from((80, 53, 443, 9000)), st.sampled_from(("TCP", "UDP", "SCTP"))),
                         min_size=n, max_size=n, unique=True))
    out = []
    for i, (port, proto) in enumerate(keys):
        served = draw(st.integers(0, 3)) > 0
        target = draw(st.sampled_from(SERVED[proto]) if served else
                      st.sampled_from(TARGET_NUMBERS + TARGET_NAMES))
        name = f"p{i}-{proto.lower()}" if n > 1 or draw(st.booleans()) else ""
        out.append(PortDraw(name, proto, port, target))
    return tuple(out)


@st.composite
def selectors(draw, pod_labels: list):
    """Mostly the labels of a drawn pod, or only its app (matching it and maybe others); sometimes
    any labels (matching some, all or none) or no selector at all."""
    how = draw(st.integers(0, 9))
    if pod_labels and how < 4:
        return draw(st.sampled_from(pod_labels))
    if pod_labels and how < 7:
        return tuple((k, v) for k, v in draw(st.sampled_from(pod_labels)) if k == "app")
    return () if how == 9 else draw(labels())


@st.composite
def services(draw, index: int, pod_labels: list):
    kind = draw(st.sampled_from(("ClusterIP", "ClusterIP", "NodePort", "LoadBalancer", "Headless", "ExternalName")))
    ports = draw(service_ports())
    if kind == "ExternalName":
        return ServiceDraw(f"s{index}", kind, (), ports)
    external = kind in ("NodePort", "LoadBalancer")
    return ServiceDraw(
        name=f"s{index}", type=kind, selector=draw(selectors(pod_labels)), ports=ports,
        etp=draw(st.sampled_from(("Cluster", "Local"))) if external else "Cluster",
        itp=draw(st.sampled_from(("Cluster", "Cluster", "Local"))) if kind != "Headless" else "Cluster",
        affinity=draw(st.sampled_from((None, None, 60, 10800))) if kind != "Headless" else None,
        source_ranges=(tuple(draw(st.lists(st.sampled_from(SOURCE_RANGES), max_size=2, unique=True)))
                       if kind == "LoadBalancer" else ()),
        publish_not_ready=draw(st.integers(0, 4)) == 0)


@st.composite
def worlds(draw, max_pods: int = 8, max_services: int = 4):
    nodes = draw(st.integers(1, 5))
    zones = draw(st.integers(1, min(3, nodes)))
    drawn = tuple(draw(pods(nodes, i)) for i in range(draw(st.integers(0, max_pods))))
    pod_labels = sorted({p.labels for p in drawn})
    return World(nodes=nodes, zones=zones, pods=drawn,
                 services=tuple(draw(services(i, pod_labels)) for i in range(draw(st.integers(1, max_services)))),
                 seed=draw(st.integers(0, 2**16)))
