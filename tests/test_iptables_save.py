"""The iptables-save parser (kslib.dataplane.rules): kube-proxy's argument order and a real node's
``iptables-save`` order mean the same rules; what the engine cannot execute is refused with the line
and the token; and a real kubeadm node's dump runs end to end through the engine.

``tests/data/node_iptables_save.txt`` is genuine ``iptables-save`` v1.8.9 (nf_tables) output: kslib
rendered a 2-node kubeadm cluster (kube-dns with 2 endpoints, kubernetes, a ClientIP-affinity web
Service with 3 endpoints, a Service without endpoints), kubelet's canary/hint chains and flannel's
FLANNEL-FWD were added, and the text went through a real ``iptables-restore`` and ``iptables-save`` in a
scratch network namespace (only the date in the comment lines was fixed afterwards).
"""
from pathlib import Path

import pytest

from kslib.dataplane import codes as C
from kslib.dataplane.network import ClusterNetwork, NodeSpec, PodSpec, ip_int
from kslib.dataplane.rules import IptablesSaveError, Match, parse
from kslib.dataplane.trace import Connection

DATA = Path(__file__).parent / "data"
DUMP = DATA / "node_iptables_save.txt"
GOLDEN, GOLDEN_SAVED = DATA / "iptables_golden.txt", DATA / "iptables_golden_saved.txt"
HEADER = ("src", "dst", "proto", "in", "out")


# ---- helpers ---------------------------------------------------------------------------------------
def ruleset(table, *lines, chains=("KUBE-A", "KUBE-B")):
    """A one-table iptables-restore text with the user chains declared and ``lines`` as its rules."""
    text = "\n".join([f"*{table}"] + [f":{c} - [0:0]" for c in chains] + list(lines) + ["COMMIT", ""])
    return parse(text)


def rule(line, table="nat", chains=("KUBE-A", "KUBE-B")):
    rs = ruleset(table, line, chains=chains)
    return next(iter(rs.rules()))


def meaning(r):
    """What a rule does: IP-header matches are order free (ip_packet_match); -m matches run in order."""
    return (frozenset(m for m in r.matches if m.kind in HEADER), tuple(m for m in r.matches if m.kind not in HEADER),
            r.target, r.goto, r.target_args)


def mark_after(r, mark):
    """xt_MARK v2: mark = (mark & ~mask) ^ value."""
    return ((mark & ~r.target_args["mask"]) ^ r.target_args["value"]) & 0xFFFFFFFF


def error_of(text):
    with pytest.raises(IptablesSaveError) as info:
        parse(text)
    e = info.value
    assert f"line {e.line_no}" in str(e) and repr(e.token) in str(e)     # the message names both
    return e


