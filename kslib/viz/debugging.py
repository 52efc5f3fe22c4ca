"""Lesson 14, the debugging lab: six broken clusters, each built from YAML the learner sees and can
edit, each with the symptom a user would report and a ``check`` that tests the goal by behaviour
(connections, lookups), never by comparing YAML, so any correct fix passes.

``lab_cluster(text)`` builds a fresh three-node cluster from manifests, with two things kslib's API
objects do not carry:

- readiness probes: kslib does not run probes (a pod is Ready unless its status says otherwise). The
  lab stands in for the kubelet: a container's ``readinessProbe`` (httpGet, tcpSocket or grpc) passes
  when its port, by number or name, is one the container declares, since the model's containers listen
  on exactly their declared ports (``Cluster.connect`` refuses the others); an exec probe passes. A pod
  whose probe fails is set not Ready, as the kubelet would after ``failureThreshold`` failures;
- MetalLB: ``IPAddressPool`` and ``L2Advertisement`` (or ``BGPAdvertisement``) documents
  (metallb.io/v1beta1) in the YAML stand for MetalLB installed with those pools, in layer 2 (or BGP)
  mode. A pool without an advertisement installs nothing here: real MetalLB would assign an address
  from it and announce it nowhere, so nothing would answer there either. Without them no
  load-balancer controller runs, as on bare metal. Pools must lie outside the cluster's node, pod and
  service ranges (kslib's rule; real layer 2 pools often sit in the node subnet).

The outside world holds one name, ``api.example.com`` (192.0.2.10, TEST-NET-1). Every exercise's
cluster has a debug pod ``client`` on node-1 to run the checklist from.

``attempt(key, text)`` is what the lab's Apply button does: build, check, run the checklist; bad
YAML or a refused object comes back as the error text and nothing else changes.
"""
from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass, field

from .. import checklist as _checklist
from ..api.manifest import read_manifests
from ..cluster import Cluster
from ..controllers.cloud import MetalLB

NODES = 3
CLIENT = "client"
EXTERNAL_CLIENT = _checklist.EXTERNAL_CLIENT
EDGE_NODE_PORT = 30080            # what the company's own load balancer sends to, on every node
CONNECTIONS = 60                  # connections a check opens from the client to the Service
API_HOST = "api.example.com"
API_IP = "192.0.2.10"
API_HOST_ANNOTATION = "shop.example.com/api-host"
METALLB_KINDS = ("IPAddressPool", "L2Advertisement", "BGPAdvertisement")
MAX_QUERIES = 2                   # one A and one AAAA: what one getaddrinfo() of a name needs


# ---- the lab's cluster -----------------------------------------------------------------------------------------
def probe_passes(container: dict) -> bool:
    """The lab's readiness probe: passes when the probe's port (number or name) is a port the container
    declares, or when the container declares none (the model cannot know what it listens on then)."""
    probe = container.get("readinessProbe") if isinstance(container, dict) else None
    if not isinstance(probe, dict):
        return True
    ports = [p for p in container.get("ports") or [] if isinstance(p, dict)]
    if not ports:
        return True
    for kind in ("httpGet", "tcpSocket", "grpc"):
        spec = probe.get(kind)
        if isinstance(spec, dict) and "port" in spec:
            port = spec["port"]
            return any(port == p.get("containerPort") or (isinstance(port, str) and port == p.get("name"))
                       for p in ports)
    return True                       # an exec probe: the model cannot run the command


def _failing_pods(cluster, docs: list[dict]) -> list[str]:
    """Pods (namespace/name) whose readiness probe fails, from the Pod and workload documents."""
    out = []
    for d in docs:
        kind, md = d.get("kind"), d.get("metadata") or {}
        ns = md.get("namespace") or "default"
        spec = (((d.get("spec") or {}).get("template") or {}).get("spec") if kind in ("Deployment", "StatefulSet")
                else d.get("spec") if kind == "Pod" else None) or {}
        if all(probe_passes(c) for c in spec.get("containers") or []):
            continue
        if kind == "Pod":
            out.append(f"{ns}/{md.get('name')}")
        else:
            w = cluster.get(kind, md.get("name"), ns)
            if w is not None and w.selector is not None:
                out += [p.key for p in cluster.list("Pod", ns) if w.selector.matches(p.metadata.labels)]
    return out


