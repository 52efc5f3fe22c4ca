"""Topology-aware routing: the EndpointSlice controller's hints (topology-mode Auto and
trafficDistribution), its events, and kube-proxy's hint filtering in every proxy mode.

Oracles: staging/src/k8s.io/endpointslice/topologycache/{topologycache,utils,sliceinfo,event}.go,
trafficdist/trafficdist.go, reconciler.go; pkg/proxy/topology.go; and hand-computed allocations
(controlplane-dns.md 2.2 worked examples)."""
import re
from collections import Counter

import pytest

import kslib
from kslib.api.endpointslice import Endpoint, EndpointConditions, EndpointSlice
from kslib.api.meta import ObjectMeta
from kslib.api.node import ZONE_LABEL, Node
from kslib.controllers import topology as T
from kslib.proxy import NodeView
from kslib.proxy.topology import (PREFER_SAME_NODE, PREFER_SAME_ZONE, EndpointInfo, ServicePortInfo,
                                  TopologyDecision, categorize, topology_decision)

ZONES = ["zone-a", "zone-b", "zone-c"]
AUTO = {"service.kubernetes.io/topology-mode": "Auto"}
MODES = ["iptables", "nftables", "ipvs", "ebpf"]


# ---- manifests --------------------------------------------------------------------------------------
def node(name, zone=None, cpu="4", ready=True, labels=None):
    lb = {"kubernetes.io/hostname": name, **({ZONE_LABEL: zone} if zone else {}), **(labels or {})}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": lb},
            "status": {"allocatable": {"cpu": cpu},
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def pod(name, node_name, ready=True, app="web"):
    out = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": app}},
           "spec": {"nodeName": node_name, "containers": [{"name": "c", "ports": [{"containerPort": 8080}]}]}}
    if not ready:
        out["status"] = {"conditions": [{"type": "Ready", "status": "False"}]}
    return out


def service(annotations=None, **spec):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "annotations": annotations or {}},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}], **spec}}


def client(node_name="node-a"):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
            "spec": {"nodeName": node_name, "containers": [{"name": "c"}]}}


def three_zones(per_zone=(2, 2, 2), cpus=("4", "4", "4"), mode="iptables", annotations=None, extra=(), **spec):
    """One node per zone (node-a in zone-a ...), ``per_zone`` web pods on each, a client on node-a."""
    c = kslib.Cluster(mode=mode)
    objs = [node(f"node-{z[-1]}", z, cpu) for z, cpu in zip(ZONES, cpus)]
    for z, k in zip(ZONES, per_zone):
        objs += [pod(f"web-{z[-1]}{i}", f"node-{z[-1]}") for i in range(k)]
    c.apply(objs + [client(), *extra, service(annotations, **spec)])
    return c


def endpoints(c):
    return {e.target_ref["name"]: e for s in c.endpoint_slices("web") for e in s.endpoints}


def hinted(c):
    """Zone hint -> how many endpoints carry it."""
    return Counter(z for e in endpoints(c).values() for z in (e.hints_zones or ()))


def no_hints(c):
    return all(e.hints_zones is None and e.hints_nodes is None for e in endpoints(c).values())


def events(c, obj="web"):
    return [(e.type, e.reason, e.message) for e in c.kube_events(obj)]


def backend_zones(c, counts):
    out = Counter()
    for key, k in counts.items():
        p = c.api.get("Pod", key)
        out[c.get("node", p.node_name).zone if p else key] += k
    return out


# ---- the Auto heuristic: the node census --------------------------------------------------------------
def mk_node(name, zone=None, cpu_m=4000, ready=True, control_plane=False):
    labels = {ZONE_LABEL: zone} if zone else {}
    if control_plane:
        labels["node-role.kubernetes.io/control-plane"] = ""
    return Node(metadata=ObjectMeta(name=name, namespace="", labels=labels), allocatable_cpu_m=cpu_m, ready=ready)


def test_census_ratios_skip_control_plane_and_not_ready_nodes():
    cache = T.TopologyCache()
    cache.set_nodes([mk_node("a1", "a", 8000), mk_node("a2", "a", 8000), mk_node("b", "b", 8000),
                     mk_node("c", "c", 8000), mk_node("cp", None, 0, control_plane=True),
                     mk_node("down", None, 0, ready=False)])
    assert cache.sufficient_node_info
    assert cache.cpu_by_zone == {"a": 16000, "b": 8000, "c": 8000}
    assert cache.cpu_ratios_by_zone == {"a": 0.5, "b": 0.25, "c": 0.25}