# ---- kube-proxy order and iptables-save order --------------------------------------------------------
SAME_RULES = [
    # (kube-proxy's iptables-restore input, the same rule as iptables-save v1.8.9 prints it)
    ('-A KUBE-A -m comment --comment "kube-system/kube-dns:dns cluster IP" -m udp -p udp -d 10.96.0.10 '
     '--dport 53 -j KUBE-B',
     '-A KUBE-A -d 10.96.0.10/32 -p udp -m comment --comment "kube-system/kube-dns:dns cluster IP" -m udp '
     '--dport 53 -j KUBE-B'),
    ('-A KUBE-A -m comment --comment "default/web:http cluster IP" -m tcp -p tcp -d 10.96.148.202 --dport 80 '
     '! -s 10.244.0.0/16 -j KUBE-B',
     '-A KUBE-A ! -s 10.244.0.0/16 -d 10.96.148.202/32 -p tcp -m comment --comment "default/web:http cluster IP" '
     '-m tcp --dport 80 -j KUBE-B'),
    ('-A KUBE-A -m comment --comment default/web:http -m recent --name KUBE-A --set -m tcp -p tcp '
     '-j DNAT --to-destination 10.244.1.3:8080',
     '-A KUBE-A -p tcp -m comment --comment "default/web:http" -m recent --set --name KUBE-A '
     '--mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.244.1.3:8080'),
    ('-A KUBE-A -m comment --comment "default/web:http -> 10.244.0.4:8080" -m recent --name KUBE-B --rcheck '
     '--seconds 10800 --reap -j KUBE-B',
     '-A KUBE-A -m comment --comment "default/web:http -> 10.244.0.4:8080" -m recent --rcheck --seconds 10800 '
     '--reap --name KUBE-B --mask 255.255.255.255 --rsource -j KUBE-B'),
    ('-A KUBE-A -m comment --comment "default/web:http -> 10.244.0.4:8080" -m statistic --mode random '
     '--probability 0.3333333333 -j KUBE-B',
     '-A KUBE-A -m comment --comment "default/web:http -> 10.244.0.4:8080" -m statistic --mode random '
     '--probability 0.33333333349 -j KUBE-B'),
    ('-A KUBE-A -m statistic --mode random --probability 0.5000000000 -j KUBE-B',
     '-A KUBE-A -m statistic --mode random --probability 0.50000000000 -j KUBE-B'),
    ('-A KUBE-A -j MARK --or-mark 0x4000', '-A KUBE-A -j MARK --set-xmark 0x4000/0x4000'),
    ('-A KUBE-A -j MARK --xor-mark 0x4000', '-A KUBE-A -j MARK --set-xmark 0x4000/0x0'),
    ('-A KUBE-A -m mark ! --mark 0x4000/0x4000 -j RETURN', '-A KUBE-A -m mark ! --mark 0x4000/0x4000 -j RETURN'),
    ('-A KUBE-A -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
     '-A KUBE-A -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully'),
    ('-A KUBE-A -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this '
     'chain" -m addrtype --dst-type LOCAL -j KUBE-B',
     '-A KUBE-A -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this '
     'chain" -m addrtype --dst-type LOCAL -j KUBE-B'),
]


@pytest.mark.parametrize("kube_proxy, saved", SAME_RULES)
def test_kube_proxy_order_and_iptables_save_order_mean_the_same(kube_proxy, saved):
    assert meaning(rule(kube_proxy)) == meaning(rule(saved))


@pytest.mark.parametrize("kube_proxy, saved", [
    ('-A KUBE-A -m comment --comment "default/legacy-api:http has no endpoints" -m tcp -p tcp -d 10.96.200.17 '
     '--dport 8080 -j REJECT',
     '-A KUBE-A -d 10.96.200.17/32 -p tcp -m comment --comment "default/legacy-api:http has no endpoints" -m tcp '
     '--dport 8080 -j REJECT --reject-with icmp-port-unreachable'),
    ('-A KUBE-A -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 '
     '-m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP',
     '-A KUBE-A ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" '
     '-m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP'),
])
def test_filter_rules_in_both_orders_mean_the_same(kube_proxy, saved):
    assert meaning(rule(kube_proxy, "filter")) == meaning(rule(saved, "filter"))


def test_kube_proxys_golden_restore_input_means_what_iptables_save_prints_for_it():
    """tests/data/iptables_golden_saved.txt: the golden input after a real iptables-restore/iptables-save
    (v1.8.9, nf_tables; the nfacct objects created first) - every rule in real argument order."""
    given = parse(GOLDEN.read_text())
    saved = parse(GOLDEN_SAVED.read_text())
    compared = 0
    for table, chains in given.tables.items():
        for name, chain in chains.items():
            other = saved.chain(table, name)
            assert other is not None and len(other.rules) == len(chain.rules), (table, name)
            for a, b in zip(chain.rules, other.rules):
                assert meaning(a) == meaning(b), (a.text, b.text)
                compared += 1
    assert compared == len(given) == 65


def test_a_rule_keeps_its_line_number_and_text():
    rs = parse(DUMP.read_text())
    lines = DUMP.read_text().splitlines()
    for r in rs.rules():
        assert lines[r.line_no - 1] == r.text
        assert str(r) == r.text