def lab_cluster(text: str, seed: int = 0) -> tuple[Cluster, list[str]]:
    """A fresh cluster of ``NODES`` nodes built from ``text``, with the lab's readiness probes and MetalLB
    (see the module's docstring); returns it and notes for the learner. Raises ValueError (a
    kslib.ValidationError, ManifestError, or MetalLB's configuration error) for bad input."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        docs = [d for d, _ in read_manifests(text)]
        pools = [d for d in docs if d.get("kind") == "IPAddressPool"]
        objects = [d for d in docs if d.get("kind") not in METALLB_KINDS]
        kinds = {d.get("kind") for d in docs}
        mode = "bgp" if "BGPAdvertisement" in kinds else "layer2"
        announced = bool(kinds & {"L2Advertisement", "BGPAdvertisement"})
        cloud = MetalLB(pools=pools, mode=mode) if pools and announced else None
        cluster = Cluster(nodes=NODES, seed=seed, cloud=cloud)
        cluster.dns.upstream.add(API_HOST, API_IP)
        cluster.apply(objects)
    notes = [str(w.message) for w in caught]
    if cloud is not None:
        notes.append(f"MetalLB installed ({'layer 2' if mode == 'layer2' else 'BGP'}) with pool(s) "
                     + ", ".join(p.name for p in cloud.pools))
    elif pools:
        notes.append("an IPAddressPool without an L2Advertisement or BGPAdvertisement: MetalLB would assign an "
                     "address and announce it nowhere, so nothing answers there; the lab installs nothing")
    for pod in _failing_pods(cluster, objects):
        cluster.set_ready(pod, False)
        notes.append(f"pod {pod}: readiness probe failed (its port is not one the container listens on)")
    return cluster, notes


# ---- the goals -----------------------------------------------------------------------------------------------
def web_pods(cluster) -> list | None:
    """The pods of Deployment web (its selector's pods), or None when there is no such Deployment."""
    d = cluster.get("deployment", "web")
    if d is None or d.selector is None:
        return None
    return [p for p in cluster.list("Pod", "default") if d.selector.matches(p.metadata.labels) and not p.terminating]


def check_served(cluster) -> tuple[bool, str]:
    """Goal: ``CONNECTIONS`` connections from the client to ``web:80`` (by name) are all delivered, and
    only to Ready pods of Deployment web."""
    pods = web_pods(cluster)
    if not pods:
        return False, "Deployment web has no pods: the goal is web's pods serving through Service web"
    ready = {p.key for p in pods if p.ready}
    try:
        counts = cluster.connect_many(CLIENT, "web", 80, n=CONNECTIONS)
    except (ValueError, KeyError) as err:
        return False, f"client cannot connect to web:80: {err}"
    failed = {k: v for k, v in counts.items() if k in ("rejected", "dropped")}
    if failed:
        how = ", ".join(f"{v} {k}" for k, v in sorted(failed.items()))
        return False, f"{sum(failed.values())} of {CONNECTIONS} connections from client to web:80 failed ({how})"
    stray = sorted(k for k in counts if k not in ready)
    if stray:
        return False, (f"connections landed on {', '.join(stray)}, which is not a Ready pod of Deployment web "
                       "(a pod that is not Ready must not get traffic)")
    return True, (f"all {CONNECTIONS} connections from client to web:80 were delivered, to "
                  f"{len(counts)} of web's {len(ready)} Ready pods")


def check_local_entry(cluster) -> tuple[bool, str]:
    """Goal: an outside client entering at every node's port ``EDGE_NODE_PORT`` (the company's own
    load balancer sends there, without health checks) reaches a web pod, which sees the client's IP."""
    pods = web_pods(cluster)
    if not pods:
        return False, "Deployment web has no pods"
    keys = {p.key for p in pods if p.ready}
    for n in cluster.nodes:
        conn = cluster.connect(EXTERNAL_CLIENT, n.internal_ip, EDGE_NODE_PORT, via=n.name)
        where = f"entering at {n.name} ({n.internal_ip}:{EDGE_NODE_PORT})"
        if conn.outcome != "delivered":
            return False, f"{where} the connection was {conn.outcome} ({conn.reason or 'see the checklist'})"
        if conn.pod not in keys:
            return False, f"{where} the connection reached {conn.pod or 'the node itself'}, not a web pod"
        if conn.source_ip != EXTERNAL_CLIENT:
            return False, (f"{where} the pod saw source {conn.source_ip}, not the client's {EXTERNAL_CLIENT}: "
                           "the app rate-limits per client and needs the client's address")
    return True, (f"entering at each of the {len(cluster.nodes)} nodes, the client reached a web pod that saw its "
                  f"address {EXTERNAL_CLIENT}")


def check_external_address(cluster) -> tuple[bool, str]:
    """Goal: Service web has an external address that a load-balancer controller assigned, and an outside
    client connecting to it on port 80 reaches a web pod."""
    svc = cluster.get("svc", "web")
    pods = web_pods(cluster)
    if svc is None or not pods:
        return False, "Service web and Deployment web must both exist"
    ips = [i.ip for i in svc.ingress if i.ip]
    if not ips:
        return False, "kubectl get svc web still shows EXTERNAL-IP <pending>"
    if cluster.cloud is None or not cluster.cloud.owns(svc):
        return False, (f"{ips[0]} was written into the Service's status by hand, not assigned by a load-balancer "
                       "controller; kubectl apply does not write status, and nothing announces that address")
    conn = cluster.connect(EXTERNAL_CLIENT, ips[0], 80)
    if conn.outcome != "delivered" or conn.pod not in {p.key for p in pods}:
        return False, f"{EXTERNAL_CLIENT} -> {ips[0]}:80 was {conn.outcome}: {conn.reason}"
    return True, (f"EXTERNAL-IP {ips[0]} ({type(cluster.cloud).__name__}); {EXTERNAL_CLIENT} -> {ips[0]}:80 "
                  f"reached {conn.pod}")


def check_lookups(cluster) -> tuple[bool, str]:
    """Goal: the app's lookup of the outside host it calls (its ``shop.example.com/api-host``
    annotation: still api.example.com, with or without a trailing dot) answers in at most
    ``MAX_QUERIES`` queries, and the app still finds Service web by its short name."""
    try:
        pod = cluster.pod("app")
    except KeyError:
        return False, "pod app is gone: the goal is the app's own lookups"
    host = pod.metadata.annotations.get(API_HOST_ANNOTATION, "")
    if host.rstrip(".") != API_HOST:
        return False, f"the app must still call {API_HOST} (annotation {API_HOST_ANNOTATION}: {host!r})"
    res = cluster.resolve(host, "app")
    if API_IP not in res.answers:
        return False, f"{host} no longer resolves from the app ({res.rcode})"
    if res.count > MAX_QUERIES:
        return False, (f"one lookup of {host} costs {res.count} queries ({res.by_status.get('NXDOMAIN', 0)} "
                       f"NXDOMAIN); the goal is at most {MAX_QUERIES}")
    svc = cluster.get("svc", "web")
    try:
        web = cluster.resolve("web", "app")
    except ValueError as err:
        return False, f"the app cannot resolve web: {err}"
    if svc is None or svc.cluster_ip not in web.answers:
        return False, f"the app no longer finds Service web by its short name ({web.rcode}): cluster names broke"
    return True, f"{host}: {res.count} queries; web: {web.count} queries, answer {svc.cluster_ip}"


# ---- the exercises --------------------------------------------------------------------------------------------
_CLIENT_POD = """---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  nodeName: node-1
  containers: [{name: debug, image: "nicolaka/netshoot:v0.13"}]
"""


def _web(labels: str, replicas: int = 3, probe: str = "") -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{{labels}}}
  template:
    metadata:
      labels: {{{labels}}}
    spec:
      containers:
      - name: web
        image: "nginx:1.27"
        ports: [{{name: http, containerPort: 8080}}]{probe}