@pytest.mark.parametrize("nodes", [
    [mk_node("a", "a"), mk_node("b", "b"), mk_node("nozone", None)],        # a node without a zone
    [mk_node("a", "a"), mk_node("b", "b"), mk_node("nocpu", "c", 0)],       # a node without CPU
    [mk_node("a1", "a"), mk_node("a2", "a")],                               # a single zone
    [],
])
def test_census_insufficient_node_info(nodes):
    cache = T.TopologyCache()
    cache.set_nodes(nodes)
    assert not cache.sufficient_node_info and cache.cpu_ratios_by_zone is None
    # topologycache.go: SetNodes nils the ratios for a single zone too, so the message is the
    # insufficient-node-info one, not "Nodes only ready in one zone"
    assert cache.get_allocations(10) == (None, T.HintEvent("Warning", "TopologyAwareHintsDisabled",
                                                           T.INSUFFICIENT_NODE_INFO))


# ---- allocation: hand-computed ---------------------------------------------------------------------------
def allocations(cpus: dict, n: int):
    cache = T.TopologyCache()
    cache.set_nodes([mk_node(z, z, m) for z, m in cpus.items()])
    return cache.get_allocations(n)


def test_allocation_8_8_4_cpu_10_endpoints():
    # ratios .4/.4/.2 -> desired 4/4/2; minimum ceil(3.33)=4, ceil(3.33)=4, ceil(1.67)=2; sum 10 = N
    got, event = allocations({"a": 8000, "b": 8000, "c": 4000}, 10)
    assert event is None
    assert {z: (a.minimum, a.desired, a.maximum) for z, a in got.items()} == \
        {"a": (4, 4.0, 4), "b": (4, 4.0, 4), "c": (2, 2.0, 2)}


def test_allocation_2_1_1_cpu_8_endpoints():
    # ratios .5/.25/.25 -> desired 4/2/2; minimum ceil(3.33)=4, ceil(1.67)=2, 2; no slack
    got, event = allocations({"a": 2000, "b": 1000, "c": 1000}, 8)
    assert event is None
    assert {z: (a.minimum, a.desired, a.maximum) for z, a in got.items()} == \
        {"a": (4, 4.0, 4), "b": (2, 2.0, 2), "c": (2, 2.0, 2)}


def test_allocation_slack_goes_to_every_zone_maximum():
    # 3 equal zones, 9 endpoints: desired 3, minimum ceil(2.5)=3, sum 9; 12: minimum ceil(3.33)=4...
    got, _ = allocations({"a": 1000, "b": 1000, "c": 1000}, 10)
    # desired 3.33, minimum ceil(2.78)=3 each, sum 9, one spare -> maximum 4
    assert {z: (a.minimum, a.maximum) for z, a in got.items()} == {"a": (3, 4), "b": (3, 4), "c": (3, 4)}
    assert got["a"].desired == pytest.approx(10 / 3)


@pytest.mark.parametrize("cpus, n, message", [
    ({"a": 1000, "b": 1000}, 3, "Unable to allocate minimum required endpoints to each zone without exceeding "
                                "overload threshold (3 endpoints, 2 zones)"),
    ({"a": 1000, "b": 1000, "c": 1000}, 2, "Insufficient number of endpoints (2 endpoints, 3 zones)"),
    ({"a": 1000, "b": 1000, "c": 1000}, 4, "Unable to allocate minimum required endpoints to each zone without "
                                           "exceeding overload threshold (4 endpoints, 3 zones)"),
])
def test_allocation_failures(cpus, n, message):
    assert allocations(cpus, n) == (None, T.HintEvent("Warning", "TopologyAwareHintsDisabled", message))


def test_giving_and_receiving_biggest_first_and_half_endpoint_rule():
    a = {z: T.Allocation(minimum=0, maximum=0, desired=d) for z, d in (("a", 4.0), ("b", 4.0), ("c", 2.0))}
    # A:6 B:2 C:2 (controlplane-dns.md 2.2): zone A gives 2 to zone B
    assert T.giving_and_receiving_zones(a, {"a": 6, "b": 2, "c": 2}) == ({"a": 2}, {"b": 2})
    # 0.4 over and 0.4 under: under half an endpoint, nothing moves
    b = {z: T.Allocation(0, 0, d) for z, d in (("a", 2.6), ("b", 3.4))}
    assert T.giving_and_receiving_zones(b, {"a": 3, "b": 3}) == ({}, {})


