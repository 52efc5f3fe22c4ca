"""IPVS: the kernel's schedulers (kslib.dataplane.ipvs) and kube-proxy's IPVS proxier (kslib.proxy.ipvs).

Scheduler expectations are worked out by hand from net/netfilter/ipvs/ip_vs_*.c; the hash tests use
the kernel's own hsiphash test vectors (lib/test_siphash.c, 64-bit) and hash_32's definition.
"""
import ipaddress
from collections import Counter

import numpy as np
import pytest

from kslib.api.endpointslice import EndpointSlice
from kslib.api.service import Service
from kslib.dataplane import ipvs as K
from kslib.proxy import NodeView, ProxyConfig
from kslib.proxy.ipvs import IpvsProxier, RealServer, VirtualServer

VIP = int(ipaddress.ip_address("10.96.0.10"))


def ip(text):
    return int(ipaddress.ip_address(text))


# ---- kernel-side fixtures --------------------------------------------------------------------------------
def vserver(sched, names, weights=None, flags=(), persistent=None, seqs=None):
    """A virtual server whose destinations are ``names`` in kernel list order (names[0] at the head);
    destination "X" is 10.244.0.<ord(X)>:8080."""
    weights = weights or [1] * len(names)
    seqs = seqs or list(range(len(names), 0, -1))          # the head is the newest
    dests = [RealServer(f"10.244.0.{ord(n)}", 8080, w, added=s) for n, w, s in zip(names, weights, seqs)]
    return VirtualServer("10.96.0.10", "TCP", 80, sched, flags, persistent, dests)


def name(t, row):
    return "-" if row < 0 else chr(int(t.dests[row, K.D_ADDR]) & 0xFF)


def pick(t, v=0, saddr=ip("192.168.5.5"), sport=40000, daddr=VIP):
    return name(t, K.schedule(t.vs, t.dests, t.vtab, v, saddr, sport, daddr))


def picks(t, n, **kw):
    return " ".join(pick(t, **kw) for _ in range(n))


def row_of(t, n):
    return next(r for r in range(t.dests.shape[0]) if name(t, r) == n)


def conns(t, n, active=None, inactive=None):
    r = row_of(t, n)
    if active is not None:
        t.dests[r, K.D_ACTIVE] = active
    if inactive is not None:
        t.dests[r, K.D_INACT] = inactive


# ---- hashes ----------------------------------------------------------------------------------------------
# lib/test_siphash.c test_vectors_hsiphash for BITS_PER_LONG == 64 (key 00 01 .. 0f, input 00 01 .. i-1)
HSIPHASH_VECTORS = [
    0x050fc4dc, 0x7d57ca93, 0x4dc7d44d, 0xe7ddf7fb, 0x88d38328, 0x49533b67, 0xc59f22a7, 0x9bb11140,
    0x8d299a8e, 0x6c063de4, 0x92ff097f, 0xf94dc352, 0x57b4d9a2, 0x1229ffa7, 0xc0f95d34, 0x2a519956,
    0x7d908b66, 0x63dbd80c, 0xb473e63e, 0x8d297d1c, 0xa6cce040, 0x2b45f844, 0xa320872e, 0xdae6c123,
    0x67349c8c, 0x705b0979, 0xca9913a5, 0x4ade3b35, 0xef6cd00d, 0x4ab1e1f4, 0x43c5e663, 0x8c21d1bc,
    0x16a7b60d, 0x7a8ff9bf, 0x1f2a753e, 0xbf186b91, 0xada26206, 0xa3c33057, 0xae3a36a1, 0x7b108392,
    0x99e41531, 0x3f1ad944, 0xc8138825, 0xc28949a6, 0xfaf8876b, 0x9f042196, 0x68b1d623, 0x8b5114fd,
    0xdf074c46, 0x12cc86b3, 0x0a52098f, 0x9d292f9a, 0xa2f41f12, 0x43a71ed0, 0x73f0bce6, 0x70a7e980,
    0x243c6d75, 0xfdb71513, 0xa67d8a08, 0xb7e8f148, 0xf7a644ee, 0x0f1837f2, 0x4b6694e0, 0xb7bbb3a8,
]
TEST_KEY = (0x0706050403020100, 0x0F0E0D0C0B0A0908)


def test_hsiphash_matches_the_kernel_test_vectors():
    data = np.arange(64, dtype=np.uint8)
    assert [K.hsiphash(data[:i], *TEST_KEY) for i in range(64)] == HSIPHASH_VECTORS


def test_hsiphash_u32_is_hsiphash_1u32():
    # test_siphash.c: hsiphash_1u32(0x03020100) == test_vectors_hsiphash[4]
    assert K.hsiphash_u32(0x03020100, *TEST_KEY) == HSIPHASH_VECTORS[4]


def test_hash_32_is_the_top_bits_of_the_golden_ratio_product():
    assert K.hash_32(1, 8) == 0x61
    for v in (0, 0x0A000001, 0xC0A80505, 0xFFFFFFFF):
        assert K.hash_32(v, 8) == ((v * 0x61C88647) & 0xFFFFFFFF) >> 24
    assert K.sh_hashkey(ip("10.0.0.1"), 0, 0) == K.hash_32(ip("10.0.0.1"), 8)
    assert K.sh_hashkey(ip("10.0.0.1"), 80, 3) == (3 + K.hash_32(ip("10.0.0.1") + 80, 8)) & 255


