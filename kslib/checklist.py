"""The Service debugging checklist, run against any ``kslib.Cluster`` (one built from manifests or one
loaded from a real cluster's dump): only the public Cluster API is used.

``run(cluster, "web", from_pod="client")`` asks, in order, the questions an engineer asks of a Service
that does not answer, each with the command they would type on a real cluster:

1. Service exists?            ``kubectl get svc web``
2. Endpoints non-empty?       ``kubectl get endpointslices -l kubernetes.io/service-name=web``
3. DNS resolves?              ``kubectl exec client -- nslookup web``
4. ClusterIP reachable?       ``kubectl exec client -- nc -zv <ClusterIP> <port>``
5. Pod reachable directly?    ``kubectl exec client -- nc -zv <pod IP> <targetPort>``
6. kube-proxy healthy?        ``curl http://<node IP>:10256/healthz`` (its last sync)
7. Rules present?             ``iptables-save | grep default/web`` (or the mode's own tool)

and, where they apply, up to three more, numbered on from 8: for a LoadBalancer Service "External
address assigned?" (``kubectl describe svc``: the load-balancer controller's events); for a NodePort
or LoadBalancer Service "Reachable from outside at every node?" (a client outside the cluster at each
node's NodePort; with ``client_ip_matters`` the pod must also see the client's own address); with
``lookups`` "Outside names cheap to resolve?" (each lookup from ``from_pod`` costs at most one A and
one AAAA query). Each step records what the model found (``evidence``), pass or fail, and for a
failure the likely cause and a fix. Every answer is computed from the cluster's state, nothing is
written per scenario. A step that cannot run (no client pod given, a headless Service has no
ClusterIP, ...) is skipped (``ok`` None).

The model's kube-proxy syncs after every change, so step 6 fails only for a node that never synced;
on a real node, a ``lastUpdated`` in the healthz answer far behind ``currentTime`` is the sign.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

EXTERNAL_CLIENT = "198.51.100.7"       # RFC 5737 TEST-NET-2: a client on the internet
MAX_PODS_TRIED = 5                     # step 5 connects to at most this many pods
MAX_LINES_SHOWN = 8
PASS, FAIL, SKIP = "pass", "FAIL", "skip"


@dataclass
class Step:
    """One question of the checklist and what the model answered."""
    number: int
    key: str                  # "service", "endpoints", "dns", "clusterip", "pod", "kube-proxy", "rules",
                              # "external-address", "external-entry", "lookups"
    question: str
    command: str              # what a learner types on a real cluster
    ok: bool | None           # None: skipped
    found: str                # one line: what the model found
    evidence: list[str] = field(default_factory=list)   # the lines that show it
    cause: str = ""           # for a failure: the likely cause
    fix: str = ""             # for a failure: what to change

    @property
    def status(self) -> str:
        return SKIP if self.ok is None else (PASS if self.ok else FAIL)

    def __str__(self) -> str:
        out = [f"{self.number}. {self.question} {self.status}", f"   $ {self.command}", f"   found: {self.found}"]
        out += [f"     {line}" for line in self.evidence]
        if self.ok is False:
            out += [f"   likely cause: {self.cause}", f"   fix: {self.fix}"]
        return "\n".join(out)


@dataclass
class Checklist:
    service: str              # "namespace/name"
    from_pod: str | None
    node: str | None          # the node whose kube-proxy and rules were read
    mode: str
    steps: list[Step]

    def __iter__(self):
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, i):
        return self.steps[i]

    def step(self, key: str) -> Step:
        for s in self.steps:
            if s.key == key:
                return s
        raise KeyError(f"no step {key!r}; steps: " + ", ".join(s.key for s in self.steps))

    @property
    def first_failure(self) -> Step | None:
        return next((s for s in self.steps if s.ok is False), None)

    @property
    def passed(self) -> bool:
        return self.first_failure is None

    @property
    def statuses(self) -> dict[str, str]:
        return {s.key: s.status for s in self.steps}

    def table(self) -> str:
        """One line per step: number, question, result, what was found."""
        width = max(len(s.question) for s in self.steps)
        head = (f"Checklist for Service {self.service}" + (f" from pod {self.from_pod}" if self.from_pod else "")
                + f" ({self.mode} mode" + (f", rules read on {self.node})" if self.node else ")"))
        rows = [f"{s.number:>2}  {s.question:<{width}}  {s.status:<4}  {s.found}" for s in self.steps]
        return "\n".join([head] + rows)

    def __str__(self) -> str:
        first = self.first_failure
        if first is None:
            return self.table() + "\n\nEvery step passes."
        return self.table() + "\n\nFirst failing step:\n" + str(first)


# ---- small readings of the model ---------------------------------------------------------------------------
def _key(name: str, namespace: str) -> tuple[str, str]:
    return tuple(name.split("/", 1)) if "/" in name else (namespace, name)


def _selected(cluster, svc) -> list:
    sel = svc.selector or {}
    return [p for p in cluster.list("Pod", svc.namespace)
            if sel and all(p.metadata.labels.get(k) == v for k, v in sel.items())]


def _labels(d: dict | None) -> str:
    return ",".join(f"{k}={v}" for k, v in (d or {}).items()) or "<none>"


def _declared(pod) -> list[str]:
    """The ports a pod's containers declare, as "8080/TCP (http)"."""
    sidecars = [c for c in pod.init_containers if c.restart_policy == "Always"]
    return [f"{p.container_port}/{p.protocol}" + (f" ({p.name})" if p.name else "")
            for c in list(pod.containers) + sidecars for p in c.ports]


