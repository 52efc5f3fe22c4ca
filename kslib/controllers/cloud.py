"""Load balancers for ``type: LoadBalancer`` Services: a cloud provider behind the
cloud-controller-manager's service controller, or MetalLB on bare metal. Without either, nothing
writes ``status.loadBalancer`` and ``kubectl get svc`` shows ``<pending>`` for ever.

``CloudProvider`` models k8s.io/cloud-provider controllers/service/controller.go with a provider
behind it:
- it handles a Service when ``type`` is LoadBalancer and ``spec.loadBalancerClass`` is unset
  (``wantsLoadBalancer``); any class means "some other implementation" and the Service stays
  pending unless that class is configured here (as a class-specific controller such as the
  aws-load-balancer-controller would);
- events (source ``service-controller``), exactly as the controller records them:
  EnsuringLoadBalancer "Ensuring load balancer", EnsuredLoadBalancer "Ensured load balancer",
  DeletingLoadBalancer "Deleting load balancer", DeletedLoadBalancer "Deleted load balancer",
  Warning SyncLoadBalancerFailed "Error syncing load balancer: failed to ensure load balancer: <err>",
  Warning UnAvailableLoadBalancer "There are no available nodes for LoadBalancer", UpdatedLoadBalancer
  "Updated load balancer with new hosts", and the spec-change events of ``needsUpdate`` (Type,
  LoadBalancerSourceRanges, LoadbalancerIP, ExternalIP, UID, ExternalTrafficPolicy, HealthCheckNodePort);
- the load balancer's node set: every node without the
  ``node.kubernetes.io/exclude-from-external-load-balancers`` label (any value). Since
  StableLoadBalancerNodeSet (beta 1.27, GA 1.30) a NotReady node stays in the set: its health check
  takes it out of rotation;
- health checks: with externalTrafficPolicy Local the LB probes ``healthCheckNodePort`` (kube-proxy
  answers 200 with at least one local *ready* endpoint, else 503; pkg/proxy/healthcheck/
  service_health.go), with Cluster kube-proxy's healthz on 10256 (proxier_health.go; the probe GCE and
  the KEP-3836 providers use), which answers 200 on every live node.

``MetalLB`` models metallb/metallb: the controller's IPAddressPool allocation (controller/service.go
convergeBalancer, internal/allocator, internal/config) and the speakers' announcement
(speaker/layer2_controller.go, bgp_controller.go):
- addresses are CIDRs or "a-b" ranges (config.ParseCIDR and its error texts); pools may not overlap;
- the address: the requested one (spec.loadBalancerIP or the metallb.io/loadBalancerIPs annotation,
  from any pool), else from the metallb.io/address-pool pool, else from the autoAssign pools, taken
  in Go map order, so in no promised order (kslib draws one from the seed); within a pool its CIDRs
  in order, each from its first address (.0 included unless avoidBuggyIPs). The pool's name goes
  into the metallb.io/ip-allocated-from-pool annotation;
- events (source ``metallb-controller``): IPAllocated 'Assigned IP ["<ip>"]', Warning
  AllocationFailed 'Failed to allocate IP for "<ns>/<name>": <err>' ("no available IPs" when the
  pools are exhausted), ClearAssignment;
- layer2: one speaker answers ARP for an address, the first eligible node sorted by
  sha256(node + "#" + ip); bgp: every eligible node advertises it and the router spreads flows.
  Eligible: alive, not excluded, and with externalTrafficPolicy Local holding a serving endpoint.
There is no health check and no hourly price.

Modelling choices: a NotReady node is down (its probes time out, its speaker is gone). No
load-balancer-cleanup finalizer: kslib's API server deletes at once and the controller cleans up from
its cache, as on the controller's non-finalizer path. No retry backoff: a failed Service is tried
again when it changes or an address comes free. Events are kept one per emission (no aggregation).

The IP pools are documentation ranges by default (RFC 5737 TEST-NET-3, 203.0.113.0/24). The default
hourly price, $0.025 per load balancer per hour, is AWS's Classic Load Balancer in us-east-1 (the
in-tree AWS provider's default kind of LB; GCP's first five forwarding rules cost the same); data
processing charges are not modelled.
"""
from __future__ import annotations

import copy
import datetime as dt
import hashlib
import ipaddress
import json
import math
import random
from dataclasses import dataclass, field
from decimal import Decimal

from ..api.errors import invalid
from ..api.names import is_qualified_name
from ..api.server import EPOCH
from ..api.service import LoadBalancerIngress, Service

EXCLUDE_LB_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"   # v1.LabelNodeExcludeBalancers
KUBE_PROXY_HEALTHZ_PORT = 10256
HOURS_PER_MONTH = 730                     # the clouds' price calculators: 730 hours a month
DEFAULT_POOL = "203.0.113.0/24"
DEFAULT_HOURLY_PRICE = 0.025
METALLB_POOL_ANNOTATION = "metallb.io/address-pool"
METALLB_IPS_ANNOTATION = "metallb.io/loadBalancerIPs"
METALLB_ALLOCATED_ANNOTATION = "metallb.io/ip-allocated-from-pool"
METALLB_MODES = ("layer2", "bgp")


# ---- results ---------------------------------------------------------------------------------------------
@dataclass
class ServiceEvent:
    """A core/v1 Event about a Service, as ``kubectl describe svc`` lists it."""
    type: str            # "Normal" | "Warning"
    reason: str
    message: str
    object: str          # "namespace/name"
    source: str          # the recording component
    time: float          # cluster clock

    def __str__(self) -> str:
        return f"{self.type:<7} {self.reason:<24} {self.source:<19} {self.message}"


@dataclass
class LoadBalancer:
    """One provisioned load balancer (or MetalLB address) for one Service."""
    service: str         # "namespace/name"
    uid: str
    ip: str
    name: str            # the cloud LB's name (DefaultLoadBalancerName), or the MetalLB pool
    hosts: list[str]     # nodes it may send to, before health checks
    created: float       # cluster clock
    hourly_price: float