# ---- least-connection family ----------------------------------------------------------------------------
def test_lc_under_opening_and_closing_connections():
    t = K.build([(0, vserver("lc", "ABC"))])
    assert pick(t) == "A"                           # all overheads 0: the earliest
    conns(t, "A", active=1)                         # A's connection reached ESTABLISHED
    assert pick(t) == "B"
    conns(t, "B", active=1)
    assert pick(t) == "C"
    conns(t, "C", active=1)
    assert pick(t) == "A"                           # all 256: the earliest again
    conns(t, "A", active=2)
    conns(t, "B", active=0, inactive=1)             # B's connection closed, now TIME_WAIT
    assert pick(t) == "B"                           # overhead 1 < 256
    conns(t, "B", inactive=0)
    conns(t, "C", active=0, inactive=255)           # 255 inactive < 1 active (256)
    assert pick(t) == "B"
    conns(t, "B", active=1)
    assert pick(t) == "C"


def test_lc_counts_one_active_as_256_inactive():
    t = K.build([(0, vserver("lc", "AB"))])
    conns(t, "A", inactive=256)
    conns(t, "B", active=1)
    assert pick(t) == "A"                           # 256 vs 256: tie -> earlier
    conns(t, "A", inactive=257)
    assert pick(t) == "B"


def test_wlc_divides_the_overhead_by_the_weight():
    t = K.build([(0, vserver("wlc", "AB", weights=[1, 2]))])
    assert pick(t) == "A"                           # 0/1 vs 0/2: tie -> earlier
    conns(t, "A", active=1)
    assert pick(t) == "B"                           # 256/1 > 0/2
    conns(t, "B", active=1)
    assert pick(t) == "B"                           # 256/1 > 256/2
    conns(t, "B", active=2)
    assert pick(t) == "A"                           # 256/1 == 512/2: tie -> earlier


def test_sed_counts_the_new_job_and_ignores_inactive():
    t = K.build([(0, vserver("sed", "AB", weights=[1, 3]))])
    conns(t, "A", inactive=100)
    assert pick(t) == "B"                           # (0+1)/1 > (0+1)/3
    conns(t, "B", active=1)
    assert pick(t) == "B"                           # 1/1 > 2/3
    conns(t, "B", active=2)
    assert pick(t) == "A"                           # 1/1 == 3/3: tie -> earlier


def test_nq_takes_an_idle_server_first():
    t = K.build([(0, vserver("nq", "AB", weights=[1, 3]))])
    assert pick(t) == "A"                           # idle, although B is heavier
    conns(t, "A", active=1)
    assert pick(t) == "B"                           # idle
    conns(t, "B", active=1)
    assert pick(t) == "B"                           # 2/1 > 2/3
    conns(t, "B", active=3)
    assert pick(t) == "B"                           # 2/1 > 4/3
    conns(t, "B", active=5)
    assert pick(t) == "A"                           # 2/1 == 6/3: tie -> earlier


@pytest.mark.parametrize("sched", ["rr", "wrr", "lc", "wlc", "sed", "nq"])
def test_weight_zero_is_never_chosen(sched):
    t = K.build([(0, vserver(sched, "ABC", weights=[0, 1, 1]))])
    conns(t, "B", active=5, inactive=7)
    conns(t, "C", active=9)
    assert "A" not in picks(t, 12).split()
    t.dests[:, K.D_WEIGHT] = 0
    assert pick(t) == "-"


# ---- round robin -----------------------------------------------------------------------------------------
def test_rr_cycles_from_the_list_head():
    t = K.build([(0, vserver("rr", "CBA"))])
    assert picks(t, 7) == "C B A C B A C"


def test_rr_pointer_moves_to_the_predecessor_of_a_removed_dest():
    vs = vserver("rr", "CBA")
    t = K.build([(0, vs)])
    assert picks(t, 2) == "C B"                     # pointer on B
    del vs.destinations[1]                          # ip_vs_rr_del_dest: pointer -> C
    t = K.build([(0, vs)], t)
    assert picks(t, 3) == "A C A"


def test_rr_pointer_on_the_removed_head_goes_back_to_the_list_head():
    vs = vserver("rr", "CBA")
    t = K.build([(0, vs)])
    assert pick(t) == "C"
    del vs.destinations[0]
    t = K.build([(0, vs)], t)
    assert picks(t, 3) == "B A B"


def test_rr_new_dest_at_the_head_is_reached_after_the_wrap():
    vs = vserver("rr", "CBA", seqs=[3, 2, 1])
    t = K.build([(0, vs)])
    assert picks(t, 2) == "C B"
    vs.destinations.insert(0, RealServer("10.244.0.68", 8080, 1, added=4))     # D
    t = K.build([(0, vs)], t)
    assert picks(t, 4) == "A D C B"