def _service_port(svc, port):
    if port is None:
        return svc.ports[0] if svc.ports else None
    for p in svc.ports:
        if p.port == port or (p.name and p.name == port):
            return p
    return None


def _endpoints(cluster, svc, sport) -> list[tuple]:
    """(endpoint, target port number or None) for every endpoint of the Service, for ``sport``."""
    out = []
    for s in cluster.endpoint_slices(svc.name, svc.namespace):
        number = next((p.port for p in s.ports if (p.name or "") == (sport.name or "")
                       and p.protocol == (sport.protocol or "TCP")), None)
        out += [(e, number) for e in s.endpoints]
    return out


def _node_of(cluster, from_pod) -> str | None:
    if from_pod:
        try:
            return cluster.pod(from_pod).node_name or None
        except KeyError:
            if cluster.get("node", from_pod) is not None:
                return from_pod
    nodes = cluster.nodes
    return nodes[0].name if nodes else None


def whole_word(word: str) -> re.Pattern:
    """A pattern for ``word`` (an address, a name) standing alone: 10.244.1.2 not inside 10.244.1.23."""
    return re.compile(rf"(?<![\w.-]){re.escape(word)}(?![\w-]|\.\w)")


def _deciding(conn) -> str:
    """The trace step that decided a connection's fate: the last one that is not bookkeeping."""
    for s in reversed(conn.trace):
        if s.what in ("reject", "drop", "deliver", "socket-lb", "tc-lb", "ipvs") or s.verdict in ("REJECT", "DROP"):
            if s.what == "reject":
                continue                 # "rejected: ..." follows the rule that rejected; show the rule
            return str(s)
    return str(conn.trace[-1]) if conn.trace else conn.reason


def _no_endpoint_rule(conn) -> str | None:
    """The rule or map entry that refused a connection because the Service has no endpoints."""
    for s in conn.trace:
        text = f"{s.rule} {s.verdict}"
        if ("has no endpoints" in text or "reject-chain" in text or "no real server" in text
                or "has no backend" in text):
            return str(s)
    return None


def _refused_at_pod(conn) -> tuple[str, str] | None:
    """(address:port, pod) where a connection found nothing listening, or None."""
    for s in conn.trace:
        m = _REFUSED.search(s.verdict) if s.what == "deliver" else None
        if m:
            return m.group(1), m.group(2)
    return None


_REFUSED = re.compile(r"nothing listens on (\S+) in (\S+): connection refused")


def _queries(k: int) -> str:
    return f"{k} quer{'y' if k == 1 else 'ies'}"


def _nc(protocol: str) -> str:
    return {"UDP": "nc -zvu", "SCTP": "nc -zv --sctp"}.get(protocol, "nc -zv")