def test_hints_enabled_reads_both_annotations():
    assert T.hints_enabled({"service.kubernetes.io/topology-mode": "Auto"})
    assert T.hints_enabled({"service.kubernetes.io/topology-aware-hints": "auto"})
    assert not T.hints_enabled({"service.kubernetes.io/topology-mode": "AUTO"})
    # the deprecated key takes precedence (utils.go hintsEnabled)
    assert not T.hints_enabled({"service.kubernetes.io/topology-aware-hints": "Disabled",
                                "service.kubernetes.io/topology-mode": "Auto"})
    assert not T.hints_enabled({})


# ---- Auto through the Cluster ---------------------------------------------------------------------------
def test_auto_balanced_zones_get_same_zone_hints_and_enabled_event():
    c = three_zones(annotations=AUTO)
    for e in endpoints(c).values():
        assert e.hints_zones == [e.zone] and e.hints_nodes is None
    assert events(c) == [("Normal", "TopologyAwareHintsEnabled",
                          "Topology Aware Hints has been enabled, addressType: IPv4")]
    ev = c.kube_events("web")[0]
    assert ev.source == "endpoint-slice-controller" and ev.kind == "Service" and ev.object == "service/web"
    assert "hints" in c.endpoint_slices("web")[0].to_dict()["endpoints"][0]


def test_auto_deprecated_annotation_works_too():
    c = three_zones(annotations={"service.kubernetes.io/topology-aware-hints": "auto"})
    assert hinted(c) == {"zone-a": 2, "zone-b": 2, "zone-c": 2}


def test_auto_allocation_proportional_to_cpu_2_1_1_with_8_endpoints():
    # zone-a has 8 CPUs, zone-b and zone-c 4 each: ratios .5/.25/.25, N = 8 -> 4/2/2 hints.
    # Placed A:2 B:3 C:3, so zone-b and zone-c each give one endpoint to zone-a.
    c = three_zones(per_zone=(2, 3, 3), cpus=("8", "4", "4"), annotations=AUTO)
    assert hinted(c) == {"zone-a": 4, "zone-b": 2, "zone-c": 2}
    eps = endpoints(c)
    moved = sorted(n for n, e in eps.items() if e.hints_zones != [e.zone])
    assert len(moved) == 2 and all(eps[n].hints_zones == ["zone-a"] for n in moved)
    assert {eps[n].zone for n in moved} == {"zone-b", "zone-c"}


def test_auto_worked_example_6_2_2_gives_two_to_zone_b():
    c = three_zones(per_zone=(6, 2, 2), cpus=("8", "8", "4"), annotations=AUTO)
    assert hinted(c) == {"zone-a": 4, "zone-b": 4, "zone-c": 2}


def test_auto_too_few_endpoints_drops_hints_with_event_then_recovers():
    c = three_zones(per_zone=(2, 1, 1), annotations=AUTO)
    assert no_hints(c)
    assert events(c)[-1] == ("Warning", "TopologyAwareHintsDisabled",
                             "Unable to allocate minimum required endpoints to each zone without exceeding "
                             "overload threshold (4 endpoints, 3 zones), addressType: IPv4")
    c.apply([pod("web-b1", "node-b"), pod("web-c1", "node-c")])      # now 2/2/2: balanced
    assert hinted(c) == {"zone-a": 2, "zone-b": 2, "zone-c": 2}
    assert events(c)[-1] == ("Normal", "TopologyAwareHintsEnabled",
                             "Topology Aware Hints has been enabled, addressType: IPv4")
    c.delete("pod", "web-b1")
    c.advance(60)                                                   # grace period over: gone
    assert no_hints(c)
    assert events(c)[-1][2].startswith("Unable to allocate minimum required endpoints")


def test_auto_fewer_endpoints_than_zones():
    c = three_zones(per_zone=(1, 1, 0), annotations=AUTO)
    assert no_hints(c)
    assert ("Warning", "TopologyAwareHintsDisabled",
            "Insufficient number of endpoints (2 endpoints, 3 zones), addressType: IPv4") in events(c)