def test_rr_re_added_dest_is_deleted_then_added_at_the_head():
    vs = vserver("rr", "CBA", seqs=[3, 2, 1])
    t = K.build([(0, vs)])
    assert pick(t) == "C"
    t_same = K.build([(0, vs)], t)                  # C stayed: the pointer stays on it
    assert pick(t_same) == "B"
    vs.destinations[0] = RealServer("10.244.0.67", 8080, 1, added=4)           # C deleted and added again
    t = K.build([(0, vs)], t)
    assert pick(t) == "C"                           # pointer went to the head with the delete


def test_rr_skips_quiesced_and_returns_none_when_all_are():
    t = K.build([(0, vserver("rr", "ABC", weights=[1, 0, 1]))])
    assert picks(t, 4) == "A C A C"


# ---- weighted round robin --------------------------------------------------------------------------------
def test_wrr_4_3_2():
    t = K.build([(0, vserver("wrr", "ABC", weights=[4, 3, 2]))])
    assert picks(t, 18) == "A A B A B C A B C A A B A B C A B C"


def test_wrr_4_2_2_steps_by_the_gcd():
    t = K.build([(0, vserver("wrr", "ABC", weights=[4, 2, 2]))])
    assert picks(t, 12) == "A A B C A A B C A A B C"


def test_wrr_state_is_kept_without_changes_and_reset_by_one():
    vs = vserver("wrr", "ABC", weights=[4, 3, 2], seqs=[3, 2, 1])
    t = K.build([(0, vs)])
    assert picks(t, 2) == "A A"                     # cw 3, pointer on A
    t = K.build([(0, vs)], t)                       # nothing changed: carried
    assert picks(t, 2) == "B A"
    t = K.build([(0, vs)], t)
    vs.destinations.insert(0, RealServer("10.244.0.68", 8080, 1, added=4))     # D, weight 1
    t = K.build([(0, vs)], t)                       # ip_vs_wrr_dest_changed: head, cw 2 kept (<= mw 4)
    assert picks(t, 10) == "A B C D A B C A A B"


# ---- hashing schedulers ----------------------------------------------------------------------------------
def test_sh_table_tiles_buckets_by_weight_in_list_order():
    t = K.build([(0, vserver("sh", "AB", weights=[2, 1]))])
    assert "".join(name(t, r) for r in t.vtab[:9]) == "AABAABAAB"
    t = K.build([(0, vserver("sh", "AB", weights=[0, 1]))])    # weight 0 still takes one bucket
    assert "".join(name(t, r) for r in t.vtab[:6]) == "ABABAB"


def test_sh_picks_the_bucket_of_hash_32_of_the_source():
    t = K.build([(0, vserver("sh", "ABCD"))])
    for src in ("192.168.5.5", "10.0.0.1", "172.16.9.200", "8.8.8.8"):
        bucket = ((ip(src) * 0x61C88647) & 0xFFFFFFFF) >> 24
        assert pick(t, saddr=ip(src), sport=1234) == "ABCD"[bucket % 4]


def test_sh_and_mh_are_sticky_per_source():
    for sched in ("sh", "mh"):
        t = K.build([(0, vserver(sched, "ABCDEFGH"))])
        for a in range(1, 40):
            src = ip(f"198.51.100.{a}")
            first = pick(t, saddr=src, sport=1000 + a)
            assert all(pick(t, saddr=src, sport=p) == first for p in (1, 2000, 65535))
        seen = {pick(t, saddr=ip(f"198.51.100.{a}")) for a in range(1, 200)}
        assert len(seen) == 8


def test_mh_port_flag_hashes_the_source_port():
    t = K.build([(0, vserver("mh", "ABCDEFGH", flags=("mh-port",)))])
    src = ip("198.51.100.7")
    by_port = [pick(t, saddr=src, sport=p) for p in range(40000, 40050)]
    assert len(set(by_port)) > 1                    # one client, several backends
    assert by_port == [pick(t, saddr=src, sport=p) for p in range(40000, 40050)]


def test_dh_sends_every_client_of_a_vip_to_one_backend():
    t = K.build([(0, vserver("dh", "ABCD"))])
    expected = "ABCD"[K.hash_32(VIP, 8) % 4]
    assert {pick(t, saddr=ip(f"203.0.113.{a}"), sport=a) for a in range(1, 50)} == {expected}


def _owners(t):
    return [int(t.dests[r, K.D_ADDR]) if r >= 0 else -1 for r in t.vtab]


def test_removal_reshuffles_sh_but_mh_keeps_most_slots():
    names = "ABCDEFGHIJ"
    moved = {}
    for sched in ("sh", "mh"):
        vs = vserver(sched, names)
        before = _owners(K.build([(0, vs)]))
        gone = ip(vs.destinations[3].address)
        del vs.destinations[3]
        after = _owners(K.build([(0, vs)]))
        # slots that changed although their old owner is still there
        moved[sched] = sum(a != b and a != gone for a, b in zip(before, after)) / len(before)
    assert moved["sh"] > 0.5                        # 256 buckets re-tiled over 9 dests
    assert moved["mh"] < 0.03                       # Maglev: nearly only the removed dest's slots