"""


def _service(selector: str, target: str = "http", extra: str = "", port_extra: str = "") -> str:
    return f"""---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:{extra}
  selector: {{{selector}}}
  ports:
  - {{port: 80, targetPort: {target}{port_extra}}}
"""


@dataclass(frozen=True)
class Exercise:
    key: str
    title: str
    symptom: str                 # what a user reports
    goal: str                    # what ``check`` tests, in words
    manifests: str               # the broken cluster
    check_fn: object
    solution: tuple = ()         # (old, new) text replacements: one correct fix
    from_pod: str = CLIENT
    client_ip_matters: bool = False
    lookups: tuple = ()

    def build(self, text: str | None = None, seed: int = 0) -> Cluster:
        return lab_cluster(self.manifests if text is None else text, seed)[0]

    def check(self, cluster) -> tuple[bool, str]:
        return self.check_fn(cluster)

    def checklist(self, cluster) -> _checklist.Checklist:
        lookups = self.lookups
        if lookups:             # the name the app calls, as its configuration says now
            try:
                lookups = (cluster.pod(self.from_pod).metadata.annotations.get(API_HOST_ANNOTATION) or API_HOST,)
            except KeyError:
                lookups = ()
        return _checklist.run(cluster, "web", from_pod=self.from_pod if _has_pod(cluster, self.from_pod) else None,
                              client_ip_matters=self.client_ip_matters, lookups=lookups)

    def fixed_manifests(self) -> str:
        """The manifests with the exercise's own fix applied (one correct fix of several)."""
        text = self.manifests
        for old, new in self.solution:
            if old not in text:
                raise ValueError(f"{self.key}: the fix expects {old!r} in the manifests")
            text = text.replace(old, new)
        return text


    def fix_diff(self) -> str:
        """The exercise's own fix as a unified diff of the manifests (what ``git diff`` would show)."""
        return "".join(difflib.unified_diff(self.manifests.splitlines(True), self.fixed_manifests().splitlines(True),
                                            "broken.yaml", "fixed.yaml", n=1))