@dataclass
class Probe:
    """One health check of one node: what the load balancer asked and what it got back.
    ``status`` None: no answer (the node is down)."""
    node: str
    url: str
    status: int | None
    body: str = ""
    headers: dict = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return self.status == 200

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class IngressComparison:
    """N LoadBalancer Services, one load balancer each, against one shared load balancer (an ingress
    controller's Service) in front of them as ClusterIP Services. An Ingress routes HTTP(S) only, so a
    Service with a port that is not TCP keeps its own load balancer."""
    services: list[str]           # the LoadBalancer Services this provider serves
    keep_own: list[str]           # those an Ingress cannot take (a UDP or SCTP port)
    hourly_price: float
    hours: float

    @property
    def per_service_lbs(self) -> int:
        return len(self.services)

    @property
    def shared_lbs(self) -> int:
        return (1 if len(self.services) > len(self.keep_own) else 0) + len(self.keep_own)

    @property
    def per_service_cost(self) -> float:
        return _money(self.per_service_lbs, self.hourly_price, self.hours)

    @property
    def shared_cost(self) -> float:
        return _money(self.shared_lbs, self.hourly_price, self.hours)

    @property
    def saving(self) -> float:
        return float(Decimal(str(self.per_service_cost)) - Decimal(str(self.shared_cost)))

    def __str__(self) -> str:
        rows = [("", "LOAD BALANCERS", "ADDRESSES", f"COST ({self.hours:g} h)"),
                ("one per Service", str(self.per_service_lbs), str(self.per_service_lbs),
                 f"${self.per_service_cost:,.2f}"),
                ("shared (Ingress)", str(self.shared_lbs), str(self.shared_lbs), f"${self.shared_cost:,.2f}")]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        out = "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
        if self.keep_own:
            out += "\nkeep their own load balancer (not HTTP-routable): " + ", ".join(self.keep_own)
        return out


def _money(count: int, price: float, hours: float) -> float:
    return float(Decimal(count) * Decimal(str(price)) * Decimal(str(hours)))