def test_the_header_matches_of_the_dns_rule():
    r = rule('-A KUBE-A -d 10.96.0.10/32 -p udp -m comment --comment "kube-system/kube-dns:dns cluster IP" '
             '-m udp --dport 53 -j KUBE-B')
    assert set(r.matches) == {Match("dst", False, (ip_int("10.96.0.10"), 32)), Match("proto", False, (17,)),
                              Match("dport", False, (53, 53))}
    assert (r.target, r.goto, r.target_args) == ("KUBE-B", False, {})


# ---- counters ------------------------------------------------------------------------------------------
def test_counters_prefix_of_iptables_save_c_is_ignored():
    plain = rule('-A KUBE-A -d 10.96.0.1/32 -p tcp -m tcp --dport 443 -j KUBE-B')
    counted = rule('[117:7020] -A KUBE-A -d 10.96.0.1/32 -p tcp -m tcp --dport 443 -j KUBE-B')
    assert meaning(counted) == meaning(plain)
    assert counted.text.startswith("-A KUBE-A")


def test_chain_counters_and_dash_c_option_are_accepted():
    rs = parse("*nat\n:PREROUTING ACCEPT [1234:56789]\n:KUBE-A - [0:0]\n"
               "-A PREROUTING -c 10 600 -p tcp -j KUBE-A\nCOMMIT\n")
    assert rs.chain("nat", "PREROUTING").policy == "ACCEPT"
    assert rs.chain("nat", "PREROUTING").rules[0].target == "KUBE-A"


# ---- MARK -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("line, value, mask", [
    ("-A KUBE-A -j MARK --set-xmark 0x4000/0x4000", 0x4000, 0x4000),
    ("-A KUBE-A -j MARK --or-mark 0x4000", 0x4000, 0x4000),
    ("-A KUBE-A -j MARK --xor-mark 0x4000", 0x4000, 0),
    ("-A KUBE-A -j MARK --set-mark 0x1", 0x1, 0xFFFFFFFF),
    ("-A KUBE-A -j MARK --and-mark 0x1", 0, 0xFFFFFFFE),
])
def test_mark_forms_become_set_xmark_as_iptables_save_prints_them(line, value, mask):
    assert rule(line).target_args == {"value": value, "mask": mask}


def test_mark_forms_change_the_mark_as_the_kernel_does():
    for mark in (0, 0x4000, 0x4001, 0xFFFFFFFF):
        assert mark_after(rule("-A KUBE-A -j MARK --or-mark 0x4000"), mark) == mark | 0x4000
        assert mark_after(rule("-A KUBE-A -j MARK --xor-mark 0x4000"), mark) == mark ^ 0x4000
        assert mark_after(rule("-A KUBE-A -j MARK --and-mark 0x1"), mark) == mark & 0x1
        assert mark_after(rule("-A KUBE-A -j MARK --set-mark 0x8"), mark) == 0x8


def test_set_mark_with_a_mask_zeroes_the_mask_then_ors_the_value():
    r = rule("-A KUBE-A -j MARK --set-mark 0x1/0x2")
    assert r.target_args == {"value": 0x1, "mask": 0x3}
    assert mark_after(r, 0x3) == 0x1


# ---- statistic -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, threshold", [
    ("0.3333333333", 715827883),      # kube-proxy's %0.10f of 1/3
    ("0.33333333349", 715827883),     # the same rule read back from iptables-save (%.11f)
    ("0.50000000000", 1 << 30),
    ("0.33333", 715820724),           # very old kube-proxy: 5 decimals ...
    ("0.33332999982", 715820724),     # ... read back
    ("1.0000000000", 1 << 31),
    ("0", 0),
])
def test_statistic_probability_is_quantised_like_libxt_statistic(text, threshold):
    r = rule(f"-A KUBE-A -m statistic --mode random --probability {text} -j KUBE-B")
    assert r.matches == [Match("random", False, (threshold,))]


