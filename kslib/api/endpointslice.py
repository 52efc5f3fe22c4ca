"""EndpointSlice (discovery.k8s.io/v1) and the legacy Endpoints object (v1)."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

from .errors import Path
from .meta import Named, ObjectMeta, Reader

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"


@dataclass
class EndpointConditions:
    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None

    # The API's documented reading of unset conditions (discovery/v1 types.go):
    # nil ready means ready; nil serving falls back to ready; nil terminating means not terminating.
    @property
    def is_ready(self) -> bool:
        return self.ready is not False

    @property
    def is_serving(self) -> bool:
        return self.is_ready if self.serving is None else self.serving

    @property
    def is_terminating(self) -> bool:
        return bool(self.terminating)

    def to_dict(self) -> dict:
        return {k: v for k, v in (("ready", self.ready), ("serving", self.serving),
                                  ("terminating", self.terminating)) if v is not None}


@dataclass
class Endpoint:
    addresses: list[str]
    conditions: EndpointConditions = field(default_factory=EndpointConditions)
    hostname: str | None = None
    node_name: str | None = None
    zone: str | None = None
    target_ref: dict | None = None
    hints_zones: list[str] | None = None
    hints_nodes: list[str] | None = None

    @property
    def pod(self) -> str | None:
        """"namespace/name" of the Pod behind this endpoint, if any."""
        ref = self.target_ref or {}
        return f"{ref.get('namespace', '')}/{ref['name']}" if ref.get("kind") == "Pod" and ref.get("name") else None

    def to_dict(self) -> dict:
        out: dict = {"addresses": list(self.addresses), "conditions": self.conditions.to_dict()}
        if self.hostname:
            out["hostname"] = self.hostname
        if self.node_name:
            out["nodeName"] = self.node_name
        if self.zone:
            out["zone"] = self.zone
        if self.target_ref:
            out["targetRef"] = dict(self.target_ref)
        hints = {}
        if self.hints_zones is not None:
            hints["forZones"] = [{"name": z} for z in self.hints_zones]
        if self.hints_nodes is not None:
            hints["forNodes"] = [{"name": n} for n in self.hints_nodes]
        if hints:
            out["hints"] = hints
        return out


@dataclass(frozen=True)
class EndpointPort:
    name: str | None = ""
    port: int | None = None
    protocol: str = "TCP"
    app_protocol: str | None = None

    def to_dict(self) -> dict:
        out: dict = {"name": self.name or "", "port": self.port, "protocol": self.protocol}
        if self.app_protocol:
            out["appProtocol"] = self.app_protocol
        return out


@dataclass
class EndpointSlice(Named):
    metadata: ObjectMeta
    address_type: str = "IPv4"
    endpoints: list[Endpoint] = field(default_factory=list)
    ports: list[EndpointPort] = field(default_factory=list)

    kind = "EndpointSlice"

    @property
    def service_name(self) -> str | None:
        return self.metadata.labels.get(SERVICE_NAME_LABEL)

    @property
    def managed_by_controller(self) -> bool:
        return self.metadata.labels.get(MANAGED_BY_LABEL) == CONTROLLER_NAME

    @classmethod
    def from_dict(cls, d: dict) -> "EndpointSlice":
        md = d.get("metadata") if isinstance(d.get("metadata"), dict) else {}
        r = Reader("EndpointSlice", md.get("name", ""))
        meta = ObjectMeta.read(r, d)
        root = Path("")
        eps = []
        for ep, e in r.objects(d, "endpoints", root):
            c = r.obj(e, "conditions", ep)
            cp = ep.child("conditions")
            hints = r.obj(e, "hints", ep)
            hp = ep.child("hints")
            target_ref = r.get(e, "targetRef", dict, ep, None)
            r.check(target_ref, ep.child("targetRef"), str,
                    "kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
            eps.append(Endpoint(
                addresses=r.strs(e, "addresses", ep),
                conditions=EndpointConditions(ready=r.get(c, "ready", bool, cp, None),
                                              serving=r.get(c, "serving", bool, cp, None),
                                              terminating=r.get(c, "terminating", bool, cp, None)),
                hostname=r.get(e, "hostname", str, ep, None),
                node_name=r.get(e, "nodeName", str, ep, None),
                zone=r.get(e, "zone", str, ep, None),
                target_ref=target_ref,
                hints_zones=[r.get(z, "name", str, zp, "") for zp, z in r.objects(hints, "forZones", hp)]
                if hints.get("forZones") is not None else None,
                hints_nodes=[r.get(n, "name", str, np_, "") for np_, n in r.objects(hints, "forNodes", hp)]
                if hints.get("forNodes") is not None else None,
            ))
        ports = []
        for pp, p in r.objects(d, "ports", root):
            ports.append(EndpointPort(name=r.get(p, "name", str, pp, ""), port=r.get(p, "port", int, pp, None),
                                      protocol=r.get(p, "protocol", str, pp, "TCP"),
                                      app_protocol=r.get(p, "appProtocol", str, pp, None)))
        s = cls(metadata=meta, address_type=r.get(d, "addressType", str, root, "IPv4"), endpoints=eps, ports=ports)
        r.done()
        return s

    def to_dict(self) -> dict:
        return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": self.metadata.to_dict(), "addressType": self.address_type,
                "endpoints": [e.to_dict() for e in self.endpoints],
                "ports": [p.to_dict() for p in self.ports]}


@dataclass
class EndpointAddress:
    ip: str
    hostname: str | None = None
    node_name: str | None = None
    target_ref: dict | None = None

    def to_dict(self) -> dict:
        out: dict = {"ip": self.ip}
        if self.hostname:
            out["hostname"] = self.hostname
        if self.node_name:
            out["nodeName"] = self.node_name
        if self.target_ref:
            out["targetRef"] = dict(self.target_ref)
        return out


@dataclass
class EndpointSubset:
    addresses: list[EndpointAddress] = field(default_factory=list)
    not_ready_addresses: list[EndpointAddress] = field(default_factory=list)
    ports: list[EndpointPort] = field(default_factory=list)

    def to_dict(self) -> dict:
        out: dict = {}
        if self.addresses:
            out["addresses"] = [a.to_dict() for a in self.addresses]
        if self.not_ready_addresses:
            out["notReadyAddresses"] = [a.to_dict() for a in self.not_ready_addresses]
        if self.ports:
            out["ports"] = [{k: v for k, v in p.to_dict().items() if v not in ("", None)} for p in self.ports]
        return out


@dataclass
class Endpoints(Named):
    """The legacy v1 Endpoints object: one per Service, every address in it (deprecated in 1.33)."""
    metadata: ObjectMeta
    subsets: list[EndpointSubset] = field(default_factory=list)

    kind = "Endpoints"

    def to_dict(self) -> dict:
        out: dict = {"apiVersion": "v1", "kind": "Endpoints", "metadata": copy.deepcopy(self.metadata.to_dict())}
        if self.subsets:
            out["subsets"] = [s.to_dict() for s in self.subsets]
        return out
