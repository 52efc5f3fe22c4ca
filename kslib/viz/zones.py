"""Lesson 12 (topology-aware routing): the pieces the notebook computes, so a test can reach them.

- ``zonal_cluster``: three nodes in three zones (node-a in zone-a, ...), each with its allocatable CPU;
  per app and zone a Deployment pinned to the zone (``<app>-a`` ...), one Service per app selecting all
  of them, and a client pod in every zone (``client-a`` ...).
- ``hint_rows`` / ``hint_state``: what the EndpointSlice controller wrote (each endpoint's zone and
  hints) and the last event it recorded on the Service.
- ``rendered_endpoints``: the endpoints a node's kube-proxy programmed, read from ``cluster.render``.
- ``zone_bill``: equal traffic from the client of every zone, priced with ``kslib.billing``;
  ``monthly_cost``: a cross-zone fraction of a monthly volume, in dollars.
- ``what_if``: the widget's scenario (pods per zone, zone-a's CPU) in one call.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import kslib
from kslib import billing
from kslib.api.node import ZONE_LABEL

ZONES = ("zone-a", "zone-b", "zone-c")
AUTO = {"service.kubernetes.io/topology-mode": "Auto"}
TARGET_PORT = 8080


def _node(name: str, zone: str | None, cpu) -> dict:
    labels = {"kubernetes.io/hostname": name, **({ZONE_LABEL: zone} if zone else {})}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
            "status": {"allocatable": {"cpu": str(cpu)}}}


def _deployment(app: str, zone: str, replicas) -> dict:
    labels = {"app": app, "zone": zone}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": f"{app}-{zone[-1]}"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"nodeSelector": {ZONE_LABEL: zone},
                                           "containers": [{"name": app, "image": "nginx:1.27",
                                                           "ports": [{"containerPort": TARGET_PORT}]}]}}}}


def service_manifest(app: str, annotations: dict | None = None, traffic_distribution: str | None = None) -> dict:
    spec = {"selector": {"app": app}, "ports": [{"port": 80, "targetPort": TARGET_PORT}]}
    if traffic_distribution is not None:
        spec["trafficDistribution"] = traffic_distribution
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": app, "annotations": dict(annotations or {})},
            "spec": spec}


def zonal_cluster(apps: dict | None = None, cpus=(4, 4, 4), mode: str = "iptables", annotations: dict | None = None,
                  traffic_distribution: str | None = None, unlabeled_node: bool = False,
                  seed: int = 0) -> kslib.Cluster:
    """``apps`` maps an app name to its pods per zone (default ``{"web": (2, 2, 2)}``); every Service
    gets ``annotations`` (e.g. ``AUTO``) and ``traffic_distribution``. ``cpus``: allocatable CPU
    cores of node-a, node-b, node-c. ``unlabeled_node`` adds node-d without a zone label. One
    all-or-nothing apply: a refused manifest raises kslib.ValidationError."""
    apps = {"web": (2, 2, 2)} if apps is None else apps
    c = kslib.Cluster(mode=mode, seed=seed)
    objs = [_node(f"node-{z[-1]}", z, cpu) for z, cpu in zip(ZONES, cpus)]
    if unlabeled_node:
        objs.append(_node("node-d", None, 4))
    for app, per_zone in apps.items():
        objs += [_deployment(app, z, k) for z, k in zip(ZONES, per_zone)]
        objs.append(service_manifest(app, annotations, traffic_distribution))
    objs += [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"client-{z[-1]}"},
              "spec": {"nodeName": f"node-{z[-1]}", "containers": [{"name": "c", "image": "curlimages/curl"}]}}
             for z in ZONES]
    c.apply(objs)
    return c


# ---- what the controller wrote -------------------------------------------------------------------------
def hint_rows(cluster: kslib.Cluster, service: str) -> list[tuple[str, str, str]]:
    """(pod, endpoint zone, hints.forZones) for every endpoint of the Service's slices, by pod name."""
    rows = []
    for s in cluster.endpoint_slices(service):
        for e in s.endpoints:
            hints = ",".join(e.hints_zones) if e.hints_zones else "<none>"
            rows.append(((e.target_ref or {}).get("name", e.addresses[0]), e.zone or "<none>", hints))
    return sorted(rows)