def test_statistic_inverted_probability_as_iptables_save_prints_it():
    r = rule("-A KUBE-A -m statistic --mode random ! --probability 0.50000000000 -j KUBE-B")
    assert r.matches == [Match("random", True, (1 << 30,))]


def test_statistic_nth_every_and_packet():
    assert rule("-A KUBE-A -m statistic --mode nth --every 3 --packet 1 -j KUBE-B").matches == \
        [Match("nth", False, (3, 1))]
    assert rule("-A KUBE-A -m statistic --mode nth --every 2 -j KUBE-B").matches == [Match("nth", False, (2, 0))]


def test_statistic_probability_outside_0_1_is_refused():
    e = error_of("*nat\n:KUBE-A - [0:0]\n-A KUBE-A -m statistic --mode random --probability 1.5 -j RETURN\nCOMMIT\n")
    assert (e.line_no, e.token) == (3, "-m statistic")


# ---- recent ----------------------------------------------------------------------------------------------
def test_recent_rcheck_with_seconds_reap_mask_and_rsource():
    r = rule("-A KUBE-A -m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-X --mask 255.255.255.255 "
             "--rsource -j KUBE-B")
    assert r.matches == [Match("recent", False, ("rcheck", "KUBE-SEP-X", 10800, True, "source"))]


@pytest.mark.parametrize("opts, args", [
    ("--set --name KUBE-SEP-X --mask 255.255.255.255 --rsource", ("set", "KUBE-SEP-X", 0, False, "source")),
    ("--name KUBE-SEP-X --set", ("set", "KUBE-SEP-X", 0, False, "source")),
    ("--update --seconds 60 --name T --rdest", ("update", "T", 60, False, "dest")),
    ("--remove --name T", ("remove", "T", 0, False, "source")),
    ("--rcheck", ("rcheck", "DEFAULT", 0, False, "source")),
])
def test_recent_modes(opts, args):
    assert rule(f"-A KUBE-A -m recent {opts} -j KUBE-B").matches == [Match("recent", False, args)]


@pytest.mark.parametrize("opts", ["--set --rcheck --name T", "--rcheck --reap --name T",
                                  "--set --name T --mask 255.255.255.0"])
def test_recent_options_the_engine_cannot_honour_are_refused(opts):
    e = error_of(f"*nat\n:KUBE-A - [0:0]\n-A KUBE-A -m recent {opts} -j RETURN\nCOMMIT\n")
    assert (e.line_no, e.token) == (3, "-m recent")


# ---- multiport, addrtype, goto ------------------------------------------------------------------------------
def test_multiport_port_list_and_ranges():
    r = rule("-A KUBE-A -p tcp -m multiport --dports 80,443:445,8080 -j KUBE-B")
    assert Match("dports", False, ((80, 80), (443, 445), (8080, 8080))) in r.matches
    r = rule("-A KUBE-A -p udp -m multiport ! --sports 53 -j KUBE-B")
    assert Match("sports", True, ((53, 53),)) in r.matches


def test_addrtype_src_and_dst_types():
    assert rule("-A KUBE-A -m addrtype --dst-type LOCAL -j KUBE-B").matches == [Match("dsttype", False, ("LOCAL",))]
    assert rule("-A KUBE-A -m addrtype ! --src-type LOCAL,BROADCAST -j KUBE-B").matches == \
        [Match("srctype", True, ("LOCAL", "BROADCAST"))]
    e = error_of("*nat\n:KUBE-A - [0:0]\n-A KUBE-A -m addrtype --dst-type LOCALE -j RETURN\nCOMMIT\n")
    assert (e.line_no, e.token) == (3, "-m addrtype")


def test_addrtype_limit_iface_is_modelled_or_refused():
    r = None
    try:
        r = rule("-A KUBE-A -m addrtype --dst-type LOCAL --limit-iface-in -j KUBE-B")
    except IptablesSaveError:
        return
    assert r.matches != [Match("dsttype", False, ("LOCAL",))]


