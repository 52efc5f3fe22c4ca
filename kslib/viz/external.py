"""Traffic from outside the cluster, as lessons 9 (NodePort and externalTrafficPolicy) and 10
(LoadBalancer Services and the cloud) measure it: the clusters they build, where external
connections enter and land, what the backends see as the client address, which nodes expose which
ports, and what the load balancers cost. Every function drives the public model (``kslib.Cluster``,
``connect``/``connect_many``, ``kslib.CloudProvider``/``kslib.MetalLB``) and reads what it reports;
the only logic of their own is bookkeeping (shares, ratios, the rule lines a lesson points at)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..api.errors import ValidationError
from ..cluster import Cluster
from ..controllers import cloud as cloudmod
from ..traffic import clients
from .tables import get_services

# ---- lesson 9: the web Deployment and its Service ----------------------------------------------------------
ANTI_AFFINITY = """      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: web}}
            topologyKey: kubernetes.io/hostname
"""
TOPOLOGY_SPREAD = """      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: DoNotSchedule
        labelSelector: {matchLabels: {app: web}}
"""
SPREADS = {"packed": "", "anti-affinity": ANTI_AFFINITY, "topology-spread": TOPOLOGY_SPREAD}
POLICIES = ("Cluster", "Local")
JOINING = ("node-2", "node-3", "node-4")


def web_manifests(replicas: int = 3, policy: str = "Cluster", spread: str = "packed",
                  service_type: str = "LoadBalancer") -> str:
    """A Deployment ``web`` (nginx on 8080; ``spread`` adds required pod anti-affinity or a maxSkew 1
    topology spread constraint on kubernetes.io/hostname to its pod template) and a Service ``web``
    of ``service_type`` on port 80 with externalTrafficPolicy ``policy``."""
    if spread not in SPREADS:
        raise ValueError(f"spread: Unsupported value: {spread!r}: supported values: " + ", ".join(SPREADS))
    return f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: web, image: nginx:1.27, ports: [{{containerPort: 8080}}]}}]
{SPREADS[spread]}---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  type: {service_type}
  externalTrafficPolicy: {policy}
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
"""


def join_nodes(cluster: Cluster, names) -> None:
    """New worker nodes join (``kubeadm join``): Node objects with their hostname label."""
    cluster.apply([{"apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": n, "labels": {"kubernetes.io/hostname": n}}} for n in names])


def settle_rollout(cluster: Cluster, step: float = 30, limit: int = 20) -> int:
    """Advance the clock ``step`` seconds at a time (the default terminationGracePeriodSeconds) until
    no pod is terminating or unbound-but-schedulable; returns the steps taken."""
    for i in range(limit):
        if not any(p.terminating for p in cluster.pods):
            return i
        cluster.advance(step)
    return limit


def grown_cluster(policy: str = "Local", spread: str = "packed", replicas: int = 4, seed: int = 0,
                  cloud=None) -> Cluster:
    """How pods end up packed in practice. A one-node cluster runs 3 replicas of ``web`` (a
    LoadBalancer Service with externalTrafficPolicy ``policy``); node-2..node-4 join; the Deployment is
    scaled to ``replicas``. The scheduler places each new pod once and never moves a running one, so the
    first three stay on node-1. With ``spread`` other than "packed", the pod template then gains that
    constraint and the rollout re-creates every pod under it (``kubectl apply``, then the old pods'
    grace period). ``cloud`` defaults to a ``kslib.CloudProvider()``. A refused ``replicas`` raises
    the API server's ``kslib.ValidationError`` (and the half-built cluster is dropped)."""
    if policy not in POLICIES:
        raise ValueError(f"policy: Unsupported value: {policy!r}: supported values: Cluster, Local")
    c = Cluster(nodes=1, seed=seed, cloud=cloudmod.CloudProvider() if cloud is None else cloud)
    c.apply(web_manifests(3, policy, "packed"))
    join_nodes(c, JOINING)
    c.scale("deployment", "web", replicas)
    if spread != "packed":
        c.apply(web_manifests(replicas, policy, spread))
        settle_rollout(c)
    return c