# ---- the steps -----------------------------------------------------------------------------------------------
def _step_service(cluster, ns, name, port):
    cmd = f"kubectl get svc {name} -n {ns}"
    svc = cluster.get("svc", name, ns)
    if svc is None:
        elsewhere = [s.key for s in cluster.list("Service") if s.name == name]
        found = f'services "{name}" not found in namespace "{ns}"'
        cause = (f"a Service of that name exists in another namespace ({', '.join(elsewhere)}): a short name "
                 f"resolves in the client's own namespace" if elsewhere else "no Service has this name: a typo, or "
                 "it was never applied (kubectl get svc -A)")
        return svc, None, Step(1, "service", "Service exists?", cmd, False, found,
                               [f"Services in {ns}: " + (", ".join(s.name for s in cluster.list("Service", ns))
                                                         or "none")],
                               cause, f"apply the Service in namespace {ns}, or call it as <name>.<namespace>")
    sport = _service_port(svc, port)
    ports = ", ".join(f"{p.port}->{p.resolved_target}/{p.protocol or 'TCP'}"
                      + (f" nodePort {p.node_port}" if p.node_port else "") for p in svc.ports) or "none"
    ip = "None (headless)" if svc.headless else (svc.cluster_ip or "<none>")
    evidence = [f"type {svc.type}, ClusterIP {ip}, ports {ports}, selector {_labels(svc.selector)}"]
    if svc.type == "LoadBalancer" or svc.type == "NodePort":
        evidence.append(f"externalTrafficPolicy {svc.external_traffic_policy or 'Cluster'}")
    if sport is None:
        return svc, None, Step(1, "service", "Service exists?", cmd, False, f"the Service has no port {port}",
                               evidence, f"callers use port {port}, but the Service offers {ports}",
                               f"call one of the Service's ports, or add port {port} to spec.ports")
    found = f"{svc.type} Service with ClusterIP {ip}, port {sport.port} -> targetPort {sport.resolved_target}"
    return svc, sport, Step(1, "service", "Service exists?", cmd, True, found, evidence)


def _step_endpoints(cluster, svc, sport):
    cmd = f"kubectl get endpointslices -n {svc.namespace} -l kubernetes.io/service-name={svc.name}"
    q = "Endpoints non-empty?"
    slices = cluster.endpoint_slices(svc.name, svc.namespace)
    eps = _endpoints(cluster, svc, sport)
    evidence = [f"{len(slices)} EndpointSlice(s): " + (", ".join(s.name for s in slices) or "none")]
    for e, number in eps[:MAX_LINES_SHOWN]:
        c = e.conditions
        port = number if number is not None else "<unset>"
        evidence.append(f"{e.addresses[0]}:{port}  ready={str(c.is_ready).lower()}"
                        f"  serving={str(c.is_serving).lower()}  terminating={str(c.is_terminating).lower()}"
                        f"  node={e.node_name or '-'}  pod={e.pod or '-'}")
    if len(eps) > MAX_LINES_SHOWN:
        evidence.append(f"... and {len(eps) - MAX_LINES_SHOWN} more")
    ready = [e for e, _ in eps if e.conditions.is_ready]
    if svc.type == "ExternalName":
        return Step(2, "endpoints", q, cmd, None, "an ExternalName Service has no endpoints: DNS answers a CNAME",
                    evidence)
    if ready:
        extra = f" ({len(eps) - len(ready)} not ready)" if len(eps) > len(ready) else ""
        return Step(2, "endpoints", q, cmd, True, f"{len(ready)} ready endpoint(s){extra}", evidence)
    if eps:
        pods = [e.pod for e, _ in eps if e.pod]
        terminating = all(e.conditions.is_terminating for e, _ in eps)
        evidence.append("kubectl get pods: " + ", ".join(
            f"{p.name} READY {1 if p.ready else 0}/{len(p.containers)} {p.phase}"
            for p in (cluster.pod(k) for k in pods[:MAX_LINES_SHOWN])))
        if terminating:
            return Step(2, "endpoints", q, cmd, False, f"{len(eps)} endpoint(s), all terminating", evidence,
                        "every pod behind the Service is shutting down (a rollout or a scale-down to zero)",
                        "wait for the replacements to become ready, or check why none start (kubectl get pods)")
        return Step(2, "endpoints", q, cmd, False, f"{len(eps)} endpoint(s), none ready", evidence,
                    "the pods run but are not Ready: their readiness probe fails (kubectl describe pod shows "
                    "'Readiness probe failed'), so kube-proxy sends them nothing",
                    "fix the readiness probe (its port and path must be ones the container serves) or what it checks")
    if not svc.selector:
        return Step(2, "endpoints", q, cmd, False, "no endpoints, and the Service has no selector", evidence,
                    "without a selector the EndpointSlice controller manages nothing: endpoints must be written "
                    "by hand",
                    "add a selector matching the pods' labels, or create an EndpointSlice for it")
    selected = _selected(cluster, svc)
    if selected:
        evidence += [f"{p.name}: phase {p.phase}, node {p.node_name or '<none>'}, IP {p.pod_ip or '<none>'}"
                     for p in selected[:MAX_LINES_SHOWN]]
        return Step(2, "endpoints", q, cmd, False, f"no endpoints: {len(selected)} pod(s) match, none has an address",
                    evidence, "the matching pods are not running yet (Pending: no node fits them, or no pod "
                              "address left)",
                    "kubectl describe pod: fix what keeps them Pending")
    pods = cluster.list("Pod", svc.namespace)
    near = sorted(pods, key=lambda p: -sum(p.metadata.labels.get(k) == v for k, v in svc.selector.items()))
    evidence.append(f"selector {_labels(svc.selector)}; kubectl get pods --show-labels:")
    for p in near[:3]:
        missing = {k: v for k, v in svc.selector.items() if p.metadata.labels.get(k) != v}
        evidence.append(f"  {p.name}  {_labels(p.metadata.labels)}  lacks {_labels(missing)}")
    return Step(2, "endpoints", q, cmd, False, f"no endpoints: selector {_labels(svc.selector)} matches no pod",
                evidence,
                f"the selector matches no pod in namespace {svc.namespace}: every listed label must match",
                "make the Service's selector match the pods' labels (or relabel the pods through their template)")


