"""Cross-zone traffic accounting (kslib.billing, Cluster.zone_traffic): bytes per zone pair, and
how topology hints take the cross-zone share of a 3-zone Service from about 2/3 to 0."""
from collections import Counter

import pytest

import kslib
from kslib import billing
from kslib.api.node import ZONE_LABEL

ZONES = ["zone-a", "zone-b", "zone-c"]
MODES = ["iptables", "nftables", "ipvs", "ebpf"]


def node(name, zone):
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, ZONE_LABEL: zone}}}


def pod(name, node_name, app="web"):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": app}},
            "spec": {"nodeName": node_name, "containers": [{"name": "c", "ports": [{"containerPort": 8080}]}]}}


def cluster(mode="iptables", annotations=None, **spec):
    """node-a/b/c in zone-a/b/c, two web pods on each, a client pod on node-a (zone-a)."""
    c = kslib.Cluster(mode=mode, seed=0)
    objs = [node(f"node-{z[-1]}", z) for z in ZONES]
    objs += [pod(f"web-{z[-1]}{i}", f"node-{z[-1]}") for z in ZONES for i in range(2)]
    objs.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
                 "spec": {"nodeName": "node-a", "containers": [{"name": "c"}]}})
    objs.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "annotations": annotations or {}},
                 "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}], **spec}})
    c.apply(objs)
    return c


@pytest.fixture(scope="module")
def c():
    return cluster()


# ---- the accounting, on a hand-made Counter ---------------------------------------------------------------
def test_cost_is_charged_in_each_direction():
    assert billing.cross_zone_cost(10 ** 9) == pytest.approx(0.02)          # $0.01/GB out + $0.01/GB in
    assert billing.cross_zone_cost(5 * 10 ** 9, price_per_gb=0.02) == pytest.approx(0.2)
    assert billing.cross_zone_cost(0) == 0.0


def test_bytes_per_zone_pair_hand_computed(c):
    counts = Counter({"default/web-a0": 10, "default/web-b0": 5, "default/web-c1": 1, "rejected": 2})
    t = billing.zone_traffic(c, "client", counts, request_bytes=100, response_bytes=1000)
    assert t.source_zone == "zone-a"
    assert t.connections == 16 and t.connections_by_zone == {"zone-a": 10, "zone-b": 5, "zone-c": 1}
    assert t.bytes_by_zone_pair == {("zone-a", "zone-a"): 10 * 1100,
                                    ("zone-a", "zone-b"): 500, ("zone-b", "zone-a"): 5000,
                                    ("zone-a", "zone-c"): 100, ("zone-c", "zone-a"): 1000}
    assert (t.same_zone_bytes, t.cross_zone_bytes, t.unknown_zone_bytes) == (11000, 6600, 0)
    assert t.cross_zone_fraction == pytest.approx(6600 / 17600)
    assert t.cost == pytest.approx(2 * 0.01 * 6600 / 1e9)
    assert t.undelivered == {"rejected": 2}


def test_source_may_be_a_node_or_outside(c):
    counts = Counter({"default/web-b0": 4})
    assert billing.zone_traffic(c, "node-b", counts, 10, 10).same_zone_bytes == 80
    out = billing.zone_traffic(c, "203.0.113.9", counts, 10, 10)
    assert out.source_zone is None and out.unknown_zone_bytes == 80 and out.cost == 0.0


def test_price_is_configurable(c):
    counts = Counter({"default/web-b0": 1000})
    t = billing.zone_traffic(c, "client", counts, 10 ** 6, 0, price_per_gb=0.05)
    assert t.cross_zone_bytes == 10 ** 9 and t.cost == pytest.approx(0.10)


@pytest.mark.parametrize("kw, message", [
    ({"request_bytes": -1, "response_bytes": 0}, "request_bytes: Invalid value: -1"),
    ({"request_bytes": 1, "response_bytes": 1.5}, "response_bytes: Invalid value: 1.5"),
])
def test_bad_sizes_are_rejected(c, kw, message):
    with pytest.raises(ValueError, match=message):
        billing.zone_traffic(c, "client", Counter(), **kw)


# ---- measured through the engine: hints cut cross-zone bytes ----------------------------------------------
N = 3000
TOLERANCE = 0.03      # 3.5 sigma of a binomial share 2/3 over 3000 connections (sigma = 0.0086)


@pytest.mark.parametrize("mode", MODES)
def test_without_hints_two_thirds_of_bytes_cross_zones(mode):
    c = cluster(mode)
    t = c.zone_traffic("client", c.get("service", "web").cluster_ip, 80, N, request_bytes=1_000,
                       response_bytes=10_000)
    assert t.connections == N and set(t.connections_by_zone) == set(ZONES)
    assert t.cross_zone_fraction == pytest.approx(2 / 3, abs=TOLERANCE)
    assert t.cost == pytest.approx(2 * 0.01 * t.cross_zone_bytes / 1e9)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("hints", [{"annotations": {"service.kubernetes.io/topology-mode": "Auto"}},
                                   {"trafficDistribution": "PreferClose"}], ids=["auto", "prefer-close"])
def test_with_hints_no_byte_crosses_zones(mode, hints):
    c = cluster(mode, **hints)
    t = c.zone_traffic("client", c.get("service", "web").cluster_ip, 80, N, request_bytes=1_000,
                       response_bytes=10_000)
    assert t.connections_by_zone == {"zone-a": N}
    assert t.cross_zone_bytes == 0 and t.cross_zone_fraction == 0.0 and t.cost == 0.0
    assert t.same_zone_bytes == N * 11_000


def test_iptables_figures_are_repeatable():
    """Fixed seed: the same cluster gives the same count (figures quoted in the report)."""
    figures = []
    for _ in range(2):
        c = cluster("iptables")
        t = c.zone_traffic("client", c.get("service", "web").cluster_ip, 80, N)
        figures.append((t.connections_by_zone, t.cross_zone_bytes))
    assert figures[0] == figures[1]
