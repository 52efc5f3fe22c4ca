"""``Cluster``: the facade lessons and users program against (see shared/API.md).

It owns no networking logic: it wires the API server (kslib.api) to the controllers
(kslib.controllers) and, as their issues land, to the proxiers and the dataplane engine.
"""
from __future__ import annotations

import copy
import ipaddress
import random
import time
from collections import Counter, deque
from dataclasses import dataclass

import numpy as np

from .api import manifest
from .api.errors import ValidationError, invalid
from .api.meta import ObjectMeta
from .api.names import is_dns1123_subdomain
from .api.node import ZONE_LABEL, Node
from .api.server import APIServer, Event, kubernetes_endpoint_slice, kubernetes_service
from . import billing
from .controllers.endpointslice import EndpointSliceController, KubeEvent
from .controllers.cloud import LoadBalancerController
from .controllers.scheduler import reap_terminated, run_kubelets
from .controllers.workloads import WorkloadController
from .dataplane import codes as C
from .dataplane import entry as E
from .dataplane.network import PROTO_NUMBERS, ClusterNetwork, NodeSpec, PodSpec, ip_int
from .dataplane.trace import Connection, Step, ip
from .traffic import Clients, Flow, Traffic
from .dns import CoreDNS, KubeletDNS, Resolution, ResolvConf
from .dns import names as dns_names
from .dns.resolver import resolve as dns_walk
from .dns.server import DEFAULT_TTL as DNS_TTL
from .dns.server import QTYPES
from .proxy import NodeView, ProxyConfig, SyncResult
from .proxy.ebpf import CiliumProxier
from .proxy.iptables import IptablesProxier
from .proxy.ipvs import IpvsProxier
from .proxy.nftables import NftablesProxier

MODES = ("iptables", "ipvs", "nftables", "ebpf")
# the options of each mode: kube-proxy's --ipvs-scheduler; Cilium's loadBalancer.algorithm,
# loadBalancer.mode and maglev.tableSize
MODE_OPTIONS = {"iptables": {}, "nftables": {}, "ipvs": {"scheduler": "rr"},
                "ebpf": {"algorithm": "random", "lb_mode": "snat", "maglev_table_size": 16381}}
# kubectl's names for the kinds kslib models (kubectl api-resources)
KIND_ALIASES = {
    "pod": "Pod", "pods": "Pod", "po": "Pod",
    "service": "Service", "services": "Service", "svc": "Service",
    "node": "Node", "nodes": "Node", "no": "Node",
    "deployment": "Deployment", "deployments": "Deployment", "deploy": "Deployment",
    "statefulset": "StatefulSet", "statefulsets": "StatefulSet", "sts": "StatefulSet",
    "endpointslice": "EndpointSlice", "endpointslices": "EndpointSlice",
}
_SETTLE_ROUNDS = 1000
# sockets every node's host network listens on: kubelet, kube-proxy's healthz
HOST_PORTS = ((6, 10250), (6, 10256))


@dataclass
class SyncRecord:
    """One proxier sync on one node: when, and what kube-proxy sent (``result``)."""
    clock: float
    node: str
    mode: str
    result: SyncResult
    seconds: float = 0.0        # the model's time to compute this sync (not the kernel's)


def kind_name(kind: str) -> str:
    k = KIND_ALIASES.get(kind.lower())
    if k is None:
        raise ValueError(f"unknown kind {kind!r}: kslib models " + ", ".join(sorted(set(KIND_ALIASES.values()))))
    return k


def _key(name: str, namespace: str | None) -> str:
    if "/" in name:
        return name
    return f"{namespace or 'default'}/{name}"