def _step_dns(cluster, svc, from_pod):
    ns = svc.namespace
    pod = None
    if from_pod:
        try:
            pod = cluster.pod(from_pod)
        except KeyError:
            pod = None
    name = svc.name if pod is not None and pod.namespace == ns else f"{svc.name}.{ns}"
    cmd = f"kubectl exec {from_pod or '<client pod>'} -- nslookup {name}"
    q = "DNS resolves?"
    if pod is None:
        return Step(3, "dns", q, cmd, None, "skipped: give from_pod, a pod to look the name up from")
    res = cluster.resolve(name, from_pod, getaddrinfo=False)
    conf = cluster.resolv_conf(from_pod)
    evidence = [f"{q_.qtype} {q_.name} {r.status} {' '.join(r.data)}".rstrip()
                for q_, r in zip(res.queries, res.responses)]
    if svc.headless:              # a headless Service's name answers its ready pods' addresses
        want = {a for s in cluster.endpoint_slices(svc.name, ns) for e in s.endpoints
                if e.conditions.is_ready for a in e.addresses}
    else:
        want = {svc.cluster_ip}
    ok = res.name is not None if svc.type == "ExternalName" else bool(set(res.addresses) & want)
    if ok:
        return Step(3, "dns", q, cmd, True, f"{res.name} -> {' '.join(res.answers)} ({_queries(res.count)})", evidence)
    if cluster.dns.ip not in conf.nameservers:
        cause = (f"the pod asks nameserver {', '.join(conf.nameservers)}, not the cluster DNS {cluster.dns.ip} "
                 f"(dnsPolicy {pod.dns_policy}): cluster names are unknown there")
        fix = "use dnsPolicy: ClusterFirst (the default), or list the cluster DNS in dnsConfig"
    elif svc.headless and not want:
        cause = "a headless Service with no ready endpoints has no A records"
        fix = "see step 2: make pods ready behind it"
    else:
        cause = f"the name {name} does not resolve from {pod.key} ({res.rcode})"
        fix = "call the Service as <name>.<namespace> from other namespaces; check CoreDNS"
    return Step(3, "dns", q, cmd, False, f"{name}: {res.rcode}, no address ({_queries(res.count)})", evidence,
                cause, fix)