def test_goto_is_kept_apart_from_jump():
    g = rule("-A KUBE-A -p tcp -m multiport --dports 80,443:445 -m addrtype --dst-type LOCAL -g KUBE-B")
    j = rule("-A KUBE-A -p tcp -m multiport --dports 80,443:445 -m addrtype --dst-type LOCAL -j KUBE-B")
    assert (g.target, g.goto, j.goto) == ("KUBE-B", True, False)


# ---- -X -------------------------------------------------------------------------------------------------------
def test_dash_x_deletes_a_stale_declared_chain():
    rs = parse("*nat\n:KUBE-SVC-OLD - [0:0]\n:KUBE-SEP-OLD - [0:0]\n:KUBE-A - [0:0]\n"
               "-X KUBE-SVC-OLD\n-X KUBE-SEP-OLD\n-A KUBE-A -j RETURN\nCOMMIT\n")
    assert set(rs.tables["nat"]) == {"KUBE-A"}


def test_a_jump_to_a_chain_deleted_by_dash_x_is_refused():
    e = error_of("*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-OLD - [0:0]\n-A PREROUTING -j KUBE-OLD\n-X KUBE-OLD\nCOMMIT\n")
    assert e.token == "KUBE-OLD" and e.line_no in (4, 5)


def test_dash_x_of_a_chain_with_rules_is_an_error_at_that_line():
    e = error_of("*nat\n:KUBE-SVC-OLD - [0:0]\n-A KUBE-SVC-OLD -j RETURN\n-X KUBE-SVC-OLD\nCOMMIT\n")
    assert (e.line_no, e.token) == (4, "KUBE-SVC-OLD")


# ---- errors: line number and token ------------------------------------------------------------------------------
@pytest.mark.parametrize("line, token, words", [
    ("-A KUBE-A -m owner --uid-owner 0 -j RETURN", "-m owner", "owner"),
    ("-A KUBE-A -m physdev --physdev-is-bridged -j RETURN", "--physdev-is-bridged", "physdev"),
    ("-A KUBE-A -j CONNMARK --set-mark 0x1", "CONNMARK", "unsupported target"),
    ("-A KUBE-A -p tcp -m tcp --dport 80 --frobnicate 1 -j RETURN", "--frobnicate", "--frobnicate"),
    ("-A KUBE-A --frobnicate -j RETURN", "--frobnicate", "--frobnicate"),
    ("-A KUBE-A -p tcp -j KUBE-SVC-MISSING", "KUBE-SVC-MISSING", "KUBE-SVC-MISSING"),
    ("-A KUBE-A -d 10.96.0.300/32 -j RETURN", "10.96.0.300/32", "CIDR"),
    ("-A KUBE-A -s 10.244.0.0/33 -j RETURN", "10.244.0.0/33", "CIDR"),
    ("-A KUBE-A -j DNAT --to-destination 10.244.0.2:53", "DNAT", "-p"),
    ("-A KUBE-A -p tcp -j DNAT --to-destination 10.244.0.2:53 --frobnicate", "--frobnicate", "DNAT"),
    ("-A KUBE-A -p frob -j RETURN", "frob", "protocol"),
])
def test_an_unusable_rule_is_refused_with_its_line_and_token(line, token, words):
    text = f"# Generated by iptables-save v1.8.9\n*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-A - [0:0]\n{line}\nCOMMIT\n"
    e = error_of(text)
    assert (e.line_no, e.token) == (5, token)
    assert words in str(e)


def test_a_filter_target_in_the_nat_table_is_refused():
    e = error_of("*nat\n:KUBE-A - [0:0]\n-A KUBE-A -j REJECT\nCOMMIT\n")
    assert (e.line_no, e.token) == (3, "REJECT")


