"""Lessons 11 (session affinity) and 12 (topology-aware routing): the helpers in
kslib.viz.stickiness and kslib.viz.zones, and the quizzes' answer keys derived from the model (a
wrong key fails here)."""
from collections import Counter

import pytest

import kslib
from kslib import billing
from kslib.viz import quiz
from kslib.viz import stickiness as st
from kslib.viz import zones as zn

MODES = kslib.MODES


def vip(c, name="web"):
    return c.get("svc", name).cluster_ip


# ---- lesson 11: stickiness ----------------------------------------------------------------------------
def test_service_manifest_shapes():
    m = st.service_manifest()
    assert m["spec"]["type"] == "NodePort" and m["spec"]["ports"][0]["nodePort"] == st.NODE_PORT
    assert m["spec"]["sessionAffinity"] == "ClientIP" and "sessionAffinityConfig" not in m["spec"]
    m = st.service_manifest(True, 60, name="x", node_port=None)
    assert m["metadata"]["name"] == "x" and m["spec"]["type"] == "ClusterIP" and "nodePort" not in m["spec"]["ports"][0]
    assert m["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 60}}
    assert "sessionAffinity" not in st.service_manifest(False)["spec"]


def test_default_timeout_is_filled_in():
    c = st.web_cluster()
    svc = c.get("svc", "web")
    assert svc.session_affinity == "ClientIP" and svc.affinity_timeout == 10800
    assert "timeoutSeconds: 10800" in st.spec_yaml(svc) and "timeoutSeconds" not in st.spec_yaml(st.service_manifest())


def test_try_timeout_refuses_out_of_range_and_changes_nothing():
    c = st.web_cluster()
    before = [s.name for s in c.services]
    for t in (0, -5, 86401):
        msg = st.try_timeout(c, t)
        assert msg == ('The Service "sticky" is invalid: spec.sessionAffinityConfig.clientIP.timeoutSeconds: '
                       f"Invalid value: {t}: must be greater than 0 and less than 86400")
        assert [s.name for s in c.services] == before
    assert st.try_timeout(c, 86400) is None and c.get("svc", "sticky").affinity_timeout == 86400
    assert st.try_timeout(c, 1, name="one") is None


@pytest.mark.parametrize("mode", MODES)
def test_affinity_lines_per_mode(mode):
    c = st.web_cluster(mode, timeout=600)
    lines = st.affinity_lines(c, "node-1")
    text = "\n".join(lines)
    if mode == "iptables":
        assert sum("--rcheck --seconds 600 --reap" in l for l in lines) == 3
        assert sum("--set" in l and "DNAT" in l for l in lines) == 3
    elif mode == "nftables":
        assert text.count("timeout 600s") == 3 and text.count("update @affinity-") == 3
    elif mode == "ipvs":
        assert f"TCP  {vip(c)}:80 rr persistent 600" in lines and all("persistent 600" in l for l in lines)
    else:
        assert f"{vip(c)}:80/TCP (0) value affinity_timeout=600" in text
        assert text.count("cilium_lb_affinity_match") >= 3
    plain = st.web_cluster(mode, affinity=False)
    assert st.affinity_lines(plain, "node-1") == [], "no affinity, nothing to show"


@pytest.mark.parametrize("mode", MODES)
def test_sticky_rounds_refresh_and_expiry(mode):
    c = st.web_cluster(mode)
    (first,) = c.connect_many("client", vip(c), 80, 1)
    within = st.sticky_rounds(c, "client", vip(c), 80, rounds=3, idle=10_000)
    assert [r.clock for r in within] == [10_000, 20_000, 30_000]
    assert all(r.pod == first and r.kept for r in within), "every new connection restarts the timer"
    expired = st.sticky_rounds(c, "client", vip(c), 80, rounds=12, idle=10_801)
    assert all(r.kept for r in expired) and len({r.pod for r in expired}) == 3


@pytest.mark.parametrize("mode", ["iptables", "nftables", "ebpf"])
def test_open_streams_do_not_keep_the_affinity(mode):
    c = st.web_cluster(mode)
    rounds = st.sticky_rounds(c, "client", vip(c), 80, rounds=12, idle=10_801, hold=True)
    assert all(r.kept for r in rounds) and len({r.pod for r in rounds}) == 3
    assert c.open_connections() == Counter(), "the helper closes the streams it opened"


def test_open_streams_keep_the_ipvs_template():
    # ip_vs_conn_expire: a template that controls an open connection is re-armed, not expired
    c = st.web_cluster("ipvs")
    rounds = st.sticky_rounds(c, "client", vip(c), 80, rounds=12, idle=10_801, hold=True)
    assert all(r.kept for r in rounds) and len({r.pod for r in rounds}) == 1
    assert c.open_connections() == Counter()


def test_without_affinity_rounds_do_not_keep():
    c = st.web_cluster(affinity=False)
    rounds = st.sticky_rounds(c, "client", vip(c), 80, rounds=5, idle=1, follow=30)
    assert not any(r.kept for r in rounds)


def test_pod_load_nat_hotspot_and_spread():
    nat = st.pod_load(1000, True, True, 3000)
    assert nat.sources == 1 and nat.pods_used == 1 and nat.busiest_share == 1.0 and nat.connections == 3000
    assert len(nat.per_pod) == 3 and sorted(nat.per_pod.values()) == [0, 0, 3000]
    spread = st.pod_load(1000, False, True, 3000)
    assert spread.sources == 1000 and all(abs(v / 3000 - 1 / 3) < 0.06 for v in spread.per_pod.values())
    off = st.pod_load(1000, True, False, 3000)
    assert off.sources == 1 and off.pods_used == 3
    few = st.pod_load(10, False, True, 100)
    assert all(v % 10 == 0 for v in few.per_pod.values()), "each of 10 users' 10 connections on one pod"
    assert st.Load({"a": 0}, 0, 0).busiest_share == 0.0


@pytest.mark.parametrize("mode", MODES)
def test_pod_load_hotspot_in_every_mode(mode):
    assert st.pod_load(200, True, True, 600, mode=mode).pods_used == 1


@pytest.mark.parametrize("kw, message", [
    (dict(clients=0), "n: Invalid value: 0: must be a positive integer"),
    (dict(clients=5, connections=0), "connections: Invalid value: 0: must be a positive integer"),
])
def test_pod_load_bad_input(kw, message):
    args = dict(clients=5, behind_nat=False, affinity=True, connections=10) | kw
    with pytest.raises(ValueError, match=message):
        st.pod_load(**args)


# ---- lesson 12: zones -----------------------------------------------------------------------------------
def test_zonal_cluster_layout():
    c = zn.zonal_cluster({"web": (2, 1, 0)}, cpus=(8, 4, 2))
    assert {n.name: (n.zone, n.allocatable_cpu_m) for n in c.nodes} == {
        "node-a": ("zone-a", 8000), "node-b": ("zone-b", 4000), "node-c": ("zone-c", 2000)}
    placed = Counter(c.get("node", p.node_name).zone for p in c.pods if p.metadata.labels.get("app") == "web")
    assert placed == {"zone-a": 2, "zone-b": 1}
    assert {p.name: p.node_name for p in c.pods if p.name.startswith("client-")} == {
        "client-a": "node-a", "client-b": "node-b", "client-c": "node-c"}
    assert zn.zonal_cluster(unlabeled_node=True).get("node", "node-d").zone is None


def test_hint_rows_table_and_state():
    c = zn.zonal_cluster(annotations=zn.AUTO)
    rows = zn.hint_rows(c, "web")
    assert len(rows) == 6 and all(z == h for _, z, h in rows)
    table = zn.hint_table(c, "web").splitlines()
    assert table[0].split() == ["POD", "ZONE", "HINTS.FORZONES"] and len(table) == 7
    s = zn.hint_state(c, "web")
    assert s == zn.HintState(True, {"zone-a": 2, "zone-b": 2, "zone-c": 2},
                             ("Normal", "TopologyAwareHintsEnabled",
                              "Topology Aware Hints has been enabled, addressType: IPv4"))
    plain = zn.zonal_cluster()
    assert all(h == "<none>" for _, _, h in zn.hint_rows(plain, "web"))
    assert zn.hint_state(plain, "web") == zn.HintState(False, {}, None)


@pytest.mark.parametrize("mode", MODES)
def test_rendered_endpoints_with_and_without_hints(mode):
    c = zn.zonal_cluster({"web": (2, 2, 2), "other": (1, 1, 1)}, mode=mode, annotations=zn.AUTO)
    for node, zone in (("node-a", "zone-a"), ("node-c", "zone-c")):
        assert zn.zones_of(c, zn.rendered_endpoints(c, node, "web")) == {zone: 2}
    # unfiltered, the other Service's endpoints show too (its 3 endpoints are one per zone: hinted, 1 each)
    assert len(zn.rendered_endpoints(c, "node-a")) == 3
    plain = zn.zonal_cluster(mode=mode)
    assert zn.zones_of(plain, zn.rendered_endpoints(plain, "node-a", "web")) == {"zone-a": 2, "zone-b": 2, "zone-c": 2}


def test_zone_bill_matches_billing():
    c = zn.zonal_cluster()
    b = zn.zone_bill(c, "web", 600, request_bytes=100, response_bytes=900)
    assert b.connections == 1800 and b.cross_zone_bytes + b.same_zone_bytes == 1800 * 1000
    assert b.cost == pytest.approx(billing.cross_zone_cost(b.cross_zone_bytes))
    assert abs(b.cross_zone_fraction - 2 / 3) < 0.05
    hinted = zn.zone_bill(zn.zonal_cluster(annotations=zn.AUTO), "web", 600)
    assert hinted.cross_zone_bytes == 0 and hinted.cost == 0.0 and hinted.cross_zone_fraction == 0.0
    assert zn.Bill(0, 0, 0, 0.0).cross_zone_fraction == 0.0


def test_pod_load_per_pod_prefer_close():
    c = zn.zonal_cluster({"web": (2, 1, 1)}, traffic_distribution="PreferClose")
    load = zn.pod_load(c, "web", 300)
    assert len(load) == 4 and sum(load.values()) == 900
    assert [v for p, v in load.items() if "/web-a-" not in p] == [300, 300]


def test_monthly_cost():
    assert zn.monthly_cost(1.0, 10_000) == pytest.approx(200.0)
    assert zn.monthly_cost(0.5, 1_000, price_per_gb=0.02) == pytest.approx(20.0)
    assert zn.monthly_cost(0.0, 10_000) == 0.0
    with pytest.raises(ValueError, match="between 0 and 1"):
        zn.monthly_cost(1.5, 10)
    with pytest.raises(ValueError, match="must not be negative"):
        zn.monthly_cost(0.5, -1)


def test_what_if():
    kept = zn.what_if((2, 2, 2), 4, n_per_zone=200)
    assert kept.hints.kept and kept.cross_zone_fraction == 0.0 and kept.monthly_cost == 0.0
    dropped = zn.what_if((2, 2, 2), 8, n_per_zone=200)
    assert not dropped.hints.kept and "overload threshold (6 endpoints, 3 zones)" in dropped.hints.event[2]
    assert dropped.monthly_cost == pytest.approx(zn.monthly_cost(dropped.cross_zone_fraction, 10_000))
    assert abs(dropped.cross_zone_fraction - 2 / 3) < 0.08
    assert zn.what_if((4, 2, 2), 8, n_per_zone=200).hints.by_zone == {"zone-a": 4, "zone-b": 2, "zone-c": 2}
    assert zn.what_if((0, 0, 0), 4).monthly_cost == 0.0
    with pytest.raises(kslib.ValidationError, match=r'Deployment "web-b" is invalid: spec.replicas: Invalid value: -2'):
        zn.what_if((2, -2, 2), 4)


# ---- quiz keys, derived from the model ----------------------------------------------------------------------
def test_quiz_11_keys():
    q = quiz(11).questions
    c = st.web_cluster()
    assert str(c.get("svc", "web").affinity_timeout) in q[0].choices[q[0].answer]
    refused = [i for i, ch in enumerate(q[1].choices) if st.try_timeout(c, int(ch), name=f"q{i}") is not None]
    assert refused == [q[1].answer]
    # t = 0, 10,000, 20,000 with the default 10800 s timeout
    c = st.web_cluster()
    (first,) = c.connect_many("client", vip(c), 80, 1)
    rounds = st.sticky_rounds(c, "client", vip(c), 80, rounds=2, idle=10_000, follow=1)
    same = rounds[-1].pod == first
    assert q[2].answer == (0 if same else 1) and "same pod" in q[2].choices[0]
    load = st.pod_load(500, True, True, 5000, replicas=5)
    assert q[3].choices[q[3].answer] == str(load.pods_used) and len(load.per_pod) == 5
    # layer 4 sees one address for every user behind the NAT, whatever the timeout: a cookie is needed
    assert st.pod_load(500, True, True, 500).sources == 1 and "cookie" in q[4].choices[q[4].answer]


def test_quiz_12_keys():
    q = quiz(12).questions
    s = zn.hint_state(zn.zonal_cluster({"web": (2, 1, 1)}, annotations=zn.AUTO), "web")
    assert not s.kept and "overload threshold" in s.event[2]
    assert q[0].answer == 1 and "drops all hints" in q[0].choices[1]
    frac = zn.zone_bill(zn.zonal_cluster(), "web", 1000).cross_zone_fraction
    thirds = {0: 0.0, 1: 1 / 3, 2: 2 / 3, 3: 1.0}
    assert min(thirds, key=lambda i: abs(thirds[i] - frac)) == q[1].answer
    c = zn.zonal_cluster(annotations=zn.AUTO)
    on_a = zn.zones_of(c, zn.rendered_endpoints(c, "node-a", "web"))
    assert on_a == {"zone-a": 2} and q[2].answer == 1 and "only the two endpoints hinted for zone-a" == q[2].choices[1]
    s = zn.hint_state(zn.zonal_cluster(annotations=zn.AUTO, unlabeled_node=True), "web")
    assert not s.kept and "Insufficient Node information" in s.event[2]
    assert "Insufficient Node information" in q[3].choices[q[3].answer]
    cost = billing.cross_zone_cost(1_000 * billing.BYTES_PER_GB)
    assert q[4].choices[q[4].answer] == f"${cost:.0f}"