def _step_clusterip(cluster, svc, sport, from_pod):
    proto = sport.protocol or "TCP"
    cmd = f"kubectl exec {from_pod or '<client pod>'} -- {_nc(proto)} {svc.cluster_ip} {sport.port}"
    q = "ClusterIP reachable?"
    if svc.headless or svc.type == "ExternalName" or not svc.cluster_ip:
        return Step(4, "clusterip", q, cmd, None, "skipped: the Service has no ClusterIP")
    if not from_pod:
        return Step(4, "clusterip", q, cmd, None, "skipped: give from_pod, a pod to connect from")
    conn = cluster.connect(from_pod, svc.cluster_ip, sport.port, protocol=proto)
    evidence = [repr(conn), _deciding(conn)]
    if conn.outcome == "delivered":
        return Step(4, "clusterip", q, cmd, True, f"delivered to {conn.pod} at {conn.endpoint}", evidence)
    rule = _no_endpoint_rule(conn)
    if rule:
        return Step(4, "clusterip", q, cmd, False, f"{conn.outcome} by the node: the Service has no ready endpoint",
                    evidence, "kube-proxy refuses connections to a Service without ready endpoints (step 2)",
                    "give the Service ready endpoints (step 2)")
    refused = _refused_at_pod(conn)
    if refused:
        where, key = refused
        pod = cluster.pod(key) if _is_pod(cluster, key) else None
        ports = ", ".join(_declared(pod)) if pod else "?"
        return Step(4, "clusterip", q, cmd, False, f"refused by pod {key}: nothing listens on {where}",
                    evidence, f"the packet was translated to {where}, but the pod's containers listen on "
                              f"{ports or 'no declared port'}: targetPort {sport.resolved_target} is wrong",
                    "set the Service's targetPort to the port the container listens on (or its name)")
    return Step(4, "clusterip", q, cmd, False, f"{conn.outcome}: {conn.reason}", evidence,
                "the packet was lost between the client and the pods (see the trace)", "follow conn.trace")


def _step_pods(cluster, svc, sport, from_pod, node):
    proto = sport.protocol or "TCP"
    q = "Pod reachable directly?"
    targets = [(e.addresses[0], number, e.pod) for e, number in _endpoints(cluster, svc, sport)
               if e.conditions.is_serving or e.conditions.is_ready]
    if not targets:             # no endpoints: try the pods the selector picks, at the targetPort they would get
        for p in _selected(cluster, svc):
            t = sport.resolved_target
            number = t if isinstance(t, int) else p.find_port(t, proto)
            if p.pod_ip and number:
                targets.append((p.pod_ip, number, p.key))
    src = from_pod or node
    shown = f"{targets[0][0]} {targets[0][1]}" if targets else "<pod IP> <targetPort>"
    cmd = f"kubectl exec {from_pod or '<client pod>'} -- {_nc(proto)} {shown}"
    if not targets or not src:
        return Step(5, "pod", q, cmd, None, "skipped: no pod to try (no endpoint, no pod the selector matches)"
                    if not targets else "skipped: no client to connect from")
    results = []
    for ip, number, key in targets[:MAX_PODS_TRIED]:
        if number is None:
            results.append((key, ip, None, None))
            continue
        results.append((key, ip, number, cluster.connect(src, ip, number, protocol=proto)))
    evidence = [f"{ip}:{n} ({k}): {c.outcome if c else 'no port: the named targetPort is not on the pod'}"
                for k, ip, n, c in results]
    bad = [(k, ip, n, c) for k, ip, n, c in results if c is None or c.outcome != "delivered"]
    if not bad:
        return Step(5, "pod", q, cmd, True, f"{len(results)} of {len(results)} pod(s) answer on their targetPort",
                    evidence)
    k, ip, n, c = bad[0]
    pod = cluster.pod(k) if k else None
    ports = ", ".join(_declared(pod)) if pod else "?"
    if c is None or _refused_at_pod(c):
        evidence.append(f"{k} declares ports: {ports or 'none'}")
        return Step(5, "pod", q, cmd, False,
                    f"{len(bad)} of {len(results)} pod(s) refuse port {n or sport.resolved_target}", evidence,
                    f"nothing listens on targetPort {sport.resolved_target} in the pods; they listen on {ports}",
                    "set the Service's targetPort to the container's port (or its name)")
    return Step(5, "pod", q, cmd, False, f"{len(bad)} of {len(results)} pod(s) unreachable: {c.reason}", evidence,
                "the pod network does not deliver to the pod (CNI, NetworkPolicy, or the pod itself)",
                "follow conn.trace")