def _has_pod(cluster, ref) -> bool:
    try:
        cluster.pod(ref)
        return True
    except KeyError:
        return False


_PROBE_8081 = """
        readinessProbe:
          httpGet: {path: /healthz, port: 8081}
          periodSeconds: 5"""

_APP_POD = f"""---
apiVersion: v1
kind: Pod
metadata:
  name: app
  annotations: {{{API_HOST_ANNOTATION}: {API_HOST}}}
spec:
  nodeName: node-2
  containers: [{{name: shop, image: "ghcr.io/acme/shop:3.4"}}]
"""

_POOL = """---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lab, namespace: metallb-system}
spec:
  addresses: [203.0.113.240-203.0.113.250]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: lab, namespace: metallb-system}
spec:
  ipAddressPools: [lab]
"""

_SPREAD = """
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule,
         labelSelector: {matchLabels: {app: web}}}"""

EXERCISES: dict[str, Exercise] = {e.key: e for e in (
    Exercise(
        "selector", "Selector mismatch",
        "`curl http://web` from any pod fails at once with *connection refused*; the web pods are Running "
        "and Ready.",
        "every connection from client to web:80 is delivered to a Ready pod of Deployment web",
        _web("app: web, tier: frontend") + _service("app: web, tier: front-end") + _CLIENT_POD,
        check_served, (("selector: {app: web, tier: front-end}", "selector: {app: web, tier: frontend}"),)),
    Exercise(
        "not-ready", "Pods never ready",
        "The web pods are Running but `kubectl get pods` shows READY 0/1 for every one of them, and "
        "`curl http://web` is refused.",
        "every connection from client to web:80 is delivered to a Ready pod of Deployment web",
        _web("app: web", probe=_PROBE_8081) + _service("app: web") + _CLIENT_POD,
        check_served, (("port: 8081}", "port: http}"),)),
    Exercise(
        "target-port", "Wrong targetPort",
        "`curl http://web` is refused, although the EndpointSlice lists three ready endpoints.",
        "every connection from client to web:80 is delivered to a Ready pod of Deployment web",
        _web("app: web") + _service("app: web", target="80") + _CLIENT_POD,
        check_served, (("targetPort: 80}", "targetPort: 8080}"),)),
    Exercise(
        "local-policy", "Local policy, no local endpoint",
        f"The company's own load balancer (outside Kubernetes, no health checks) spreads customers over port "
        f"{EDGE_NODE_PORT} of all three nodes. Some customers time out; the others work. The app rate-limits "
        "per client, so it needs each customer's real address.",
        f"an outside client entering at every node's port {EDGE_NODE_PORT} reaches a web pod that sees the "
        "client's own address",
        _web("app: web", replicas=2) + _service("app: web", extra="\n  type: NodePort\n  externalTrafficPolicy: Local",
                                                port_extra=f", nodePort: {EDGE_NODE_PORT}") + _CLIENT_POD,
        check_local_entry, (("replicas: 2", "replicas: 3"), ("    spec:\n      containers:", "    spec:" + _SPREAD
                                                                  + "\n      containers:")),
        client_ip_matters=True),
    Exercise(
        "pending-lb", "No cloud controller",
        "The cluster runs on bare metal. `kubectl get svc web` has shown EXTERNAL-IP `<pending>` for an hour.",
        "Service web gets an external address from a load-balancer controller, and an outside client reaches "
        "a web pod at that address on port 80",
        _web("app: web") + _service("app: web", extra="\n  type: LoadBalancer") + _CLIENT_POD,
        check_external_address, ((_CLIENT_POD, _CLIENT_POD + _POOL),)),
    Exercise(
        "ndots", "ndots storm",
        f"CoreDNS answers far more queries than the shop app makes requests, most of them NXDOMAIN. The app "
        f"calls {API_HOST} (its configuration: the {API_HOST_ANNOTATION} annotation) and Service web.",
        f"one lookup of {API_HOST} from the app costs at most {MAX_QUERIES} queries, and the app still finds "
        "Service web by its short name",
        _web("app: web") + _service("app: web") + _CLIENT_POD + _APP_POD,
        check_lookups, (("  nodeName: node-2\n",
                         "  nodeName: node-2\n  dnsConfig:\n    options: [{name: ndots, value: \"2\"}]\n"),),
        from_pod="app", lookups=(API_HOST,)),
)}