def test_mh_equal_weights_give_floor_or_ceil_of_m_over_n():
    for n in (1, 3, 7, 10):
        t = K.build([(0, vserver("mh", "ABCDEFGHIJ"[:n]))])
        assert len(t.vtab) == 4093
        counts = Counter(t.vtab.tolist())
        assert set(counts.values()) <= {4093 // n, -(-4093 // n)} and sum(counts.values()) == 4093


def test_mh_turns_follow_the_weights():
    # list order A (w1), B (w2): each round A claims 1 slot, B 2; 1364 rounds fill 4092, A takes the last
    t = K.build([(0, vserver("mh", "AB", weights=[1, 2]))])
    assert Counter(name(t, r) for r in t.vtab) == {"A": 1365, "B": 2728}


def test_weight_zero_in_hash_tables_and_the_fallback_flag():
    for sched, fb in (("sh", "sh-fallback"), ("mh", "mh-fallback")):
        for flags in ((), (fb,)):
            vs = vserver(sched, "ABCD", flags=flags)
            t = K.build([(0, vs)])
            sources = [ip(f"198.51.100.{a}") for a in range(1, 250)]
            before = {s: pick(t, saddr=s) for s in sources}
            b_sources = [s for s in sources if before[s] == "B"]
            assert b_sources
            vs.destinations[1].weight = 0           # quiesced, as kube-proxy's graceful termination does
            t = K.build([(0, vs)], t)
            got = {pick(t, saddr=s) for s in b_sources}
            # without fallback its clients find no destination; with it they walk on to another
            assert got == {"-"} if not flags else not got & {"-", "B"}
            assert all(pick(t, saddr=s) == before[s] for s in sources if s not in b_sources)


def test_mh_dest_added_with_weight_zero_owns_no_slot():
    t = K.build([(0, vserver("mh", "ABCD", weights=[1, 0, 1, 1]))])
    assert "B" not in {name(t, r) for r in t.vtab}


def test_mh_weight_zero_keeps_the_table_via_last_weight():
    vs = vserver("mh", "ABCD")
    t = K.build([(0, vs)])
    before = _owners(t)
    vs.destinations[1].weight = 0                   # graceful termination: -e ... -w 0
    t = K.build([(0, vs)], t)
    assert _owners(t) == before
    assert t.dests[1, K.D_LASTW] == 1 and t.dests[1, K.D_WEIGHT] == 0


# ---- build ------------------------------------------------------------------------------------------------
def test_build_layout_and_counter_carry():
    a = vserver("rr", "AB", persistent=10800)
    b = VirtualServer("10.96.0.11", "UDP", 53, "mh", ("mh-port",), None, [RealServer("10.244.0.65", 53)])
    t = K.build([(0, a), (1, b)])
    assert t.vs.shape == (2, K.V_COLS) and t.dests.shape == (3, K.D_COLS)
    v = t.vs_index[(1, ip("10.96.0.11"), 17, 53)]
    assert t.vs[v, K.V_SCHED] == K.SCHEDULERS.index("mh") and t.vs[v, K.V_FLAGS] == K.IP_VS_SVC_F_SCHED2
    assert t.vs[0, K.V_FLAGS] == K.IP_VS_SVC_F_PERSISTENT and t.vs[0, K.V_PERSIST] == 10800
    assert t.vs[v, K.V_T1] - t.vs[v, K.V_T0] == 4093 and t.vs[0, K.V_T1] == t.vs[0, K.V_T0]
    assert t.dest_index[((0, VIP, 6, 80), ip("10.244.0.66"), 8080)] == 1
    t.dests[1, K.D_ACTIVE], t.dests[1, K.D_INACT] = 3, 4
    a.destinations.insert(0, RealServer("10.244.0.67", 8080, 1, added=9))
    t2 = K.build([(0, a), (1, b)], t)
    r = t2.dest_index[((0, VIP, 6, 80), ip("10.244.0.66"), 8080)]
    assert (t2.dests[r, K.D_ACTIVE], t2.dests[r, K.D_INACT]) == (3, 4)
    assert t2.dests[t2.dest_index[((0, VIP, 6, 80), ip("10.244.0.67"), 8080)], K.D_ACTIVE] == 0


def test_build_rejects_unknown_schedulers():
    with pytest.raises(ValueError, match="lblc"):
        K.build([(0, vserver("lblc", "A"))])


# ---- the proxier ------------------------------------------------------------------------------------------
NODE = NodeView("node-a", "192.168.1.10")
P80 = [{"name": "http", "port": 80, "protocol": "TCP"}]


def make_service(ns, name, status=None, **spec):
    svc = Service.from_dict({"metadata": {"name": name, "namespace": ns}, "spec": spec,
                             "status": {"loadBalancer": status or {}}})
    svc.apply_defaults()
    return svc


def make_slice(ns, name, endpoints, port=8080, protocol="TCP", port_name="http", n=1):
    return EndpointSlice.from_dict({
        "metadata": {"name": f"{name}-{n}", "namespace": ns, "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4", "endpoints": endpoints,
        "ports": [{"name": port_name, "port": port, "protocol": protocol}]})


def ep(address, node=None, ready=None, terminating=None, serving=None):
    cond = {k: v for k, v in (("ready", ready), ("terminating", terminating), ("serving", serving)) if v is not None}
    return {"addresses": [address], "conditions": cond, **({"nodeName": node} if node else {})}


def lb(*ips):
    return {"ingress": [{"ip": i} for i in ips]}


def web(**spec):
    base = dict(type="LoadBalancer", clusterIP="10.96.45.10", ports=[{**P80[0], "nodePort": 31380}],
                externalIPs=["203.0.113.7"])
    base.update(spec)
    status = base.pop("status", lb("198.51.100.5"))
    return make_service("default", "web", status=status, **base)


def web_endpoints(*ips, node_of=None):
    node_of = node_of or {}
    return make_slice("default", "web", [ep(a, node_of.get(a, "node-b")) for a in ips])


def proxier(scheduler="rr", **cfg):
    return IpvsProxier(NODE, ProxyConfig(**cfg), scheduler)


def servers(p):
    return {(v.address, v.protocol, v.port): v for v in p.virtual_servers}


def dests(p, key):
    return [f"{d.address}:{d.port}/{d.weight}" for d in servers(p)[key].destinations]


def test_bad_scheduler_names_the_field_and_the_valid_names():
    with pytest.raises(ValueError, match=r"scheduler.*'fifo'.*rr, wrr, lc, wlc, sed, nq, sh, dh, mh"):
        proxier("fifo")
    assert IpvsProxier(NODE, ProxyConfig(), "").scheduler == "rr"


def test_virtual_servers_for_cluster_ip_external_ip_lb_and_node_port():
    p = proxier()
    p.sync([web()], [web_endpoints("10.244.1.5", "10.244.2.7", "10.244.3.9")])
    keys = [(v.address, v.protocol, v.port) for v in p.virtual_servers]
    # ipvsadm -Ln order: addresses compared as C ints, so 192.168/198.51/203.0 sort before 10.96
    assert keys == [("192.168.1.10", "TCP", 31380), ("198.51.100.5", "TCP", 80), ("203.0.113.7", "TCP", 80),
                    ("10.96.45.10", "TCP", 80)]
    for v in p.virtual_servers:
        assert v.scheduler == "rr" and v.flags == () and v.persistent is None
        # added in sorted order, each at the head: newest first
        assert [d.address for d in v.destinations] == ["10.244.3.9", "10.244.2.7", "10.244.1.5"]
        assert {(d.port, d.weight, d.forward) for d in v.destinations} == {(8080, 1, "Masq")}
    # the node address is never bound; no 127.0.0.1 NodePort in IPVS mode
    assert p.dummy_addresses == ["10.96.45.10", "203.0.113.7", "198.51.100.5"]
    assert p.ipsets["KUBE-IPVS-IPS"].entries == ["10.96.45.10", "198.51.100.5", "203.0.113.7"]


def test_an_external_ip_that_is_a_node_address_is_not_bound():
    p = proxier()
    p.sync([web(externalIPs=["192.168.1.10"], ports=[{**P80[0], "nodePort": 31380, "port": 8000}])],
           [web_endpoints("10.244.1.5")])
    assert ("192.168.1.10", "TCP", 8000) in servers(p)
    assert "192.168.1.10" not in p.dummy_addresses


def test_client_ip_affinity_is_ipvs_persistence():
    p = proxier()
    p.sync([web(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 600}})],
           [web_endpoints("10.244.1.5")])
    assert {v.persistent for v in p.virtual_servers} == {600}
    assert "TCP  10.96.45.10:80 rr persistent 600\n" in p.render()
    p = proxier()
    res = p.sync([web(sessionAffinity="ClientIP")], [web_endpoints("10.244.1.5")])
    assert "-A -t 10.96.45.10:80 -s rr -p 10800\n" in res.payload


