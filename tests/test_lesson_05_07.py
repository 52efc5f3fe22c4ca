"""Lessons 5 (IPVS mode) and 7 (eBPF mode): kslib.viz.balancing, and the quizzes' answer keys
derived from the model."""
import re
from collections import Counter

import numpy as np
import pytest

import kslib
from kslib.dataplane.hashes import maglev_flow_hash
from kslib.proxy import maglev as mg
from kslib.viz import balancing as B
from kslib.viz import quiz


@pytest.fixture(scope="module")
def ipvs():
    c = kslib.Cluster(nodes=3, seed=0)
    c.apply(B.WORKLOAD)
    c.set_mode("ipvs", scheduler="rr")
    return c


@pytest.fixture(scope="module")
def runs():
    return B.compare_schedulers(("rr", "wrr", "lc", "sh", "dh", "mh"))


@pytest.fixture(scope="module")
def hashes():
    return B.flow_hashes(B.flow_population(4_000, seed=0))


def vip(c):
    return c.get("svc", "web").cluster_ip


def web_cluster(mode="ebpf", **options):
    c = kslib.Cluster(nodes=3, seed=0)
    c.apply(B.WORKLOAD)
    c.set_mode(mode, **options)
    return c


# ---- reading IPVS state -----------------------------------------------------------------------------
def test_ipvsadm_views_parse_the_rendered_table(ipvs):
    text = B.ipvsadm(ipvs, "node-1")
    assert text.startswith("IP Virtual Server version 1.2.1 (size=4096)\n") and "*nat" not in text
    vs = B.virtual_server(ipvs, "node-1", f"{vip(ipvs)}:80")
    assert vs.splitlines()[0] == f"TCP  {vip(ipvs)}:80 rr" and len(vs.splitlines()) == 4
    ips = {p.name: p.pod_ip for p in ipvs.pods}
    assert B.ipvs_dests(ipvs, "node-1", f"{vip(ipvs)}:80") == {f"{ips[w]}:8080": (1, 0, 0)
                                                              for w in ("web-1", "web-2", "web-3")}
    assert B.active_per_pod(ipvs, "node-1", f"{vip(ipvs)}:80") == {"web-1": 0, "web-2": 0, "web-3": 0}
    with pytest.raises(ValueError, match="no virtual server 10.0.0.1:80"):
        B.virtual_server(ipvs, "node-1", "10.0.0.1:80")


def test_held_connections_move_active_and_inactive_counts():
    c = web_cluster("ipvs")
    vs = f"{vip(c)}:80"
    held = [c.connect("client", vip(c), 80, hold=True) for _ in range(3)]
    assert set(B.active_per_pod(c, "node-1", vs).values()) == {1}
    held[0].close()
    counts = B.ipvs_dests(c, "node-1", vs)
    assert sorted(v[1:] for v in counts.values()) == [(0, 1), (1, 0), (1, 0)]


def test_kube_ipvs0_and_ipsets(ipvs):
    assert sorted(B.kube_ipvs0(ipvs, "node-1")) == sorted([vip(ipvs), "10.96.0.1"])
    sets = B.ipset_members(ipvs, "node-2")
    assert sorted(sets["KUBE-CLUSTER-IP"]) == sorted([f"{vip(ipvs)},tcp:80", "10.96.0.1,tcp:443"])
    assert sets["KUBE-NODE-PORT-TCP"] == ["30080"] and "KUBE-LOAD-BALANCER" not in sets
    other = web_cluster("iptables")
    for fn in (B.kube_ipvs0, B.ipset_members, B.ipvsadm):
        with pytest.raises(ValueError, match="iptables mode"):
            fn(other, "node-1")
    with pytest.raises(KeyError, match="node-9"):
        B.kube_ipvs0(ipvs, "node-9")


# ---- the scheduler workload ---------------------------------------------------------------------------
def test_rr_keeps_cycling_and_lc_fills_the_new_replica(runs):
    rr, lc = runs["rr"], runs["lc"]
    assert rr.first_wave == lc.first_wave == {"web-1": 10, "web-2": 10, "web-3": 10}
    assert rr.after_scale_up == {"web-1": 13, "web-2": 13, "web-3": 13, "web-4": 3}
    assert rr.new_pod_share == 0.25 and lc.after_scale_up["web-4"] == 11 and lc.new_pod_share == 11 / 12
    assert max(lc.after_scale_up.values()) - min(lc.after_scale_up.values()) <= 1
    assert runs["wrr"].after_scale_up == rr.after_scale_up
    for run in (rr, lc):
        assert set(run.servers_per_client.values()) == {4} and set(run.client_load.values()) == {40}