def test_missing_commit_names_the_last_line_and_the_table():
    e = error_of("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\n*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n")
    assert (e.line_no, e.token) == (4, "*nat")
    e = error_of("*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j ACCEPT\n")
    assert (e.line_no, e.token) == (3, "*nat")
    assert "COMMIT" in str(e)


def test_a_rule_in_an_undeclared_user_chain_is_refused():
    e = error_of("*nat\n:PREROUTING ACCEPT [0:0]\n-A KUBE-NOPE -j RETURN\nCOMMIT\n")
    assert (e.line_no, e.token) == (3, "KUBE-NOPE")


def test_the_source_name_is_in_the_message():
    with pytest.raises(IptablesSaveError, match="node-7 rules line 1"):
        parse("-A INPUT -j ACCEPT\n", source="node-7 rules")


# ---- a real node's dump ------------------------------------------------------------------------------------------
NODES = [NodeSpec("node-1", "192.168.0.2", "10.244.0.0/24", ((6, 10250), (6, 6443))),
         NodeSpec("node-2", "192.168.0.3", "10.244.1.0/24", ((6, 10250),))]
DNS_PORTS = ((17, 53), (6, 53), (6, 9153))
PODS = [PodSpec("kube-system/coredns-5dd5756b68-7xk2p", "10.244.0.2", "node-1", DNS_PORTS),
        PodSpec("kube-system/coredns-5dd5756b68-q9wzt", "10.244.1.2", "node-2", DNS_PORTS),
        PodSpec("default/web-7d4b9c8f6d-abcde", "10.244.0.4", "node-1", ((6, 8080),)),
        PodSpec("default/web-7d4b9c8f6d-fghij", "10.244.1.3", "node-2", ((6, 8080),)),
        PodSpec("default/web-7d4b9c8f6d-klmno", "10.244.1.4", "node-2", ((6, 8080),)),
        PodSpec("default/client", "10.244.0.5", "node-1", None),
        PodSpec("default/client-2", "10.244.1.5", "node-2", None)]
COREDNS = {"kube-system/coredns-5dd5756b68-7xk2p", "kube-system/coredns-5dd5756b68-q9wzt"}
WEB = {"default/web-7d4b9c8f6d-abcde", "default/web-7d4b9c8f6d-fghij", "default/web-7d4b9c8f6d-klmno"}


@pytest.fixture
def node_net():
    text = DUMP.read_text()
    net = ClusterNetwork(seed=7)
    net.load(NODES, PODS, {"node-1": text, "node-2": text})
    return net


def dial(net, src, dst, port, protocol="TCP", now=0.0):
    pod = next((p for p in PODS if p.key == src), None)
    if pod is not None:
        node, kind, ip = pod.node, C.FROM_POD, pod.ip
    else:
        n = next(n for n in NODES if n.name == src)
        node, kind, ip = n.name, C.LOCAL_OUT, n.ip
    conn = Connection(src, dst, port, protocol)
    return net.connect(conn, net.node_index(node), kind, ip_int(ip), ip_int(dst), now)


def test_the_dump_parses_with_every_table_and_kubelet_chain():
    rs = parse(DUMP.read_text())
    assert set(rs.tables) == {"mangle", "filter", "nat"}
    for table in ("mangle", "filter", "nat"):
        assert rs.chain(table, "KUBE-KUBELET-CANARY") is not None
        assert rs.chain(table, "KUBE-PROXY-CANARY") is not None
    assert rs.chain("mangle", "KUBE-IPTABLES-HINT").rules == []
    assert len(rs.chain("nat", "KUBE-SVC-CDGGSHYLG3RE2FKL").rules) == 7


def test_pod_to_the_dns_cluster_ip_over_udp_reaches_a_coredns_pod(node_net):
    conn = dial(node_net, "default/client", "10.96.0.10", 53, "UDP")
    assert conn.outcome == "delivered"
    assert conn.pod in COREDNS
    assert conn.endpoint in ("10.244.0.2:53", "10.244.1.2:53")
    assert conn.source_ip == "10.244.0.5"
    assert conn.reply_source == "10.96.0.10"