def test_mh_sets_the_mh_port_flag():
    p = proxier("mh")
    res = p.sync([web()], [web_endpoints("10.244.1.5")])
    assert {v.flags for v in p.virtual_servers} == {("mh-port",)}
    assert "-A -t 10.96.45.10:80 -s mh -b mh-port\n" in res.payload
    assert "TCP  10.96.45.10:80 mh (mh-port)\n" in p.render()
    t = K.build([(0, v) for v in p.virtual_servers])
    assert set(t.vs[:, K.V_FLAGS].tolist()) == {K.IP_VS_SVC_F_SCHED2}


def test_external_policy_local_uses_local_endpoints_or_falls_back_to_all():
    eps = web_endpoints("10.244.1.5", "10.244.2.7", node_of={"10.244.1.5": "node-a"})
    p = proxier()
    p.sync([web(externalTrafficPolicy="Local", healthCheckNodePort=32000)], [eps])
    s = servers(p)
    for key in (("192.168.1.10", "TCP", 31380), ("198.51.100.5", "TCP", 80), ("203.0.113.7", "TCP", 80)):
        assert [d.address for d in s[key].destinations] == ["10.244.1.5"]
    assert len(s[("10.96.45.10", "TCP", 80)].destinations) == 2          # ClusterIP: Cluster policy
    # no local endpoint: IPVS mode falls back to all endpoints (PR 97081)
    p = proxier()
    p.sync([web(externalTrafficPolicy="Local", healthCheckNodePort=32000)], [web_endpoints("10.244.2.7", "10.244.3.9")])
    assert all(len(v.destinations) == 2 for v in p.virtual_servers)
    sets = p.ipsets
    assert sets["KUBE-LOAD-BALANCER-LOCAL"].entries == ["198.51.100.5,tcp:80"]
    assert sets["KUBE-EXTERNAL-IP-LOCAL"].entries == ["203.0.113.7,tcp:80"]
    assert sets["KUBE-EXTERNAL-IP"].entries == []
    assert sets["KUBE-NODE-PORT-LOCAL-TCP"].entries == ["31380"]
    assert sets["KUBE-HEALTH-CHECK-NODE-PORT"].entries == ["32000"]


