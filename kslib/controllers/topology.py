"""The EndpointSlice controller's topology hints: the `Auto` heuristic and `trafficDistribution`.

Facts from staging/src/k8s.io/endpointslice: topologycache/{topologycache,utils,sliceinfo,event}.go
(the `Auto` heuristic), trafficdist/trafficdist.go (trafficDistribution) and reconciler.go (which of
the two runs, and the events). Our own code, written from those rules:

- **Node census** (``TopologyCache.set_nodes``): control-plane nodes and NotReady nodes are skipped;
  every other node must carry ``topology.kubernetes.io/zone`` and a non-zero allocatable CPU, or the
  whole census is discarded; fewer than two zones is also "insufficient". CPU is summed per zone in
  millicores and each zone's ratio is its share of the total.
- **Allocation** (``get_allocations(N)``, N = ready endpoints of the address type): desired = ratio x N,
  minimum = ceil(desired / (1 + 0.2)), desired raised to the minimum; it fails when the minima add up
  to more than N; maximum = minimum + (N - sum of minima).
- **Hinting** (``add_hints``): every ready endpoint first gets a hint for its own zone; zones holding
  more than their desired share give endpoints to zones holding less, whole endpoints at a time; an
  unchanged slice whose hints are missing, name a zone that needs none, or overshoot a zone's maximum
  is pulled into the update.
- **trafficDistribution** (``reconcile_traffic_distribution``): PreferClose / PreferSameZone copy a
  ready endpoint's own zone into its hints, PreferSameNode also its node; no arithmetic, no events.
- **Which wins** (``reconcile_hints``): the topology annotation (``service.kubernetes.io/topology-mode``,
  or the deprecated ``service.kubernetes.io/topology-aware-hints``, which takes precedence) set to
  ``Auto``/``auto`` turns the heuristic on and makes the controller ignore trafficDistribution.

Where Go ranges over a map (zone order in redistribution, ties between equally over- or
under-allocated zones) the real controller's choice is arbitrary; here zones are taken in name order,
so a run can be repeated exactly.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

from ..api.endpointslice import Endpoint, EndpointSlice
from ..api.node import Node

OVERLOAD_THRESHOLD = 0.2         # topologycache.go overloadThreshold
TOPOLOGY_MODE_ANNOTATION = "service.kubernetes.io/topology-mode"
TOPOLOGY_HINTS_ANNOTATION = "service.kubernetes.io/topology-aware-hints"   # deprecated spelling
PREFER_CLOSE = "PreferClose"
PREFER_SAME_ZONE = "PreferSameZone"
PREFER_SAME_NODE = "PreferSameNode"
# Feature gate PreferSameTrafficDistribution (alpha in 1.33, beta and on by default in 1.34): kslib
# models it switched on, as its API validation accepts PreferSameZone and PreferSameNode.
PREFER_SAME_TRAFFIC_DISTRIBUTION = True

NORMAL, WARNING = "Normal", "Warning"
HINTS_ENABLED_REASON = "TopologyAwareHintsEnabled"
HINTS_DISABLED_REASON = "TopologyAwareHintsDisabled"
# event.go, word for word
NO_ZONE_SPECIFIED = "One or more endpoints do not have a zone specified"
NO_ALLOCATED_HINTS_FOR_ZONES = "No hints allocated for zones"
TOPOLOGY_AWARE_HINTS_ENABLED = "Topology Aware Hints has been enabled"
TOPOLOGY_AWARE_HINTS_DISABLED = "Topology Aware Hints has been disabled"
INSUFFICIENT_NODE_INFO = ("Insufficient Node information: allocatable CPU or zone not specified on one or "
                          "more nodes")
NODES_READY_IN_ONE_ZONE_ONLY = "Nodes only ready in one zone"
INSUFFICIENT_NUMBER_OF_ENDPOINTS = "Insufficient number of endpoints"
MIN_ALLOCATION_EXCEEDS_OVERLOAD_THRESHOLD = ("Unable to allocate minimum required endpoints to each zone without "
                                             "exceeding overload threshold")


@dataclass(frozen=True)
class HintEvent:
    """What the controller will record on the Service (topologycache's EventBuilder)."""
    type: str          # "Normal" | "Warning"
    reason: str
    message: str


def with_address_type(message: str, address_type: str) -> str:
    """FormatWithAddressType: "<message>, addressType: IPv4"."""
    return f"{message}, addressType: {address_type}"


@dataclass
class Allocation:
    """How many endpoints one zone should hold (topologycache.go allocation)."""
    minimum: int
    maximum: int
    desired: float


@dataclass
class SliceInfo:
    """One Service's slices of one address type, as the reconciler hands them to the hinting."""
    service_key: str
    address_type: str
    to_create: list[EndpointSlice]
    to_update: list[EndpointSlice]
    unchanged: list[EndpointSlice]

    def total_ready_endpoints(self) -> int:
        return sum(1 for s in self.to_create + self.to_update + self.unchanged
                   for e in s.endpoints if endpoint_ready(e))

    def allocated_hints_by_zone(self, allocations: dict[str, Allocation]) -> dict[str, int]:
        """Hints the unchanged slices already hold; a slice whose hints are no longer valid moves
        (as a copy) to the update list (sliceinfo.go getAllocatedHintsByZone)."""
        allocated: dict[str, int] = {}
        still = []
        for s in self.unchanged:
            by_zone = hints_by_zone(s, allocated, allocations)
            if by_zone is None:
                self.to_update.append(copy.deepcopy(s))
            else:
                still.append(s)
                for zone, n in by_zone.items():
                    allocated[zone] = allocated.get(zone, 0) + n
        self.unchanged = still
        return allocated


# ---- small readings of an endpoint ---------------------------------------------------------------
def endpoint_ready(ep: Endpoint) -> bool:
    # EndpointReady: Ready set and true (unlike kube-proxy, an unset Ready does not count here)
    return ep.conditions.ready is True


def _has_hints(ep: Endpoint) -> bool:
    return ep.hints_zones is not None or ep.hints_nodes is not None


def _clear_hints(ep: Endpoint) -> None:
    ep.hints_zones = ep.hints_nodes = None


def hints_enabled(annotations: dict[str, str]) -> bool:
    """utils.go hintsEnabled: the deprecated annotation, if present, wins over topology-mode; only
    "Auto" or "auto" enable the heuristic."""
    if TOPOLOGY_HINTS_ANNOTATION in annotations:
        value = annotations[TOPOLOGY_HINTS_ANNOTATION]
    elif TOPOLOGY_MODE_ANNOTATION in annotations:
        value = annotations[TOPOLOGY_MODE_ANNOTATION]
    else:
        return False
    return value in ("Auto", "auto")


def valid_traffic_distribution(value: str | None, prefer_same: bool = PREFER_SAME_TRAFFIC_DISTRIBUTION) -> bool:
    """reconciler.go validTrafficDistribution: PreferClose always; PreferSameZone and PreferSameNode
    only with the PreferSameTrafficDistribution gate on."""
    if value == PREFER_CLOSE:
        return True
    return prefer_same and value in (PREFER_SAME_ZONE, PREFER_SAME_NODE)


# ---- the topology cache ----------------------------------------------------------------------------
@dataclass
class TopologyCache:
    """The controller's view of zones (from Nodes) and of the hints it has handed out per Service."""
    sufficient_node_info: bool = False
    cpu_by_zone: dict[str, int] | None = None              # millicores
    cpu_ratios_by_zone: dict[str, float] | None = None
    endpoints_by_service: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    hints_populated: set[str] = field(default_factory=set)

    def set_nodes(self, nodes: list[Node]) -> None:
        """SetNodes: the node census. Any counted node without a zone or CPU voids it all."""
        cpu: dict[str, int] = {}
        sufficient = True
        total = 0
        for node in nodes:
            if node.is_control_plane or not node.ready:
                continue
            zone = node.zone
            if not zone or node.allocatable_cpu_m <= 0:
                cpu, sufficient = {}, False
                break
            total += node.allocatable_cpu_m
            cpu[zone] = cpu.get(zone, 0) + node.allocatable_cpu_m
        if total == 0 or not sufficient or len(cpu) < 2:
            # a single zone also lands here, so getAllocations reports it as insufficient node
            # information; its "Nodes only ready in one zone" branch is not reached from SetNodes
            self.sufficient_node_info, self.cpu_by_zone, self.cpu_ratios_by_zone = False, None, None
        else:
            self.sufficient_node_info, self.cpu_by_zone = True, cpu
            self.cpu_ratios_by_zone = {z: c / total for z, c in cpu.items()}

    def get_allocations(self, n: int) -> tuple[dict[str, Allocation] | None, HintEvent | None]:
        """getAllocations: per-zone minimum, desired and maximum for ``n`` ready endpoints, or the
        reason (an event without the address type yet) why there are none."""
        ratios = self.cpu_ratios_by_zone
        if ratios is None:
            return None, HintEvent(WARNING, HINTS_DISABLED_REASON, INSUFFICIENT_NODE_INFO)
        if len(ratios) < 2:
            return None, HintEvent(WARNING, HINTS_DISABLED_REASON, NODES_READY_IN_ONE_ZONE_ONLY)
        if len(ratios) > n:
            return None, HintEvent(WARNING, HINTS_DISABLED_REASON,
                                   f"{INSUFFICIENT_NUMBER_OF_ENDPOINTS} ({n} endpoints, {len(ratios)} zones)")
        allocations: dict[str, Allocation] = {}
        min_total = 0
        for zone in sorted(ratios):
            desired = ratios[zone] * n
            # the same float steps as Go: desired * (1 / (1 + overloadThreshold)), then ceil
            minimum = int(math.ceil(desired * (1 / (1 + OVERLOAD_THRESHOLD))))
            allocations[zone] = Allocation(minimum=minimum, maximum=0, desired=max(desired, float(minimum)))
            min_total += minimum
        if min_total > n:
            return None, HintEvent(WARNING, HINTS_DISABLED_REASON,
                                   f"{MIN_ALLOCATION_EXCEEDS_OVERLOAD_THRESHOLD} ({n} endpoints, {len(ratios)} zones)")
        for a in allocations.values():
            a.maximum = a.minimum + n - min_total
        return allocations, None

    def add_hints(self, si: SliceInfo) -> tuple[list[EndpointSlice], list[EndpointSlice], list[HintEvent]]:
        """AddHints: zone hints on the slices to create and update, or all hints removed (with the
        reason as a Warning event). Returns the slices to create and to update, and the events."""
        allocations, event = self.get_allocations(si.total_ready_endpoints())
        if event is not None:
            self.remove_hints(si.service_key, si.address_type)
            return (*remove_hints_from_slices(si),
                    [HintEvent(event.type, event.reason, with_address_type(event.message, si.address_type))])
        allocated = si.allocated_hints_by_zone(allocations)
        allocatable = si.to_create + si.to_update
        # step 1: every ready endpoint hinted for its own zone. (Go clears the hints of a not-ready
        # endpoint on a loop copy, so in fact it keeps whatever it had; so does this.)
        for s in allocatable:
            for ep in s.endpoints:
                if not endpoint_ready(ep):
                    continue
                if not ep.zone:
                    self.remove_hints(si.service_key, si.address_type)
                    return (*remove_hints_from_slices(si),
                            [HintEvent(WARNING, HINTS_DISABLED_REASON,
                                       with_address_type(NO_ZONE_SPECIFIED, si.address_type))])
                allocated[ep.zone] = allocated.get(ep.zone, 0) + 1
                ep.hints_zones, ep.hints_nodes = [ep.zone], None
        # step 2 and 3: move whole endpoints from over- to under-allocated zones
        giving, receiving = giving_and_receiving_zones(allocations, allocated)
        for zone, diff in redistribute_hints(allocatable, giving, receiving).items():
            allocated[zone] = allocated.get(zone, 0) + diff
        if not allocated:
            self.remove_hints(si.service_key, si.address_type)
            return (*remove_hints_from_slices(si),
                    [HintEvent(WARNING, HINTS_DISABLED_REASON,
                               with_address_type(NO_ALLOCATED_HINTS_FOR_ZONES, si.address_type))])
        events = []
        if si.service_key not in self.hints_populated:
            events.append(HintEvent(NORMAL, HINTS_ENABLED_REASON,
                                    with_address_type(TOPOLOGY_AWARE_HINTS_ENABLED, si.address_type)))
        self.set_hints(si.service_key, si.address_type, allocated)
        return si.to_create, si.to_update, events

    def set_hints(self, service_key: str, address_type: str, allocated: dict[str, int]) -> None:
        self.endpoints_by_service.setdefault(service_key, {})[address_type] = dict(allocated)
        self.hints_populated.add(service_key)

    def remove_hints(self, service_key: str, address_type: str) -> None:
        by_type = self.endpoints_by_service.get(service_key)
        if by_type is not None:
            by_type.pop(address_type, None)
            if not by_type:
                del self.endpoints_by_service[service_key]
        self.hints_populated.discard(service_key)

    def has_populated_hints(self, service_key: str) -> bool:
        return service_key in self.hints_populated

    def overloaded_services(self) -> list[str]:
        """GetOverloadedServices: Services whose hints leave some zone under its minimum (requeued
        after a Node change)."""
        return sorted(key for key, by_type in self.endpoints_by_service.items()
                      if any(service_overloaded(ezi, self.cpu_ratios_by_zone) for ezi in by_type.values()))


# ---- the helpers of utils.go ---------------------------------------------------------------------------
def remove_hints_from_slices(si: SliceInfo) -> tuple[list[EndpointSlice], list[EndpointSlice]]:
    """RemoveHintsFromSlices: clear every hint on the slices to create and update; an unchanged
    slice holding any hint is copied, cleared and moved to the update list."""
    for s in si.to_create + si.to_update:
        for ep in s.endpoints:
            _clear_hints(ep)
    still = []
    for s in si.unchanged:
        if any(_has_hints(ep) for ep in s.endpoints):
            s = copy.deepcopy(s)
            for ep in s.endpoints:
                _clear_hints(ep)
            si.to_update.append(s)
        else:
            still.append(s)
    si.unchanged = still
    return si.to_create, si.to_update


def _most(zones: dict[str, float]) -> tuple[str, float]:
    """getMost: the zone with the largest positive value ("" and 0 when none); ties go to the first
    zone in name order (Go: map order)."""
    best, num = "", 0.0
    for z in sorted(zones):
        if zones[z] > num:
            best, num = z, zones[z]
    return best, num


def giving_and_receiving_zones(allocations: dict[str, Allocation],
                               allocated: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """getGivingAndReceivingZones: how many whole endpoints each zone gives away or receives."""
    giving_f: dict[str, float] = {}
    receiving_f: dict[str, float] = {}
    for zone, a in allocations.items():
        have = float(allocated.get(zone, 0))
        if have > a.desired:
            giving_f[zone] = have - a.desired
        elif have < a.desired:
            receiving_f[zone] = a.desired - have
    giving: dict[str, int] = {}
    receiving: dict[str, int] = {}
    while True:
        gz, give = _most(giving_f)
        rz, receive = _most(receiving_f)
        # stop when either side is empty, when both have less than one endpoint left, or when either
        # has less than half an endpoint left
        if not gz or not rz or (give < 1.0 and receive < 1.0) or give < 0.5 or receive < 0.5:
            break
        giving[gz] = giving.get(gz, 0) + 1
        giving_f[gz] -= 1
        receiving[rz] = receiving.get(rz, 0) + 1
        receiving_f[rz] -= 1
    return giving, receiving


def redistribute_hints(slices: list[EndpointSlice], giving: dict[str, int],
                       receiving: dict[str, int]) -> dict[str, int]:
    """redistributeHints: re-hint ready endpoints of giving zones for receiving zones (first
    receiving zone in name order); returns the change in hints per zone."""
    out: dict[str, int] = {}
    for s in slices:
        for ep in s.endpoints:
            if not endpoint_ready(ep):
                continue
            if not giving or not receiving:
                return out
            if not ep.zone:
                continue
            if giving.get(ep.zone, 0) > 0:
                for rz in sorted(receiving):
                    if receiving[rz] > 0:
                        ep.hints_zones, ep.hints_nodes = [rz], None
                        for d, z in ((giving, ep.zone), (receiving, rz)):
                            d[z] -= 1
                            if d[z] == 0:
                                del d[z]
                        out[rz] = out.get(rz, 0) + 1
                        out[ep.zone] = out.get(ep.zone, 0) - 1
                        break
    return out


def hints_by_zone(s: EndpointSlice, allocated: dict[str, int],
                  allocations: dict[str, Allocation]) -> dict[str, int] | None:
    """getHintsByZone: hints per zone in one unchanged slice, or None when the slice must be redone
    (a ready endpoint without a zone hint, a hint for a zone with no allocation, or a zone pushed over
    its maximum)."""
    out: dict[str, int] = {}
    for ep in s.endpoints:
        if not endpoint_ready(ep):
            continue
        if not ep.hints_zones:
            return None
        for zone in ep.hints_zones:
            if zone not in allocations:
                return None
            out[zone] = out.get(zone, 0) + 1
    for zone, n in out.items():
        if n + allocated.get(zone, 0) > allocations[zone].maximum:
            return None
    return out


def service_overloaded(ezi: dict[str, int], ratios: dict[str, float] | None) -> bool:
    """serviceOverloaded: some zone holds fewer hints than its minimum."""
    if not ezi:
        return False
    if not ratios:
        return True
    total = float(sum(ezi.values()))
    for zone, ratio in ratios.items():
        if zone not in ezi:
            return True
        if ezi[zone] < int(math.ceil(total * ratio * (1 / (1 + OVERLOAD_THRESHOLD)))):
            return True
    return False


# ---- trafficDistribution (trafficdist.go) ------------------------------------------------------------
def _wants_update(s: EndpointSlice, close: bool, node_hints: bool) -> bool:
    """needsUpdate of the two heuristics: default = any hint at all; prefer-close = some ready
    endpoint's hints are missing or are not exactly its own zone (and node)."""
    if not close:
        return any(_has_hints(ep) for ep in s.endpoints)
    for ep in s.endpoints:
        if not endpoint_ready(ep):
            continue
        if ep.zone is not None:
            if ep.hints_zones is None or ep.hints_zones != [ep.zone]:
                return True
        elif ep.hints_zones:
            return True
        if ep.node_name is not None and node_hints:
            if ep.hints_nodes is None or ep.hints_nodes != [ep.node_name]:
                return True
        elif ep.hints_nodes:
            return True
    return False


def _apply_close(s: EndpointSlice, close: bool, node_hints: bool) -> None:
    for ep in s.endpoints:
        if not close:
            _clear_hints(ep)
            continue
        if not endpoint_ready(ep):
            continue                     # a not-ready endpoint keeps what it had
        ep.hints_zones = [ep.zone] if ep.zone is not None else None
        ep.hints_nodes = [ep.node_name] if ep.node_name is not None and node_hints else None


def reconcile_traffic_distribution(value: str | None, to_create: list[EndpointSlice],
                                   to_update: list[EndpointSlice], unchanged: list[EndpointSlice]):
    """trafficdist.ReconcileHints: same-zone (and for PreferSameNode same-node) hints on every ready
    endpoint; any other value removes hints. Unchanged slices that need a change are copied into the
    update list. Returns (to_create, to_update, still unchanged)."""
    close = value in (PREFER_CLOSE, PREFER_SAME_ZONE, PREFER_SAME_NODE)
    node_hints = value == PREFER_SAME_NODE
    still = []
    for s in unchanged:
        if _wants_update(s, close, node_hints):
            to_update.append(copy.deepcopy(s))
        else:
            still.append(s)
    for s in to_create + to_update:
        _apply_close(s, close, node_hints)
    return to_create, to_update, still


# ---- the reconciler's choice ----------------------------------------------------------------------------
def reconcile_hints(cache: TopologyCache, service_key: str, annotations: dict[str, str],
                    traffic_distribution: str | None, si: SliceInfo,
                    prefer_same: bool = PREFER_SAME_TRAFFIC_DISTRIBUTION):
    """reconciler.go reconcileByAddressType, the hints part. Returns (to_create, to_update, events).

    - annotation Auto: the topology cache decides (trafficDistribution is ignored);
    - otherwise, hints the annotation had populated are withdrawn with the Warning "Topology Aware
      Hints has been disabled"; then a valid trafficDistribution sets its hints, and without one every
      hint is removed."""
    events: list[HintEvent] = []
    enabled = hints_enabled(annotations)
    can_use_td = valid_traffic_distribution(traffic_distribution, prefer_same) and not enabled
    to_create, to_update = si.to_create, si.to_update
    if enabled:
        to_create, to_update, events = cache.add_hints(si)
    else:
        if cache.has_populated_hints(service_key):
            events.append(HintEvent(WARNING, HINTS_DISABLED_REASON,
                                    with_address_type(TOPOLOGY_AWARE_HINTS_DISABLED, si.address_type)))
        cache.remove_hints(service_key, si.address_type)
        if not can_use_td:
            to_create, to_update = remove_hints_from_slices(si)
    if can_use_td:
        # unchanged is recomputed from the update list, as reconciler.go calls unchangedSlices again
        updated = {s.name for s in to_update}
        unchanged = [s for s in si.unchanged if s.name not in updated]
        to_create, to_update, _ = reconcile_traffic_distribution(traffic_distribution, to_create, to_update,
                                                                 unchanged)
    return to_create, to_update, events