# ---- the Apply button ------------------------------------------------------------------------------------------
@dataclass
class Attempt:
    """What applying one text to one exercise gave: the goal's verdict and the checklist, or the error."""
    exercise: str
    ok: bool
    message: str
    error: str = ""
    notes: list = field(default_factory=list)
    checklist: _checklist.Checklist | None = None
    cluster: Cluster | None = None

    def __str__(self) -> str:
        if self.error:
            return f"Refused, nothing changed:\n{self.error}"
        head = [f"Goal {'met' if self.ok else 'not met'}: {self.message}"] + [f"note: {n}" for n in self.notes]
        return "\n".join(head) + "\n\n" + str(self.checklist)


def attempt(key: str, text: str, seed: int = 0) -> Attempt:
    """Build exercise ``key``'s cluster from ``text`` (the learner's edited YAML), check the goal and run
    the checklist. Bad input returns the error text and builds nothing."""
    ex = EXERCISES[key]
    if not isinstance(text, str) or not text.strip():
        return Attempt(key, False, "", error="no YAML given")
    try:
        cluster, notes = lab_cluster(text, seed)
    except ValueError as err:               # ValidationError, ManifestError, a bad IPAddressPool
        return Attempt(key, False, "", error=str(err))
    ok, message = ex.check(cluster)
    return Attempt(key, ok, message, notes=notes, checklist=ex.checklist(cluster), cluster=cluster)


def first_failing_steps(seed: int = 0) -> dict[str, tuple[int, str]]:
    """For each broken exercise: (number, question) of the checklist's first failing step."""
    out = {}
    for key, ex in EXERCISES.items():
        first = ex.checklist(ex.build(seed=seed)).first_failure
        out[key] = (first.number, first.question) if first else (0, "none")
    return out


# ---- common mistakes ---------------------------------------------------------------------------------------------
def vip_rules(cluster, node: str, ip: str) -> list[str]:
    """The lines of the node's rendered dataplane that name ``ip``."""
    pat = _checklist.whole_word(ip)
    return [line.strip() for line in cluster.render(node).splitlines() if pat.search(line)]


def portless(lines: list[str]) -> list[str]:
    """The iptables rules among ``lines`` that would match a packet whatever its protocol and port
    (an ICMP echo to the address): those without ``-p`` and ``--dport``."""
    return [line for line in lines if line.startswith("-A") and ("--dport" not in line or " -p " not in line)]


def load_balancer_bill(services: int, seed: int = 0):
    """``services`` LoadBalancer Services on a cloud (kslib.CloudProvider, its default price): one load
    balancer each, against one shared load balancer in front of them (an ingress controller)."""
    from ..controllers.cloud import CloudProvider
    c = Cluster(nodes=2, seed=seed, cloud=CloudProvider())
    c.apply([{"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"app-{i}"},
              "spec": {"type": "LoadBalancer", "selector": {"app": f"app-{i}"}, "ports": [{"port": 443}]}}
             for i in range(services)])
    return c.cloud.ingress_alternative()


__all__ = ["API_HOST", "API_HOST_ANNOTATION", "API_IP", "Attempt", "CLIENT", "CONNECTIONS", "EDGE_NODE_PORT",
           "EXERCISES", "EXTERNAL_CLIENT", "Exercise", "MAX_QUERIES", "attempt", "check_external_address",
           "check_local_entry", "check_lookups", "check_served", "first_failing_steps", "lab_cluster",
           "load_balancer_bill", "portless", "probe_passes", "vip_rules", "web_pods"]