def test_internal_policy_local():
    eps = make_slice("default", "api", [ep("10.244.1.5", "node-a"), ep("10.244.2.7", "node-b")])
    p = proxier()
    p.sync([make_service("default", "api", clusterIP="10.96.0.20", ports=P80, internalTrafficPolicy="Local")], [eps])
    assert dests(p, ("10.96.0.20", "TCP", 80)) == ["10.244.1.5:8080/1"]
    # no local endpoint and not externally reachable: nothing to fall back to
    eps = make_slice("default", "api", [ep("10.244.2.7", "node-b")])
    p = proxier()
    p.sync([make_service("default", "api", clusterIP="10.96.0.20", ports=P80, internalTrafficPolicy="Local")], [eps])
    assert dests(p, ("10.96.0.20", "TCP", 80)) == []


def test_new_destinations_go_to_the_head_of_the_list():
    p = proxier()
    svc = make_service("default", "api", clusterIP="10.96.0.20", ports=P80)
    p.sync([svc], [make_slice("default", "api", [ep("10.244.1.5"), ep("10.244.2.7")])])
    p.sync([svc], [make_slice("default", "api", [ep("10.244.1.5"), ep("10.244.2.7"), ep("10.244.0.9")])])
    key = ("10.96.0.20", "TCP", 80)
    assert dests(p, key) == ["10.244.0.9:8080/1", "10.244.2.7:8080/1", "10.244.1.5:8080/1"]
    t = K.build([(0, v) for v in p.virtual_servers])
    assert [int(t.dests[r, K.D_ADDR]) & 0xFF for r in range(3)] == [9, 7, 5]


def test_graceful_termination_weight_zero_then_delete():
    key = ("10.96.0.20", "TCP", 80)
    svc = make_service("default", "api", clusterIP="10.96.0.20", ports=P80)
    both = [make_slice("default", "api", [ep("10.244.1.5"), ep("10.244.2.7")])]
    one = [make_slice("default", "api", [ep("10.244.1.5")])]
    busy = {(key, ("10.244.2.7", 8080)): (1, 2)}

    def counts(table):
        return lambda vk, dk: table.get((vk, dk), (0, 0))

    p = proxier()
    p.sync([svc], both, now=0)
    res = p.sync([svc], one, now=10, conn_counts=counts(busy))
    assert "-e -t 10.96.0.20:80 -r 10.244.2.7:8080 -m -w 0\n" in res.payload
    assert dests(p, key) == ["10.244.2.7:8080/0", "10.244.1.5:8080/1"]
    assert p.graceful_list == ["10.96.0.20:80/TCP/10.244.2.7:8080"]
    out = p.render(counts(busy))
    assert "  -> 10.244.2.7:8080              Masq    0      1          2         \n" in out
    # connections gone, but the 1-minute check has not come round yet
    res = p.sync([svc], one, now=30)
    assert "-d -t" not in res.payload and len(dests(p, key)) == 2
    res = p.sync([svc], one, now=59, conn_counts=counts(busy))
    assert len(dests(p, key)) == 2
    res = p.sync([svc], one, now=61, conn_counts=counts(busy))        # tick at 60: still busy
    assert len(dests(p, key)) == 2
    res = p.sync([svc], one, now=125)                                  # tick at 120: idle -> deleted
    assert "-d -t 10.96.0.20:80 -r 10.244.2.7:8080\n" in res.payload
    assert dests(p, key) == ["10.244.1.5:8080/1"] and p.graceful_list == []


def test_idle_tcp_and_any_udp_endpoint_is_deleted_at_once():
    svc = make_service("kube-system", "dns", clusterIP="10.96.0.10",
                       ports=[{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "tcp", "port": 53}])
    slices = lambda *ips: [make_slice("kube-system", "dns", [ep(a) for a in ips], 53, "UDP", "dns", 1),  # noqa: E731
                           make_slice("kube-system", "dns", [ep(a) for a in ips], 53, "TCP", "tcp", 2)]
    p = proxier()
    p.sync([svc], slices("10.244.1.3", "10.244.2.3"))
    busy = lambda vk, dk: (3, 3)                                                    # noqa: E731
    res = p.sync([svc], slices("10.244.1.3"), now=5, conn_counts=busy)
    assert "-d -u 10.96.0.10:53 -r 10.244.2.3:53\n" in res.payload                 # UDP: no grace
    assert "-e -t 10.96.0.10:53 -r 10.244.2.3:53 -m -w 0\n" in res.payload          # TCP: weight 0
    p = proxier()
    p.sync([svc], slices("10.244.1.3", "10.244.2.3"))
    res = p.sync([svc], slices("10.244.1.3"), now=5)
    assert "-d -t 10.96.0.10:53 -r 10.244.2.3:53\n" in res.payload                 # idle TCP too