def _step_kube_proxy(cluster, node):
    ip = cluster.get("node", node).internal_ip if node else "<node IP>"
    cmd = (f"kubectl -n kube-system exec ds/cilium -- cilium-dbg status" if cluster.mode == "ebpf"
           else f"curl http://{ip}:10256/healthz  # on the node")
    q = "kube-proxy healthy?"
    if not node:
        return Step(6, "kube-proxy", q, cmd, None, "skipped: the cluster has no node")
    evidence, stale = [], []
    for n in cluster.nodes:
        try:
            r = cluster.last_sync(n.name)
            evidence.append(f"{n.name}: last sync {'full' if r.full else 'partial'}, rules now {r.rules_total}")
        except KeyError:
            stale.append(n.name)
            evidence.append(f"{n.name}: no sync")
    if stale:
        return Step(6, "kube-proxy", q, cmd, False, f"no sync on {', '.join(stale)}", evidence,
                    "kube-proxy is not running or not syncing there",
                    "kubectl -n kube-system logs on that node's kube-proxy")
    return Step(6, "kube-proxy", q, cmd, True, f"every node's {cluster.mode} proxier has synced the current state",
                evidence[:MAX_LINES_SHOWN])


def _rules_command(cluster, svc, sport) -> str:
    key = f"{svc.namespace}/{svc.name}"
    return {"iptables": f"iptables-save | grep '{key}'",
            "ipvs": f"ipvsadm -Ln -t {svc.cluster_ip}:{sport.port}",
            "nftables": f"nft list table ip kube-proxy | grep '{key}'",
            "ebpf": f"cilium-dbg bpf lb list | grep '{svc.cluster_ip}:{sport.port}'"}[cluster.mode] + f"  # on the node"


def _step_rules(cluster, svc, sport, node):
    q = "Rules present?"
    if svc.headless or svc.type == "ExternalName" or not svc.cluster_ip:
        return Step(7, "rules", q, f"iptables-save | grep '{svc.namespace}/{svc.name}'", None,
                    "skipped: kube-proxy writes no rules for a Service without a ClusterIP")
    cmd = _rules_command(cluster, svc, sport)
    if not node:
        return Step(7, "rules", q, cmd, None, "skipped: the cluster has no node")
    text = cluster.render(node)
    key = f"{svc.namespace}/{svc.name}"
    vip, kp = whole_word(svc.cluster_ip), re.compile(rf"{re.escape(key)}(?![\w.-])")
    lines = [line.strip() for line in text.splitlines() if vip.search(line) or kp.search(line)]
    ready = {(a, n) for e, n in _endpoints(cluster, svc, sport) if e.conditions.is_ready and n for a in e.addresses}
    present = sorted(f"{a}:{n}" for a, n in ready if re.search(rf"(?<![\d.]){re.escape(a)}:{n}(?!\d)", text))
    no_ep = [line for line in lines if "no endpoints" in line or "reject-chain" in line]
    evidence = lines[:MAX_LINES_SHOWN] + ([f"... {len(lines) - MAX_LINES_SHOWN} more lines"]
                                          if len(lines) > MAX_LINES_SHOWN else [])
    if not lines:
        return Step(7, "rules", q, cmd, False, f"nothing on {node} mentions {key} or {svc.cluster_ip}", evidence,
                    "kube-proxy has not programmed the Service on this node", "check kube-proxy's logs (step 6)")
    if not ready:
        found = f"{len(lines)} line(s), no backend" + (f": {no_ep[0]}" if no_ep else "")
        return Step(7, "rules", q, cmd, False, found, evidence,
                    "the rules hold the Service but no backend: with no ready endpoint kube-proxy rejects (step 2)",
                    "give the Service ready endpoints (step 2)")
    if len(present) < len(ready):
        return Step(7, "rules", q, cmd, False, f"{len(present)} of {len(ready)} ready endpoints in the rules",
                    evidence, "kube-proxy on this node is behind the EndpointSlices", "check kube-proxy (step 6)")
    return Step(7, "rules", q, cmd, True, f"{len(lines)} line(s) for {svc.cluster_ip}:{sport.port}, "
                                          f"{len(present)} of {len(ready)} ready endpoints as backends", evidence)


