"""Lessons 9 (NodePort, externalTrafficPolicy) and 10 (LoadBalancer Services and the cloud): the helpers
in kslib.viz.external, and the quizzes' answer keys derived from the model (a wrong key fails here)."""
from fractions import Fraction

import pytest

import kslib
from kslib.viz import external as ex
from kslib.viz import quiz
from kslib.viz.external import LoadReport

CLIENT = "198.51.100.23"
OUTSIDER = "192.0.2.77"


def key(lesson, i):
    q = quiz(lesson).questions[i]
    return q.choices[q.answer]


@pytest.fixture(scope="module")
def packed_local():
    return ex.grown_cluster("Local", "packed")


@pytest.fixture(scope="module")
def nodeport():
    c = kslib.Cluster(nodes=3)
    c.apply(ex.web_manifests(replicas=1, service_type="NodePort"))
    assert ex.apply_node_port(c, 30080) is None
    return c


# ---- lesson 9 helpers --------------------------------------------------------------------------------------
def test_web_manifests_shapes_and_bad_spread():
    text = ex.web_manifests(2, "Local", "anti-affinity", "NodePort")
    objs = kslib.load(text)
    assert [o.kind for o in objs] == ["Deployment", "Service"]
    assert objs[1].type == "NodePort" and objs[1].external_traffic_policy == "Local"
    assert "podAntiAffinity" in text and "topologySpreadConstraints" in ex.web_manifests(spread="topology-spread")
    with pytest.raises(ValueError, match="spread: Unsupported value: 'even'"):
        ex.web_manifests(spread="even")


def test_grown_cluster_packs_pods_and_constraints_spread_them(packed_local):
    assert ex.placement(packed_local) == {"node-1": 3, "node-2": 1, "node-3": 0, "node-4": 0}
    assert ex.rollout_done(packed_local) and ex.pending(packed_local) == 0
    for spread in ("anti-affinity", "topology-spread"):
        c = ex.grown_cluster("Local", spread)
        assert ex.placement(c) == {"node-1": 1, "node-2": 1, "node-3": 1, "node-4": 1}, spread
        assert ex.rollout_done(c) and ex.settle_rollout(c) == 0
    over = ex.grown_cluster("Local", "anti-affinity", 5)
    assert ex.pending(over) >= 1 and not ex.rollout_done(over) and max(ex.placement(over).values()) == 1
    with pytest.raises(kslib.ValidationError, match="spec.replicas: Invalid value: -1"):
        ex.grown_cluster("Local", "packed", -1)
    with pytest.raises(ValueError, match="policy: Unsupported value: 'Everywhere'"):
        ex.grown_cluster("Everywhere")


def test_expected_shares_follow_the_policy_and_the_placement(packed_local):
    local = ex.expected_pod_shares(packed_local)
    assert sorted(Fraction(s).limit_denominator(12) for s in local.values()) == [Fraction(1, 6)] * 3 + [Fraction(1, 2)]
    cluster = ex.expected_pod_shares(ex.grown_cluster("Cluster", "packed"))
    assert set(cluster.values()) == {0.25}


def test_external_load_under_both_policies(packed_local):
    local = ex.external_load(packed_local, 2000, population=50)
    assert local.total == 2000 and local.dropped == 0 and local.clients == 50
    assert local.preserved == 1.0 and local.entered["node-3"] == local.entered["node-4"] == 0
    assert sum(local.per_pod.values()) == 2000 and 2.4 < local.imbalance < 3.8
    assert all(abs(local.pod_shares()[p] - s) < 0.04 for p, s in ex.expected_pod_shares(packed_local).items())
    cluster = ex.external_load(ex.grown_cluster("Cluster", "packed"), 2000)
    assert cluster.preserved == 0.0 and min(cluster.entered.values()) > 400 and cluster.imbalance < 1.3
    assert {ip for _, ip in cluster.sources} <= {f"192.168.0.{i}" for i in (2, 3, 4, 5)} | \
        {f"10.244.{i}.1" for i in range(4)}


