"""The EndpointSlice controller, and the legacy Endpoints controller beside it.

kube-proxy never looks at Pods: this controller alone turns a Service's selector into endpoints.
Facts from staging/src/k8s.io/endpointslice (reconciler.go, utils.go) and
pkg/controller/endpoint/endpoints_controller.go:

- Pods in the Service's namespace whose labels include every selector label; terminal Pods and
  Pods without an IP are left out; a Pod on a Node that does not exist is left out unless the
  Service publishes not-ready addresses. Terminating Pods stay, with ready=false.
- serving = Pod Ready; terminating = deletionTimestamp set; ready = publishNotReadyAddresses or
  (serving and not terminating).
- Endpoints are grouped by their resolved port list (a Pod lacking a named port lands in another
  group); each group is packed into slices of at most ``max_endpoints_per_slice`` (100) in three
  passes: refresh existing slices, top up the slices already being updated (fullest first), then put
  the rest into the one unchanged slice closest to full that takes them all, or a new slice. It never
  rebalances. Creates are turned into updates of slices about to be deleted (``finalize``), and a
  Service with no endpoints keeps one empty placeholder slice.
- The legacy Endpoints object holds every address in one object (ready in ``addresses``, the rest
  in ``notReadyAddresses``), truncated at 1000 addresses with the over-capacity annotation.
- Topology hints (the ``Auto`` annotation or ``spec.trafficDistribution``) are set on the slices
  about to be written, and on unchanged slices whose hints are stale, by ``kslib.controllers.topology``;
  an endpoint whose only difference is its hints does not count as changed (EndpointsEqualBeyondHash).
  What the hinting reports goes out as Kubernetes Events on the Service (``recorder``).

Every write is recorded in ``ledger`` (objects and bytes), so lessons can compare the cost of a
pod change under the two schemes. Bytes are the object's compact JSON size, a stand-in for what
the API server sends each watcher.
"""
from __future__ import annotations

import copy
import dataclasses
import ipaddress
import functools
import json
import math
from dataclasses import dataclass, field

from ..api.endpointslice import (CONTROLLER_NAME, HEADLESS_LABEL, MANAGED_BY_LABEL, SERVICE_NAME_LABEL,
                                 Endpoint, EndpointAddress, EndpointConditions, EndpointPort, Endpoints,
                                 EndpointSlice, EndpointSubset)
from ..api.meta import ObjectMeta
from ..api.pod import TERMINAL_PHASES, Pod
from ..api.server import APIServer, Event
from ..api.service import Service
from . import topology

MAX_ENDPOINTS_PER_SLICE = 100
MAX_ENDPOINTS_ADDRESSES = 1000          # the legacy Endpoints object's capacity
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
RESERVED_LABELS = (SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL)


@dataclass
class Write:
    time: float
    kind: str            # "EndpointSlice" | "Endpoints"
    op: str              # "create" | "update" | "delete"
    name: str
    obj: object = field(repr=False)      # the object as written (stored objects are never mutated)

    @functools.cached_property
    def bytes(self) -> int:
        """The object's size as compact JSON (what a watch sends every kube-proxy); 0 for a delete."""
        return len(json.dumps(self.obj.to_dict(), separators=(",", ":"))) if self.op != "delete" else 0


@dataclass
class Ledger:
    """Every object the two controllers wrote: what a pod change costs under each scheme."""
    writes: list[Write] = field(default_factory=list)

    def add(self, time: float, obj, op: str) -> None:
        self.writes.append(Write(time, obj.kind, op, obj.key, obj))

    def totals(self, since: int = 0) -> dict[str, dict[str, int]]:
        out = {"EndpointSlice": {"objects": 0, "bytes": 0}, "Endpoints": {"objects": 0, "bytes": 0}}
        for w in self.writes[since:]:
            out[w.kind]["objects"] += 1
            out[w.kind]["bytes"] += w.bytes
        return out