def _step_external_address(cluster, svc):
    key = f"{svc.namespace}/{svc.name}"
    cmd = f"kubectl describe svc {svc.name} -n {svc.namespace}  # EXTERNAL-IP and Events"
    q = "External address assigned?"
    ips = [i.ip or i.hostname for i in svc.ingress if i.ip or i.hostname]
    cloud = cluster.cloud
    events = [str(e) for e in cloud.events_for(key)] if cloud is not None else []
    evidence = [f"EXTERNAL-IP {','.join(ips) or '<pending>'}",
                f"load-balancer controller: {type(cloud).__name__ if cloud is not None else 'none running'}"]
    evidence += [f"event: {e}" for e in events[-MAX_LINES_SHOWN:]] or ["Events: <none>"]
    if ips:
        return Step(8, "external-address", q, cmd, True, f"load balancer at {', '.join(ips)}", evidence)
    if cloud is None:
        cause = ("no load-balancer controller runs in this cluster (bare metal, or no cloud-controller-manager): "
                 "nothing will ever fill status.loadBalancer, and no event says so")
        fix = "install one (MetalLB with an IPAddressPool on bare metal), or expose the Service another way"
    elif not cloud.handles(svc):
        cause = f"loadBalancerClass {svc.load_balancer_class!r}: the controller here serves another class"
        fix = "drop spec.loadBalancerClass, or run the controller of that class"
    else:
        warnings = [e for e in cloud.events_for(key) if e.type == "Warning"]
        cause = f"the controller failed: {warnings[-1].message}" if warnings else "the controller has not acted yet"
        fix = "free or add addresses (quota, pool), then the controller retries"
    return Step(8, "external-address", q, cmd, False, "EXTERNAL-IP <pending>", evidence, cause, fix)


def _step_external_entry(cluster, svc, sport, client_ip_matters):
    q = "Reachable from outside at every node?"
    proto = sport.protocol or "TCP"
    cmd = f"curl --max-time 3 http://<node IP>:{sport.node_port}  # from outside, once per node"
    if not sport.node_port:
        return Step(9, "external-entry", q, cmd, None, "skipped: the port has no nodePort")
    results = [(n.name, cluster.connect(EXTERNAL_CLIENT, n.internal_ip, sport.node_port, protocol=proto, via=n.name))
               for n in cluster.nodes]
    evidence = [f"{name} {cluster.get('node', name).internal_ip}:{sport.node_port}: {c.outcome}"
                + (f" to {c.pod}, source seen {c.source_ip}" if c.pod else f" ({_deciding(c)})")
                for name, c in results]
    failed = [name for name, c in results if c.outcome != "delivered"]
    policy = svc.external_traffic_policy or "Cluster"
    if failed:
        local = {name: sum(1 for e, _ in _endpoints(cluster, svc, sport)
                           if e.node_name == name and e.conditions.is_ready) for name, _ in results}
        empty = [n for n in failed if not local[n]]
        refused = [n for n, c in results if n in failed and _refused_at_pod(c)]
        if policy == "Local":
            evidence.append("ready endpoints per node: " + ", ".join(f"{n} {k}" for n, k in local.items()))
        if refused:
            cause = (f"the packets entering {', '.join(refused)} reached a pod that refused them: nothing listens "
                     f"on targetPort {sport.resolved_target} (steps 4 and 5)")
            fix = "set the Service's targetPort to the container's port (or its name)"
        elif policy == "Local" and empty and any(local.values()):
            cause = (f"externalTrafficPolicy Local: {', '.join(empty)} hold{'s' if len(empty) == 1 else ''} no ready "
                     "endpoint of the Service, "
                     "so kube-proxy drops what enters there instead of forwarding it to another node")
            fix = ("run a ready pod on every node that receives traffic (more replicas spread by anti-affinity or a "
                   "topology spread constraint), let only nodes with endpoints receive it (a load balancer that "
                   "health-checks healthCheckNodePort), or use Cluster if the client's IP does not matter")
        elif not any(local.values()):
            cause = "the Service has no ready endpoint on any node (step 2)"
            fix = "give the Service ready endpoints (step 2)"
        else:
            cause = f"{len(failed)} node(s) do not deliver: follow each connection's trace"
            fix = "see the evidence"
        return Step(9, "external-entry", q, cmd, False, f"{len(failed)} of {len(results)} node(s) fail: "
                    + ", ".join(failed), evidence, cause, fix)
    snat = [name for name, c in results if c.source_ip != EXTERNAL_CLIENT]
    if client_ip_matters and snat:
        return Step(9, "external-entry", q, cmd, False,
                    f"delivered, but the pods see a node's address instead of {EXTERNAL_CLIENT}", evidence,
                    f"externalTrafficPolicy {policy}: the node that forwards a packet masquerades it to its own "
                    "address",
                    "externalTrafficPolicy: Local, with a ready pod on every node that receives traffic")
    seen = "the client's own address" if not snat else "a node's address (SNAT)"
    return Step(9, "external-entry", q, cmd, True, f"delivered at all {len(results)} nodes; pods see {seen}", evidence)