def test_dns_over_udp_spreads_over_both_coredns_pods(node_net):
    seen = {dial(node_net, "default/client", "10.96.0.10", 53, "UDP", now=float(k)).pod for k in range(40)}
    assert seen == COREDNS


def test_client_ip_affinity_keeps_one_client_on_one_pod(node_net):
    pods = {dial(node_net, "default/client", "10.96.148.202", 80, now=float(k)).pod for k in range(50)}
    assert len(pods) == 1 and pods <= WEB


def test_affinity_is_per_client(node_net):
    first = {src: dial(node_net, src, "10.96.148.202", 80).pod for src in ("default/client", "default/client-2")}
    for k in range(1, 20):
        for src, pod in first.items():
            assert dial(node_net, src, "10.96.148.202", 80, now=float(k)).pod == pod


def test_node_to_kubernetes_443_lands_on_the_api_server_host_port(node_net):
    conn = dial(node_net, "node-1", "10.96.0.1", 443)
    assert (conn.outcome, conn.pod, conn.endpoint) == ("delivered", None, "192.168.0.2:6443")
    assert conn.node == "node-1"
    assert conn.reply_source == "10.96.0.1"


def test_other_node_to_kubernetes_443_is_masqueraded_to_its_node_ip(node_net):
    conn = dial(node_net, "node-2", "10.96.0.1", 443)
    assert (conn.outcome, conn.endpoint, conn.node) == ("delivered", "192.168.0.2:6443", "node-1")
    assert conn.source_ip == "192.168.0.3"


def test_service_without_endpoints_is_rejected_by_the_dumps_reject_rule(node_net):
    conn = dial(node_net, "default/client", "10.96.200.17", 8080)
    assert conn.outcome == "rejected"
    assert any(s.rule.endswith('"default/legacy-api:http has no endpoints" -m tcp --dport 8080 -j REJECT '
                               '--reject-with icmp-port-unreachable') for s in conn.trace)


def test_trace_steps_quote_the_rules_exactly_as_in_the_dump(node_net):
    lines = set(DUMP.read_text().splitlines())
    conn = dial(node_net, "default/client", "10.96.0.10", 53, "UDP")
    quoted = [s.rule for s in conn.trace if s.what in ("rule", "nat") and s.rule]
    assert quoted and all(q in lines for q in quoted)
    assert ('-A KUBE-SERVICES -d 10.96.0.10/32 -p udp -m comment --comment "kube-system/kube-dns:dns cluster IP" '
            '-m udp --dport 53 -j KUBE-SVC-TCOU7JCQXEZGVUNU') in quoted
    assert any(q.startswith("-A KUBE-SEP-") and "-j DNAT --to-destination" in q for q in quoted)
    assert all(q in str(s) for s in conn.trace if s.what == "rule" for q in [s.rule])


def test_a_udp_rule_does_not_capture_tcp_to_the_same_ip_and_port(node_net):
    conn = dial(node_net, "default/client", "10.96.0.10", 53, "TCP")
    assert conn.outcome == "delivered" and conn.pod in COREDNS
    assert any("KUBE-SVC-ERIFXISQEP7F7OF4" in s.rule for s in conn.trace)
    assert not any("KUBE-SVC-TCOU7JCQXEZGVUNU" in s.rule for s in conn.trace)


def test_host_traffic_to_dns_is_masqueraded_by_random_fully_masquerade(node_net):
    conn = dial(node_net, "node-1", "10.96.0.10", 53, "UDP")
    assert conn.outcome == "delivered" and conn.pod in COREDNS
    # MASQUERADE takes the outgoing interface's address: cni0 for the local coredns, eth0 for the remote one
    want = "10.244.0.1" if conn.pod.endswith("7xk2p") else "192.168.0.2"
    assert conn.source_ip == want
    assert any("MASQUERADE --random-fully" in s.rule for s in conn.trace)