def test_load_report_imbalance_with_an_idle_pod():
    r = LoadReport({}, {}, {"a": 10, "b": 0}, 1.0, 0, 10)
    assert r.imbalance == float("inf") and r.pod_shares() == {"a": 1.0, "b": 0.0}


def test_apply_node_port_refuses_out_of_range_and_changes_nothing(nodeport):
    err = ex.apply_node_port(nodeport, 80)
    assert err == ('The Service "web" is invalid: spec.ports[0].nodePort: Invalid value: 80: provided port is not '
                   'in the valid range. The range of valid ports is 30000-32767')
    assert nodeport.get("svc", "web").ports[0].node_port == 30080


def test_node_port_reach_every_node_and_snat(nodeport):
    reach = ex.node_port_reach(nodeport, CLIENT, 30080)
    assert set(reach) == {"node-1", "node-2", "node-3"}
    assert all(c.outcome == "delivered" for c in reach.values())
    assert reach["node-3"].source_ip == "192.168.0.4" and reach["node-1"].source_ip == "10.244.0.1"
    steps = ex.nat_steps(reach["node-3"])
    assert len(steps) == 2 and "DNAT to" in steps[0] and "source NAT to 192.168.0.4" in steps[1]


def test_rule_lines_find_the_local_drop(packed_local):
    np_ = packed_local.get("svc", "web").ports[0].node_port
    drops = ex.rule_lines(packed_local.render("node-4"), "has no local endpoints", "-j DROP")
    assert len(drops) == 2 and any(f"--dport {np_} -j DROP" in d for d in drops)
    assert ex.rule_lines("a b\nb c\n", "b") == ["a b", "b c"] and ex.rule_lines("a b", "b", "z") == []


# ---- lesson 10 helpers -------------------------------------------------------------------------------------
def test_layers_reach_the_same_pods_through_the_same_service_chain():
    c = ex.fleet("cloud", 1)
    ways = ex.layers(c, "svc-1", "client", CLIENT, "node-3", n=100)
    assert [w.kind for w in ways] == ["ClusterIP", "NodePort", "LoadBalancer"]
    assert all(w.pods == {"default/web-1", "default/web-2"} for w in ways)
    suffix = {w.rule.rsplit("-", 1)[1] for w in ways}
    assert len(suffix) == 1 and "127.0.0.0/8" not in ways[1].rule


def test_fleet_choices_and_bad_input():
    assert set(ex.CLOUDS) == {"none (no cloud controller)", "cloud, 2 addresses left in the quota", "cloud",
                              "MetalLB on bare metal"}
    none = ex.fleet("none (no cloud controller)", 2)
    assert none.cloud is None and ex.service_events(none, "svc-1") == []
    assert [ex.external_ip_column(none, f"svc-{i}") for i in (1, 2)] == ["<pending>"] * 2
    with pytest.raises(ValueError, match="has no load-balancer address"):
        ex.lb_ip(none, "svc-1")
    with pytest.raises(KeyError):
        ex.external_ip_column(none, "missing")
    with pytest.raises(ValueError, match="cloud: Unsupported value: 'aws'"):
        ex.fleet("aws", 1)
    with pytest.raises(ValueError, match="hourly_price: Invalid value: -0.01"):
        ex.fleet("cloud", 1, -0.01)
    with pytest.raises(ValueError, match="count: Invalid value: -1"):
        ex.lb_services(-1)
    metal = ex.fleet("MetalLB on bare metal", 2)
    assert ex.external_ip_column(metal, "svc-2") == "192.168.10.241" and metal.cloud.monthly_cost() == 0.0
    assert ex.service_events(metal, "svc-1") == [str(metal.cloud.events_for("svc-1")[0])]


def test_cost_curve_is_count_times_price_times_hours():
    curve = ex.cost_curve([1, 4], hourly_price=0.0225, hours=24)
    assert [(p.services, p.per_service, p.shared) for p in curve] == [(1, 0.54, 0.54), (4, 2.16, 0.54)]