def test_hashing_schedulers(runs):
    sh, dh, mh = runs["sh"], runs["dh"], runs["mh"]
    assert sorted(sh.first_wave.values()) == [0, 0, 30]
    new = Counter({p: sh.after_scale_up[p] - sh.first_wave.get(p, 0) for p in sh.after_scale_up})
    (target, k), = [(p, v) for p, v in new.items() if v]
    assert k == 12 and sh.first_wave.get(target, 0) == 0          # the rebuilt table remaps the client
    assert set(sh.servers_per_client.values()) == {1} and len(sh.servers_per_client) == 20
    assert sum(sh.client_load.values()) == 160 and sum(1 for v in sh.client_load.values() if v) >= 3
    assert sorted(dh.after_scale_up.values()) == [0, 0, 0, 42] and set(dh.servers_per_client.values()) == {1}
    assert all(mh.first_wave.values()) and max(mh.servers_per_client.values()) > 1


def test_scheduler_report_and_bad_input(runs):
    text = B.scheduler_report(runs["lc"])
    assert text.startswith("scheduler lc\n") and "web-4: 11" in text and runs["lc"].table in text
    assert "each reached 4 pod(s): 20 client(s)" in text
    with pytest.raises(ValueError, match="unsupported IPVS scheduler 'lblc'"):
        B.run_workload("lblc")
    with pytest.raises(ValueError, match="streams"):
        B.run_workload("rr", streams=-1)
    with pytest.raises(ValueError, match="n: Invalid value"):
        B.run_workload("rr", clients=0)


def test_rules_visited_flat_in_ipvs_growing_in_iptables():
    pts = {(p.mode, p.services): p for p in B.rules_visited((10, 60), samples=5)}
    assert pts[("ipvs", 10)].visited == pts[("ipvs", 60)].visited
    assert pts[("ipvs", 10)].rules == pts[("ipvs", 60)].rules
    assert pts[("iptables", 60)].visited > 2 * pts[("iptables", 10)].visited
    assert pts[("iptables", 60)].rules > 5 * pts[("iptables", 10)].rules


# ---- Maglev vs hash mod N -------------------------------------------------------------------------------
def test_flow_population_is_fixed_by_the_seed():
    a, b = B.flow_population(500, seed=3), B.flow_population(500, seed=3)
    assert a.shape == (500, 2) and (a == b).all() and not (a == B.flow_population(500, seed=4)).all()
    assert len(set(a[:, 0].tolist())) == 500
    assert a[:, 1].min() >= 32768 and a[:, 1].max() <= 60999


def test_flow_hashes_are_cilium_maglev_hashes():
    flows = B.flow_population(20)
    seed4 = mg.seeds()[1]
    assert B.flow_hashes(flows, dport=31000).tolist() == [maglev_flow_hash(int(a), int(p), 31000, 6, seed4)
                                                         for a, p in flows]


def test_maglev_and_mod_n_assignment(hashes):
    names = B.backend_names(7)
    got = Counter(B.maglev_assign(hashes, names, 251))
    assert set(got) == set(names)
    table = mg.table(names, 251)
    assert B.maglev_assign(hashes[:50], names, 251) == [names[table[h % 251]] for h in hashes[:50]]
    assert B.mod_n_assign(hashes[:50], names) == [names[h % 7] for h in hashes[:50]]
    with pytest.raises(ValueError, match="positive"):
        B.backend_names(0)


def test_moved_fraction():
    assert B.moved_fraction(["a", "b", "c", "d"], ["a", "x", "c", "y"]) == 0.5
    with pytest.raises(ValueError):
        B.moved_fraction(["a"], ["a", "b"])
    with pytest.raises(ValueError):
        B.moved_fraction([], [])


