"""The API server: stores objects, defaults, allocates and validates them, and tells watchers.

The order of one create follows the real registry: defaulting, then allocation of ClusterIPs and
NodePorts (BeginCreate, pkg/registry/core/service/storage/alloc.go), then validation; a failure
anywhere releases what was allocated. ``transaction()`` makes a batch all-or-nothing: a failed
``apply`` leaves the store, the allocators and the watchers exactly as they were.
"""
from __future__ import annotations

import copy
import datetime as dt
import ipaddress
import random
import uuid
from contextlib import contextmanager
from dataclasses import dataclass

from . import allocators as al
from .endpointslice import Endpoint, EndpointConditions, EndpointPort, EndpointSlice
from .errors import InternalError, Path, ValidationError, invalid
from .meta import ObjectMeta
from .node import Node
from .pod import Pod
from .service import Service, ServicePort
from .validation import (validate_cluster_ips, validate_endpoint_slice, validate_node, validate_pod,
                         validate_service, validate_service_update)
from .workloads import Workload

EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"     # k8s.io/apimachinery/pkg/util/rand


@dataclass
class Event:
    type: str            # "ADDED" | "MODIFIED" | "DELETED"
    kind: str
    obj: object          # the object after the change (before it, for DELETED)
    old: object = None


class APIServer:
    def __init__(self, service_cidr: str, cluster_cidr: str, node_cidr: str,
                 node_port_range: str = "30000-32767", node_cidr_mask: int = 24, seed: int = 0):
        self.rng = random.Random(seed)
        self.clock = 0.0
        self.objects: dict[str, dict[str, object]] = {}
        self.service_ips = al.ServiceIPAllocator(service_cidr)
        lo, hi = (int(x) for x in node_port_range.split("-"))
        self.node_ports = al.NodePortAllocator(lo, hi - lo + 1)
        self.cluster_net = ipaddress.ip_network(cluster_cidr, strict=False)
        self.node_net = ipaddress.ip_network(node_cidr, strict=False)
        self.node_cidr_mask = node_cidr_mask
        self.pod_ips: dict[str, al.PodIPAllocator] = {}
        self.watchers: list = []
        self._pending: list[Event] | None = None

    # ---- reading ---------------------------------------------------------------------------
    def list(self, kind: str, namespace: str | None = None) -> list:
        objs = self.objects.get(kind, {}).values()
        return [o for o in objs if namespace is None or getattr(o, "namespace", None) == namespace]

    def get(self, kind: str, key: str):
        return self.objects.get(kind, {}).get(key)

    @property
    def now(self) -> str:
        return (EPOCH + dt.timedelta(seconds=self.clock)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def random_suffix(self, n: int = 5) -> str:
        return "".join(self.rng.choice(NAME_ALPHABET) for _ in range(n))

    # ---- transactions and events -------------------------------------------------------------
    @contextmanager
    def transaction(self):
        """All writes inside succeed together or not at all; watchers hear of them on success."""
        if self._pending is not None:      # nested: the outer transaction decides
            yield
            return
        # Stored objects are never mutated in place (writes replace them), so copying the
        # per-kind dicts is enough to restore the store.
        saved = ({k: dict(v) for k, v in self.objects.items()},
                 copy.deepcopy((self.service_ips, self.node_ports, self.pod_ips)), self.rng.getstate())
        self._pending = []
        try:
            yield
        except BaseException:
            objs, allocs, rng_state = saved
            self.objects = objs
            self.service_ips, self.node_ports, self.pod_ips = allocs
            self.rng.setstate(rng_state)
            self._pending = None
            raise
        events, self._pending = self._pending, None
        for e in events:
            self._notify(e)

    def _emit(self, event: Event):
        if self._pending is not None:
            self._pending.append(event)
        else:
            self._notify(event)

    def _notify(self, event: Event):
        for w in list(self.watchers):
            w(event)

    def watch(self, fn) -> None:
        self.watchers.append(fn)

    def _store(self, obj, old=None):
        self.objects.setdefault(obj.kind, {})[obj.key] = obj
        self._emit(Event("MODIFIED" if old is not None else "ADDED", obj.kind, obj, old))

    # ---- writes ----------------------------------------------------------------------------
    def apply(self, obj):
        """Create the object, or update it if one of that kind and name exists (kubectl apply)."""
        obj = copy.deepcopy(obj)
        if not obj.metadata.name and obj.metadata.generate_name:
            obj.metadata.name = obj.metadata.generate_name[:58] + self.random_suffix()
        old = self.get(obj.kind, obj.metadata.key)
        handler = {"Service": self._apply_service, "Pod": self._apply_pod, "Node": self._apply_node,
                   "EndpointSlice": self._apply_slice}.get(obj.kind, self._apply_workload)
        self._fill_meta(obj, old)
        handler(obj, old)
        return obj

    def write(self, obj):
        """A controller's write: no defaulting or allocation, just store and tell watchers."""
        old = self.get(obj.kind, obj.key)
        self._fill_meta(obj, old)
        self._store(obj, old)
        return obj

    def remove(self, kind: str, key: str):
        """Take an object out of the store at once (after any grace period)."""
        obj = self.objects.get(kind, {}).pop(key, None)
        if obj is None:
            return None
        if kind == "Service":
            self._release_service(obj)
        elif kind == "Pod" and obj.pod_ip and obj.node_name in self.pod_ips and not obj.host_network:
            self.pod_ips[obj.node_name].release(obj.pod_ip)
        self._emit(Event("DELETED", kind, obj))
        return obj

    def delete(self, kind: str, key: str):
        """What `kubectl delete` does: Pods get a deletionTimestamp and terminate gracefully
        (removed when the grace period has passed on the cluster clock); others go at once."""
        obj = self.get(kind, key)
        if obj is None:
            raise KeyError(f'{kind.lower()}s "{key.split("/")[-1]}" not found')
        if kind == "Pod" and obj.terminating:
            return obj
        if kind == "Pod" and obj.termination_grace_period_seconds > 0 and obj.node_name:
            new = copy.deepcopy(obj)
            new.metadata.deletion_timestamp = self.now
            new.deletion_deadline = self.clock + obj.termination_grace_period_seconds
            self._store(new, obj)
            return new
        return self.remove(kind, key)

    def _fill_meta(self, obj, old):
        m: ObjectMeta = obj.metadata
        if old is not None:
            m.uid = old.metadata.uid
            m.creation_timestamp = old.metadata.creation_timestamp
            if m.deletion_timestamp is None:
                m.deletion_timestamp = old.metadata.deletion_timestamp
        if not m.uid:
            m.uid = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        if not m.creation_timestamp:
            m.creation_timestamp = self.now

    # ---- Services ---------------------------------------------------------------------------
    def _apply_service(self, svc: Service, old: Service | None):
        svc.apply_defaults()
        if svc.cluster_ip and not svc.cluster_ips:     # normalizeClusterIPs: singular -> plural only
            svc.cluster_ips = [svc.cluster_ip]
        if old is not None:
            self._carry_allocations(svc, old)
            if (svc.type != "ExternalName" and old.type != "ExternalName" and old.cluster_ip
                    and svc.cluster_ip != old.cluster_ip):
                # updateClusterIPs allocates nothing here: the update validation refuses the change
                raise ValidationError("Service", svc.name, validate_service_update(svc, old))
            self._release_service(old)
        try:
            self._allocate_service(svc)
        except (ValidationError, InternalError):
            if old is not None:
                self._reallocate(old)
            raise
        errs = validate_service(svc) if old is None else validate_service_update(svc, old)
        if errs:
            self._release_service(svc)
            if old is not None:
                self._reallocate(old)
            raise ValidationError("Service", svc.name, errs)
        self._store(svc, old)

    @staticmethod
    def _carry_allocations(svc: Service, old: Service):
        """patchAllocatedValues: an update that leaves clusterIP, nodePorts or the
        healthCheckNodePort unset keeps the values already allocated."""
        if svc.type != "ExternalName" and old.type != "ExternalName" and not svc.cluster_ip:
            svc.cluster_ip, svc.cluster_ips = old.cluster_ip, list(old.cluster_ips)
            svc.ip_families = svc.ip_families or list(old.ip_families)
            svc.ip_family_policy = svc.ip_family_policy or old.ip_family_policy
        if svc.type in ("NodePort", "LoadBalancer") and old.type in ("NodePort", "LoadBalancer"):
            for p in svc.ports:
                if not p.node_port:
                    for q in old.ports:
                        if q.node_port and q.port == p.port and q.protocol == p.protocol:
                            p.node_port = q.node_port
            if svc.needs_health_check and old.needs_health_check and not svc.health_check_node_port:
                svc.health_check_node_port = old.health_check_node_port

    def _allocate_service(self, svc: Service):
        """alloc.go allocateCreate: IP family fields, ClusterIPs, NodePorts, healthCheckNodePort.
        Any error here comes back alone: ValidateService has not run yet."""
        done: list[tuple] = []
        try:
            if svc.type != "ExternalName":
                self._init_ip_families(svc)
                if svc.cluster_ip and svc.cluster_ip != "None":
                    self._claim_ip(svc, done)
                elif not svc.cluster_ip:
                    try:
                        svc.cluster_ip = self.service_ips.allocate_next(self.rng)
                    except al.RangeFull:
                        raise InternalError("failed to allocate a serviceIP: range is full")
                    svc.cluster_ips = [svc.cluster_ip]
                    done.append(("ip", svc.cluster_ip))
            if svc.type in ("NodePort", "LoadBalancer"):
                self._allocate_node_ports(svc, done)
            if svc.needs_health_check:
                hc = svc.health_check_node_port
                if hc:
                    try:
                        self.node_ports.allocate(hc)
                    except al.NotInRange:
                        raise InternalError(f"failed to allocate requested HealthCheck NodePort {hc}: provided port "
                                            f"is not in the valid range. The range of valid ports is "
                                            f"{self.node_ports.range_text}")
                    except al.AlreadyAllocated:
                        raise InternalError(f"failed to allocate requested HealthCheck NodePort {hc}: "
                                            "provided port is already allocated")
                    done.append(("port", hc))
                else:
                    try:
                        svc.health_check_node_port = self.node_ports.allocate_next(self.rng)
                    except al.RangeFull:
                        raise InternalError("failed to allocate a HealthCheck NodePort: range is full")
                    done.append(("port", svc.health_check_node_port))
        except (ValidationError, InternalError):
            self._undo(done)
            raise

    def _init_ip_families(self, svc: Service):
        """initIPFamilyFields on a single-stack IPv4 cluster; the clusterIPs checks run here,
        before allocation, and their errors are returned on their own."""
        errs = validate_cluster_ips(svc)
        if errs:
            raise ValidationError("Service", svc.name, errs)
        if svc.ip_family_policy is None:
            headless_selectorless = svc.headless and not svc.selector
            svc.ip_family_policy = "RequireDualStack" if headless_selectorless else "SingleStack"
        if not svc.ip_families:
            svc.ip_families = ["IPv4"]
        bad = [invalid(Path("spec.ipFamilies").index(i), f, "not configured on this cluster")
               for i, f in enumerate(svc.ip_families) if f != "IPv4"]
        if svc.ip_family_policy == "RequireDualStack" and not (svc.headless and not svc.selector):
            bad.append(invalid(Path("spec.ipFamilyPolicy"), svc.ip_family_policy,
                               "this cluster is not configured for dual-stack services"))
        if bad:
            raise ValidationError("Service", svc.name, bad)

    def _claim_ip(self, svc: Service, done: list):
        path, ip = Path("spec.clusterIPs"), svc.cluster_ip
        try:
            self.service_ips.allocate(ip)
        except (al.NotInRange, ValueError):
            raise ValidationError("Service", svc.name, [invalid(
                path, svc.cluster_ips, f"failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid "
                f"range. The range of valid IPs is {self.service_ips.net}")])
        except al.AlreadyAllocated:
            raise ValidationError("Service", svc.name, [invalid(
                path, svc.cluster_ips, f"failed to allocate IP {ip}: provided IP is already allocated")])
        done.append(("ip", ip))

    def _allocate_node_ports(self, svc: Service, done: list):
        # Explicit nodePorts are claimed; unset ones are allocated unless a LoadBalancer says
        # allocateLoadBalancerNodePorts: false. Ports sharing a port number (TCP/53 and UDP/53)
        # share one allocated nodePort (alloc.go initNodePorts).
        auto = svc.type == "NodePort" or svc.allocate_load_balancer_node_ports is not False
        by_number: dict[int, int] = {}
        for i, p in enumerate(svc.ports):
            path = Path("spec.ports").index(i).child("nodePort")
            if p.node_port:
                if by_number.get(p.port) == p.node_port:
                    continue
                self._claim_port(svc, p.node_port, path, done)
                by_number[p.port] = p.node_port
        for i, p in enumerate(svc.ports):
            if p.node_port or not auto:
                continue
            if p.port in by_number:
                p.node_port = by_number[p.port]
                continue
            p.node_port = self._next_port()
            done.append(("port", p.node_port))
            by_number[p.port] = p.node_port

    def _claim_port(self, svc: Service, port: int, path: Path, done: list):
        try:
            self.node_ports.allocate(port)
        except al.NotInRange:
            raise ValidationError("Service", svc.name, [invalid(
                path, port, "provided port is not in the valid range. The range of valid ports is "
                + self.node_ports.range_text)])
        except al.AlreadyAllocated:
            raise ValidationError("Service", svc.name, [invalid(path, port, "provided port is already allocated")])
        done.append(("port", port))

    def _next_port(self) -> int:
        try:
            return self.node_ports.allocate_next(self.rng)
        except al.RangeFull:
            raise InternalError("failed to allocate a nodePort: range is full")

    def _undo(self, done: list):
        for what, value in done:
            (self.service_ips if what == "ip" else self.node_ports).release(value)

    def _release_service(self, svc: Service):
        if svc.cluster_ip and svc.cluster_ip != "None":
            self.service_ips.release(svc.cluster_ip)
        for p in svc.ports:
            if p.node_port:
                self.node_ports.release(p.node_port)
        if svc.health_check_node_port:
            self.node_ports.release(svc.health_check_node_port)

    def _reallocate(self, svc: Service):
        if svc.cluster_ip and svc.cluster_ip != "None":
            self.service_ips.bitmap.used.add(int(ipaddress.ip_address(svc.cluster_ip)) - self.service_ips.base)
        for port in [p.node_port for p in svc.ports] + [svc.health_check_node_port]:
            if port:
                self.node_ports.bitmap.used.add(port - self.node_ports.base)

    # ---- Nodes, Pods, slices, workloads ---------------------------------------------------------
    def _apply_node(self, node: Node, old: Node | None):
        if old is not None:
            node.pod_cidr = node.pod_cidr or old.pod_cidr
            node.internal_ip = node.internal_ip or old.internal_ip
        errs = validate_node(node)
        if errs:
            raise ValidationError("Node", node.name, errs)
        if not node.internal_ip:
            node.internal_ip = self._next_node_ip()
        if not node.pod_cidr:
            node.pod_cidr = self._next_pod_cidr()   # the node IPAM controller (--node-cidr-mask-size)
        node.hostname = node.hostname or node.name
        if node.name not in self.pod_ips or (old is not None and old.pod_cidr != node.pod_cidr):
            self.pod_ips[node.name] = al.PodIPAllocator(node.pod_cidr)
            for p in self.list("Pod"):
                if p.node_name == node.name and p.pod_ip and not p.host_network:
                    self._reserve_pod_ip(node.name, p.pod_ip)
        self._store(node, old)

    def _next_node_ip(self) -> str:
        taken = {n.internal_ip for n in self.list("Node")}
        for host in list(self.node_net.hosts())[1:]:      # .1 is the network's gateway
            if str(host) not in taken:
                return str(host)
        raise InternalError(f"node network {self.node_net} has no free address")

    def _next_pod_cidr(self) -> str:
        taken = {n.pod_cidr for n in self.list("Node")}
        for sub in self.cluster_net.subnets(new_prefix=self.node_cidr_mask):
            if str(sub) not in taken:
                return str(sub)
        raise InternalError(f"cluster CIDR {self.cluster_net} has no free /{self.node_cidr_mask} for a node")

    def _reserve_pod_ip(self, node: str, ip: str):
        alloc = self.pod_ips.get(node)
        if alloc is not None and ipaddress.ip_address(ip) in alloc.net:
            alloc.reserve(ip)

    def _apply_pod(self, pod: Pod, old: Pod | None):
        if old is not None:
            # Most of a Pod's spec is immutable; an apply changes labels and annotations, and
            # the status the kubelet reports stays unless the manifest gives one.
            pod.node_name = pod.node_name or old.node_name
            pod.pod_ip = pod.pod_ip or old.pod_ip
            pod.host_ip = pod.host_ip or old.host_ip
            pod.phase = pod.phase or old.phase
            if not pod.ready_given:
                pod.ready, pod.ready_given = old.ready, old.ready_given
            pod.deletion_deadline = old.deletion_deadline
        errs = validate_pod(pod)
        if errs:
            raise ValidationError("Pod", pod.name, errs)
        if pod.pod_ip and pod.node_name and not pod.host_network:
            self._reserve_pod_ip(pod.node_name, pod.pod_ip)
        self._store(pod, old)

    def _apply_slice(self, s: EndpointSlice, old):
        errs = validate_endpoint_slice(s)
        if errs:
            raise ValidationError("EndpointSlice", s.name, errs)
        self._store(s, old)

    def _apply_workload(self, w: Workload, old):
        errs = w.validate()
        if w.kind == "Deployment" and old is not None and w.selector != old.selector:
            # apps/v1 ValidateDeploymentUpdate: ValidateImmutableField(spec.selector)
            errs.append(invalid("spec.selector", w.selector, "field is immutable"))
        if w.template is not None:
            # the pod template is validated as a Pod, its paths under spec.template
            probe = copy.deepcopy(w.template)
            probe.metadata = ObjectMeta(name=w.name, namespace=w.namespace, labels=w.template_meta.labels)
            for e in validate_pod(probe):
                if not e.field.startswith("metadata.name"):
                    field = e.field.replace("spec.", "spec.template.spec.", 1) if e.field.startswith("spec.") \
                        else "spec.template." + e.field
                    errs.append(type(e)(e.type, field, e.detail, e.value, e.has_value))
        if errs:
            raise ValidationError(w.kind, w.name, errs)
        self._store(w, old)

    def assign_pod_ip(self, pod: Pod) -> str:
        """The CNI's IPAM on the pod's node: the next free address of the node's podCIDR."""
        return self.pod_ips[pod.node_name].allocate_next()


def kubernetes_service(api: APIServer) -> Service:
    """default/kubernetes: always the first address of the service range (GetIndexedIP(range, 1)),
    port 443 to the API server's 6443 (pkg/controlplane/controller/kubernetesservice)."""
    return Service(metadata=ObjectMeta(name="kubernetes", namespace="default",
                                       labels={"component": "apiserver", "provider": "kubernetes"}),
                   type="ClusterIP", cluster_ip=api.service_ips.indexed(1),
                   ports=[ServicePort(port=443, name="https", protocol="TCP", target_port=6443)])


def kubernetes_endpoint_slice(api: APIServer) -> EndpointSlice | None:
    """The API server publishes its own address as the kubernetes Service's endpoint: here the
    first control-plane node (or the first node) at 6443. None while the cluster has no node."""
    nodes = sorted(api.list("Node"), key=lambda n: (not n.is_control_plane, n.name))
    if not nodes:
        return None
    return EndpointSlice(
        metadata=ObjectMeta(name="kubernetes", namespace="default",
                            labels={"kubernetes.io/service-name": "kubernetes"}),
        endpoints=[Endpoint(addresses=[nodes[0].internal_ip], conditions=EndpointConditions(ready=True))],
        ports=[EndpointPort(name="https", port=6443, protocol="TCP")])