def _step_lookups(cluster, from_pod, lookups):
    names = list(lookups)
    q = "Outside names cheap to resolve?"
    cmd = f"kubectl exec {from_pod or '<client pod>'} -- cat /etc/resolv.conf  # and count the queries of one lookup"
    if not from_pod:
        return Step(10, "lookups", q, cmd, None, "skipped: give from_pod, the pod that looks the names up")
    conf = cluster.resolv_conf(from_pod)
    evidence = [line for line in conf.text().splitlines() if line]
    costly, failed = [], []
    for n in names:
        res = cluster.resolve(n, from_pod)
        evidence.append(f"{n}: {res.count} queries ({res.by_status.get('NXDOMAIN', 0)} NXDOMAIN), answer "
                        f"{' '.join(res.answers) or res.rcode}")
        if not res.answers:
            failed.append(n)
        elif res.count > 2:
            costly.append((n, res.count))
    if failed:
        verb = "does" if len(failed) == 1 else "do"
        return Step(10, "lookups", q, cmd, False, f"{', '.join(failed)} {verb} not resolve", evidence,
                    "the name is unknown upstream, or the pod's resolver cannot reach it",
                    "check the name and dnsConfig")
    if costly:
        n, count = costly[0]
        return Step(10, "lookups", q, cmd, False, f"{n} costs {count} queries, not 2", evidence,
                    f"ndots:{conf.ndots}: a name with fewer dots ({n.rstrip('.').count('.')}) tries every search "
                    f"domain first, an A and an AAAA query each, before the name itself",
                    f"dnsConfig options ndots:2 on the pod, or call the name with a trailing dot ({n.rstrip('.')}.)")
    return Step(10, "lookups", q, cmd, True, f"{len(names)} name(s), each one A and one AAAA query", evidence)


def run(cluster, service: str, namespace: str = "default", from_pod: str | None = None, port=None,
        client_ip_matters: bool = False, lookups=()) -> Checklist:
    """Run the checklist for ``service`` ("name" or "namespace/name"): ``from_pod`` is the client pod the
    in-cluster steps connect and resolve from (its node's rules are read; without it the first node's),
    ``port`` the Service port to test (its number or name; the first by default). ``client_ip_matters``
    makes step 9 require that pods see an outside client's own address; ``lookups`` adds step 10 for
    the names an application resolves."""
    ns, name = _key(service, namespace)
    node = _node_of(cluster, from_pod)
    svc, sport, first = _step_service(cluster, ns, name, port)
    steps = [first]
    if svc is None or sport is None:
        skipped = [(2, "endpoints", "Endpoints non-empty?"), (3, "dns", "DNS resolves?"),
                   (4, "clusterip", "ClusterIP reachable?"), (5, "pod", "Pod reachable directly?"),
                   (6, "kube-proxy", "kube-proxy healthy?"), (7, "rules", "Rules present?")]
        steps += [Step(n, k, q, "-", None, "skipped: step 1 failed") for n, k, q in skipped]
    else:
        steps += [_step_endpoints(cluster, svc, sport), _step_dns(cluster, svc, from_pod),
                  _step_clusterip(cluster, svc, sport, from_pod), _step_pods(cluster, svc, sport, from_pod, node),
                  _step_kube_proxy(cluster, node), _step_rules(cluster, svc, sport, node)]
        if svc.type == "LoadBalancer":
            steps.append(_step_external_address(cluster, svc))
        if svc.type in ("NodePort", "LoadBalancer"):
            steps.append(_step_external_entry(cluster, svc, sport, client_ip_matters))
    if lookups:
        steps.append(_step_lookups(cluster, from_pod, lookups))
    for i, s in enumerate(steps, 1):
        s.number = i
    return Checklist(f"{ns}/{name}", cluster.pod(from_pod).key if from_pod and _is_pod(cluster, from_pod) else from_pod,
                     node, cluster.mode, steps)


def _is_pod(cluster, ref) -> bool:
    try:
        cluster.pod(ref)
        return True
    except KeyError:
        return False


__all__ = ["Checklist", "EXTERNAL_CLIENT", "Step", "run", "whole_word"]