def test_repeated_event_is_counted_not_duplicated():
    # client-go's correlator folds the same event on the same object into one, counting repeats
    c = three_zones(per_zone=(2, 1, 1), annotations=AUTO)
    before = c.kube_events("web")[-1].count
    c.apply(pod("other", "node-a", app="other"))         # not a web pod: web is not resynced
    assert c.kube_events("web")[-1].count == before
    c.apply(node("node-a", "zone-a", "6"))              # a Node change resyncs every Service once
    evs = c.kube_events("web")
    assert len(evs) == 1 and evs[0].count == before + 1
    assert evs[0].first_timestamp and evs[0].last_timestamp


def test_cpu_change_alone_does_not_retake_the_census():
    # endpointslice_controller.go updateNode: only readiness or zone-label changes requeue the census
    c = three_zones(per_zone=(2, 3, 3), cpus=("8", "4", "4"), annotations=AUTO)
    assert c.slices.topology.cpu_by_zone == {"zone-a": 8000, "zone-b": 4000, "zone-c": 4000}
    c.apply(node("node-a", "zone-a", "4"))
    assert c.slices.topology.cpu_by_zone["zone-a"] == 8000
    c.apply(node("node-d", "zone-c", "4"))              # a Node added: census retaken
    assert c.slices.topology.cpu_by_zone == {"zone-a": 4000, "zone-b": 4000, "zone-c": 8000}


@pytest.mark.parametrize("bad", [node("node-x"), node("node-x", "zone-c", cpu="0")],
                         ids=["no-zone", "no-cpu"])
def test_auto_nodes_missing_zone_or_cpu_drop_hints(bad):
    c = three_zones(annotations=AUTO, extra=[bad])
    assert no_hints(c)
    assert events(c)[-1] == ("Warning", "TopologyAwareHintsDisabled",
                             "Insufficient Node information: allocatable CPU or zone not specified on one or "
                             "more nodes, addressType: IPv4")


def test_auto_control_plane_node_without_zone_is_ignored():
    cp = node("cp", labels={"node-role.kubernetes.io/control-plane": ""})
    c = three_zones(annotations=AUTO, extra=[cp])
    assert hinted(c) == {"zone-a": 2, "zone-b": 2, "zone-c": 2}


def test_auto_endpoint_without_zone_drops_hints():
    # a control-plane node is left out of the census, so a pod on it (no zone) reaches the hinting
    cp = node("cp", labels={"node-role.kubernetes.io/control-plane": ""})
    c = three_zones(annotations=AUTO, extra=[cp, pod("web-cp", "cp")])
    assert no_hints(c)
    assert events(c)[-1] == ("Warning", "TopologyAwareHintsDisabled",
                             "One or more endpoints do not have a zone specified, addressType: IPv4")


def test_auto_not_ready_endpoints_neither_count_nor_get_hints():
    c = three_zones(annotations=AUTO, extra=[pod("web-a9", "node-a", ready=False)])
    eps = endpoints(c)
    assert eps["web-a9"].hints_zones is None
    assert hinted(c) == {"zone-a": 2, "zone-b": 2, "zone-c": 2}
    c.set_ready("web-a9")                     # now 3/2/2 = 7 ready: desired 2.33, nothing moves
    assert endpoints(c)["web-a9"].hints_zones == ["zone-a"]
    assert hinted(c) == {"zone-a": 3, "zone-b": 2, "zone-c": 2}


def test_auto_removed_annotation_withdraws_hints_with_disabled_event():
    c = three_zones(annotations=AUTO)
    c.apply(service())
    assert no_hints(c)
    assert events(c)[-1] == ("Warning", "TopologyAwareHintsDisabled",
                             "Topology Aware Hints has been disabled, addressType: IPv4")


def test_hints_alone_do_not_rewrite_slices():
    c = three_zones(annotations=AUTO)
    writes = len(c.slices.ledger.writes)
    c.apply(node("node-a", "zone-a", "4"))      # resync of every Service: nothing to change
    assert len(c.slices.ledger.writes) == writes


