"""Small measurements for the lessons on service discovery (03 EndpointSlices, 08 DNS): each one
builds or reads a cluster and returns numbers the model computes, so the lessons and their tests
share them.

- ``endpoint_rows``: a Service's endpoints with their conditions, one row per endpoint, as
  ``kubectl get endpointslice -o yaml`` would show them.
- ``one_change_cost``: what one pod changing costs under EndpointSlices and under the legacy
  Endpoints object (the EndpointSlice controller's ledger) for a Service with ``pods`` pods.
- ``lookup_walk`` / ``queries_per_lookup``: a pod's resolver walking its search list.
- ``dataplane_mentions``: whether kube-proxy programmed anything for a name or address, in each mode.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

PODS_PER_NODE = 100         # below the kubelet's default maxPods (110) and a node's /24 pod range
MAX_PODS = 5_000


@dataclass(frozen=True)
class EndpointRow:
    slice: str
    pod: str
    address: str
    node: str | None
    ready: bool
    serving: bool
    terminating: bool

    def __str__(self) -> str:
        return (f"{self.slice:<14} {self.pod:<28} {self.address:<12} ready={str(self.ready).lower():<5} "
                f"serving={str(self.serving).lower():<5} terminating={str(self.terminating).lower()}")


def endpoint_rows(cluster, service: str, namespace: str = "default") -> list[EndpointRow]:
    """Every endpoint of every EndpointSlice of the Service, with its three conditions."""
    rows = []
    for s in cluster.endpoint_slices(service, namespace):
        for e in s.endpoints:
            c = e.conditions
            rows.append(EndpointRow(s.name, (e.target_ref or {}).get("name", "-"), e.addresses[0], e.node_name,
                                    bool(c.ready), bool(c.serving), bool(c.terminating)))
    return rows


@dataclass(frozen=True)
class ChangeCost:
    """One pod's readiness flipping, in a Service with ``pods`` ready pods."""
    pods: int
    max_endpoints_per_slice: int
    slice_sizes: tuple[int, ...]     # endpoints per slice, largest first
    endpoints_addresses: int         # addresses the one Endpoints object holds
    truncated: bool                  # the Endpoints object carries over-capacity: truncated
    slice_objects: int               # objects written for the one change
    slice_bytes: int
    endpoints_objects: int
    endpoints_bytes: int

    @property
    def ratio(self) -> float:
        """Endpoints bytes / EndpointSlice bytes for the one change."""
        return self.endpoints_bytes / max(1, self.slice_bytes)

    def __str__(self) -> str:
        sizes = ", ".join(map(str, self.slice_sizes))
        trunc = " (truncated at 1,000: over-capacity)" if self.truncated else ""
        return (f"{self.pods} pods, at most {self.max_endpoints_per_slice} endpoints per slice\n"
                f"  EndpointSlices: {len(self.slice_sizes)} slice(s) of {sizes}\n"
                f"  Endpoints:      one object holding {self.endpoints_addresses} addresses{trunc}\n"
                f"One pod turning not ready writes (each write goes to every node watching that kind):\n"
                f"  EndpointSlice: {self.slice_objects} object(s), {self.slice_bytes:,} bytes\n"
                f"  Endpoints:     {self.endpoints_objects} object(s), {self.endpoints_bytes:,} bytes "
                f"({self.ratio:.1f} times as much)")


def service_with_pods(pods: int, app: str = "x") -> list[dict]:
    """A Service selecting ``app`` and ``pods`` bare pods carrying that label (named port http/8080)."""
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": app},
           "spec": {"selector": {"app": app}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}
    return [svc] + [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{app}-{i}", "labels": {"app": app}},
                     "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]}}
                    for i in range(pods)]


def one_change_cost(pods: int, max_endpoints_per_slice: int = 100, seed: int = 0) -> ChangeCost:
    """Build a cluster (one node per 100 pods) with a Service over ``pods`` pods, flip the first
    pod's readiness (what a failing readiness probe does) and count what the EndpointSlice
    controller and the Endpoints controller write for that one change."""
    from ..cluster import Cluster
    from ..controllers.endpointslice import OVER_CAPACITY
    if isinstance(pods, bool) or not isinstance(pods, int) or not 1 <= pods <= MAX_PODS:
        raise ValueError(f"pods: Invalid value: {pods!r}: must be between 1 and {MAX_PODS}, inclusive")
    c = Cluster(nodes=max(1, math.ceil(pods / PODS_PER_NODE)), seed=seed,
                max_endpoints_per_slice=max_endpoints_per_slice)
    c.apply(service_with_pods(pods))
    ep = c.endpoints("x")
    sizes = tuple(sorted((len(s.endpoints) for s in c.endpoint_slices("x")), reverse=True))
    mark = len(c.slices.ledger.writes)
    c.set_ready("x-0", False)
    cost = c.slices.ledger.totals(since=mark)
    return ChangeCost(pods, max_endpoints_per_slice, sizes,
                      sum(len(s.addresses) + len(s.not_ready_addresses) for s in ep.subsets),
                      ep.metadata.annotations.get(OVER_CAPACITY) == "truncated",
                      cost["EndpointSlice"]["objects"], cost["EndpointSlice"]["bytes"],
                      cost["Endpoints"]["objects"], cost["Endpoints"]["bytes"])


def lookup_walk(cluster, name: str, from_pod: str) -> str:
    """The search walk of an application's lookup of ``name`` in ``from_pod`` (every query, its
    answer, and the count), or the error text for a bad name or pod. Changes nothing."""
    try:
        return str(cluster.resolve(name, from_pod))
    except ValueError as err:
        return f"error: {err}"


def queries_per_lookup(cluster, names, from_pod: str) -> list[int]:
    """How many queries one getaddrinfo() of each name costs from ``from_pod``."""
    return [cluster.resolve(n, from_pod).count for n in names]


def dataplane_mentions(cluster, words) -> dict[str, dict[str, bool]]:
    """For every kube-proxy mode, whether any node's rendered dataplane (``cluster.render``) holds each
    of ``words`` (Service names, host names, IP addresses), matched whole: ``10.244.1.2`` does not
    match inside ``10.244.1.23``. The cluster's mode and its options are restored afterwards."""
    from ..cluster import MODES
    words = list(words)
    patterns = {w: re.compile(rf"(?<![\w.-]){re.escape(w)}(?![\w-]|\.\w)") for w in words}
    mode, options = cluster.mode, dict(cluster.mode_options)
    out = {}
    try:
        for m in MODES:
            cluster.set_mode(m)
            texts = [cluster.render(n.name) for n in cluster.nodes]
            out[m] = {w: any(p.search(t) for t in texts) for w, p in patterns.items()}
    finally:
        cluster.set_mode(mode, **options)
    return out


__all__ = ["ChangeCost", "EndpointRow", "dataplane_mentions", "endpoint_rows", "lookup_walk", "one_change_cost", "queries_per_lookup",
           "service_with_pods"]