def hint_table(cluster: kslib.Cluster, service: str) -> str:
    rows = [("POD", "ZONE", "HINTS.FORZONES")] + hint_rows(cluster, service)
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join("   ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows)


@dataclass(frozen=True)
class HintState:
    """Whether every ready endpoint carries a zone hint, how many hints name each zone, and the last
    event the EndpointSlice controller recorded on the Service ((type, reason, message) or None)."""
    kept: bool
    by_zone: dict[str, int]
    event: tuple[str, str, str] | None


def hint_state(cluster: kslib.Cluster, service: str) -> HintState:
    eps = [e for s in cluster.endpoint_slices(service) for e in s.endpoints if e.conditions.ready is not False]
    by_zone = Counter(z for e in eps for z in (e.hints_zones or ()))
    events = cluster.kube_events(service)
    last = (events[-1].type, events[-1].reason, events[-1].message) if events else None
    return HintState(bool(eps) and all(e.hints_zones for e in eps), dict(sorted(by_zone.items())), last)


# ---- what kube-proxy programmed --------------------------------------------------------------------------
def rendered_endpoints(cluster: kslib.Cluster, node: str, service: str | None = None,
                       port: int = TARGET_PORT) -> list[str]:
    """The pod IPs with ``:port`` in the node's dataplane (iptables-save, nft, ipvsadm, Cilium's maps),
    only those of ``service``'s EndpointSlices when it is given."""
    found = set(re.findall(r"(10\.244\.\d+\.\d+):" + str(port) + r"\b", cluster.render(node)))
    if service is not None:
        found &= {a for s in cluster.endpoint_slices(service) for e in s.endpoints for a in e.addresses}
    return sorted(found, key=lambda ip: tuple(int(x) for x in ip.split(".")))


def zones_of(cluster: kslib.Cluster, ips) -> dict[str, int]:
    """How many of the pod IPs ``ips`` run in each zone."""
    zone = {p.pod_ip: cluster.get("node", p.node_name).zone for p in cluster.pods if p.pod_ip and p.node_name}
    return dict(sorted(Counter(zone[ip] for ip in ips).items()))


# ---- the bill ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bill:
    """Equal traffic from the client of every zone to one Service: bytes by kind and the cross-zone cost."""
    connections: int
    cross_zone_bytes: int
    same_zone_bytes: int
    cost: float                       # dollars for these connections

    @property
    def cross_zone_fraction(self) -> float:
        known = self.cross_zone_bytes + self.same_zone_bytes
        return self.cross_zone_bytes / known if known else 0.0


def zone_bill(cluster: kslib.Cluster, service: str, n_per_zone: int, request_bytes: int = 1_000,
              response_bytes: int = 10_000, price_per_gb: float = billing.PRICE_PER_GB) -> Bill:
    """``n_per_zone`` connections from each of client-a, client-b, client-c to the Service's ClusterIP,
    each carrying ``request_bytes`` out and ``response_bytes`` back (``Cluster.zone_traffic``)."""
    vip = cluster.get("svc", service).cluster_ip
    parts = [cluster.zone_traffic(f"client-{z[-1]}", vip, 80, n_per_zone, request_bytes, response_bytes,
                                  price_per_gb=price_per_gb) for z in ZONES]
    cross = sum(p.cross_zone_bytes for p in parts)
    same = sum(p.same_zone_bytes for p in parts)
    return Bill(sum(p.connections for p in parts), cross, same, sum(p.cost for p in parts))


def pod_load(cluster: kslib.Cluster, service: str, n_per_zone: int) -> dict[str, int]:
    """Connections per backend pod when the client of every zone opens ``n_per_zone`` connections."""
    vip = cluster.get("svc", service).cluster_ip
    out: Counter = Counter()
    for z in ZONES:
        out.update(cluster.connect_many(f"client-{z[-1]}", vip, 80, n_per_zone))
    pods = sorted(p.key for p in cluster.pods if p.metadata.labels.get("app") == service)
    return {p: out.get(p, 0) for p in pods}


def monthly_cost(cross_zone_fraction: float, gb_per_month: float, price_per_gb: float = billing.PRICE_PER_GB) -> float:
    """Dollars a month for ``gb_per_month`` of traffic of which ``cross_zone_fraction`` crosses zones,
    billed leaving one zone and again entering the other (``billing.cross_zone_cost``)."""
    if not 0 <= cross_zone_fraction <= 1:
        raise ValueError(f"cross_zone_fraction: {cross_zone_fraction!r} must be between 0 and 1")
    if gb_per_month < 0:
        raise ValueError(f"gb_per_month: {gb_per_month!r} must not be negative")
    return billing.cross_zone_cost(round(cross_zone_fraction * gb_per_month * billing.BYTES_PER_GB), price_per_gb)


# ---- the widget's scenario --------------------------------------------------------------------------------
@dataclass(frozen=True)
class WhatIf:
    pods: tuple[int, int, int]
    cpu_a: int
    hints: HintState
    cross_zone_fraction: float
    monthly_cost: float


def what_if(pods=(2, 2, 2), cpu_a: int = 4, gb_per_month: float = 10_000, n_per_zone: int = 300,
            mode: str = "iptables", seed: int = 0) -> WhatIf:
    """A fresh 3-zone cluster with ``pods`` web pods per zone, node-a with ``cpu_a`` cores (4 for the
    others), Service web with topology-mode Auto: the hints, the cross-zone fraction of equal traffic
    from every zone, and its monthly cost on ``gb_per_month``. Refused input raises kslib.ValidationError
    (the API server's message) or ValueError."""
    c = zonal_cluster({"web": tuple(pods)}, cpus=(cpu_a, 4, 4), mode=mode, annotations=AUTO, seed=seed)
    state = hint_state(c, "web")
    if not any(pods):
        return WhatIf(tuple(pods), cpu_a, state, 0.0, 0.0)
    bill = zone_bill(c, "web", n_per_zone)
    return WhatIf(tuple(pods), cpu_a, state, bill.cross_zone_fraction,
                  monthly_cost(bill.cross_zone_fraction, gb_per_month))


__all__ = ["AUTO", "Bill", "HintState", "TARGET_PORT", "WhatIf", "ZONES", "hint_rows", "hint_state", "hint_table",
           "monthly_cost", "pod_load", "rendered_endpoints", "service_manifest", "what_if", "zonal_cluster",
           "zone_bill", "zones_of"]