# ---- trafficDistribution -------------------------------------------------------------------------------
@pytest.mark.parametrize("td", ["PreferClose", "PreferSameZone"])
def test_traffic_distribution_same_zone_regardless_of_balance(td):
    c = three_zones(per_zone=(3, 1, 0), trafficDistribution=td)       # Auto could not hint this
    for e in endpoints(c).values():
        assert e.hints_zones == [e.zone] and e.hints_nodes is None
    assert events(c) == []                                              # no arithmetic, no events


def test_traffic_distribution_prefer_same_node_adds_node_hints():
    c = three_zones(per_zone=(2, 1, 1), trafficDistribution="PreferSameNode")
    for e in endpoints(c).values():
        assert e.hints_zones == [e.zone] and e.hints_nodes == [e.node_name]


def test_traffic_distribution_not_ready_endpoint_gets_no_hint_and_removal_clears():
    c = three_zones(trafficDistribution="PreferClose", extra=[pod("web-a9", "node-a", ready=False)])
    assert endpoints(c)["web-a9"].hints_zones is None
    c.apply(service())                                                   # field removed
    assert no_hints(c)
    assert events(c) == []


def test_annotation_wins_over_traffic_distribution():
    # reconciler.go: canUseTrafficDistribution = valid(td) && !hintsEnabled(annotations)
    c = three_zones(per_zone=(2, 1, 1), annotations=AUTO, trafficDistribution="PreferClose")
    assert no_hints(c)
    assert events(c)[-1][1] == "TopologyAwareHintsDisabled"


def test_unchanged_slices_get_hints_when_traffic_distribution_is_set():
    c = three_zones()
    assert no_hints(c)
    names = {s.name for s in c.endpoint_slices("web")}
    c.apply(service(trafficDistribution="PreferClose"))
    assert {s.name for s in c.endpoint_slices("web")} == names
    assert hinted(c) == {"zone-a": 2, "zone-b": 2, "zone-c": 2}


def test_reconcile_traffic_distribution_unit():
    ep = Endpoint(addresses=["10.0.0.1"], conditions=EndpointConditions(ready=True), node_name="n1", zone="z1")
    s = EndpointSlice(metadata=ObjectMeta(name="s", namespace="default"), endpoints=[ep])
    create, update, still = T.reconcile_traffic_distribution("PreferSameNode", [], [], [s])
    assert still == [] and update[0].endpoints[0].hints_nodes == ["n1"] and ep.hints_nodes is None   # copied
    _, again, still = T.reconcile_traffic_distribution("PreferSameNode", [], [], update)
    assert again == [] and still == update                                    # correct hints: left alone


# ---- kube-proxy: topologyModeFromHints (pkg/proxy/topology.go) ---------------------------------------------
def einfo(n, zones=(), nodes=(), ready=True, local=False):
    return EndpointInfo(ip=f"10.1.0.{n}", port=80, ready=ready, serving=ready, terminating=False, is_local=local,
                        zone_hints=frozenset(zones), node_hints=frozenset(nodes))


def test_decision_prefer_same_node_then_zone_and_logs():
    eps = [einfo(1, ["a"], ["n1"]), einfo(2, ["b"], ["n2"])]
    assert topology_decision(eps, "n1", "a").mode == PREFER_SAME_NODE
    d = topology_decision(eps, "n3", "a")
    assert d.mode == PREFER_SAME_ZONE
    assert d.log == ("Ignoring same-node topology hints for service since no hints were provided for node",)
    d = topology_decision(eps, "n3", "c")
    assert d.mode == "" and d.log[-1] == ("Ignoring same-zone topology hints for service since no hints were "
                                          "provided for zone")
    d = topology_decision(eps, "n3", None)
    assert d.mode == "" and d.log[-1] == ("Ignoring same-zone topology hints for service since node is missing "
                                          "label")
    d = topology_decision([einfo(1, ["a"]), einfo(2)], "n1", "a")
    assert d.mode == "" and d.log == (
        "Ignoring same-node topology hints for service since one or more endpoints is missing a node hint",
        "Ignoring same-zone topology hints for service since one or more endpoints is missing a zone hint")
    assert topology_decision([], "n1", "a").mode == ""
    assert topology_decision([einfo(1, ["a"], ready=False)], "n1", "a").mode == ""