@dataclass
class KubeEvent:
    """A Kubernetes Event (core/v1 Event) a controller recorded about an object, as ``kubectl get
    events`` lists it. Repeats of the same event are folded into one with a count, as client-go's
    event correlator does (tools/record events_cache.go: same source, object, type, reason, message)."""
    type: str                  # "Normal" | "Warning"
    reason: str                # e.g. "TopologyAwareHintsDisabled"
    message: str
    kind: str                  # the involved object
    namespace: str
    name: str
    source: str                # the reporting component, e.g. "endpoint-slice-controller"
    count: int = 1
    first_timestamp: str = ""
    last_timestamp: str = ""
    uid: str = field(default="", repr=False)     # involvedObject.uid

    @property
    def object(self) -> str:
        """"kind/name", as kubectl prints the involved object."""
        return f"{self.kind.lower()}/{self.name}"

    def __str__(self) -> str:
        return f"{self.type}  {self.reason}  {self.object}  {self.message}"


class EventRecorder:
    """record.EventRecorder for one component: Events land in ``events``, oldest first."""

    def __init__(self, api: APIServer, component: str):
        self.api = api
        self.component = component
        self.events: list[KubeEvent] = []

    def event(self, obj, type_: str, reason: str, message: str) -> KubeEvent:
        key = (obj.kind, obj.namespace, obj.name, obj.metadata.uid, type_, reason, message)
        for ev in self.events:
            if (ev.kind, ev.namespace, ev.name, ev.uid, ev.type, ev.reason, ev.message) == key:
                ev.count += 1
                ev.last_timestamp = self.api.now
                return ev
        ev = KubeEvent(type_, reason, message, obj.kind, obj.namespace, obj.name, self.component,
                       first_timestamp=self.api.now, last_timestamp=self.api.now, uid=obj.metadata.uid)
        self.events.append(ev)
        return ev


def wants_slices(svc: Service) -> bool:
    """The controllers skip ExternalName Services and Services without a selector."""
    return svc.type != "ExternalName" and svc.selector is not None


def selects(svc: Service, labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in (svc.selector or {}).items())


def _ip_key(ip: str):
    return ipaddress.ip_address(ip).packed


def _same_beyond_hints(old: Endpoint, new: Endpoint) -> bool:
    """EndpointsEqualBeyondHash: hints are the hinting's business, not a reason to rewrite a slice."""
    return dataclasses.replace(old, hints_zones=None, hints_nodes=None) == \
        dataclasses.replace(new, hints_zones=None, hints_nodes=None)