# ---- addresses -------------------------------------------------------------------------------------------
def parse_addresses(text, where: str) -> list[ipaddress.IPv4Network]:
    """A CIDR or an "a-b" range as MetalLB's config.ParseCIDR reads it (a range becomes the CIDRs that
    cover it, in order), with its error texts; IPv4 only (kslib's clusters are single-stack)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(str(invalid(where, text, "must be a CIDR (203.0.113.0/24) or a range "
                                                  "(203.0.113.10-203.0.113.20)")))
    if "-" not in text:
        try:
            net = ipaddress.ip_network(text.strip(), strict=False)
        except ValueError:
            raise ValueError(str(invalid(where, text, f'invalid CIDR "{text}"'))) from None
        nets = [net]
    else:
        a, b = (s.strip() for s in text.split("-", 1))
        try:
            start = ipaddress.ip_address(a)
        except ValueError:
            raise ValueError(str(invalid(where, text, f'invalid IP range "{text}": invalid start IP "{a}"'))) from None
        try:
            end = ipaddress.ip_address(b)
        except ValueError:
            raise ValueError(str(invalid(where, text, f'invalid IP range "{text}": invalid end IP "{b}"'))) from None
        if start.version == end.version and start > end:
            raise ValueError(str(invalid(where, text, f'invalid IP range "{text}": start IP "{start}" is after '
                                                      f'the end IP "{end}"')))
        if start.version != end.version:
            raise ValueError(str(invalid(where, text, f'invalid IP range "{text}": mixed IP families')))
        nets = list(ipaddress.summarize_address_range(start, end))
    if any(n.version != 4 for n in nets):
        raise ValueError(str(invalid(where, text, "IPv6 is not modelled (the cluster is single-stack IPv4)")))
    return nets


def _check_class(value) -> str | None:
    if value is None:
        return None
    errs = is_qualified_name(value) if isinstance(value, str) else ["must be a string such as example.com/lb"]
    if errs:
        raise ValueError(str(invalid("load_balancer_class", value, errs[0])))
    return value


def _go_time(clock: float) -> str:
    """time.Now().String() at the cluster clock: wall time, then the monotonic reading (the
    process started at clock 0)."""
    t = EPOCH + dt.timedelta(seconds=clock)
    ns = round((clock - math.floor(clock)) * 1e9) % 1_000_000_000
    frac = f".{ns:09d}".rstrip("0") if ns else ""
    return f"{t:%Y-%m-%d %H:%M:%S}{frac} +0000 UTC m=+{clock:.9f}"


# ---- what the load balancer sees of the nodes ----------------------------------------------------------
def lb_hosts(cluster) -> list[str]:
    """The service controller's node set (getNodeConditionPredicate / StableLoadBalancerNodeSet):
    nodes without the exclude-from-external-load-balancers label; readiness is left to the probes."""
    return [n.name for n in cluster.nodes if EXCLUDE_LB_LABEL not in n.metadata.labels]


def local_ready_endpoints(cluster, svc: Service, node: str) -> int:
    """kube-proxy's LocalReadyEndpoints: the distinct addresses of ready endpoints on ``node``
    (a serving but terminating endpoint does not count; pkg/proxy/endpointsmap.go)."""
    return len({a for s in cluster.endpoint_slices(svc.name, svc.namespace) for e in s.endpoints
                if e.node_name == node and e.conditions.is_ready for a in e.addresses})


def probe(cluster, svc: Service, node: str) -> Probe:
    """The load balancer's HTTP health check of ``node`` for ``svc``. The node's service proxy
    answers: kube-proxy in iptables/ipvs/nftables mode, the Cilium agent in ebpf mode (its health
    server, pkg/loadbalancer/healthserver, "headers and JSON output compatible with kube-proxy"; its
    10256 healthz needs kubeProxyReplacementHealthzBindAddr, assumed set as on clouds)."""
    n = cluster.api.get("Node", node)
    cilium = cluster.mode == "ebpf"
    hc = svc.health_check_node_port if svc.needs_health_check else 0
    port, path = (hc, "/healthz") if hc else (KUBE_PROXY_HEALTHZ_PORT, "/healthz")
    url = f"http://{n.internal_ip if n else node}:{port}{path}"
    if n is None or not n.ready:              # kslib's NotReady node is down: the probe times out
        return Probe(node, url, None)
    headers = {"Content-Type": "application/json", "X-Content-Type-Options": "nosniff"}
    if hc:
        count = local_ready_endpoints(cluster, svc, node)
        headers["X-Load-Balancing-Endpoint-Weight"] = str(count)          # kube-proxy >= 1.28, Cilium
        if cilium:      # json.NewEncoder(w).Encode: compact, one newline
            body = json.dumps({"service": {"namespace": svc.namespace, "name": svc.name},
                               "localEndpoints": count}, separators=(",", ":")) + "\n"
        else:           # service_health.go: a dedented multi-line literal, tabs kept
            body = ("{\n\t\"service\": {\n\t\t\"namespace\": " + json.dumps(svc.namespace) + ",\n\t\t\"name\": "
                    + json.dumps(svc.name) + "\n\t},\n\t\"localEndpoints\": " + str(count)
                    + ",\n\t\"serviceProxyHealthy\": true\n}")
        return Probe(node, url, 200 if count else 503, body, headers)
    now = _go_time(cluster.clock)             # healthy: lastUpdated is reported as the current time
    body = (f'{{"lastUpdated": "{now}","currentTime": "{now}"}}' if cilium
            else f'{{"lastUpdated": "{now}","currentTime": "{now}", "nodeEligible": true}}')
    return Probe(node, url, 200, body, headers)


def health_checked_nodes(cluster, svc: Service, hosts: list[str] | None = None) -> list[str]:
    hosts = lb_hosts(cluster) if hosts is None else hosts
    return [n for n in hosts if probe(cluster, svc, n).healthy]


def lb_nodes(cluster, svc: Service) -> list[str]:
    """Where the load balancer in front of ``svc`` sends new connections: the provider that made it
    decides (health checks, or MetalLB's announcing nodes). An ingress IP kslib did not provision
    (given in a manifest's status) is treated as a cloud load balancer with the usual health checks."""
    ctl = getattr(cluster, "cloud", None)
    if ctl is not None and ctl.owns(svc):
        return ctl._targets(svc)
    return health_checked_nodes(cluster, svc)


# ---- the controllers -------------------------------------------------------------------------------------
class _AllocationError(Exception):
    pass


class LoadBalancerController:
    """What CloudProvider and MetalLB share: a level-triggered loop over Services run by
    ``Cluster._settle``, status written through the API server (watchers see MODIFIED), events."""

    source = ""
    hourly_price = 0.0

    def __init__(self, load_balancer_class: str | None = None):
        self.load_balancer_class = _check_class(load_balancer_class)
        self.events: list[ServiceEvent] = []
        self._lbs: dict[str, LoadBalancer] = {}
        self._seen: dict[str, Service] = {}
        self._failed: set[str] = set()
        self._released = False
        self._cluster = None
        self._rng = random.Random(0)

    # ---- wiring ----------------------------------------------------------------------------------------
    def _attach(self, cluster) -> None:
        if self._cluster is not None and self._cluster is not cluster:
            raise ValueError(f"cloud: this {type(self).__name__} already serves another Cluster; "
                             "create one per cluster")
        self._cluster = cluster
        self._rng = random.Random(f"{cluster.seed}/{type(self).__name__}")
        ranges = {"service_cidr": cluster.service_cidr, "cluster_cidr": cluster.cluster_cidr,
                  "node_cidr": str(cluster.api.node_net)}
        for where, nets in self._address_ranges():
            for net in nets:
                for name, cidr in ranges.items():
                    if net.overlaps(ipaddress.ip_network(cidr, strict=False)):
                        raise ValueError(str(invalid(where, str(net), f"overlaps the cluster's {name} {cidr}: "
                                                     "load-balancer addresses must be outside the cluster's ranges")))

    def _address_ranges(self):
        return []

    @property
    def _api(self):
        if self._cluster is None:
            raise RuntimeError(f"this {type(self).__name__} is not attached: pass it as kslib.Cluster(cloud=...)")
        return self._cluster.api

    # ---- the loop ----------------------------------------------------------------------------------------
    def sync(self) -> None:
        """One pass of the controller over every Service (inside Cluster._settle's transaction)."""
        services = {s.key: s for s in self._api.list("Service")}
        self._released = False
        self._pass(services, set(services), retry=set())
        if self._released and self._failed:             # an address came free: try the pending ones again
            self._pass({k: services[k] for k in sorted(self._failed) if k in services}, set(services),
                       retry=set(self._failed))
        self._sync_hosts()

    def _pass(self, services: dict, existing: set, retry: set) -> None:
        for key in sorted(set(self._seen) - existing):
            old = self._seen.pop(key)
            self._failed.discard(key)
            self._deleted(old)
        for key in sorted(services):
            svc = services[key]
            old = self._seen.get(key)
            if old is not None and old.metadata.uid != svc.metadata.uid:     # deleted and re-created
                self._deleted(old)
                self._failed.discard(key)
                old = None
            if self._should_sync(old, svc) or key in retry:
                self._seen[key] = svc
                self._failed.discard(key)
                self._reconcile(svc, old)
            else:
                self._seen[key] = svc
                self._repair_status(svc)

    def _should_sync(self, old: Service | None, svc: Service) -> bool:
        raise NotImplementedError

    def _reconcile(self, svc: Service, old: Service | None) -> None:
        raise NotImplementedError

    def _deleted(self, old: Service) -> None:
        raise NotImplementedError

    def _sync_hosts(self) -> None:
        pass

    # ---- helpers -------------------------------------------------------------------------------------------
    def handles(self, svc: Service) -> bool:
        """Whether this controller implements ``svc``'s class (unset class: the default controller)."""
        return svc.load_balancer_class == self.load_balancer_class

    def owns(self, svc: Service) -> bool:
        """Whether ``svc``'s ingress IP is a load balancer this controller provisioned."""
        lb = self._lbs.get(svc.key)
        return lb is not None and lb.uid == svc.metadata.uid and any(i.ip == lb.ip for i in svc.ingress)

    def _event(self, svc: Service, type_: str, reason: str, message: str) -> None:
        self.events.append(ServiceEvent(type_, reason, message, svc.key, self.source, self._cluster.clock))

    def _write(self, svc: Service, ip: str | None, annotations: dict | None = None) -> None:
        """Patch status.loadBalancer (and annotations) when they differ from what is stored."""
        want = [(ip, "")] if ip else []
        have = [(i.ip, i.hostname) for i in svc.ingress]
        anns = dict(svc.metadata.annotations)
        for k, v in (annotations or {}).items():
            if v is None:
                anns.pop(k, None)
            else:
                anns[k] = v
        if want == have and anns == svc.metadata.annotations:
            return
        new = copy.deepcopy(svc)
        # the API server defaults ipMode to VIP (LoadBalancerIPMode, GA 1.32)
        new.ingress = [LoadBalancerIngress(ip=ip, ip_mode="VIP")] if ip else []
        new.metadata.annotations = anns
        self._seen[svc.key] = self._api.write(new)

    def _repair_status(self, svc: Service) -> None:
        lb = self._lbs.get(svc.key)
        if lb is not None and lb.uid == svc.metadata.uid and [i.ip for i in svc.ingress] != [lb.ip]:
            self._write(svc, lb.ip, self._status_annotations(lb))

    def _status_annotations(self, lb: LoadBalancer) -> dict:
        return {}

    def _release(self, key: str) -> LoadBalancer | None:
        lb = self._lbs.pop(key, None)
        if lb is not None:
            self._released = True
        return lb

    def _service(self, service, namespace: str) -> Service:
        key = service if "/" in service else f"{namespace}/{service}"
        svc = self._api.get("Service", key)
        if svc is None:
            raise KeyError(f'services "{key.split("/", 1)[1]}" not found in namespace "{key.split("/", 1)[0]}"')
        return svc

    def _targets(self, svc: Service) -> list[str]:
        raise NotImplementedError

    # ---- public views ---------------------------------------------------------------------------------------
    @property
    def load_balancers(self) -> list[LoadBalancer]:
        return [self._lbs[k] for k in sorted(self._lbs)]

    def events_for(self, service: str, namespace: str = "default") -> list[ServiceEvent]:
        """The events recorded about one Service ("name" or "namespace/name")."""
        key = service if "/" in service else f"{namespace}/{service}"
        return [e for e in self.events if e.object == key]

    def nodes_for(self, service: str, namespace: str = "default") -> list[str]:
        """The nodes the load balancer of ``service`` sends new connections to ([] while pending)."""
        svc = self._service(service, namespace)
        return self._targets(svc) if self.owns(svc) else []

    def monthly_cost(self, hours: float = HOURS_PER_MONTH) -> float:
        """What the load balancers provisioned now cost over ``hours``: count x hourly price x hours."""
        _check_hours(hours)
        return _money(len(self._lbs), self.hourly_price, hours)

    def ingress_alternative(self, hours: float = HOURS_PER_MONTH) -> IngressComparison:
        """The same Services behind one shared load balancer (an ingress controller's Service) as
        ClusterIP Services, against one load balancer each."""
        _check_hours(hours)
        services = sorted(self._lbs)
        keep = [k for k in services
                if any(p.protocol != "TCP" for p in getattr(self._api.get("Service", k), "ports", []))]
        return IngressComparison(services, keep, self.hourly_price, hours)


def _check_hours(hours) -> None:
    if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not math.isfinite(hours) or hours < 0:
        raise ValueError(str(invalid("hours", hours, "must be a non-negative number")))


# ---- a cloud -----------------------------------------------------------------------------------------------
def _needs_update(old: Service, new: Service, wants) -> tuple[bool, tuple[str, str] | None]:
    """controller.go needsUpdate: whether a Service change needs a load-balancer sync, and the event
    it records (the first difference that has one)."""
    if not wants(old) and not wants(new):
        return False, None
    if wants(old) != wants(new):
        return True, ("Type", f"{old.type} -> {new.type}")
    if old.load_balancer_source_ranges != new.load_balancer_source_ranges:
        return True, ("LoadBalancerSourceRanges", f"{_go_list(old.load_balancer_source_ranges)} -> "
                                                  f"{_go_list(new.load_balancer_source_ranges)}")
    ports = [(p.name, p.protocol, p.port, p.node_port, str(p.resolved_target)) for p in old.ports]
    if ports != [(p.name, p.protocol, p.port, p.node_port, str(p.resolved_target)) for p in new.ports] \
            or old.session_affinity != new.session_affinity or old.affinity_config != new.affinity_config:
        return True, None
    if old.load_balancer_ip != new.load_balancer_ip:
        return True, ("LoadbalancerIP", f"{old.load_balancer_ip} -> {new.load_balancer_ip}")
    if len(old.external_ips) != len(new.external_ips):
        return True, ("ExternalIP", f"Count: {len(old.external_ips)} -> {len(new.external_ips)}")
    for a, b in zip(old.external_ips, new.external_ips):
        if a != b:
            return True, ("ExternalIP", f"Added: {b}")
    if old.metadata.annotations != new.metadata.annotations:
        return True, None
    if old.metadata.uid != new.metadata.uid:
        return True, ("UID", f"{old.metadata.uid} -> {new.metadata.uid}")
    if old.external_traffic_policy != new.external_traffic_policy:
        return True, ("ExternalTrafficPolicy", f"{old.external_traffic_policy} -> {new.external_traffic_policy}")
    if old.health_check_node_port != new.health_check_node_port:
        return True, ("HealthCheckNodePort", f"{old.health_check_node_port} -> {new.health_check_node_port}")
    return False, None


def _go_list(xs) -> str:
    return "[" + " ".join(xs) + "]"


class CloudProvider(LoadBalancerController):
    """A cloud's load balancers, provisioned by the cloud-controller-manager's service controller:
    one load balancer per Service, its ingress IP from ``pool`` (a CIDR, an "a-b" range, or a list of
    them; a CIDR's network and broadcast addresses are skipped), ``hourly_price`` dollars per load
    balancer per hour. ``load_balancer_class`` None serves Services without a class (the default
    service controller); a class serves only Services of that class."""

    source = "service-controller"

    def __init__(self, pool=DEFAULT_POOL, hourly_price: float = DEFAULT_HOURLY_PRICE,
                 load_balancer_class: str | None = None):
        super().__init__(load_balancer_class)
        texts = [pool] if isinstance(pool, str) else pool
        if not isinstance(texts, (list, tuple)) or not texts:
            raise ValueError(str(invalid("pool", pool, "must be a CIDR (203.0.113.0/24), a range "
                                                       "(203.0.113.10-203.0.113.20) or a list of them")))
        self.pool = list(texts)
        self._nets = [parse_addresses(t, f"pool[{i}]" if len(texts) > 1 else "pool") for i, t in enumerate(texts)]
        if isinstance(hourly_price, bool) or not isinstance(hourly_price, (int, float)) \
                or not math.isfinite(hourly_price) or hourly_price < 0:
            raise ValueError(str(invalid("hourly_price", hourly_price,
                                         "must be a non-negative number of dollars per load balancer per hour")))
        self.hourly_price = float(hourly_price)

    def __repr__(self) -> str:
        cls = f", load_balancer_class={self.load_balancer_class!r}" if self.load_balancer_class else ""
        return f"CloudProvider(pool={self._pool_text()!r}, hourly_price={self.hourly_price}{cls})"

    def _pool_text(self) -> str:
        return ",".join(self.pool)

    def _address_ranges(self):
        where = ["pool"] if len(self.pool) == 1 else [f"pool[{i}]" for i in range(len(self.pool))]
        return list(zip(where, self._nets))

    def _addresses(self):
        """The pool in order: each range's addresses, a CIDR's host addresses."""
        for text, nets in zip(self.pool, self._nets):
            ranged = "-" in text
            for net in nets:
                yield from (net if ranged or net.prefixlen >= 31 else net.hosts())

    def _in_pool(self, ip: ipaddress.IPv4Address) -> bool:
        for text, nets in zip(self.pool, self._nets):
            for net in nets:
                if ip in net:
                    return "-" in text or net.prefixlen >= 31 or ip not in (net.network_address,
                                                                            net.broadcast_address)
        return False

    def wants(self, svc: Service) -> bool:
        """wantsLoadBalancer (with this controller's class)."""
        return svc.type == "LoadBalancer" and self.handles(svc)

    # ---- the service controller ------------------------------------------------------------------------
    def _should_sync(self, old, svc) -> bool:
        if old is None:
            return self.wants(svc) or svc.key in self._lbs        # AddFunc: wantsLoadBalancer || needsCleanup
        if old is svc:
            return False
        needed, event = _needs_update(old, svc, self.wants)
        if event:
            self._event(svc, "Normal", *event)
        return needed

    def _reconcile(self, svc, old) -> None:
        """syncLoadBalancerIfNeeded."""
        key = svc.key
        if not self.wants(svc):
            lb = self._lbs.get(key)
            if lb is not None:
                self._event(svc, "Normal", "DeletingLoadBalancer", "Deleting load balancer")
                self._release(key)
            self._event(svc, "Normal", "DeletedLoadBalancer", "Deleted load balancer")
            self._write(svc, None)
            return
        self._event(svc, "Normal", "EnsuringLoadBalancer", "Ensuring load balancer")
        hosts = lb_hosts(self._cluster)
        if not hosts:
            self._event(svc, "Warning", "UnAvailableLoadBalancer", "There are no available nodes for LoadBalancer")
        try:
            lb = self._ensure(svc, hosts)
        except _AllocationError as e:
            self._event(svc, "Warning", "SyncLoadBalancerFailed",
                        f"Error syncing load balancer: failed to ensure load balancer: {e}")
            self._failed.add(key)
            return
        self._event(svc, "Normal", "EnsuredLoadBalancer", "Ensured load balancer")
        self._write(svc, lb.ip)

    def _deleted(self, old) -> None:
        """processServiceDeletion: only for a Service that wanted a load balancer."""
        if self.wants(old) or old.key in self._lbs:
            self._event(old, "Normal", "DeletingLoadBalancer", "Deleting load balancer")
            self._release(old.key)
            self._event(old, "Normal", "DeletedLoadBalancer", "Deleted load balancer")

    def _sync_hosts(self) -> None:
        """nodeSyncInternal: a changed node set updates every load balancer."""
        hosts = lb_hosts(self._cluster)
        for key in sorted(self._lbs):
            lb = self._lbs[key]
            if lb.hosts != hosts:
                lb.hosts = list(hosts)
                svc = self._api.get("Service", key)
                if svc is not None:
                    if hosts:
                        self._event(svc, "Normal", "UpdatedLoadBalancer", "Updated load balancer with new hosts")
                    else:
                        self._event(svc, "Warning", "UnAvailableLoadBalancer",
                                    "There are no available nodes for LoadBalancer")

    # ---- the provider (EnsureLoadBalancer); its error texts are kslib's --------------------------------------
    def _ensure(self, svc: Service, hosts: list[str]) -> LoadBalancer:
        key = svc.key
        lb = self._lbs.get(key)
        taken = {b.ip: k for k, b in self._lbs.items() if k != key}
        want = svc.load_balancer_ip.strip()
        if want and (lb is None or lb.ip != want):
            try:
                ip = ipaddress.IPv4Address(want)
            except ValueError:
                raise _AllocationError(f"requested loadBalancerIP {want!r} is not an IPv4 address") from None
            if not self._in_pool(ip):
                raise _AllocationError(f"requested loadBalancerIP {ip} is not in the provider's address pool "
                                       f"{self._pool_text()}")
            if str(ip) in taken:
                raise _AllocationError(f"requested loadBalancerIP {ip} is in use by the load balancer of "
                                       f"{taken[str(ip)]}")
            address = str(ip)
        elif lb is not None:
            address = lb.ip
        else:
            address = next((str(a) for a in self._addresses() if str(a) not in taken), None)
            if address is None:
                raise _AllocationError(f"no free address in the provider's address pool {self._pool_text()}")
        if lb is None:
            # k8s.io/cloud-provider DefaultLoadBalancerName: "a" + UID without dashes, at most 32 bytes
            name = ("a" + svc.metadata.uid.replace("-", ""))[:32]
            lb = LoadBalancer(key, svc.metadata.uid, address, name, list(hosts), self._cluster.clock, self.hourly_price)
            self._lbs[key] = lb
        else:
            self._released |= lb.ip != address          # a move frees the old address
            lb.ip, lb.hosts = address, list(hosts)
        return lb

    # ---- health checks -----------------------------------------------------------------------------------------
    def health(self, service: str, namespace: str = "default") -> dict[str, Probe]:
        """The load balancer's health checks of its nodes for ``service``: node -> Probe (status
        code, body, headers). Nodes excluded from load balancers are not probed."""
        svc = self._service(service, namespace)
        if not self.owns(svc):
            raise ValueError(f"service {svc.key} has no load balancer from this provider "
                             f"(EXTERNAL-IP {'<pending>' if not svc.ingress else svc.ingress[0].ip})")
        return {n: probe(self._cluster, svc, n) for n in self._lbs[svc.key].hosts}

    def _targets(self, svc: Service) -> list[str]:
        return health_checked_nodes(self._cluster, svc, self._lbs[svc.key].hosts)


# ---- bare metal: MetalLB -------------------------------------------------------------------------------------
@dataclass
class IPAddressPool:
    """A MetalLB IPAddressPool (metallb.io/v1beta1): ``addresses`` as CIDRs or "a-b" ranges,
    ``auto_assign`` (spec.autoAssign, default true), ``avoid_buggy_ips`` (spec.avoidBuggyIPs: skip
    addresses ending in .0 or .255)."""
    name: str
    addresses: list[str]
    auto_assign: bool = True
    avoid_buggy_ips: bool = False

    @classmethod
    def of(cls, obj, where: str) -> "IPAddressPool":
        """From an IPAddressPool, its manifest dict (with ``spec``), a flat dict, or a string."""
        if isinstance(obj, IPAddressPool):
            return obj
        if isinstance(obj, str):
            return cls("default", [obj])
        if isinstance(obj, dict):
            spec = obj.get("spec", obj)
            name = (obj.get("metadata") or {}).get("name") if "spec" in obj else obj.get("name")
            return cls(name or "default", spec.get("addresses"), spec.get("autoAssign", spec.get("auto_assign", True)),
                       spec.get("avoidBuggyIPs", spec.get("avoid_buggy_ips", False)))
        raise ValueError(str(invalid(where, obj, "must be an IPAddressPool, its manifest, or a CIDR/range string")))


class MetalLB(LoadBalancerController):
    """MetalLB on bare metal: addresses from IPAddressPools, no hourly price. ``pools``: a CIDR or range
    string, or a list of IPAddressPool objects, IPAddressPool manifests (dicts) or strings (a string
    list is one pool named "default"). ``mode`` "layer2" (one node answers ARP for each address) or
    "bgp" (every eligible node advertises it; the router spreads flows over them)."""

    source = "metallb-controller"

    def __init__(self, pools=(), mode: str = "layer2", load_balancer_class: str | None = None):
        super().__init__(load_balancer_class)
        if mode not in METALLB_MODES:
            raise ValueError(f'mode: Unsupported value: "{mode}": supported values: "layer2", "bgp"')
        self.mode = mode
        if isinstance(pools, str):
            pools = [pools]
        if not isinstance(pools, (list, tuple)):
            raise ValueError(str(invalid("pools", pools, "must be a list of IPAddressPools")))
        if pools and all(isinstance(p, str) for p in pools):
            pools = [IPAddressPool("default", list(pools))]
        self.pools: list[IPAddressPool] = []
        self._cidrs: dict[str, list[ipaddress.IPv4Network]] = {}
        seen: list[tuple[ipaddress.IPv4Network, str]] = []
        for i, raw in enumerate(pools):
            p = IPAddressPool.of(raw, f"pools[{i}]")
            where = f"pools[{i}]"
            if not isinstance(p.name, str) or not p.name:
                raise ValueError(str(invalid(f"{where}.name", p.name, "must be a non-empty name")))
            if p.name in self._cidrs:           # config.go: duplicate definition of pool
                raise ValueError(str(invalid(f"{where}.name", p.name, f'duplicate definition of pool "{p.name}"')))
            if isinstance(p.addresses, str) or not isinstance(p.addresses, (list, tuple)) or not p.addresses:
                raise ValueError(str(invalid(f"{where}.addresses", p.addresses, "must be a non-empty list of CIDRs "
                                                                                  "or ranges")))
            if not isinstance(p.auto_assign, bool) or not isinstance(p.avoid_buggy_ips, bool):
                raise ValueError(str(invalid(f"{where}", p.name, "autoAssign and avoidBuggyIPs must be booleans")))
            cidrs = []
            for j, text in enumerate(p.addresses):
                for net in parse_addresses(text, f"{where}.addresses[{j}]"):
                    for other, owner in seen:         # config.go: pools may not overlap
                        if net.overlaps(other):
                            raise ValueError(str(invalid(f"{where}.addresses[{j}]", text,
                                                         f'CIDR "{net}" in pool "{p.name}" overlaps with already '
                                                         f'defined CIDR "{other}"')))
                    seen.append((net, p.name))
                    cidrs.append(net)
            self.pools.append(IPAddressPool(p.name, list(p.addresses), p.auto_assign, p.avoid_buggy_ips))
            self._cidrs[p.name] = cidrs

    def __repr__(self) -> str:
        return f"MetalLB(pools={[p.name for p in self.pools]}, mode={self.mode!r})"

    def _address_ranges(self):
        return [(f"pools[{i}]", self._cidrs[p.name]) for i, p in enumerate(self.pools)]

    # ---- the allocator (internal/allocator) --------------------------------------------------------------------
    def _pool_for(self, ip: ipaddress.IPv4Address) -> IPAddressPool | None:
        for p in self.pools:
            if p.avoid_buggy_ips and ip.packed[3] in (0, 255):
                continue
            if any(ip in c for c in self._cidrs[p.name]):
                return p
        return None

    def _free_in(self, pool: IPAddressPool, key: str) -> str | None:
        """getIPFromCIDR: each CIDR of the pool in order, each from its first address (network and
        broadcast included unless avoidBuggyIPs)."""
        used = {lb.ip for k, lb in self._lbs.items() if k != key}
        for cidr in self._cidrs[pool.name]:
            for ip in cidr:
                if pool.avoid_buggy_ips and ip.packed[3] in (0, 255):
                    continue
                if str(ip) not in used:
                    return str(ip)
        return None

    def _desired_ips(self, svc: Service) -> list[str]:
        """getDesiredLbIPs: the metallb.io/loadBalancerIPs annotation or spec.loadBalancerIP."""
        ann = svc.metadata.annotations.get(METALLB_IPS_ANNOTATION, "")
        if ann and svc.load_balancer_ip:
            raise _AllocationError(f"service can not have both {METALLB_IPS_ANNOTATION} and svc.Spec.LoadBalancerIP")
        if ann:
            out = []
            for part in ann.split(","):
                try:
                    out.append(str(ipaddress.ip_address(part.strip())))
                except ValueError:
                    raise _AllocationError(f'invalid {METALLB_IPS_ANNOTATION}: "{ann}"') from None
            return out
        if svc.load_balancer_ip:
            try:
                return [str(ipaddress.ip_address(svc.load_balancer_ip))]
            except ValueError:
                raise _AllocationError(f'invalid spec.loadBalancerIP "{svc.load_balancer_ip}"') from None
        return []

    def _allocate(self, svc: Service) -> tuple[str, str]:
        """allocateIPs: the requested IP, else the requested pool, else the auto-assign pools."""
        key = svc.key
        desired = self._desired_ips(svc)
        want_pool = svc.metadata.annotations.get(METALLB_POOL_ANNOTATION, "")
        if desired:
            shown = "[" + " ".join(f'"{d}"' for d in desired) + "]"
            if len(desired) > 1 or ipaddress.ip_address(desired[0]).version != 4:
                raise _AllocationError(f"requested loadBalancer IP(s) {shown} does not match the ipFamily of "
                                       "the service")
            pool = self._pool_for(ipaddress.IPv4Address(desired[0]))
            if pool is None:
                raise _AllocationError(f"{shown} is not allowed in config")
            owner = next((k for k, lb in self._lbs.items() if lb.ip == desired[0] and k != key), None)
            if owner is not None:    # sharing (metallb.io/allow-shared-ip) is not modelled
                raise _AllocationError(f'can\'t change sharing key for "{key}", address also in use by {owner}')
            if want_pool and pool.name != want_pool:
                raise _AllocationError(f"requested loadBalancer IP(s) {shown} is not compatible with requested "
                                       f"address pool {want_pool}")
            return desired[0], pool.name
        if want_pool:
            pool = next((p for p in self.pools if p.name == want_pool), None)
            if pool is None:
                raise _AllocationError(f'unknown pool "{want_pool}"')
            ip = self._free_in(pool, key)
            if ip is None:
                raise _AllocationError(f'no available IPs in pool "{want_pool}"')
            return ip, pool.name
        # Allocate ranges over a Go map of pools: no order is promised; kslib draws one from the seed
        auto = [p for p in self.pools if p.auto_assign]
        self._rng.shuffle(auto)
        for pool in auto:
            ip = self._free_in(pool, key)
            if ip is not None:
                return ip, pool.name
        raise _AllocationError("no available IPs")

    # ---- the controller (controller/service.go convergeBalancer) ----------------------------------------------
    def _should_sync(self, old, svc) -> bool:
        return old is not svc and self.handles(svc)     # filterByLoadBalancerClass; any change reconciles

    def _clear(self, svc: Service) -> None:
        """clearServiceState: unassign, drop the pool annotation, empty the status."""
        self._release(svc.key)
        self._write(svc, None, {METALLB_ALLOCATED_ANNOTATION: None})

    def _reconcile(self, svc, old) -> None:
        key = svc.key
        if svc.type != "LoadBalancer" or not self.pools:
            self._clear(svc)
            return
        lb = self._lbs.get(key)
        if lb is not None and lb.uid != svc.metadata.uid:
            self._release(key)
            lb = None
        if lb is not None:
            want_pool = svc.metadata.annotations.get(METALLB_POOL_ANNOTATION, "")
            try:
                desired = self._desired_ips(svc)
            except _AllocationError as e:
                self._event(svc, "Warning", "LoadBalancerFailed", f"invalid requested loadbalancer IPs: {e}")
                return
            if (want_pool and lb.name != want_pool) or (desired and desired != [lb.ip]):
                self._clear(svc)          # the user asked for another pool or address
                svc = self._api.get("Service", key)
                lb = None
        if lb is None and svc.ingress and svc.ingress[0].ip:
            lb = self._adopt(svc)               # an address in the status (given, or from before) is kept
        if lb is None:
            try:
                ip, pool = self._allocate(svc)
            except _AllocationError as e:
                self._event(svc, "Warning", "AllocationFailed", f'Failed to allocate IP for "{key}": {e}')
                self._failed.add(key)
                self._write(svc, None, {METALLB_ALLOCATED_ANNOTATION: None})
                return
            lb = self._lbs[key] = LoadBalancer(key, svc.metadata.uid, ip, pool, lb_hosts(self._cluster),
                                               self._cluster.clock, 0.0)
            self._event(svc, "Normal", "IPAllocated", f'Assigned IP ["{ip}"]')
        self._write(svc, lb.ip, self._status_annotations(lb))

    def _status_annotations(self, lb: LoadBalancer) -> dict:
        return {METALLB_ALLOCATED_ANNOTATION: lb.name}

    def _adopt(self, svc: Service) -> LoadBalancer | None:
        """convergeBalancer with an IP already in the status: Assign it if the config allows (and it
        matches the requested pool and address), else ClearAssignment and allocate anew."""
        key, ip = svc.key, svc.ingress[0].ip
        shown = f'["{ip}"]'
        try:
            addr = ipaddress.IPv4Address(ip)
        except ValueError:
            return None
        pool = self._pool_for(addr)
        owner = next((k for k, b in self._lbs.items() if b.ip == ip and k != key), None)
        if pool is None or owner is not None:
            why = (f"{shown} is not allowed in config" if pool is None else
                   f'can\'t change sharing key for "{key}", address also in use by {owner}')
            self._event(svc, "Normal", "ClearAssignment", f'current IP for "{key}" not allowed by config, will '
                                                          f"attempt for new IP assignment: {why}")
            return None
        try:
            desired = self._desired_ips(svc)
        except _AllocationError:
            return None
        want_pool = svc.metadata.annotations.get(METALLB_POOL_ANNOTATION, "")
        if (want_pool and pool.name != want_pool) or (desired and desired != [ip]):
            return None
        lb = self._lbs[key] = LoadBalancer(key, svc.metadata.uid, ip, pool.name, lb_hosts(self._cluster),
                                           self._cluster.clock, 0.0)
        return lb

    def _deleted(self, old) -> None:
        self._release(old.key)                  # the Service is gone: no event to record on it

    def _sync_hosts(self) -> None:
        hosts = lb_hosts(self._cluster)
        for lb in self._lbs.values():
            lb.hosts = list(hosts)

    # ---- the speakers ------------------------------------------------------------------------------------------
    def announcements(self, service: str, namespace: str = "default") -> dict[str, str]:
        """Each node's speaker on ``service``'s address: "" announces it, otherwise ShouldAnnounce's
        reason ("notOwner", "noLocalEndpoints", "noEndpoints", "nodeLabeledExcludeBalancers",
        "speakerDown" for a NotReady node)."""
        svc = self._service(service, namespace)
        if not self.owns(svc):
            raise ValueError(f"service {svc.key} has no address from MetalLB (EXTERNAL-IP <pending>)")
        return self._announce(svc)

    def _announce(self, svc: Service) -> dict[str, str]:
        cluster = self._cluster
        ip = self._lbs[svc.key].ip
        serving = {}                   # node -> has a serving endpoint (epslices.EndpointCanServe)
        for s in cluster.endpoint_slices(svc.name, svc.namespace):
            for e in s.endpoints:
                if e.node_name and (e.conditions.is_ready or e.conditions.serving):
                    serving[e.node_name] = True
        local = svc.external_traffic_policy == "Local"
        out = {}
        for n in cluster.nodes:
            if not n.ready:
                out[n.name] = "speakerDown"
            elif EXCLUDE_LB_LABEL in n.metadata.labels:
                out[n.name] = "nodeLabeledExcludeBalancers"
            elif not serving:
                out[n.name] = "noEndpoints" if self.mode == "bgp" else "notOwner"
            elif local and n.name not in serving:
                out[n.name] = "noLocalEndpoints" if self.mode == "bgp" else "notOwner"
            else:
                out[n.name] = ""
        if self.mode == "layer2":
            # the election: candidates sorted by sha256(node + "#" + ip), the first one answers ARP
            candidates = sorted((n for n, r in out.items() if r == ""),
                                key=lambda n: hashlib.sha256(f"{n}#{ip}".encode()).digest())
            for n in candidates[1:]:
                out[n] = "notOwner"
        return out

    def _targets(self, svc: Service) -> list[str]:
        return [n for n, reason in self._announce(svc).items() if reason == ""]


__all__ = ["CloudProvider", "EXCLUDE_LB_LABEL", "HOURS_PER_MONTH", "IPAddressPool", "IngressComparison",
           "LoadBalancer", "LoadBalancerController", "MetalLB", "Probe", "ServiceEvent", "health_checked_nodes",
           "lb_hosts", "lb_nodes", "local_ready_endpoints", "parse_addresses", "probe"]