def test_decision_prefer_same_node_is_gated():
    eps = [einfo(1, ["a"], ["n1"]), einfo(2, ["b"], ["n2"])]
    # gate off: node hints are not read at all, and nothing is logged about them
    assert topology_decision(eps, "n1", "a", prefer_same_node=False) == TopologyDecision(PREFER_SAME_ZONE, ())


def test_decision_not_ready_endpoints_do_not_need_hints():
    eps = [einfo(1, ["a"]), einfo(2, ready=False)]
    assert topology_decision(eps, "n1", "a").mode == PREFER_SAME_ZONE


def info(**kw):
    return ServicePortInfo(namespace="ns", name="svc", port_name="", protocol="TCP", cluster_ip="172.30.0.1",
                           port=80, **kw)


def test_internal_traffic_policy_local_ignores_hints():
    eps = [einfo(1, ["b"], local=True), einfo(2, ["a"])]
    cat = categorize(info(internal_local=True), eps, NodeView("n1", "192.168.0.2", {ZONE_LABEL: "a"}))
    assert [e.ip for e in cat.local] == ["10.1.0.1"] and cat.cluster == []


def test_external_traffic_policy_local_keeps_hints_for_internal_traffic():
    eps = [einfo(1, ["b"], local=True), einfo(2, ["a"]), einfo(3, ["b"])]
    cat = categorize(info(node_port=30080, external_local=True), eps,
                     NodeView("n1", "192.168.0.2", {ZONE_LABEL: "a"}))
    assert [e.ip for e in cat.cluster] == ["10.1.0.2"]          # internal: hints apply
    assert [e.ip for e in cat.local] == ["10.1.0.1"]            # external: local, hints ignored
    assert {e.ip for e in cat.reachable} == {"10.1.0.1", "10.1.0.2"}


# ---- kube-proxy in every mode, end to end ---------------------------------------------------------------
def ips_by_zone(c):
    out = {}
    for e in endpoints(c).values():
        out.setdefault(e.zone, set()).add(e.addresses[0])
    return out


@pytest.mark.parametrize("mode", MODES)
def test_render_lists_only_own_zone_endpoints(mode):
    c = three_zones(mode=mode, annotations=AUTO)
    by_zone = ips_by_zone(c)
    for z in ZONES:
        text = c.render(f"node-{z[-1]}")
        assert set(re.findall(r"(10\.244\.\d+\.\d+):8080", text)) == by_zone[z], (mode, z)


def test_render_without_hints_lists_every_endpoint():
    c = three_zones()
    assert set(re.findall(r"(10\.244\.\d+\.\d+):8080", c.render("node-a"))) == set().union(*ips_by_zone(c).values())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("how", ["auto", "prefer-close"])
def test_connect_many_from_zone_a_lands_in_zone_a(mode, how):
    kw = {"annotations": AUTO} if how == "auto" else {"trafficDistribution": "PreferClose"}
    c = three_zones(mode=mode, **kw)
    counts = c.connect_many("client", c.get("service", "web").cluster_ip, 80, 600)
    assert backend_zones(c, counts) == {"zone-a": 600}
    assert len(counts) == 2                                    # both zone-a pods are used


@pytest.mark.parametrize("mode", MODES)
def test_connect_many_without_hints_spreads_over_zones(mode):
    c = three_zones(mode=mode)
    counts = c.connect_many("client", c.get("service", "web").cluster_ip, 80, 600)
    assert set(backend_zones(c, counts)) == set(ZONES)


@pytest.mark.parametrize("mode", MODES)
def test_prefer_same_node_lands_on_own_node(mode):
    c = three_zones(mode=mode, trafficDistribution="PreferSameNode",
                    extra=[node("node-a2", "zone-a"), pod("web-a9", "node-a2")])
    counts = c.connect_many("client", c.get("service", "web").cluster_ip, 80, 300)
    assert {c.api.get("Pod", k).node_name for k in counts} == {"node-a"}


def test_node_hint_missing_for_this_node_falls_back_to_zone():
    # client on node-a2 (zone-a), which has no web pod: no node hint names it -> zone hints
    c = three_zones(trafficDistribution="PreferSameNode", extra=[node("node-a2", "zone-a")])
    c.apply({**client("node-a2"), "metadata": {"name": "client2"}})
    counts = c.connect_many("client2", c.get("service", "web").cluster_ip, 80, 300)
    assert backend_zones(c, counts) == {"zone-a": 300}