def placement(cluster: Cluster, app: str = "web") -> dict[str, int]:
    """Running pods of ``app`` per node, every node listed (0 included), in node order."""
    counts = Counter(p.node_name for p in cluster.pods
                     if p.metadata.labels.get("app") == app and p.node_name and not p.terminating)
    return {n.name: counts.get(n.name, 0) for n in cluster.nodes}


def pending(cluster: Cluster, app: str = "web") -> int:
    """Pods of ``app`` no node could take (Pending, unbound)."""
    return sum(1 for p in cluster.pods if p.metadata.labels.get("app") == app and not p.node_name)


def rollout_done(cluster: Cluster, app: str = "web") -> bool:
    """Whether every pod of ``app`` runs from one pod template (one pod-template-hash) and none is Pending."""
    pods = [p for p in cluster.pods if p.metadata.labels.get("app") == app and not p.terminating]
    return len({p.metadata.labels.get("pod-template-hash") for p in pods}) == 1 and all(p.node_name for p in pods)


def lb_ip(cluster: Cluster, service: str = "web") -> str:
    svc = cluster.get("svc", service)
    if svc is None or not svc.ingress:
        raise ValueError(f"service {service!r} has no load-balancer address (EXTERNAL-IP <pending>)")
    return svc.ingress[0].ip


# ---- what external traffic did ---------------------------------------------------------------------------------
@dataclass
class LoadReport:
    """``n`` connections from external clients through a Service's load balancer: where the load
    balancer entered them, which node and pod served them, and the client address the pods saw."""
    entered: dict[str, int]          # per node the connection entered at (every node, 0 included)
    per_node: dict[str, int]         # delivered, per backend node (every node, 0 included)
    per_pod: dict[str, int]          # delivered, per ready backend pod (0 included)
    preserved: float                 # fraction of delivered connections whose pod saw the client's address
    dropped: int
    total: int
    sources: Counter = field(default_factory=Counter)   # (pod, source address seen) -> connections
    clients: int = 0                 # distinct client addresses that sent

    def pod_shares(self) -> dict[str, float]:
        return {p: k / self.total for p, k in self.per_pod.items()}

    @property
    def imbalance(self) -> float:
        """The busiest pod's connections over the idlest pod's (inf when a ready pod got none)."""
        lo, hi = min(self.per_pod.values()), max(self.per_pod.values())
        return hi / lo if lo else float("inf")


def _ready_pods(cluster: Cluster, service: str) -> dict[str, str]:
    """Ready endpoint pods of ``service`` -> their node, from its EndpointSlices."""
    out = {}
    for s in cluster.endpoint_slices(service):
        for e in s.endpoints:
            if e.conditions.is_ready and e.target_ref and e.target_ref.get("kind") == "Pod":
                out[f"{e.target_ref.get('namespace') or s.namespace}/{e.target_ref['name']}"] = e.node_name
    return dict(sorted(out.items()))


def external_load(cluster: Cluster, n: int, service: str = "web", port: int = 80,
                  population: int = 200) -> LoadReport:
    """``n`` new connections from ``population`` distinct external clients to the Service's
    load-balancer IP: the load balancer spreads them evenly over the nodes it considers healthy
    (``kslib.traffic``; ``connect_many`` with no ``via``)."""
    t = cluster.connect_many(clients(population), lb_ip(cluster, service), port, n)
    nodes = [x.name for x in cluster.nodes]
    entered, by_node = t.by_entry_node(), t.by_node()
    pods = _ready_pods(cluster, service)
    return LoadReport({x: entered.get(x, 0) for x in nodes}, {x: by_node.get(x, 0) for x in nodes},
                      {p: t.get(p, 0) for p in pods}, t.client_ip_preserved(), t.get("dropped", 0), n,
                      t.sources(), len({f.client for f in t.flows}))


def expected_pod_shares(cluster: Cluster, service: str = "web") -> dict[str, float]:
    """What an even per-node load balancer gives each ready pod. Cluster: every node forwards over
    every endpoint, so each pod gets 1/P. Local: only nodes with a ready local endpoint pass the
    health check; each gets 1/K of the traffic and splits it over its own pods."""
    pods = _ready_pods(cluster, service)
    if not pods:
        return {}
    svc = cluster.get("svc", service)
    if svc.external_traffic_policy != "Local":
        return {p: 1 / len(pods) for p in pods}
    per_node = Counter(pods.values())
    return {p: 1 / (len(per_node) * per_node[node]) for p, node in pods.items()}