def test_reappearing_endpoint_is_deleted_and_added_again():
    key = ("10.96.0.20", "TCP", 80)
    svc = make_service("default", "api", clusterIP="10.96.0.20", ports=P80)
    both = [make_slice("default", "api", [ep("10.244.1.5"), ep("10.244.2.7")])]
    p = proxier()
    p.sync([svc], both)
    p.sync([svc], [make_slice("default", "api", [ep("10.244.2.7")])], now=1, conn_counts=lambda vk, dk: (1, 0))
    assert dests(p, key) == ["10.244.2.7:8080/1", "10.244.1.5:8080/0"]
    res = p.sync([svc], both, now=2)
    assert ("-d -t 10.96.0.20:80 -r 10.244.1.5:8080\n-a -t 10.96.0.20:80 -r 10.244.1.5:8080 -m -w 1\n"
            in res.payload)
    assert dests(p, key) == ["10.244.1.5:8080/1", "10.244.2.7:8080/1"] and p.graceful_list == []


def test_removed_service_deletes_its_virtual_servers_and_addresses():
    p = proxier()
    p.sync([web()], [web_endpoints("10.244.1.5")])
    res = p.sync([], [])
    assert p.virtual_servers == [] and p.dummy_addresses == []
    assert "-D -t 10.96.45.10:80\n" in res.payload and "-D -t 192.168.1.10:31380\n" in res.payload
    assert "ip addr del 10.96.45.10/32 dev kube-ipvs0\n" in res.payload
    assert "del KUBE-CLUSTER-IP 10.96.45.10,tcp:80\n" in res.payload


def test_ipset_contents_and_entry_formats():
    dns = make_service("kube-system", "dns", clusterIP="10.96.0.10",
                       ports=[{"name": "dns", "port": 53, "protocol": "UDP"}])
    sctp = make_service("default", "sig", type="NodePort", clusterIP="10.96.0.30",
                        ports=[{"name": "s", "port": 9000, "protocol": "SCTP", "nodePort": 30900}])
    fw = web(loadBalancerSourceRanges=["192.168.1.0/24", "203.0.113.0/25"])
    slices = [make_slice("kube-system", "dns", [ep("10.244.1.3", "node-a"), ep("10.244.2.3", "node-b")],
                         53, "UDP", "dns"),
              make_slice("default", "sig", [ep("10.244.1.8", "node-a")], 9000, "SCTP", "s"),
              web_endpoints("10.244.1.5", node_of={"10.244.1.5": "node-a"})]
    p = proxier()
    p.sync([dns, sctp, fw], slices)
    s = {k: v.entries for k, v in p.ipsets.items()}
    assert s["KUBE-CLUSTER-IP"] == ["10.96.0.10,udp:53", "10.96.0.30,sctp:9000", "10.96.45.10,tcp:80"]
    assert s["KUBE-LOOP-BACK"] == ["10.244.1.3,udp:53,10.244.1.3", "10.244.1.5,tcp:8080,10.244.1.5",
                                   "10.244.1.8,sctp:9000,10.244.1.8"]
    assert s["KUBE-NODE-PORT-TCP"] == ["31380"]
    assert s["KUBE-NODE-PORT-SCTP-HASH"] == ["192.168.1.10,sctp:30900"]
    assert s["KUBE-LOAD-BALANCER"] == s["KUBE-LOAD-BALANCER-FW"] == ["198.51.100.5,tcp:80"]
    assert s["KUBE-LOAD-BALANCER-SOURCE-CIDR"] == ["198.51.100.5,tcp:80,192.168.1.0/24",
                                                   "198.51.100.5,tcp:80,203.0.113.0/25"]
    assert s["KUBE-LOAD-BALANCER-SOURCE-IP"] == ["198.51.100.5,tcp:80,198.51.100.5"]   # node inside a range
    assert s["KUBE-EXTERNAL-IP"] == ["203.0.113.7,tcp:80"]
    assert s["KUBE-IPVS-IPS"] == ["10.96.0.10", "10.96.0.30", "10.96.45.10", "198.51.100.5", "203.0.113.7"]
    assert {k: v.type for k, v in p.ipsets.items()}["KUBE-NODE-PORT-TCP"] == "bitmap:port"
    assert len(p.ipsets) == 17
    assert "-m ipvs --vaddr" not in p.iptables_text()
    # a node outside every source range may not reach the LB VIP (issue 119656)
    p = proxier()
    p.sync([web(loadBalancerSourceRanges=["203.0.113.0/25"])], [web_endpoints("10.244.1.5")])
    assert p.ipsets["KUBE-LOAD-BALANCER-SOURCE-IP"].entries == []
    assert ("-A KUBE-IPVS-OUT-FILTER -s 198.51.100.5 -m ipvs --vaddr 198.51.100.5 --vproto tcp --vport 80 -j DROP"
            in p.iptables_text())