def test_exposed_node_ports_cover_every_node_and_service():
    c = ex.fleet("cloud", 2)
    exposed = ex.exposed_node_ports(c, CLIENT)
    assert len(exposed) == 6 and {e.node for e in exposed} == {"node-1", "node-2", "node-3"}
    assert {e.service for e in exposed} == {"default/svc-1", "default/svc-2"}
    assert all(e.outcome == "delivered" for e in exposed)


# ---- quiz keys, derived from the model ----------------------------------------------------------------------
def test_l09_keys(nodeport, packed_local):
    conn = nodeport.connect(CLIENT, nodeport.get("node", "node-3").internal_ip, 30080)
    assert (conn.outcome, nodeport.get("pod", conn.pod.split("/")[1]).node_name) == ("delivered", "node-1")
    assert conn.source_ip == "192.168.0.4"
    assert key(9, 0) == "it is delivered to the pod on node-1, which sees node-3's IP as the source"

    local = kslib.Cluster(nodes=3)
    local.apply(ex.web_manifests(replicas=1, policy="Local", service_type="NodePort"))
    np_ = local.get("svc", "web").ports[0].node_port
    drop = local.connect(CLIENT, local.get("node", "node-3").internal_ip, np_)
    assert drop.outcome == "dropped" and any("has no local endpoints" in s.rule for s in drop.trace)
    assert key(9, 1) == 'it is dropped by a "has no local endpoints" rule'

    shares = ex.expected_pod_shares(packed_local)
    on_node2 = [s for p, s in shares.items() if packed_local.get("pod", p.split("/")[1]).node_name == "node-2"]
    measured = ex.external_load(packed_local, 2000)
    node2_pod = next(p for p in measured.per_pod if packed_local.get("pod", p.split("/")[1]).node_name == "node-2")
    assert abs(measured.pod_shares()[node2_pod] - on_node2[0]) < 0.04
    assert key(9, 2) == str(Fraction(on_node2[0]).limit_denominator(12))

    probe = packed_local.cloud.health("web")["node-3"]
    assert key(9, 3) == str(probe.status) and probe.json()["localEndpoints"] == 0

    packed_local.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "quiz-client"},
                        "spec": {"nodeName": "node-3", "containers": [{"name": "c", "image": "curl"}]}})
    inside = packed_local.connect_many("quiz-client", ex.lb_ip(packed_local), 80, 200)
    short = packed_local.connect("quiz-client", ex.lb_ip(packed_local), 80)
    assert len(inside) == 4 and short.source_ip == packed_local.pod("quiz-client").pod_ip
    assert key(9, 4) == "it is sent to any endpoint of the Service, keeping the pod's own address"


def test_l10_keys():
    none = ex.fleet("none (no cloud controller)", 1)
    assert ex.external_ip_column(none, "svc-1") == "<pending>" and ex.service_events(none, "svc-1") == []
    assert key(10, 0) == "<pending>, with no Events about it"

    quota = ex.fleet("cloud, 2 addresses left in the quota", 3)
    last = quota.cloud.events_for("svc-3")[-1]
    assert key(10, 1) == f"{last.type} {last.reason}"

    alt = ex.fleet("cloud", 10).cloud.ingress_alternative()
    assert key(10, 2) == f"${alt.per_service_cost:,.2f} and ${alt.shared_cost:,.2f}"

    two = ex.fleet("cloud", 1)
    two.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc-1"},
               "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
                        "loadBalancerSourceRanges": ["198.51.100.0/25"], "ports": [{"port": 80, "targetPort": 8080}]}})
    assert two.connect(OUTSIDER, ex.lb_ip(two, "svc-1"), 80).outcome == "dropped"
    np_ = two.get("svc", "svc-1").ports[0].node_port
    assert two.connect(OUTSIDER, two.get("node", "node-2").internal_ip, np_).outcome == "delivered"
    assert key(10, 3) == "it is delivered: the source ranges guard only the load-balancer address"

    web1 = two.pod("web-1")
    direct = two.connect(CLIENT, web1.pod_ip, 8080, via=web1.node_name)
    assert direct.source_ip == CLIENT and ex.nat_steps(direct) == []
    assert key(10, 4) == "the client's own address"