# ---- lesson 9: NodePort --------------------------------------------------------------------------------------
def apply_node_port(cluster: Cluster, node_port, name: str = "web", app: str = "web") -> str | None:
    """Apply a NodePort Service ``name`` (port 80 -> 8080, selector app=``app``) asking for
    ``node_port``. Returns None, or the API server's refusal (a refused apply changes nothing)."""
    doc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
           "spec": {"type": "NodePort", "selector": {"app": app},
                    "ports": [{"port": 80, "targetPort": 8080, "nodePort": node_port}]}}
    try:
        cluster.apply(doc)
    except ValidationError as err:
        return str(err)
    return None


def node_port_reach(cluster: Cluster, client: str, port: int) -> dict:
    """One connection from the external ``client`` to ``<node IP>:port`` of every node: node -> Connection."""
    return {n.name: cluster.connect(client, n.internal_ip, port) for n in cluster.nodes}


def rule_lines(text: str, *needles: str) -> list[str]:
    """The lines of a rendered ruleset that contain every one of ``needles``."""
    return [ln for ln in text.splitlines() if all(s in ln for s in needles)]


def nat_steps(conn) -> list[str]:
    """The address translations a connection's first packet went through (DNAT, source NAT)."""
    return [str(s) for s in conn.trace if not s.reply and ("DNAT to" in s.verdict or "source NAT to" in s.verdict)]


# ---- lesson 10: a LoadBalancer is a NodePort is a ClusterIP -----------------------------------------------
@dataclass
class Layer:
    """One way into a LoadBalancer Service: who connects to which address, the pods ``n`` connections
    reached, and the iptables rule on ``node`` that captures that address."""
    kind: str                # "ClusterIP" | "NodePort" | "LoadBalancer"
    src: str
    address: str             # "ip:port"
    pods: set
    rule: str


def layers(cluster: Cluster, service: str, pod_client: str, external_client: str, node: str,
           n: int = 200) -> list[Layer]:
    """The three addresses of a LoadBalancer Service: its ClusterIP from a pod, ``node``'s IP at its
    NodePort and its load-balancer IP from an external client (iptables mode: the rule shown is the
    KUBE-SERVICES or KUBE-NODEPORTS rule of ``cluster.render(node)`` that matches each)."""
    svc = cluster.get("svc", service)
    p = svc.ports[0]
    text = cluster.render(node)
    node_ip = cluster.get("node", node).internal_ip
    ways = [("ClusterIP", pod_client, svc.cluster_ip, p.port, None,
             rule_lines(text, "-A KUBE-SERVICES ", f"-d {svc.cluster_ip} ", f"--dport {p.port} ")),
            ("NodePort", external_client, node_ip, p.node_port, node,
             [r for r in rule_lines(text, "-A KUBE-NODEPORTS ", f"--dport {p.node_port} ", "-j KUBE-EXT-")
              if "127.0.0.0/8" not in r]),
            ("LoadBalancer", external_client, lb_ip(cluster, service), p.port, None,
             rule_lines(text, "-A KUBE-SERVICES ", f"-d {lb_ip(cluster, service)} ", f"--dport {p.port} "))]
    out = []
    for kind, src, ip, port, via, rules in ways:
        got = cluster.connect_many(src, ip, port, n, via=via)
        out.append(Layer(kind, src, f"{ip}:{port}", {k for k in got if "/" in k}, rules[0] if rules else ""))
    return out


# ---- lesson 10: <pending>, and what the cloud costs ---------------------------------------------------------
CLOUDS = {
    "none (no cloud controller)": lambda price: None,
    "cloud, 2 addresses left in the quota": lambda price: cloudmod.CloudProvider(
        pool="203.0.113.10-203.0.113.11", hourly_price=price),
    "cloud": lambda price: cloudmod.CloudProvider(hourly_price=price),
    "MetalLB on bare metal": lambda price: cloudmod.MetalLB(pools=["192.168.10.240-192.168.10.250"]),
}