def test_removal_disruption_maglev_moves_about_one_nth(hashes):
    for n in (3, 10, 20):
        for r in (0, n // 2, n - 1):
            d = B.removal_disruption(n, r, hashes)
            assert abs(d.removed_share - 1 / n) < 0.03
            assert 0 <= d.maglev_collateral < 0.015
            assert d.mod_n > 0.5
    # the removed backend's flows all move, and the measured fractions are those of the assignments
    names = B.backend_names(10)
    before, after = B.maglev_assign(hashes, names), B.maglev_assign(hashes, names[:4] + names[5:])
    d = B.removal_disruption(10, 4, hashes)
    assert d.maglev == B.moved_fraction(before, after)
    assert all(a != names[4] for a in after)
    assert d.removed_share == sum(b == names[4] for b in before) / len(hashes)
    assert d.mod_n == B.moved_fraction(B.mod_n_assign(hashes, names), B.mod_n_assign(hashes, names[:4] + names[5:]))


def test_removal_disruption_bad_input(hashes):
    with pytest.raises(ValueError, match="removed: Invalid value: 5: must be between 0 and 2"):
        B.removal_disruption(3, 5, hashes)
    with pytest.raises(ValueError, match="at least 2"):
        B.removal_disruption(1, 0, hashes)
    with pytest.raises(ValueError, match="maglev.tableSize"):
        B.removal_disruption(3, 0, hashes, 1000)


def test_disruption_curve_and_table_size(hashes):
    curve = B.disruption_curve((2, 5, 10), hashes)
    assert [d.backends for d in curve] == [2, 5, 10] and all(d.removed == -1 for d in curve)
    assert curve[0].maglev == curve[0].mod_n == 0.5
    assert curve[2].mod_n > 0.85 and curve[2].maglev < 0.12
    mean = np.mean([B.removal_disruption(5, r, hashes).maglev for r in range(5)])
    assert curve[1].maglev == pytest.approx(mean)
    small, big = (B.disruption_curve([10], hashes, m)[0] for m in (251, 16381))
    assert small.maglev_collateral > 0.03 > 0.01 > big.maglev_collateral
    report = B.disruption_report(B.removal_disruption(10, 3, hashes))
    assert report.startswith("10 backends, backend 3 removed, Maglev table M=16381:") and "hash mod N:" in report


def test_cluster_maglev_lookup_matches_the_helper_and_every_node():
    c = web_cluster("ebpf", algorithm="maglev")
    flows = B.flow_population(300)
    ip1, ip2 = c.get("node", "node-1").internal_ip, c.get("node", "node-2").internal_ip
    one = B.cluster_maglev_backends(c, "node-1", f"{ip1}:30080/TCP", flows)
    two = B.cluster_maglev_backends(c, "node-2", f"{ip2}:30080/TCP", flows)
    assert one == two
    backend = {mg.backend_hash_string(p.pod_ip, 8080): f"{p.pod_ip}:8080/TCP" for p in c.pods if p.name != "client"}
    assert [backend[n] for n in B.maglev_assign(B.flow_hashes(flows), list(backend))] == one
    tables = B.maglev_tables(c, "node-1")
    assert list(tables) == [f"{ip1}:30080/TCP"] and sum(tables[f"{ip1}:30080/TCP"].values()) == 16381
    with pytest.raises(ValueError, match="no Maglev table"):
        B.cluster_maglev_backends(c, "node-1", f"{vip(c)}:80/TCP", flows)
    c.set_mode("ebpf")
    with pytest.raises(ValueError, match="algorithm='maglev'"):
        B.cluster_maglev_backends(c, "node-1", f"{ip1}:30080/TCP", flows)
    assert B.maglev_tables(c, "node-1") == {}


# ---- the quizzes' answer keys, from the model -----------------------------------------------------------
def keyed(lesson, i):
    q = quiz(lesson).questions[i]
    return q.choices[q.answer]


def test_l05_keys(ipvs, runs):
    assert len(quiz(5).questions) == 5
    conn = ipvs.connect("client", vip(ipvs), 80)
    assert vip(ipvs) in B.kube_ipvs0(ipvs, "node-1")
    assert any(f"{vip(ipvs)} is a local address" in str(s) for s in conn.trace)
    assert "kube-ipvs0" in keyed(5, 0)

    outcome = ipvs.connect("client", vip(ipvs), 81).outcome
    assert outcome == "rejected" and keyed(5, 1).startswith("The connection is rejected")

    shares = {s: runs[s].new_pod_share for s in quiz(5).questions[2].choices}
    assert max(shares, key=shares.get) == keyed(5, 2) and shares[keyed(5, 2)] > 0.9

    assert set(runs["sh"].servers_per_client.values()) == {int(keyed(5, 3))}

    pts = {(p.mode, p.services): p.visited for p in B.rules_visited((10, 500), samples=5)}
    assert pts[("ipvs", 10)] == pts[("ipvs", 500)] > 0 and keyed(5, 4) == "The same number"
    assert pts[("iptables", 500)] > 10 * pts[("iptables", 10)]


def _closest(choices, value):
    pct = {c: float(re.search(r"(\d+)%", c).group(1)) / 100 for c in choices}
    return min(pct, key=lambda c: abs(pct[c] - value))


def test_l07_keys(hashes):
    assert len(quiz(7).questions) == 5
    c = web_cluster("ebpf")
    conn = c.connect("client", vip(c), 80)
    ct = [e for e in c.conntrack("node-1") if f"sport={conn.source_port} " in e]
    backend_ip = conn.endpoint.split(":")[0]
    assert ct and all(vip(c) not in e and f"dst={backend_ip} " in e for e in ct)
    assert backend_ip == c.pod(conn.pod).pod_ip and keyed(7, 0) == "The chosen backend pod's IP"
    assert conn.reply_source == vip(c) and keyed(7, 1) == "The ClusterIP"

    c = web_cluster("ebpf", lb_mode="dsr")
    c.delete("pod", "web-1")                  # the only backend on node-1: every backend is now remote
    node1 = c.get("node", "node-1").internal_ip
    for i in range(1, 6):
        conn = c.connect(f"203.0.113.{i}", node1, 30080, via="node-1")
        assert conn.node != "node-1" and conn.source_ip == f"203.0.113.{i}"
    assert keyed(7, 2) == "The client's own IP"

    d = B.disruption_curve([10], hashes)[0]
    assert _closest(quiz(7).questions[3].choices, d.maglev) == keyed(7, 3)
    assert _closest(quiz(7).questions[4].choices, d.mod_n) == keyed(7, 4)
