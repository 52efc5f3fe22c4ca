"""Cross-zone data transfer: where a client's bytes go, zone by zone, and what crossing zones costs.

Clouds bill traffic between availability zones of one region per GB "in each direction": a byte that
leaves zone A for zone B is charged once as it leaves A and once as it enters B (AWS: $0.01/GB each
way, $0.02/GB for a crossing byte; traffic within a zone is free). ``zone_traffic`` applies that to
the connections ``Cluster.connect_many`` reports: each delivered connection carries ``request_bytes``
from the client's zone to the backend pod's zone and ``response_bytes`` back.

A zone is the ``topology.kubernetes.io/zone`` label of the node a pod runs on (or of the node itself,
for traffic from a node's host network); a client outside the cluster, or a node without the label,
has no known zone, and its bytes are counted apart (``unknown_zone_bytes``) and not priced.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

PRICE_PER_GB = 0.01          # dollars per GB, charged in each direction (leaving one zone, entering another)
BYTES_PER_GB = 10 ** 9       # decimal gigabyte
UNDELIVERED = ("rejected", "dropped", "host")   # connect_many keys that name no backend pod


@dataclass(frozen=True)
class ZoneTraffic:
    """What ``n`` connections from one client moved between zones, and the cross-zone bill."""
    source: str
    source_zone: str | None
    request_bytes: int                               # per connection, client -> backend
    response_bytes: int                              # per connection, backend -> client
    connections_by_zone: dict[str | None, int]       # delivered connections per backend zone
    bytes_by_zone_pair: dict[tuple[str | None, str | None], int]   # (from zone, to zone) -> bytes
    cross_zone_bytes: int
    same_zone_bytes: int
    unknown_zone_bytes: int
    cost: float                                      # dollars
    price_per_gb: float
    undelivered: dict[str, int] = field(default_factory=dict)   # "rejected" / "dropped" / "host" counts

    @property
    def connections(self) -> int:
        """Connections delivered to a backend pod."""
        return sum(self.connections_by_zone.values())

    @property
    def total_bytes(self) -> int:
        return self.cross_zone_bytes + self.same_zone_bytes + self.unknown_zone_bytes

    @property
    def cross_zone_fraction(self) -> float:
        """Cross-zone bytes over the bytes whose zones are known (0.0 when there are none)."""
        known = self.cross_zone_bytes + self.same_zone_bytes
        return self.cross_zone_bytes / known if known else 0.0


def cross_zone_cost(cross_zone_bytes: int, price_per_gb: float = PRICE_PER_GB,
                    bytes_per_gb: int = BYTES_PER_GB) -> float:
    """Dollars for bytes that crossed zones: billed leaving one zone and again entering the other."""
    return 2 * price_per_gb * cross_zone_bytes / bytes_per_gb


def node_zone(cluster, node_name: str | None) -> str | None:
    node = cluster.api.get("Node", node_name) if node_name else None
    return node.zone if node is not None else None


def source_zone(cluster, source: str) -> str | None:
    """The zone of a client given as a node name, a pod ("name" or "namespace/name"), or None for
    anything else (an address outside the cluster)."""
    if not isinstance(source, str):
        return None
    if "/" not in source and cluster.api.get("Node", source) is not None:
        return node_zone(cluster, source)
    key = source if "/" in source else f"default/{source}"
    pod = cluster.api.get("Pod", key)
    return node_zone(cluster, pod.node_name) if pod is not None else None


def zone_traffic(cluster, source: str, counts: Counter, request_bytes: int, response_bytes: int,
                 price_per_gb: float = PRICE_PER_GB, bytes_per_gb: int = BYTES_PER_GB) -> ZoneTraffic:
    """Bytes per (from zone, to zone) for ``counts`` (a ``connect_many`` Counter over backend pods,
    "namespace/name") from ``source``, with each connection sending ``request_bytes`` and receiving
    ``response_bytes``; and the cross-zone cost at ``price_per_gb`` per direction."""
    for name, v in (("request_bytes", request_bytes), ("response_bytes", response_bytes)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{name}: Invalid value: {v!r}: must be a non-negative integer")
    if price_per_gb < 0:
        raise ValueError(f"price_per_gb: Invalid value: {price_per_gb!r}: must not be negative")
    src_zone = source_zone(cluster, source)
    by_zone: dict[str | None, int] = {}
    pairs: dict[tuple[str | None, str | None], int] = {}
    undelivered: dict[str, int] = {}
    cross = same = unknown = 0
    for key, k in sorted(counts.items(), key=lambda kv: str(kv[0])):
        if not k:
            continue
        pod = cluster.api.get("Pod", key) if key not in UNDELIVERED else None
        if pod is None:
            undelivered[key] = undelivered.get(key, 0) + k
            continue
        dst_zone = node_zone(cluster, pod.node_name)
        by_zone[dst_zone] = by_zone.get(dst_zone, 0) + k
        for pair, size in (((src_zone, dst_zone), request_bytes), ((dst_zone, src_zone), response_bytes)):
            b = k * size
            if not b:
                continue
            pairs[pair] = pairs.get(pair, 0) + b
            if src_zone is None or dst_zone is None:
                unknown += b
            elif src_zone == dst_zone:
                same += b
            else:
                cross += b
    return ZoneTraffic(source=source, source_zone=src_zone, request_bytes=request_bytes,
                       response_bytes=response_bytes, connections_by_zone=by_zone, bytes_by_zone_pair=pairs,
                       cross_zone_bytes=cross, same_zone_bytes=same, unknown_zone_bytes=unknown,
                       cost=cross_zone_cost(cross, price_per_gb, bytes_per_gb), price_per_gb=price_per_gb,
                       undelivered=undelivered)


__all__ = ["ZoneTraffic", "zone_traffic", "cross_zone_cost", "PRICE_PER_GB", "BYTES_PER_GB"]