def lb_services(count: int, prefix: str = "svc") -> list[dict]:
    """``count`` LoadBalancer Services ``svc-1``... in front of app=web (port 80 -> 8080)."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"count: Invalid value: {count!r}: must be a non-negative integer")
    return [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"{prefix}-{i}"},
             "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
                      "ports": [{"port": 80, "targetPort": 8080}]}} for i in range(1, count + 1)]


def _pod(name: str, node: str, labels: dict, image: str, ports=()) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": name.split("-")[0], "image": image,
                                                       "ports": [{"containerPort": p} for p in ports]}]}}


WEB_PODS = [_pod("web-1", "node-1", {"app": "web"}, "nginx:1.27", (8080,)),
            _pod("web-2", "node-2", {"app": "web"}, "nginx:1.27", (8080,)),
            _pod("client", "node-3", {}, "curlimages/curl")]


def fleet(cloud_choice: str, services: int, hourly_price: float = cloudmod.DEFAULT_HOURLY_PRICE,
          seed: int = 0) -> Cluster:
    """A 3-node cluster with two web pods (node-1, node-2), a client pod (node-3) and ``services``
    LoadBalancer Services, on the load-balancer implementation named ``cloud_choice`` (a key of
    ``CLOUDS``). A bad price raises the provider's ValueError before anything is built."""
    if cloud_choice not in CLOUDS:
        raise ValueError(f"cloud: Unsupported value: {cloud_choice!r}: supported values: " + ", ".join(CLOUDS))
    cloud = CLOUDS[cloud_choice](hourly_price)
    docs = lb_services(services)
    c = Cluster(nodes=3, seed=seed, cloud=cloud)
    c.apply(WEB_PODS + docs)
    return c


def external_ip_column(cluster: Cluster, name: str) -> str:
    """The EXTERNAL-IP column of ``kubectl get svc`` for Service ``name``."""
    for line in get_services(cluster).splitlines()[1:]:
        cols = line.split()
        if cols[0] == name:
            return cols[3]
    raise KeyError(name)


def service_events(cluster: Cluster, name: str) -> list[str]:
    """The Events of Service ``name`` as ``kubectl describe svc`` lists them ([] with no controller)."""
    return [str(e) for e in cluster.cloud.events_for(name)] if cluster.cloud is not None else []


@dataclass(frozen=True)
class CostPoint:
    services: int
    per_service: float       # one load balancer per Service, dollars over ``hours``
    shared: float            # one shared load balancer (an ingress controller's Service)
    hours: float


def cost_curve(counts, hourly_price: float = cloudmod.DEFAULT_HOURLY_PRICE,
               hours: float = cloudmod.HOURS_PER_MONTH) -> list[CostPoint]:
    """For each Service count, a cloud cluster with that many LoadBalancer Services: the provider's
    ``ingress_alternative`` over ``hours`` (per-Service load balancers against one shared one)."""
    out = []
    for k in counts:
        alt = fleet("cloud", k, hourly_price).cloud.ingress_alternative(hours)
        out.append(CostPoint(k, alt.per_service_cost, alt.shared_cost, hours))
    return out


# ---- lesson 10: what is exposed -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Exposure:
    node: str
    address: str             # "node IP:nodePort"
    service: str
    outcome: str             # what an external client's connection got
    pod: str | None


def exposed_node_ports(cluster: Cluster, client: str) -> list[Exposure]:
    """Every node IP x every NodePort of every Service, each tried once by the external ``client``."""
    out = []
    for svc in cluster.services:
        for p in svc.ports:
            if not p.node_port:
                continue
            for n in cluster.nodes:
                conn = cluster.connect(client, n.internal_ip, p.node_port, protocol=p.protocol)
                out.append(Exposure(n.name, f"{n.internal_ip}:{p.node_port}", svc.key, conn.outcome, conn.pod))
    return out


__all__ = ["ANTI_AFFINITY", "CLOUDS", "CostPoint", "Exposure", "Layer", "LoadReport", "SPREADS", "TOPOLOGY_SPREAD",
           "apply_node_port", "cost_curve", "expected_pod_shares", "exposed_node_ports", "external_ip_column",
           "external_load", "fleet", "grown_cluster", "join_nodes", "layers", "lb_ip", "lb_services", "nat_steps",
           "node_port_reach", "pending", "placement", "rollout_done", "rule_lines", "service_events", "settle_rollout",
           "web_manifests"]