class EndpointSliceController:
    def __init__(self, api: APIServer, max_endpoints_per_slice: int = MAX_ENDPOINTS_PER_SLICE):
        if not 1 <= max_endpoints_per_slice <= 1000:
            raise ValueError(f"max-endpoints-per-slice must be between 1 and 1000, got {max_endpoints_per_slice}")
        self.api = api
        self.max = max_endpoints_per_slice
        self.ledger = Ledger()
        self.dirty: set[str] = set()
        self.topology = topology.TopologyCache()
        self._census_taken = False
        self.recorder = EventRecorder(api, "endpoint-slice-controller")
        self._slices: dict[tuple, dict[str, EndpointSlice]] = {}    # (namespace, service) -> name -> slice

    # ---- which Services an event touches --------------------------------------------------------
    def observe(self, e: Event) -> None:
        if e.kind == "Service":
            self.dirty.add(e.obj.key)
        elif e.kind == "Pod":
            labels = [e.obj.metadata.labels] + ([e.old.metadata.labels] if e.old is not None else [])
            for svc in self.api.list("Service", e.obj.namespace):
                if wants_slices(svc) and any(selects(svc, lb) for lb in labels):
                    self.dirty.add(svc.key)
        elif e.kind == "Node":
            self.dirty.update(s.key for s in self.api.list("Service") if wants_slices(s))
            # endpointslice_controller.go: the topology census is retaken when a Node is added or
            # deleted, or changes readiness or zone (an allocatable CPU change alone does not count)
            if e.type != "MODIFIED" or e.old is None or e.old.ready != e.obj.ready or e.old.zone != e.obj.zone:
                self.take_census()

    def take_census(self) -> None:
        """checkNodeTopologyDistribution: recount zones and CPU, requeue overloaded Services."""
        self.topology.set_nodes(self.api.list("Node"))
        self._census_taken = True
        self.dirty.update(self.topology.overloaded_services())

    def sync_dirty(self) -> None:
        if not self.dirty:
            return
        # the informer's index of slices by Service (only this controller writes slices meanwhile,
        # and _write keeps the index current): one scan per sync, not one per Service
        self._slices = {}
        for s in self.api.list("EndpointSlice"):
            if s.managed_by_controller:
                self._slices.setdefault((s.namespace, s.service_name), {})[s.name] = s
        while self.dirty:
            batch = sorted(self.dirty)
            self.dirty.clear()
            for key in batch:
                self.sync_service(key)

    # ---- desired state ------------------------------------------------------------------------------
    def desired(self, svc: Service) -> dict[tuple, dict[str, Endpoint]]:
        """Endpoints for the Service, grouped by resolved port list, keyed by address."""
        nodes = {n.name: n for n in self.api.list("Node")}
        groups: dict[tuple, dict[str, Endpoint]] = {}
        pods = sorted((p for p in self.api.list("Pod", svc.namespace) if selects(svc, p.metadata.labels)),
                      key=lambda p: (p.metadata.creation_timestamp or "", p.name))
        for pod in pods:
            if pod.phase in TERMINAL_PHASES or not pod.pod_ip:
                continue
            node = nodes.get(pod.node_name)
            if node is None and not svc.publish_not_ready_addresses:
                continue
            ports = tuple(sorted(self._ports(svc, pod), key=lambda p: (p.name or "", p.protocol, p.port or 0)))
            groups.setdefault(ports, {})[pod.pod_ip] = self._endpoint(svc, pod, node)
        return groups

    @staticmethod
    def _ports(svc: Service, pod: Pod) -> list[EndpointPort]:
        out = []
        for sp in svc.ports:
            target = sp.resolved_target
            number = pod.find_port(target, sp.protocol) if isinstance(target, str) else target
            if number is None:
                continue        # a named port the Pod lacks: that port is left off this endpoint
            out.append(EndpointPort(name=sp.name, port=number, protocol=sp.protocol, app_protocol=sp.app_protocol))
        return out

    @staticmethod
    def _endpoint(svc: Service, pod: Pod, node) -> Endpoint:
        serving = pod.ready
        terminating = pod.terminating
        hostname = pod.hostname if pod.hostname and pod.subdomain == svc.name else None
        return Endpoint(
            addresses=[pod.pod_ip],
            conditions=EndpointConditions(ready=svc.publish_not_ready_addresses or (serving and not terminating),
                                          serving=serving, terminating=terminating),
            hostname=hostname, node_name=pod.node_name or None, zone=node.zone if node is not None else None,
            target_ref={"kind": "Pod", "namespace": pod.namespace, "name": pod.name, "uid": pod.metadata.uid},
        )

    def _labels(self, svc: Service) -> dict[str, str]:
        labels = {k: v for k, v in svc.metadata.labels.items() if k not in RESERVED_LABELS}
        labels[SERVICE_NAME_LABEL] = svc.name
        labels[MANAGED_BY_LABEL] = CONTROLLER_NAME
        if svc.headless:
            labels[HEADLESS_LABEL] = ""
        return labels

    def _new_slice(self, svc: Service, ports: tuple) -> EndpointSlice:
        meta = ObjectMeta(name="", generate_name=f"{svc.name}-", namespace=svc.namespace,
                          labels=self._labels(svc),
                          owner_references=[{"apiVersion": "v1", "kind": "Service", "name": svc.name,
                                             "uid": svc.metadata.uid, "controller": True,
                                             "blockOwnerDeletion": True}])
        return EndpointSlice(metadata=meta, address_type="IPv4", endpoints=[], ports=list(ports))

    def _owned(self, namespace: str, name: str) -> list[EndpointSlice]:
        return sorted(self._slices.get((namespace, name), {}).values(), key=lambda s: s.name)

    # ---- reconcile ------------------------------------------------------------------------------------
    def sync_service(self, key: str) -> None:
        svc = self.api.get("Service", key)
        if svc is None or not wants_slices(svc):
            for s in self._owned(*key.split("/", 1)):
                self._write(s, "delete")
            ep = self.api.get("Endpoints", key)
            if ep is not None:
                self._write(ep, "delete")
            return
        self.reconcile(svc)
        self.sync_endpoints(svc)

    def reconcile(self, svc: Service) -> None:
        existing = self._owned(svc.namespace, svc.name)
        desired = self.desired(svc)
        labels = self._labels(svc)
        to_create: list[EndpointSlice] = []
        to_update: list[EndpointSlice] = []
        to_delete: list[EndpointSlice] = []
        stale = [s for s in existing if not any(o.get("uid") == svc.metadata.uid
                                                for o in s.metadata.owner_references)]
        to_delete += stale        # slices not owned by this Service (e.g. of an older one) go
        by_ports: dict[tuple, list[EndpointSlice]] = {}
        for s in existing:
            if s not in stale:
                by_ports.setdefault(tuple(sorted(s.ports, key=lambda p: (p.name or "", p.protocol, p.port or 0))),
                                    []).append(s)
        for ports, slices in by_ports.items():
            if ports not in desired:
                to_delete += slices
        for ports, wanted in desired.items():
            c, u, d = self._pack(svc, ports, dict(wanted), by_ports.get(ports, []), labels)
            to_create += c
            to_update += u
            to_delete += d
        # Placeholder: a Service with no endpoints keeps exactly one empty slice.
        if len(existing) == len(to_delete) and not to_create:
            placeholder = self._new_slice(svc, ())
            if len(to_delete) == 1 and not to_delete[0].endpoints and not to_delete[0].ports \
                    and to_delete[0].metadata.labels == placeholder.metadata.labels:
                to_delete = []
            else:
                to_create.append(placeholder)
        # topology hints, per address type, before finalize (reconciler.go reconcileByAddressType)
        if not self._census_taken:
            self.take_census()
        changed = {s.name for s in to_update} | {s.name for s in to_delete}
        si = topology.SliceInfo(svc.key, "IPv4", to_create, to_update,
                                [s for s in existing if s.name not in changed])
        to_create, to_update, events = topology.reconcile_hints(
            self.topology, svc.key, svc.metadata.annotations, svc.traffic_distribution, si)
        # finalize: turn creates into updates of slices that would be deleted, reusing the name.
        i = 0
        while i < len(to_delete) and to_create:
            doomed = to_delete[i]
            if any(o.get("uid") == svc.metadata.uid for o in doomed.metadata.owner_references):
                s = to_create.pop()
                s.metadata.name, s.metadata.generate_name = doomed.name, doomed.metadata.generate_name
                to_update.append(s)
                to_delete.pop(i)
            else:
                i += 1
        for s in to_delete:
            self._write(s, "delete")
        for s in to_update:
            self._write(s, "update")
        for s in to_create:
            self._write(s, "create")
        for ev in events:
            self.recorder.event(svc, ev.type, ev.reason, ev.message)

    def _pack(self, svc, ports, wanted: dict[str, Endpoint], slices: list[EndpointSlice], labels):
        to_create, to_update, to_delete, unchanged = [], [], [], []
        # Pass 1: keep wanted endpoints (refreshed), drop the rest.
        for s in slices:
            kept, changed = [], False
            for ep in s.endpoints:
                new = wanted.pop(ep.addresses[0], None)
                if new is not None:
                    kept.append(new)
                    changed = changed or not _same_beyond_hints(ep, new)
            if changed or len(kept) != len(s.endpoints):
                if not kept:
                    to_delete.append(s)
                    continue
                s = copy.deepcopy(s)
                s.endpoints, s.metadata.labels = kept, dict(labels)
                to_update.append(s)
            elif s.metadata.labels != labels:
                s = copy.deepcopy(s)
                s.metadata.labels = dict(labels)
                to_update.append(s)
            else:
                unchanged.append(s)
        remaining = list(wanted.values())
        # Pass 2: top up the slices already being updated, fullest first.
        if remaining and to_update:
            for s in sorted(to_update, key=lambda s: -len(s.endpoints)):
                while remaining and len(s.endpoints) < self.max:
                    s.endpoints.append(remaining.pop(0))
        # Pass 3: the rest into the one unchanged slice closest to full that takes them all, else new slices.
        while remaining:
            target = None
            if len(remaining) < self.max and unchanged:
                best = None
                for i, s in enumerate(unchanged):
                    diff = self.max - (len(remaining) + len(s.endpoints))
                    if diff >= 0 and (best is None or diff < best[0]):
                        best = (diff, i)
                        if diff == 0:
                            break
                if best is not None:
                    target = copy.deepcopy(unchanged.pop(best[1]))
                    to_update.append(target)
            if target is None:
                target = self._new_slice(svc, ports)
                to_create.append(target)
            while remaining and len(target.endpoints) < self.max:
                target.endpoints.append(remaining.pop(0))
        return to_create, to_update, to_delete

    # ---- legacy Endpoints ---------------------------------------------------------------------------
    def sync_endpoints(self, svc: Service) -> None:
        """endpoints_controller.go syncService: one object, ready and not-ready addresses, repacked
        by port set and sorted by IP; over 1000 addresses it is truncated, ready ones kept first."""
        nodes = {n.name for n in self.api.list("Node")}
        subsets: dict[tuple, EndpointSubset] = {}
        for pod in self.api.list("Pod", svc.namespace):
            if not selects(svc, pod.metadata.labels) or pod.phase in TERMINAL_PHASES or not pod.pod_ip:
                continue
            if pod.terminating and not svc.publish_not_ready_addresses:
                continue
            if pod.node_name not in nodes and not svc.publish_not_ready_addresses:
                continue
            ports = tuple(sorted(self._ports(svc, pod), key=lambda p: (p.name or "", p.protocol, p.port or 0)))
            if svc.ports and not ports:
                continue
            hostname = pod.hostname if pod.hostname and pod.subdomain == svc.name else None
            addr = EndpointAddress(ip=pod.pod_ip, hostname=hostname, node_name=pod.node_name or None,
                                   target_ref={"kind": "Pod", "namespace": pod.namespace, "name": pod.name,
                                               "uid": pod.metadata.uid})
            sub = subsets.setdefault(ports, EndpointSubset(ports=list(ports)))
            (sub.addresses if (pod.ready or svc.publish_not_ready_addresses) else sub.not_ready_addresses).append(addr)
        out = [subsets[k] for k in sorted(subsets, key=str)]
        for s in out:
            s.addresses.sort(key=lambda a: _ip_key(a.ip))
            s.not_ready_addresses.sort(key=lambda a: _ip_key(a.ip))
        meta = ObjectMeta(name=svc.name, namespace=svc.namespace,
                          labels={k: v for k, v in svc.metadata.labels.items()})
        total = sum(len(s.addresses) + len(s.not_ready_addresses) for s in out)
        if total > MAX_ENDPOINTS_ADDRESSES:
            out = self._truncate(out, total)
            meta.annotations[OVER_CAPACITY] = "truncated"
        ep = Endpoints(metadata=meta, subsets=out)
        old = self.api.get("Endpoints", svc.key)
        if old is None or old.subsets != ep.subsets or old.metadata.annotations != ep.metadata.annotations \
                or old.metadata.labels != ep.metadata.labels:
            self._write(ep, "create" if old is None else "update")

    @staticmethod
    def _truncate(subsets: list[EndpointSubset], total: int) -> list[EndpointSubset]:
        # truncateEndpoints: each subset keeps its share of 1000 (rounded up), ready addresses first.
        left = MAX_ENDPOINTS_ADDRESSES
        out = []
        for s in subsets:
            n = len(s.addresses) + len(s.not_ready_addresses)
            keep = min(left, math.ceil(n / total * MAX_ENDPOINTS_ADDRESSES))
            ready = s.addresses[:keep]
            not_ready = s.not_ready_addresses[:keep - len(ready)]
            out.append(EndpointSubset(addresses=ready, not_ready_addresses=not_ready, ports=s.ports))
            left -= len(ready) + len(not_ready)
        return out

    # ---- writes ---------------------------------------------------------------------------------------
    def _write(self, obj, op: str) -> None:
        if op == "delete":
            self.api.remove(obj.kind, obj.key)
        else:
            if not obj.metadata.name:
                obj.metadata.name = obj.metadata.generate_name[:58] + self.api.random_suffix()
            self.api.write(obj)
        if obj.kind == "EndpointSlice":
            owned = self._slices.setdefault((obj.namespace, obj.service_name), {})
            if op == "delete":
                owned.pop(obj.name, None)
            else:
                owned[obj.name] = obj
        self.ledger.add(self.api.clock, obj, op)