def test_iptables_rules_and_local_traffic_detector():
    p = proxier(cluster_cidr="10.244.0.0/16")
    p.sync([web()], [web_endpoints("10.244.1.5")])
    text = p.iptables_text()
    for rule in (
        '-A INPUT -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-FILTER',
        '-A KUBE-SERVICES -m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" '
        "-m set --match-set KUBE-CLUSTER-IP dst,dst ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ",
        '-A KUBE-SERVICES -m comment --comment "Kubernetes service lb portal" '
        "-m set --match-set KUBE-LOAD-BALANCER dst,dst -j KUBE-LOAD-BALANCER",
        '-A KUBE-NODE-PORT -p tcp -m comment --comment "Kubernetes nodeport TCP port for masquerade purpose" '
        "-m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ",
        "-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT",
        "-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT",
        "-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set KUBE-IPVS-IPS dst -j REJECT",
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000",
    ):
        assert rule + "\n" in text
    lines = text.splitlines()
    assert lines.index('-A INPUT -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-FILTER') < \
        lines.index('-A INPUT -m comment --comment "kubernetes health check rules" -j KUBE-NODE-PORT')
    # the three ClusterIP masquerade forms
    p = proxier(masquerade_all=True, masquerade_bit=15)
    p.sync([web()], [web_endpoints("10.244.1.5")])
    assert "KUBE-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ\n" in p.iptables_text()
    assert "-A KUBE-MARK-MASQ -j MARK --or-mark 0x8000\n" in p.iptables_text()
    p = proxier(cluster_cidr="")
    p.sync([web()], [web_endpoints("10.244.1.5")])
    assert "KUBE-CLUSTER-IP src,dst -j KUBE-MARK-MASQ\n" in p.iptables_text()


def test_render_format():
    p = proxier()
    dns = make_service("kube-system", "dns", clusterIP="10.96.0.10",
                       ports=[{"name": "dns", "port": 53, "protocol": "UDP"}])
    p.sync([dns], [make_slice("kube-system", "dns", [ep("10.244.1.3"), ep("10.244.2.3")], 53, "UDP", "dns")])
    out = p.render(lambda vk, dk: (0, 7) if dk == ("10.244.2.3", 53) else (0, 0))
    ipvsadm, ipset, iptables = out.split("\n\n", 2)[0], out.split("\n\n")[1], out
    assert ipvsadm.splitlines() == [
        "IP Virtual Server version 1.2.1 (size=4096)",
        "Prot LocalAddress:Port Scheduler Flags",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
        "UDP  10.96.0.10:53 rr",
        "  -> 10.244.1.3:53                Masq    1      0          0         ",   # sorted by address
        "  -> 10.244.2.3:53                Masq    1      0          7         ",
    ]
    assert ipset.splitlines() == [
        "Name: KUBE-LOOP-BACK", "Type: hash:ip,port,ip", "Revision: 5",
        "Header: family inet hashsize 1024 maxelem 65536", "References: 0", "Number of entries: 0", "Members:"]
    assert "Name: KUBE-CLUSTER-IP\nType: hash:ip,port\nRevision: 5\nHeader: family inet hashsize 1024 maxelem 65536\n" \
           "References: 3\nNumber of entries: 1\nMembers:\n10.96.0.10,udp:53\n" in out
    assert "Name: KUBE-NODE-PORT-TCP\nType: bitmap:port\nRevision: 3\nHeader: range 0-65535\n" in out
    assert iptables.endswith("COMMIT\n") and "*filter\n:INPUT ACCEPT [0:0]" in iptables


def test_sync_result_and_payload_sections():
    p = proxier()
    res = p.sync([web()], [web_endpoints("10.244.1.5")])
    assert res.full and res.services_synced == 1 and res.stale_chains_deleted == 0
    sections = [ln for ln in res.payload.splitlines() if ln.startswith("# ")]
    assert sections == ["# ip", "# ipvsadm-restore", "# ipset restore", "# iptables-restore --noflush"]
    assert res.rules_sent == sum(ln.startswith("-A ") for ln in res.payload.split("# iptables-restore")[1].splitlines())
    assert res.rules_total["nat"] == sum(len(r) for c, r in p.tables["nat"].items()
                                         if c not in ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"))
    # a second identical sync changes nothing in IPVS, ipsets or addresses: only the iptables text
    res = p.sync([web()], [web_endpoints("10.244.1.5")], now=1)
    assert [ln for ln in res.payload.splitlines() if ln.startswith("# ")] == ["# iptables-restore --noflush"]


def test_proxier_output_feeds_the_kernel_model():
    p = proxier()
    p.sync([web()], [web_endpoints("10.244.1.5", "10.244.2.7", "10.244.3.9")])
    t = K.build([(0, v) for v in p.virtual_servers])
    v = t.vs_index[(0, ip("10.96.45.10"), 6, 80)]
    got = [K.schedule(t.vs, t.dests, t.vtab, v, ip("10.244.9.9"), 5555, ip("10.96.45.10")) for _ in range(4)]
    assert [ipaddress.ip_address(int(t.dests[r, K.D_ADDR])).exploded for r in got] == \
        ["10.244.3.9", "10.244.2.7", "10.244.1.5", "10.244.3.9"]