class Cluster:
    """A Kubernetes cluster's Service networking, from manifests to packets.

    ``nodes`` adds that many worker nodes (``node-1``...) or the named ones, spread over ``zones``
    round robin; nodes can also come from manifests (``kind: Node``).

    DNS, as kubeadm sets it up: ``cluster_domain`` and ``cluster_dns`` (the kubelet's clusterDomain
    and clusterDNS; by default the 10th address of the service CIDR as kubeadm picks it,
    10.96.0.10), ``dns_pods`` ("disabled", "insecure", "verified") and ``dns_ttl`` (0..3600) for
    CoreDNS's kubernetes plugin, and ``node_resolv_conf``, the nodes' own /etc/resolv.conf text
    (by default one nameserver, the node network's gateway, and no search domains). ``c.dns`` is
    the DNS server, ``c.resolve`` a pod's lookup, ``c.resolv_conf`` a pod's resolv.conf.

    ``cloud``: what provisions LoadBalancer Services (``c.cloud``): None, as on a bare cluster, leaves
    them ``<pending>``; ``kslib.CloudProvider(pool=..., hourly_price=...)`` or ``kslib.MetalLB(pools=...)``
    runs with the other controllers (kslib/controllers/cloud.py).
    """

    def __init__(self, mode: str = "iptables", cluster_cidr: str = "10.244.0.0/16",
                 service_cidr: str = "10.96.0.0/12", masquerade_all: bool = False, seed: int = 0,
                 nodes: int | list[str] | None = None, zones: list[str] | None = None,
                 node_cidr: str = "192.168.0.0/24", cluster_domain: str = "cluster.local",
                 max_endpoints_per_slice: int = 100, node_port_range: str = "30000-32767",
                 proxy_options: dict | None = None, cluster_dns: str | None = None,
                 dns_pods: str = "insecure", dns_ttl: int = DNS_TTL, node_resolv_conf: str | None = None,
                 cloud: LoadBalancerController | None = None):
        for name, cidr in (("cluster_cidr", cluster_cidr), ("service_cidr", service_cidr), ("node_cidr", node_cidr)):
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"{name}: {cidr!r} is not a CIDR such as 10.96.0.0/12") from None
        if ipaddress.ip_network(service_cidr, strict=False).num_addresses < 8:
            raise ValueError(f"service_cidr: {service_cidr} is too small (the range must hold at least 8 addresses)")
        self._check_mode(mode)
        self._mode = mode
        self.mode_options = dict(MODE_OPTIONS[mode])
        self.cluster_cidr, self.service_cidr = cluster_cidr, service_cidr
        self.masquerade_all, self.seed = masquerade_all, seed
        self.cluster_domain = cluster_domain
        self.api = APIServer(service_cidr, cluster_cidr, node_cidr, node_port_range=node_port_range, seed=seed)
        self._init_dns(cluster_dns, dns_pods, dns_ttl, node_resolv_conf)
        self.workloads = WorkloadController(self.api)
        self.slices = EndpointSliceController(self.api, max_endpoints_per_slice)
        if cloud is not None and not isinstance(cloud, LoadBalancerController):
            raise ValueError(f"cloud: must be None (no load-balancer controller: LoadBalancer Services stay "
                             f"<pending>), kslib.CloudProvider(...) or kslib.MetalLB(...), got {cloud!r}")
        self.cloud = cloud
        if cloud is not None:
            cloud._attach(self)
        self.events: list[Event] = []
        self._subscribers: list = []
        self._changed = False
        # kube-proxy on every node, and the network the engine runs packets through
        self.proxy_config = ProxyConfig(cluster_cidr=cluster_cidr, service_cidr=service_cidr,
                                        masquerade_all=masquerade_all, **(proxy_options or {}))
        self.proxiers: dict = {}
        self.sync_log: deque[SyncRecord] = deque(maxlen=10_000)
        self.syncs = 0                      # proxier syncs so far (the log keeps the last 10,000)
        self.network = ClusterNetwork(seed, service_cidr)
        self._lb_rng = random.Random(seed)
        self._held: dict[int, Traffic] = {}     # open long-lived batches by group number
        self._held_next = 1
        self._proxies_stale = True
        self._network_stale = True
        self.api.watch(self._on_event)
        self.api.apply(kubernetes_service(self.api))
        if nodes:
            names = [f"node-{i + 1}" for i in range(nodes)] if isinstance(nodes, int) else list(nodes)
            zones = zones or []
            self.apply([Node(metadata=ObjectMeta(name=n, namespace="",
                                                 labels={"kubernetes.io/hostname": n,
                                                         **({ZONE_LABEL: zones[i % len(zones)]} if zones else {})}))
                        for i, n in enumerate(names)])
        self._settle()

    def _init_dns(self, cluster_dns, pods, ttl, node_resolv_conf) -> None:
        errs = is_dns1123_subdomain(self.cluster_domain) if isinstance(self.cluster_domain, str) \
            else ["must be a DNS domain such as cluster.local"]
        if errs:
            raise ValueError(str(invalid("cluster_domain", self.cluster_domain, errs[0])))
        if cluster_dns is None:          # kubeadm: the 10th address of the service subnet
            net = ipaddress.ip_network(self.service_cidr, strict=False)
            cluster_dns = str(net[min(10, net.num_addresses - 2)])     # (a tiny range: its last host)
        if not E.is_ipv4(cluster_dns):
            raise ValueError(str(invalid("cluster_dns", cluster_dns, "must be an IPv4 address such as 10.96.0.10")))
        if node_resolv_conf is None:
            node_resolv_conf = f"nameserver {next(self.api.node_net.hosts())}\n"
        self.kubelet_dns = KubeletDNS(self.cluster_domain, cluster_dns, ResolvConf.parse(node_resolv_conf))
        self.dns = CoreDNS(self.api, self.cluster_domain, cluster_dns, pods, ttl)

    # ---- mode -------------------------------------------------------------------------------------
    @staticmethod
    def _check_mode(mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode: unsupported value {mode!r}: supported values: " + ", ".join(MODES))

    @property
    def mode(self) -> str:
        return self._mode

    def set_mode(self, mode: str, **options) -> None:
        """Switch every node's proxier (kube-proxy --proxy-mode, or Cilium's replacement for ebpf).
        Options: ``scheduler`` for ipvs (rr, wrr, lc, wlc, sed, nq, sh, dh, mh); ``algorithm``
        (random, maglev), ``lb_mode`` (snat, dsr, hybrid) and ``maglev_table_size`` for ebpf."""
        self._check_mode(mode)
        unknown = sorted(set(options) - set(MODE_OPTIONS[mode]))
        if unknown:
            allowed = ", ".join(MODE_OPTIONS[mode]) or "none"
            raise ValueError(f"set_mode: {unknown[0]}: not an option of {mode} mode (its options: {allowed})")
        new = {**MODE_OPTIONS[mode], **options}
        self._make_proxier(mode, new, NodeView("check", "192.0.2.1"))      # bad values fail here, before any change
        if mode != self._mode or new != self.mode_options:
            self._mode, self.mode_options = mode, new
            self.proxiers.clear()             # switching modes: the new proxier starts with a full sync
            self._proxies_stale = True
            self._sync_proxies()

    def _make_proxier(self, mode: str, options: dict, view: NodeView):
        cls = {"iptables": IptablesProxier, "nftables": NftablesProxier, "ipvs": IpvsProxier,
               "ebpf": CiliumProxier}[mode]
        return cls(view, self.proxy_config, **options)

    # ---- objects ------------------------------------------------------------------------------------
    def apply(self, manifests) -> list:
        """Create or update objects from YAML/JSON text, a path, a dict, objects or a list of these.
        All or nothing: if any object is invalid, a ValidationError says why and nothing changes."""
        objs = manifest.load(manifests)
        with self.api.transaction():
            applied = [self.api.apply(o) for o in objs]
        self._settle()
        return [self.api.get(o.kind, o.key) or o for o in applied]

    def delete(self, kind: str, name: str, namespace: str = "default") -> None:
        """``kubectl delete``: Pods terminate gracefully (see ``advance``); owners take their Pods."""
        kind = kind_name(kind)
        key = name if kind == "Node" else _key(name, namespace)
        obj = self.api.get(kind, key)
        if obj is None:
            raise KeyError(f'{kind.lower()}s "{name}" not found in namespace "{namespace}"'
                           if kind != "Node" else f'nodes "{name}" not found')
        with self.api.transaction():
            if kind in ("Deployment", "StatefulSet"):
                self.api.remove(kind, key)
                self.workloads.delete_workload(obj)
            elif kind == "Node":
                self.api.remove(kind, key)
                for pod in self.api.list("Pod"):      # the pod GC deletes pods bound to a gone node
                    if pod.node_name == name:
                        self.api.remove("Pod", pod.key)
            else:
                self.api.delete(kind, key)
        self._settle()

    def get(self, kind: str, name: str, namespace: str = "default"):
        kind = kind_name(kind) if kind not in ("Endpoints",) else kind
        return self.api.get(kind, name if kind == "Node" else _key(name, namespace))

    def list(self, kind: str, namespace: str | None = None) -> list:
        kind = kind_name(kind) if kind not in ("Endpoints",) else kind
        return sorted(self.api.list(kind, namespace), key=lambda o: o.key)

    @property
    def nodes(self) -> list[Node]:
        return self.list("Node")

    @property
    def pods(self) -> list:
        return self.list("Pod")

    @property
    def services(self) -> list:
        return self.list("Service")

    def pod(self, name: str):
        """A pod by ``name`` (default namespace) or ``namespace/name``; KeyError if unknown."""
        pod = self.api.get("Pod", _key(name, None))
        if pod is None:
            raise KeyError(f'pod "{name}" not found (give "name" in the default namespace or "namespace/name")')
        return pod

    def endpoint_slices(self, service: str, namespace: str = "default") -> list:
        """The EndpointSlices of a Service (``kubectl get endpointslices -l kubernetes.io/service-name=...``)."""
        ns, name = _key(service, namespace).split("/", 1)
        return sorted((s for s in self.api.list("EndpointSlice", ns) if s.service_name == name),
                      key=lambda s: s.name)

    def endpoints(self, service: str, namespace: str = "default"):
        """The legacy v1 Endpoints object of a Service (deprecated since 1.33), or None."""
        return self.api.get("Endpoints", _key(service, namespace))

    def kube_events(self, obj: str | None = None, namespace: str = "default") -> list[KubeEvent]:
        """Kubernetes Events the controllers recorded (``kubectl get events``), oldest first; with
        ``obj`` ("name" or "namespace/name") only those about that object, as ``kubectl describe``
        lists them (e.g. TopologyAwareHintsDisabled on a Service)."""
        events = list(self.slices.recorder.events)
        if obj is not None:
            ns, name = _key(obj, namespace).split("/", 1)
            events = [e for e in events if (e.namespace, e.name) == (ns, name)]
        return events

    def set_ready(self, pod: str, ready: bool = True) -> None:
        """What a readiness probe does: flip the Pod's Ready condition."""
        new = copy.deepcopy(self.pod(pod))
        new.ready, new.ready_given = bool(ready), True
        with self.api.transaction():
            self.api.write(new)
        self._settle()

    def scale(self, kind: str, name: str, replicas: int, namespace: str = "default") -> None:
        """``kubectl scale``."""
        w = self.get(kind, name, namespace)
        if w is None or kind_name(kind) not in ("Deployment", "StatefulSet"):
            raise KeyError(f"{kind} {name!r} not found")
        new = copy.deepcopy(w)
        new.replicas = replicas
        with self.api.transaction():
            self.api.apply(new)
        self._settle()

    def dump(self, kinds=("Node", "Pod", "Service", "EndpointSlice"), as_list: bool = True) -> str:
        """YAML of the cluster's objects, as ``kubectl get nodes,pods,services,endpointslices -A -o yaml``."""
        objs = [o for k in kinds for o in self.list(k)]
        return manifest.dump(objs, as_list=as_list)

    # ---- time ------------------------------------------------------------------------------------------
    @property
    def clock(self) -> float:
        return self.api.clock

    def advance(self, seconds: float) -> None:
        """Move the cluster clock: terminating Pods finish, and (with the dataplane) conntrack
        entries and affinity expire."""
        if seconds < 0:
            raise ValueError(f"seconds: must not be negative, got {seconds}")
        self.api.clock += seconds
        with self.api.transaction():
            reap_terminated(self.api)
        if self.mode == "ipvs":
            self._proxies_stale = True        # kube-proxy's graceful-termination check runs every minute
        self._settle()

    # ---- change events -------------------------------------------------------------------------------
    def subscribe(self, fn) -> None:
        """Call ``fn(event)`` for every change (ADDED/MODIFIED/DELETED of any object)."""
        self._subscribers.append(fn)

    def _on_event(self, e: Event) -> None:
        self._changed = True
        self._proxies_stale = True
        self.events.append(e)
        self.slices.observe(e)
        for fn in self._subscribers:
            fn(e)

    def _settle(self) -> None:
        """Run the controllers until nothing changes, as a real control plane converges."""
        for _ in range(_SETTLE_ROUNDS):
            self._changed = False
            with self.api.transaction():
                self.workloads.sync_all()
                run_kubelets(self.api)
                self.slices.sync_dirty()
                self._sync_kubernetes_slice()
                if self.cloud is not None:
                    self.cloud.sync()
            if not self._changed:
                self._sync_proxies()
                return
        raise RuntimeError("controllers did not converge")   # a kslib bug, never user input

    def _sync_kubernetes_slice(self) -> None:
        want = kubernetes_endpoint_slice(self.api)
        have = self.api.get("EndpointSlice", "default/kubernetes")
        if want is not None and (have is None or have.endpoints != want.endpoints):
            self.api.write(want)

    # ---- kube-proxy ---------------------------------------------------------------------------------------
    def _sync_proxies(self) -> None:
        """Every node's proxier syncs after the control plane settles (kube-proxy's watch + sync loop)."""
        if not self._proxies_stale:
            return
        self._proxies_stale, self._network_stale = False, True
        nodes = self.nodes
        for gone in set(self.proxiers) - {n.name for n in nodes}:
            del self.proxiers[gone]
        services, slices = self.api.list("Service"), self.api.list("EndpointSlice")
        loaded = self.network.net is not None
        for n in nodes:
            view = NodeView(n.name, n.internal_ip, dict(n.metadata.labels))
            proxier = self.proxiers.get(n.name)
            if proxier is None:
                proxier = self.proxiers[n.name] = self._make_proxier(self.mode, self.mode_options, view)
            proxier.node = view
            extra = {}
            if self.mode == "ipvs" and loaded and n.name in [x.name for x in self.network.nodes]:
                extra["conn_counts"] = self.network.ipvs_counts(n.name, self.clock)
            start = time.perf_counter()
            result = proxier.sync(services, slices, now=self.clock, **extra)
            self.sync_log.append(SyncRecord(self.clock, n.name, self.mode, result, time.perf_counter() - start))
            self.syncs += 1

    def last_sync(self, node: str) -> SyncResult:
        """What the node's kube-proxy sent in its last sync (full or partial, rules, payload)."""
        self._node(node)
        for rec in reversed(self.sync_log):
            if rec.node == node:
                return rec.result
        raise KeyError(f'node "{node}" has not synced in {self.mode} mode')

    def _node(self, name: str) -> Node:
        node = self.api.get("Node", name) if isinstance(name, str) else None
        if node is None:
            raise KeyError(f'node "{name}" not found; nodes: {", ".join(n.name for n in self.nodes) or "(none)"}')
        return node

    # ---- the dataplane --------------------------------------------------------------------------------------
    def render(self, node: str) -> str:
        """The node's dataplane as the real tools print it: ``iptables-save`` (iptables), ``nft list
        ruleset`` (nftables), ``ipvsadm -Ln`` with ``ipset list`` and the iptables rules (ipvs; the
        connection counts are the model kernel's), Cilium's ``bpf lb list`` (ebpf)."""
        self._node(node)
        proxier = self.proxiers[node]
        if self.mode == "ipvs":
            return proxier.render(self._network().ipvs_counts(node, self.clock))
        return proxier.render()

    def _hosts(self) -> tuple[list[NodeSpec], list[PodSpec]]:
        """The nodes (address, pod CIDR, host ports listening) and the pods with their own network
        namespace (address, node, ports listening), as the engine and the kernel lab build them."""
        nodes = self.nodes
        api_ip = (kubernetes_endpoint_slice(self.api).endpoints[0].addresses[0] if nodes else None)
        hc = tuple((6, s.health_check_node_port) for s in self.api.list("Service")
                   if s.needs_health_check and s.health_check_node_port)
        running = [p for p in self.api.list("Pod") if p.node_name and p.phase not in ("Succeeded", "Failed")]
        on_host: dict[str, tuple] = {}            # a hostNetwork pod listens on its node's addresses
        for p in running:
            if p.host_network:
                on_host[p.node_name] = on_host.get(p.node_name, ()) + (_listening(p) or ())
        specs = [NodeSpec(n.name, n.internal_ip, n.pod_cidr,
                          tuple(dict.fromkeys(HOST_PORTS + hc + (((6, 6443),) if n.internal_ip == api_ip else ())
                                              + on_host.get(n.name, ()))))
                 for n in nodes]
        pods = [PodSpec(p.key, p.pod_ip, p.node_name, _listening(p)) for p in running
                if p.pod_ip and not p.host_network]
        return specs, pods

    def _network(self) -> ClusterNetwork:
        if self._network_stale:
            specs, pods = self._hosts()
            self.network.load(specs, pods, {n.name: self.proxiers[n.name].dataplane() for n in self.nodes},
                              now=self.clock)
            self._network_stale = False
        return self.network

    def _entry(self, src, dst, port, protocol):
        protocol = E.check_protocol(protocol)
        port = E.check_port(port)
        entry = E.source(self, src)
        return entry, E.destination(dst, lambda name: self._address(name, entry)), port, protocol

    def _address(self, name: str, entry: E.Entry) -> str:
        """The first IPv4 address ``name`` resolves to for the source's application: glibc's
        getaddrinfo (A and AAAA per candidate) on the pod's or node's resolv.conf."""
        name = dns_names.check(name, "dst")
        if entry.kind == C.FROM_WIRE:
            raise ValueError(f"dst: {name!r}: an external client ({entry.src_ip}) cannot use the cluster's DNS names; "
                             "give an IP address (a node IP or a LoadBalancer ingress IP)")
        who, conf = self._dns_client(entry.label, "src")
        res = self._lookup(name, conf, ("A", "AAAA"), "glibc")
        ipv4 = [a for a in res.addresses if E.is_ipv4(a)]
        if ipv4:
            return ipv4[0]
        if res.name is None:
            status = "NXDOMAIN" if res.rcode == "NXDOMAIN" else "NODATA"
            tried = ", ".join(dict.fromkeys(q.name for q in res.queries))
            raise ValueError(f"dst: {name!r} does not resolve from {who}: {status} for every name tried ({tried})")
        raise ValueError(f"dst: {name!r} resolves from {who} to {' '.join(res.answers)}, which holds no IPv4 address")

    def connect(self, src, dst, port=None, protocol="TCP", via=None, hold=False) -> Connection:
        """Open one connection from ``src`` to ``dst:port`` and report its fate (shared/API.md).
        ``hold=True`` keeps it open (a WebSocket, a gRPC stream) until ``conn.close()``: conntrack
        keeps it established and IPVS counts it as an active connection."""
        entry, dst, port, protocol = self._entry(src, dst, port, protocol)
        conn = Connection(entry.label, dst, port, protocol)
        node = entry.node
        if entry.kind == C.FROM_WIRE:
            node = E.entry_node(self, entry, dst, via, self._lb_rng)
            if node is None:
                conn.reason = E.unreachable(self, dst)
                conn.trace = [Step("(outside)", "route", verdict=conn.reason)]
                return conn
        elif via is not None:
            raise ValueError("via: only an external client enters the cluster at a chosen node")
        net = self._network()
        return net.connect(conn, net.node_index(node), entry.kind, ip_int(entry.src_ip), ip_int(dst), self.clock,
                           hold=bool(hold), clock=lambda: self.clock)

    def connect_many(self, src, dst, port, n, protocol="TCP", via=None, hold=False) -> Traffic:
        """``n`` new connections in engine batches: a Counter over backend pods ("namespace/name"),
        plus "rejected", "dropped" (and "host" for a node's own sockets), whose ``flows`` say who
        sent, where it entered, and which source address each pod saw.

        ``src`` may be a population (``kslib.clients(500)``, or ``behind_nat=True``): the ``n``
        connections are spread round robin over its clients. ``hold=True`` keeps the connections
        open (WebSocket or gRPC streams) across ``advance()`` until ``close()``: IPVS counts them
        as active, and ``open_connections()`` counts them per pod."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n: Invalid value: {n!r}: must be a non-negative integer")
        shares = src.shares(n) if isinstance(src, Clients) else Counter({src: n})
        traffic = Traffic()
        group = self._held_next if hold else 0
        pod_node = {p.key: p.node for p in self._network().pods}
        lb_nodes: dict = {}                   # the load balancer's healthy nodes, asked once per call
        for client, k in shares.items():
            self._batch(traffic, client, dst, port, k, protocol, via, group, pod_node, lb_nodes)
        if hold:
            self._held_next += 1
            self._held[group] = traffic
            traffic.held = True
            traffic._close = lambda: self._close_group(group, protocol)
        return traffic

    def _batch(self, traffic: Traffic, src, dst, port, n, protocol, via, group, pod_node, lb_nodes) -> None:
        entry, dst, port, protocol = self._entry(src, dst, port, protocol)
        net = self._network()
        if entry.kind != C.FROM_WIRE:
            if via is not None:
                raise ValueError("via: only an external client enters the cluster at a chosen node")
            shares = Counter({entry.node: n})
        else:
            if via is None and dst not in lb_nodes:
                svc = E.lb_service(self, dst)
                lb_nodes[dst] = E.healthy_nodes(self, svc) if svc is not None else None
            nodes = lb_nodes.get(dst) if via is None else None
            if nodes is not None:             # the load balancer spreads connections over healthy nodes
                picks = np.random.default_rng(self._lb_rng.getrandbits(64)).multinomial(
                    n, [1 / len(nodes)] * len(nodes)) if nodes else []
                shares = Counter({node: int(k) for node, k in zip(nodes, picks)})
            else:
                node = E.entry_node(self, entry, dst, via, self._lb_rng)
                shares = Counter({node: n}) if node else Counter()
            if n > sum(shares.values()):
                traffic.add(Flow(entry.src_ip, None, "dropped", None, None, None, n - sum(shares.values())))
        for node, k in sorted(shares.items()):
            if not k:
                continue
            counts = net.connect_many(net.node_index(node), entry.kind, ip_int(entry.src_ip), ip_int(dst),
                                      port, protocol, k, self.clock, group)
            seen = net.last_batch_seen
            entered = node if entry.kind == C.FROM_WIRE else None
            for key, c in sorted(counts.items()):
                if key in seen:
                    traffic.add(Flow(entry.src_ip, entered, "delivered", key, pod_node.get(key), ip(seen[key]), c))
                else:
                    traffic.add(Flow(entry.src_ip, entered, "delivered" if key == "host" else key, None, None, None, c))

    def _close_group(self, group: int, protocol: str) -> None:
        self._held.pop(group, None)
        self._network().close_group(group, protocol, self.clock)

    def open_connections(self) -> Counter:
        """Long-lived connections still open (``connect_many(..., hold=True)`` batches not closed),
        per backend pod; streams to a pod that is gone were reset and are not counted."""
        alive = {p.key for p in self.api.list("Pod") if not p.terminating}
        out: Counter = Counter()
        for traffic in self._held.values():
            for f in traffic.flows:
                if f.pod in alive:
                    out[f.pod] += f.connections
        return out

    def zone_traffic(self, src, dst, port, n, request_bytes: int = 1_000, response_bytes: int = 10_000,
                     price_per_gb: float = billing.PRICE_PER_GB, protocol="TCP", via=None) -> billing.ZoneTraffic:
        """``connect_many`` and account its bytes per (from zone, to zone): cross-zone and same-zone
        bytes, and the cross-zone cost in dollars at ``price_per_gb`` in each direction (kslib.billing)."""
        counts = self.connect_many(src, dst, port, n, protocol=protocol, via=via)
        return billing.zone_traffic(self, src, counts, request_bytes, response_bytes, price_per_gb=price_per_gb)

    def conntrack(self, node: str) -> list[str]:
        """``conntrack -L`` on the node: the connections it tracks and their NAT."""
        self._node(node)
        return self._network().conntrack(node, self.clock)

    # ---- DNS --------------------------------------------------------------------------------------------------
    def resolve(self, name, from_pod, qtype="A", *, getaddrinfo=True, libc="glibc") -> Resolution:
        """Look ``name`` up as the stub resolver in ``from_pod`` does (a pod "name" or
        "namespace/name", or a node name for the node's own resolver), walking its resolv.conf
        (search list, ndots) and asking its nameserver: the cluster DNS (``c.dns``) or, for
        ``dnsPolicy: Default`` and nodes, the upstream. ``qtype="A"`` with ``getaddrinfo=True`` is
        an application's getaddrinfo(AF_UNSPEC), what connecting by name does: A and AAAA for every
        candidate name; ``getaddrinfo=False`` asks A alone (getaddrinfo(AF_INET), ``host -t A``).
        Other types (SRV, TXT, ...) are asked alone per candidate, as res_search does. ``libc``:
        "glibc" or "musl" (Alpine images). See ``kslib.dns.Resolution``."""
        name = dns_names.check(name, "name")
        if not isinstance(qtype, str) or qtype.upper() not in QTYPES:
            raise ValueError(f"qtype: Unsupported value: {qtype!r}: supported values: " + ", ".join(QTYPES))
        qtype = qtype.upper()
        _, conf = self._dns_client(from_pod, "from_pod")
        return self._lookup(name, conf, ("A", "AAAA") if qtype == "A" and getaddrinfo else (qtype,), libc)

    def resolv_conf(self, from_pod) -> ResolvConf:
        """The /etc/resolv.conf of a pod ("name" or "namespace/name") as its kubelet wrote it, or a
        node's own; ``.text()`` prints it, ``.warnings`` holds the kubelet's DNSConfigForming events."""
        return self._dns_client(from_pod, "from_pod")[1]

    def _dns_client(self, ref, field: str) -> tuple[str, ResolvConf]:
        """(who, resolv.conf) for a pod or a node name, the pod first as ``connect``'s src."""
        if not isinstance(ref, str) or not ref:
            raise ValueError(f'{field}: {ref!r} must be a pod ("name" or "namespace/name") or a node name')
        pod = self.api.get("Pod", _key(ref, None))
        if pod is not None:
            if not pod.node_name:
                raise ValueError(f'{field}: pod "{pod.key}" is not on a node yet (phase {pod.phase}): '
                                 "the kubelet writes its resolv.conf when it starts it")
            return f"pod {pod.key}", self.kubelet_dns.for_pod(pod)
        if "/" not in ref and self.api.get("Node", ref) is not None:
            return f"node {ref}", self.kubelet_dns.host
        raise ValueError(f'{field}: pod "{_key(ref, None)}" not found (give "name" in the default namespace or '
                         '"namespace/name", or a node name)')

    def _lookup(self, name: str, conf: ResolvConf, qtypes: tuple, libc: str) -> Resolution:
        if not conf.nameservers:
            raise ValueError("resolv.conf has no nameserver: dnsPolicy None needs dnsConfig.nameservers")
        server = conf.nameservers[0]          # the first nameserver answers; the others are for timeouts
        ask = self.dns.query if server == self.dns.ip else self.dns.upstream.query
        return dns_walk(name, conf, ask, qtypes, libc, nameserver=server)

    def __repr__(self) -> str:
        return (f"Cluster(mode={self.mode!r}, nodes={len(self.nodes)}, pods={len(self.pods)}, "
                f"services={len(self.services)})")


def _listening(pod) -> tuple | None:
    """(protocol, port) the pod's containers declare; None (any port) when they declare none, since
    the model cannot know what an undeclared process listens on."""
    sidecars = [c for c in pod.init_containers if c.restart_policy == "Always"]
    ports = tuple((PROTO_NUMBERS.get(p.protocol, 6), p.container_port)
                  for c in pod.containers + sidecars for p in c.ports)
    return ports or None


__all__ = ["Cluster", "ValidationError", "MODES"]
