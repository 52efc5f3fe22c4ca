"""Pod: what a Service selects. Only the parts that matter to Service networking are modelled:
labels, node, container ports (for named targetPorts), hostname/subdomain, DNS settings,
IP, phase, readiness and deletion."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

from .errors import Path
from .meta import Named, ObjectMeta, Reader

TERMINAL_PHASES = ("Succeeded", "Failed")


def label_selector(r: Reader, d: dict, key: str, path: Path) -> dict | None:
    """A metav1.LabelSelector at ``d[key]``, type-checked: matchLabels a string map, matchExpressions
    objects with a string key and operator and a list of string values. Returned as given."""
    sel = r.get(d, key, dict, path)
    if sel is not None:
        p = path.child(key)
        r.strmap(sel, "matchLabels", p)
        for ep, e in r.objects(sel, "matchExpressions", p):
            r.get(e, "key", str, ep)
            r.get(e, "operator", str, ep)
            r.strs(e, "values", ep)
    return sel


def _affinity(r: Reader, spec: dict, sp: Path) -> dict | None:
    """spec.affinity, kept as given; the pod anti-affinity terms the scheduler reads are type-checked."""
    affinity = r.get(spec, "affinity", dict, sp)
    if affinity is None:
        return None
    ap = sp.child("affinity")
    anti = r.get(affinity, "podAntiAffinity", dict, ap) or {}
    aap = ap.child("podAntiAffinity")

    def term(t: dict, tp: Path):
        label_selector(r, t, "labelSelector", tp)
        r.get(t, "topologyKey", str, tp)

    for tp, t in r.objects(anti, "requiredDuringSchedulingIgnoredDuringExecution", aap):
        term(t, tp)
    for wp, w in r.objects(anti, "preferredDuringSchedulingIgnoredDuringExecution", aap):
        r.get(w, "weight", int, wp)
        t = r.get(w, "podAffinityTerm", dict, wp)
        if t is not None:
            term(t, wp.child("podAffinityTerm"))
    return affinity


def _spread(r: Reader, c: dict, cp: Path) -> dict:
    r.get(c, "maxSkew", int, cp)
    r.get(c, "topologyKey", str, cp)
    r.get(c, "whenUnsatisfiable", str, cp)
    label_selector(r, c, "labelSelector", cp)
    return c


def _toleration(r: Reader, t: dict, tp: Path) -> dict:
    r.check(t, tp, str, "key", "operator", "value", "effect")
    r.get(t, "tolerationSeconds", int, tp, bits=64)
    return t


def _dns_config(r: Reader, spec: dict, sp: Path) -> dict | None:
    config = r.get(spec, "dnsConfig", dict, sp)
    if config is not None:
        p = sp.child("dnsConfig")
        r.strs(config, "nameservers", p)
        r.strs(config, "searches", p)
        for op, o in r.objects(config, "options", p):
            r.get(o, "name", str, op)
            r.get(o, "value", str, op)
    return config


@dataclass
class ContainerPort:
    container_port: int
    name: str = ""
    protocol: str = "TCP"


@dataclass
class Container:
    name: str
    ports: list[ContainerPort] = field(default_factory=list)
    image: str = "registry.k8s.io/e2e-test-images/agnhost:2.53"
    restart_policy: str | None = None   # "Always" on an init container makes it a sidecar


@dataclass
class Pod(Named):
    metadata: ObjectMeta
    containers: list[Container] = field(default_factory=list)
    init_containers: list[Container] = field(default_factory=list)
    node_name: str = ""
    hostname: str = ""
    subdomain: str = ""
    host_network: bool = False
    dns_policy: str = "ClusterFirst"
    dns_config: dict | None = None
    node_selector: dict[str, str] = field(default_factory=dict)
    affinity: dict | None = None
    topology_spread_constraints: list[dict] = field(default_factory=list)
    tolerations: list[dict] = field(default_factory=list)
    termination_grace_period_seconds: int = 30
    pod_ip: str = ""
    host_ip: str = ""
    phase: str = "Pending"
    ready: bool = False
    ready_given: bool = False    # the manifest carried a Ready condition (kubectl get -o yaml)
    deletion_deadline: float | None = None   # cluster-clock second when a terminating pod is gone

    kind = "Pod"

    @property
    def terminating(self) -> bool:
        return self.metadata.deletion_timestamp is not None

    def find_port(self, name: str, protocol: str) -> int | None:
        """Resolve a named targetPort as the EndpointSlice controller does (FindPort): a container
        port with that name and protocol, in the containers or in sidecar init containers."""
        sidecars = [c for c in self.init_containers if c.restart_policy == "Always"]
        for c in list(self.containers) + sidecars:
            for p in c.ports:
                if p.name == name and p.protocol == protocol:
                    return p.container_port
        return None

    @classmethod
    def from_dict(cls, d: dict) -> "Pod":
        md = d.get("metadata") if isinstance(d.get("metadata"), dict) else {}
        r = Reader("Pod", md.get("name", "") or md.get("generateName", ""))
        pod = cls.read_spec(r, r.obj(d, "spec", Path("")), Path("spec"), ObjectMeta.read(r, d))
        status = r.obj(d, "status", Path(""))
        st = Path("status")
        pod.pod_ip = r.get(status, "podIP", str, st, "")
        pod.host_ip = r.get(status, "hostIP", str, st, "")
        pod.phase = r.get(status, "phase", str, st, "") or ""
        for cp, c in r.objects(status, "conditions", st):
            if r.get(c, "type", str, cp) == "Ready":
                pod.ready = r.get(c, "status", str, cp) == "True"
                pod.ready_given = True
        r.done()
        return pod

    @classmethod
    def read_spec(cls, r: Reader, spec: dict, sp: Path, meta: ObjectMeta) -> "Pod":
        """A PodSpec, from a Pod or from a workload's pod template."""
        def containers(key):
            out = []
            for cp, c in r.objects(spec, key, sp):
                ports = [ContainerPort(container_port=r.get(p, "containerPort", int, pp, 0),
                                       name=r.get(p, "name", str, pp, ""),
                                       protocol=r.get(p, "protocol", str, pp, "TCP"))
                         for pp, p in r.objects(c, "ports", cp)]
                out.append(Container(name=r.get(c, "name", str, cp, ""), ports=ports,
                                     image=r.get(c, "image", str, cp, Container.image),
                                     restart_policy=r.get(c, "restartPolicy", str, cp, None)))
            return out

        return cls(
            metadata=meta,
            containers=containers("containers"),
            init_containers=containers("initContainers"),
            node_name=r.get(spec, "nodeName", str, sp, ""),
            hostname=r.get(spec, "hostname", str, sp, ""),
            subdomain=r.get(spec, "subdomain", str, sp, ""),
            host_network=r.get(spec, "hostNetwork", bool, sp, False),
            dns_policy=r.get(spec, "dnsPolicy", str, sp, "ClusterFirst"),
            dns_config=_dns_config(r, spec, sp),
            node_selector=r.strmap(spec, "nodeSelector", sp) or {},
            affinity=_affinity(r, spec, sp),
            topology_spread_constraints=[_spread(r, c, cp)
                                         for cp, c in r.objects(spec, "topologySpreadConstraints", sp)],
            tolerations=[_toleration(r, t, tp) for tp, t in r.objects(spec, "tolerations", sp)],
            termination_grace_period_seconds=r.get(spec, "terminationGracePeriodSeconds", int, sp, 30, bits=64),
        )

    def spec_dict(self) -> dict:
        def containers(cs):
            out = []
            for c in cs:
                cd: dict = {"name": c.name, "image": c.image}
                if c.restart_policy:
                    cd["restartPolicy"] = c.restart_policy
                if c.ports:
                    cd["ports"] = [{**({"name": p.name} if p.name else {}),
                                    "containerPort": p.container_port, "protocol": p.protocol}
                                   for p in c.ports]
                out.append(cd)
            return out

        spec: dict = {"containers": containers(self.containers)}
        if self.init_containers:
            spec["initContainers"] = containers(self.init_containers)
        for key, value in (("nodeName", self.node_name), ("hostname", self.hostname),
                           ("subdomain", self.subdomain), ("nodeSelector", self.node_selector),
                           ("affinity", self.affinity), ("dnsConfig", self.dns_config),
                           ("topologySpreadConstraints", self.topology_spread_constraints),
                           ("tolerations", self.tolerations)):
            if value:
                spec[key] = copy.deepcopy(value)
        if self.host_network:
            spec["hostNetwork"] = True
        spec["dnsPolicy"] = self.dns_policy
        spec["terminationGracePeriodSeconds"] = self.termination_grace_period_seconds
        return spec

    def to_dict(self) -> dict:
        status: dict = {"phase": self.phase or "Pending"}
        if self.host_ip:
            status["hostIP"] = self.host_ip
        if self.pod_ip:
            status["podIP"] = self.pod_ip
            status["podIPs"] = [{"ip": self.pod_ip}]
        status["conditions"] = [{"type": "Ready", "status": "True" if self.ready else "False"}]
        return {"apiVersion": "v1", "kind": "Pod", "metadata": self.metadata.to_dict(),
                "spec": self.spec_dict(), "status": status}
