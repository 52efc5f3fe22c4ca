"""kube-proxy's nftables proxier: golden output, chain names, operation counts of partial syncs,
the restart optimisation, rule behaviour, render(), and loading the result into a real kernel.

Fixtures follow kube-proxy's pkg/proxy/nftables/proxier_test.go (nft-test) NewFakeProxier: node
test-node 192.168.0.2, pod CIDR 10.0.0.0/8, service CIDR 172.30.0.0/16, nodePortAddresses
192.168.0.2/32, mark 0x4000. Expected lines are kube-proxy's own (nft-test baseRules,
TestOverallNFTablesRules, TestSyncProxyRulesRepeated, TestSyncProxyRulesStartup).
"""
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from kslib.api.endpointslice import EndpointSlice
from kslib.api.service import Service
from kslib.proxy import NodeView, ProxyConfig, SyncResult
from kslib.proxy.nftables import (NftablesProxier, endpoint_chain_base, hash_and_truncate, service_chain_base,
                                  sort_nft_transaction)

GOLDEN = Path(__file__).parent / "data" / "nftables_golden.txt"
NODE = NodeView("test-node", "192.168.0.2")
P80 = [{"name": "p80", "port": 80, "protocol": "TCP"}]
KP = "ip kube-proxy"


# ---- fixtures (the conventions of test_proxy_iptables.py) ------------------------------------------
def make_service(ns, name, status=None, **spec):
    svc = Service.from_dict({"metadata": {"name": name, "namespace": ns}, "spec": spec,
                             "status": {"loadBalancer": status or {}}})
    svc.apply_defaults()
    return svc


def make_slice(ns, name, endpoints, ports=P80, n=1, address_type="IPv4"):
    return EndpointSlice.from_dict({
        "metadata": {"name": f"{name}-{n}", "namespace": ns, "labels": {"kubernetes.io/service-name": name}},
        "addressType": address_type, "endpoints": endpoints, "ports": ports})


def ep(ip, node=None, ready=None, serving=None, terminating=None):
    out = {"addresses": [ip], "conditions": {k: v for k, v in (("ready", ready), ("serving", serving),
                                                                ("terminating", terminating)) if v is not None}}
    if node:
        out["nodeName"] = node
    return out


def lb(*ips):
    return {"ingress": [{"ip": ip} for ip in ips]}


def proxier(node=NODE, **cfg) -> NftablesProxier:
    return NftablesProxier(node, ProxyConfig(**{"cluster_cidr": "10.0.0.0/8", "service_cidr": "172.30.0.0/16",
                                                **cfg}))


def sync(services, slices, **cfg) -> tuple[NftablesProxier, SyncResult]:
    p = proxier(**cfg)
    return p, p.sync(services, slices)


def overall_services():
    """The six services of nft-test TestOverallNFTablesRules (= ipt-test TestOverallIPTablesRules)."""
    return [
        make_service("ns1", "svc1", clusterIP="172.30.0.41", ports=P80),
        make_service("ns2", "svc2", type="LoadBalancer", externalTrafficPolicy="Local", clusterIP="172.30.0.42",
                     ports=[{**P80[0], "nodePort": 3001}], externalIPs=["192.168.99.22"],
                     healthCheckNodePort=30000, status=lb("1.2.3.4")),
        make_service("ns3", "svc3", type="NodePort", clusterIP="172.30.0.43", ports=[{**P80[0], "nodePort": 3003}]),
        make_service("ns4", "svc4", type="NodePort", clusterIP="172.30.0.44", externalIPs=["192.168.99.33"],
                     ports=[{**P80[0], "targetPort": 80}]),
        make_service("ns5", "svc5", type="LoadBalancer", externalTrafficPolicy="Cluster", clusterIP="172.30.0.45",
                     ports=[{**P80[0], "nodePort": 3002}], healthCheckNodePort=30000,
                     loadBalancerSourceRanges=[" 203.0.113.0/25"], sessionAffinity="ClientIP",
                     sessionAffinityConfig={"clientIP": {"timeoutSeconds": 10800}}, status=lb("5.6.7.8")),
        make_service("ns6", "svc6", type="ClusterIP", clusterIP="172.30.0.46", ports=[{**P80[0], "targetPort": 80}]),
    ]


def overall_slices():
    return [
        make_slice("ns1", "svc1", [ep("10.180.0.1")]),
        make_slice("ns2", "svc2", [ep("10.180.0.2")]),
        make_slice("ns3", "svc3", [ep("10.180.0.3")]),
        make_slice("ns4", "svc4", [ep("10.180.0.4"), ep("10.180.0.5", node="test-node")]),
        make_slice("ns5", "svc5", [ep("10.180.0.3")]),
    ]


def dump_lines(p, chain):
    """The rule lines of one chain in transaction_dump()."""
    return [ln for ln in p.transaction_dump().splitlines() if ln.startswith(f"add rule {KP} {chain} ")]


def elements(p, name):
    return [ln for ln in p.transaction_dump().splitlines() if ln.startswith(f"add element {KP} {name} ")]


# nft-test baseRules (fake proxier: nodePortAddresses 192.168.0.2/32, service CIDR 172.30.0.0/16)
BASE_RULES = """
add table ip kube-proxy { comment "rules for kube-proxy" ; }
add set ip kube-proxy cluster-ips { type ipv4_addr ; comment "Active ClusterIPs" ; }
add set ip kube-proxy nodeport-ips { type ipv4_addr ; comment "IPs that accept NodePort traffic" ; }
add map ip kube-proxy firewall-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "destinations that are subject to LoadBalancerSourceRanges" ; }
add map ip kube-proxy no-endpoint-nodeports { type inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to service nodeports with no endpoints" ; }
add map ip kube-proxy no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to services with no endpoints" ; }
add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }
add map ip kube-proxy service-nodeports { type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }
add chain ip kube-proxy cluster-ips-check
add chain ip kube-proxy filter-prerouting-pre-dnat { type filter hook prerouting priority -110 ; }
add chain ip kube-proxy filter-output-pre-dnat { type filter hook output priority -110 ; }
add chain ip kube-proxy filter-forward { type filter hook forward priority 0 ; }
add chain ip kube-proxy filter-input { type filter hook input priority 0 ; }
add chain ip kube-proxy filter-output { type filter hook output priority 0 ; }
add chain ip kube-proxy firewall-check
add chain ip kube-proxy mark-for-masquerade
add chain ip kube-proxy masquerading
add chain ip kube-proxy nat-output { type nat hook output priority -100 ; }
add chain ip kube-proxy nat-postrouting { type nat hook postrouting priority 100 ; }
add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }
add chain ip kube-proxy nodeport-endpoints-check
add chain ip kube-proxy reject-chain { comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }
add chain ip kube-proxy services
add chain ip kube-proxy service-endpoints-check
add rule ip kube-proxy cluster-ips-check ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"
add rule ip kube-proxy cluster-ips-check ip daddr { 172.30.0.0/16 } drop comment "Drop traffic to unallocated ClusterIPs"
add rule ip kube-proxy filter-prerouting-pre-dnat ct state new jump firewall-check
add rule ip kube-proxy filter-forward ct state new jump service-endpoints-check
add rule ip kube-proxy filter-forward ct state new jump cluster-ips-check
add rule ip kube-proxy filter-input ct state new jump nodeport-endpoints-check
add rule ip kube-proxy filter-input ct state new jump service-endpoints-check
add rule ip kube-proxy filter-output ct state new jump service-endpoints-check
add rule ip kube-proxy filter-output-pre-dnat ct state new jump firewall-check
add rule ip kube-proxy filter-output ct state new jump cluster-ips-check
add rule ip kube-proxy firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips
add rule ip kube-proxy mark-for-masquerade mark set mark or 0x4000
add rule ip kube-proxy masquerading mark and 0x4000 == 0 return
add rule ip kube-proxy masquerading mark set mark xor 0x4000
add rule ip kube-proxy masquerading masquerade fully-random
add rule ip kube-proxy nat-output jump services
add rule ip kube-proxy nat-postrouting jump masquerading
add rule ip kube-proxy nat-prerouting jump services
add rule ip kube-proxy nodeport-endpoints-check ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports
add rule ip kube-proxy reject-chain reject
add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips
add rule ip kube-proxy services ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports
add element ip kube-proxy nodeport-ips { 192.168.0.2 }
add rule ip kube-proxy service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services
"""


def assert_dump(p, expected_services: str):
    """assertNFTablesTransactionEqual(baseRules + expected, nft.Dump())."""
    assert sort_nft_transaction(p.transaction_dump()) == sort_nft_transaction(BASE_RULES + expected_services)


# ---- 1. golden --------------------------------------------------------------------------------------
def test_overall_rules_match_kube_proxy_golden():
    """nft-test TestOverallNFTablesRules: baseRules + the six services, line for line after
    nft-test's sort (tests/data/nftables_golden.txt is stored sorted)."""
    p, res = sync(overall_services(), overall_slices())
    assert sort_nft_transaction(p.transaction_dump()) + "\n" == GOLDEN.read_text()
    assert res.full and res.services_synced == 6 and res.stale_chains_deleted == 0
    assert res.rules_total == {"kube-proxy": p.transaction_dump().count("\nadd rule ")}
    assert res.ops == len(res.payload.splitlines())
    assert res.rules_sent == res.payload.count("\nadd rule ") and res.chains_sent == res.payload.count("\nadd chain ")


def test_golden_file_is_base_rules_plus_the_excerpt_of_the_reference():
    golden = GOLDEN.read_text().splitlines()
    assert set(sort_nft_transaction(BASE_RULES).splitlines()) <= set(golden)
    for line in ("add rule ip kube-proxy firewall-HVFWP5L3-ns5/svc5/tcp/p80 ip saddr != { 203.0.113.0/25 } drop",
                 'add element ip kube-proxy no-endpoint-services { 172.30.0.46 . tcp . 80 comment "ns6/svc6:p80" '
                 ": goto reject-chain }",
                 "add set ip kube-proxy affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 "
                 "{ type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; }"):
        assert line in golden
    assert golden == sort_nft_transaction("\n".join(golden)).splitlines()


def test_transaction_dump_is_in_fake_dump_order():
    """knftables Fake.Dump(): the table, every chain, set and map (by name), then the rules
    chain by chain, then the elements."""
    p, _ = sync(overall_services(), overall_slices())
    kinds = [ln.split()[1] for ln in p.transaction_dump().splitlines()]
    firsts = {k: kinds.index(k) for k in ("table", "chain", "set", "map", "rule", "element")}
    assert list(sorted(firsts, key=firsts.get)) == ["table", "chain", "set", "map", "rule", "element"]
    assert kinds == sorted(kinds, key=["table", "chain", "set", "map", "rule", "element"].index)


def test_sort_keeps_rule_order_and_sorts_everything_else():
    text = ("add rule ip kube-proxy b second\nadd rule ip kube-proxy a x\nadd rule ip kube-proxy b first\n"
            "# comment\n\nadd element ip kube-proxy s { 2 }\nadd element ip kube-proxy s { 1 }\n"
            "add chain ip kube-proxy b\nadd table ip kube-proxy { comment \"c\" ; }")
    assert sort_nft_transaction(text).splitlines() == [
        'add table ip kube-proxy { comment "c" ; }', "add chain ip kube-proxy b", "add rule ip kube-proxy a x",
        "add rule ip kube-proxy b second", "add rule ip kube-proxy b first",
        "add element ip kube-proxy s { 1 }", "add element ip kube-proxy s { 2 }"]


# ---- 2. chain names (reference section 1.2 and nft-test name tests) ------------------------------------
@pytest.mark.parametrize("ns, name, proto, port, expected", [
    ("ns1", "svc1", "tcp", "p80", "ULMVA6XW-ns1/svc1/tcp/p80"),
    ("ns2", "svc2", "tcp", "p80", "42NFTM6N-ns2/svc2/tcp/p80"),
    ("ns3", "svc3", "tcp", "p80", "4AT6LBPK-ns3/svc3/tcp/p80"),
    ("ns4", "svc4", "tcp", "p80", "LAUZTJTB-ns4/svc4/tcp/p80"),
    ("ns5", "svc5", "tcp", "p80", "HVFWP5L3-ns5/svc5/tcp/p80"),
    ("ns2", "svc2", "TCP", "p8080", "MHHHYRWA-ns2/svc2/tcp/p8080"),
    ("testing", "service", "tcp", "http", "P4ZYZVCF-testing/service/tcp/http"),
    ("testing", "service", "tcp", "https", "LZBRENCP-testing/service/tcp/https"),
    ("very-long-namespace-name-abcdefghijklmnopqrstuvwxyz0123456789xx",
     "very-long-service-name-why-would-you-even-do-this-i-mean-really", "sctp",
     "port-443-providing-the-hypertext-transmission-protocol-with-tls",
     "KR6NACJP-very-long-namespace-name-abcdefghijklmnopqrstuvwxyz0123456789xx/very-long-service-name-why-would-"
     "you-even-do-this-i-mean-really/sctp/port-443-providing-the-hypertext-transmission-protocol-with-tls"),
])
def test_service_chain_base(ns, name, proto, port, expected):
    """nft-test Test_servicePortChainNameBase and the names used in its golden outputs."""
    assert service_chain_base(ns, name, proto, port) == expected


LONG = ("very-long-namespace-name-abcdefghijklmnopqrstuvwxyz0123456789xx",
        "very-long-service-name-why-would-you-even-do-this-i-mean-really", "sctp",
        "port-443-providing-the-hypertext-transmission-protocol-with-tls")
LONG_TEXT = "/".join(LONG)


@pytest.mark.parametrize("spn, endpoint, expected", [
    (("ns1", "svc1", "tcp", "p80"), "10.180.0.1:80", "5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"),
    (("ns2", "svc2", "tcp", "p80"), "10.180.0.2:80", "SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80"),
    (("ns3", "svc3", "tcp", "p80"), "10.180.0.3:80", "UEIP74TE-ns3/svc3/tcp/p80__10.180.0.3/80"),
    (("ns4", "svc4", "tcp", "p80"), "10.180.0.4:80", "UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80"),
    (("ns4", "svc4", "tcp", "p80"), "10.180.0.5:80", "5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80"),
    (("ns5", "svc5", "tcp", "p80"), "10.180.0.3:80", "GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80"),
    (("ns1", "svc1", "tcp", "p80"), "10.0.1.1:80", "5TPGNJF2-ns1/svc1/tcp/p80__10.0.1.1/80"),
    (("ns1", "svc1", "tcp", "p80"), "10.0.1.2:80", "ZCZBVNAZ-ns1/svc1/tcp/p80__10.0.1.2/80"),
    (("ns2", "svc2", "tcp", "p8080"), "10.0.2.1:8080", "7RVP4LUQ-ns2/svc2/tcp/p8080__10.0.2.1/8080"),
    (("ns3", "svc3", "tcp", "p80"), "10.0.3.1:80", "2OCDJSZQ-ns3/svc3/tcp/p80__10.0.3.1/80"),
    (("ns3", "svc3", "tcp", "p80"), "10.0.3.2:80", "SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80"),
    (("ns3", "svc3", "tcp", "p80"), "10.0.3.3:80", "TQ2QKHCZ-ns3/svc3/tcp/p80__10.0.3.3/80"),
    (("ns4", "svc4", "tcp", "p80"), "10.0.4.1:80", "WAHRBT2B-ns4/svc4/tcp/p80__10.0.4.1/80"),
    (("testing", "service", "tcp", "http"), "10.180.0.1:80", "JO2XBXZR-testing/service/tcp/http__10.180.0.1/80"),
    (("testing", "service", "tcp", "http"), "10.180.0.2:80", "5S6H3H22-testing/service/tcp/http__10.180.0.2/80"),
    (("testing", "service", "tcp", "http"), "[fd80:abcd:12::a1b2:c3d4:e5f6:9999]:80",
     "U7E2ET36-testing/service/tcp/http__fd80.abcd.12..a1b2.c3d4.e5f6.9999/80"),
    (LONG, "[1234:5678:9abc:def0::abc:1234]:443",
     f"5YS7AFEA-{LONG_TEXT}__1234.5678.9abc.def0..abc.1234/443"),
    (LONG, "[1234:5678:9abc:def0::abcd:1234:5678]:443", f"CI6C53Q3-{LONG_TEXT}__1234.5678.9abc.def0..abcd.1234..."),
    (LONG, "[1234:5678:9abc:def0::abcd:1234:8765]:443", f"2FLXFK6X-{LONG_TEXT}__1234.5678.9abc.def0..abcd.1234..."),
])
def test_endpoint_chain_base(spn, endpoint, expected):
    """nft-test Test_servicePortEndpointChainNameBase (incl. IPv6 and both truncation cases)."""
    assert endpoint_chain_base(*spn, endpoint) == expected


def test_hash_and_truncate_limits():
    assert len(endpoint_chain_base(*LONG, "[1234:5678:9abc:def0::abcd:1234:5678]:443")) == 240
    assert len(endpoint_chain_base(*LONG, "[1234:5678:9abc:def0::abc:1234]:443")) == 240   # fits exactly
    assert hash_and_truncate("x" * 300).endswith("...") and len(hash_and_truncate("x" * 300)) == 240
    assert service_chain_base("ns1", "svc1", "tcp", "") == hash_and_truncate("ns1/svc1/tcp/")   # unnamed port


# ---- 3. sync model: nft-test TestSyncProxyRulesRepeated and TestSyncProxyRulesStartup -----------------
SVC = {1: "service-ULMVA6XW-ns1/svc1/tcp/p80", 2: "service-MHHHYRWA-ns2/svc2/tcp/p8080",
       3: "service-4AT6LBPK-ns3/svc3/tcp/p80", 4: "service-LAUZTJTB-ns4/svc4/tcp/p80"}
EP = {"10.0.1.1": "endpoint-5TPGNJF2-ns1/svc1/tcp/p80__10.0.1.1/80",
      "10.0.1.2": "endpoint-ZCZBVNAZ-ns1/svc1/tcp/p80__10.0.1.2/80",
      "10.0.2.1": "endpoint-7RVP4LUQ-ns2/svc2/tcp/p8080__10.0.2.1/8080",
      "10.0.3.1": "endpoint-2OCDJSZQ-ns3/svc3/tcp/p80__10.0.3.1/80",
      "10.0.3.2": "endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80",
      "10.0.3.3": "endpoint-TQ2QKHCZ-ns3/svc3/tcp/p80__10.0.3.3/80",
      "10.0.4.1": "endpoint-WAHRBT2B-ns4/svc4/tcp/p80__10.0.4.1/80"}
PORTS = {1: 80, 2: 8080, 3: 80, 4: 80}


def cluster_ip(n):
    return f"172.30.0.4{n}"


def service_block(n, ips):
    """A ClusterIP service's chains as nft-test writes them: service chain with the masquerade
    and numgen rules, one endpoint chain per IP."""
    port = PORTS[n]
    vmap = " , ".join(f"{i} : goto {EP[ip]}" for i, ip in enumerate(ips))
    out = [f"add chain {KP} {SVC[n]}",
           f"add rule {KP} {SVC[n]} ip daddr {cluster_ip(n)} ip saddr != 10.0.0.0/8 jump mark-for-masquerade",
           f"add rule {KP} {SVC[n]} numgen random mod {len(ips)} vmap {{ {vmap} }}"]
    for ip in ips:
        out += [f"add chain {KP} {EP[ip]}", f"add rule {KP} {EP[ip]} ip saddr {ip} jump mark-for-masquerade",
                f"add rule {KP} {EP[ip]} meta l4proto tcp dnat to {ip}:{port}"]
    return "\n".join(out) + "\n"


def service_elements(n):
    return (f"add element {KP} cluster-ips {{ {cluster_ip(n)} }}\n"
            f"add element {KP} service-ips {{ {cluster_ip(n)} . tcp . {PORTS[n]} : goto {SVC[n]} }}\n")


def no_endpoints(n):
    return (f"add element {KP} cluster-ips {{ {cluster_ip(n)} }}\n"
            f"add element {KP} no-endpoint-services {{ {cluster_ip(n)} . tcp . {PORTS[n]} "
            f'comment "ns{n}/svc{n}:p{PORTS[n]}" : goto reject-chain }}\n')


def svc(n):
    return make_service(f"ns{n}", f"svc{n}", type="ClusterIP", clusterIP=cluster_ip(n),
                        ports=[{"name": f"p{PORTS[n]}", "port": PORTS[n], "protocol": "TCP"}])


def slc(n, *ips):
    return make_slice(f"ns{n}", f"svc{n}", [ep(ip) for ip in ips],
                      ports=[{"name": f"p{PORTS[n]}", "port": PORTS[n], "protocol": "TCP"}])


class Cluster:
    """The services/slices a test feeds the proxier, and a clock."""

    def __init__(self, p):
        self.p, self.svcs, self.slices, self.now = p, {}, {}, 0.0

    def sync(self, **kw):
        return self.p.sync(list(self.svcs.values()), list(self.slices.values()), now=self.now, **kw)

    def age_stale_chains(self):
        self.now += 2.0


def test_sync_proxy_rules_repeated_operation_counts():
    """nft-test TestSyncProxyRulesRepeated, step by step: the table after each sync and the
    number of operations in the sync's transaction (reference section 5.5)."""
    c = Cluster(proxier())
    c.svcs = {1: svc(1), 2: svc(2)}
    c.slices = {1: slc(1, "10.0.1.1"), 2: slc(2, "10.0.2.1")}
    assert c.sync().full
    assert_dump(c.p, service_elements(1) + service_elements(2) + service_block(1, ["10.0.1.1"])
                + service_block(2, ["10.0.2.1"]))

    # add a service and its endpoint: 2 elements + add/flush 2 chains + 2 rules each = 10
    c.svcs[3], c.slices[3] = svc(3), slc(3, "10.0.3.1")
    res = c.sync()
    assert (res.full, res.ops, res.services_synced) == (False, 10, 1)
    both = service_block(1, ["10.0.1.1"]) + service_block(3, ["10.0.3.1"])
    assert_dump(c.p, service_elements(1) + service_elements(2) + service_elements(3) + both
                + service_block(2, ["10.0.2.1"]))

    # delete a service: 2 element deletes + 2 chain flushes = 4; its chains stay (empty)
    del c.svcs[2], c.slices[2]
    res = c.sync()
    assert res.ops == 4 and res.stale_chains_deleted == 0
    assert_dump(c.p, service_elements(1) + service_elements(3) + both
                + f"add chain {KP} {SVC[2]}\nadd chain {KP} {EP['10.0.2.1']}\n")

    # time passes: the stale chains go in a separate transaction, the sync itself is empty
    c.age_stale_chains()
    res = c.sync()
    assert res.ops == 0 and res.stale_chains_deleted == 2
    assert res.payload == (f"delete chain {KP} {EP['10.0.2.1']}\ndelete chain {KP} {SVC[2]}\n")
    assert_dump(c.p, service_elements(1) + service_elements(3) + both)

    # a service without endpoints: cluster-ips + no-endpoint-services = 2
    c.svcs[4] = svc(4)
    res = c.sync()
    assert res.ops == 2
    assert_dump(c.p, service_elements(1) + service_elements(3) + both + no_endpoints(4))

    # ... and its endpoint: service-ips add + no-endpoint-services delete + 8 = 10
    c.slices[4] = slc(4, "10.0.4.1")
    res = c.sync()
    assert res.ops == 10
    four = service_block(4, ["10.0.4.1"])
    assert_dump(c.p, service_elements(1) + service_elements(3) + service_elements(4) + both + four)

    # change an endpoint's IP: 8 + flush of the old endpoint chain = 9
    c.slices[3] = slc(3, "10.0.3.2")
    res = c.sync()
    assert res.ops == 9
    assert_dump(c.p, service_elements(1) + service_elements(3) + service_elements(4) + service_block(1, ["10.0.1.1"])
                + service_block(3, ["10.0.3.2"]) + f"add chain {KP} {EP['10.0.3.1']}\n" + four)

    # add an endpoint (after the old chain aged): 3 chains add+flush + 2 rules each = 12
    c.age_stale_chains()
    c.slices[3] = slc(3, "10.0.3.2", "10.0.3.3")
    res = c.sync()
    assert res.ops == 12 and res.stale_chains_deleted == 1
    full_state = (service_elements(1) + service_elements(3) + service_elements(4) + service_block(1, ["10.0.1.1"])
                  + service_block(3, ["10.0.3.2", "10.0.3.3"]) + four)
    assert_dump(c.p, full_state)

    # empty the endpoints: service-ips delete + no-endpoint add + 3 flushes = 5
    c.slices[3] = slc(3)
    res = c.sync()
    assert res.ops == 5
    assert set(c.p._stale) == {SVC[3], EP["10.0.3.2"], EP["10.0.3.3"]}
    assert_dump(c.p, service_elements(1) + no_endpoints(3) + service_elements(4) + service_block(1, ["10.0.1.1"])
                + four + "".join(f"add chain {KP} {name}\n" for name in (SVC[3], EP["10.0.3.2"], EP["10.0.3.3"])))

    # restore them at once: no-endpoint delete + service-ips add + 12 = 14, nothing stale
    c.slices[3] = slc(3, "10.0.3.2", "10.0.3.3")
    res = c.sync()
    assert res.ops == 14 and c.p._stale == {}
    assert_dump(c.p, full_state)

    # empty, let the chains age, restore: deleted first, then recreated
    c.slices[3] = slc(3)
    c.sync()
    c.age_stale_chains()
    c.slices[3] = slc(3, "10.0.3.2", "10.0.3.3")
    res = c.sync()
    assert res.stale_chains_deleted == 3 and res.ops == 14
    assert_dump(c.p, full_state)

    # no change: nothing to do
    res = c.sync()
    assert res.ops == 0 and res.payload == "" and res.services_synced == 0
    assert_dump(c.p, full_state)


def test_stale_chains_wait_more_than_one_second():
    """modtime.Before(start - 1s): a chain flushed at t is deleted by a sync after t + 1."""
    c = Cluster(proxier())
    c.svcs, c.slices = {1: svc(1)}, {1: slc(1, "10.0.1.1")}
    c.sync()
    c.slices[1] = slc(1, "10.0.1.2")
    c.sync()
    c.now += 1.0
    assert c.sync().stale_chains_deleted == 0
    c.now += 1.5
    assert c.sync().stale_chains_deleted == 1
    assert EP["10.0.1.1"] not in c.p.chains


def test_sync_proxy_rules_startup_skips_what_the_table_already_holds():
    """nft-test TestSyncProxyRulesStartup: after a restart the first (full) sync costs the
    setup plus 14 operations: svc3's two elements, svc1's and svc2's service chains (8), and
    the new endpoint chain of svc1 (4); existing elements and endpoint chains are kept."""
    _, first = sync([], [])
    setup_ops = first.ops

    p = proxier()
    p.sync([svc(1), svc(2)], [slc(1, "10.0.1.1"), slc(2, "10.0.2.1")])
    p.restart()
    res = p.sync([svc(1), svc(2), svc(3)], [slc(1, "10.0.1.1", "10.0.1.2"), slc(2, "10.0.2.1")])
    assert res.full and res.ops == setup_ops + 14
    assert_dump(p, service_elements(1) + service_elements(2) + no_endpoints(3)
                + service_block(1, ["10.0.1.1", "10.0.1.2"]) + service_block(2, ["10.0.2.1"]))
    assert f"add chain {KP} {EP['10.0.1.1']}" not in res.payload
    assert f"add chain {KP} {EP['10.0.1.2']}" in res.payload


def test_first_full_sync_adds_and_deletes_each_base_chain_once():
    p, res = sync([], [])
    lines = res.payload.splitlines()
    assert lines[:3] == [f'add table {KP} {{ comment "rules for kube-proxy" ; }}',
                         f"add chain {KP} filter-prerouting-pre-dnat", f"delete chain {KP} filter-prerouting-pre-dnat"]
    again = p.sync([], [], full=True)
    assert f"delete chain {KP} filter-prerouting-pre-dnat" not in again.payload
    assert again.ops == res.ops - 16                 # 8 base chains, add+delete each, only once
    assert f"add chain {KP} nat-prerouting {{ type nat hook prerouting priority -100 ; }}" in again.payload


def test_full_sync_triggers():
    c = Cluster(proxier(full_sync_period=100.0))
    c.svcs, c.slices = {1: svc(1)}, {1: slc(1, "10.0.1.1")}
    assert c.sync().full
    c.now = 50.0
    assert not c.sync().full
    res = c.sync(full=True)
    assert res.full and res.services_synced == 1
    # a full sync rewrites service chains but keeps the unchanged endpoint chain
    assert f"add chain {KP} {SVC[1]}" in res.payload and f"add chain {KP} {EP['10.0.1.1']}" not in res.payload
    c.now = 149.0
    assert not c.sync(full=False).full
    c.now = 150.0
    assert c.sync().full                              # a full-sync period since the last full one
    c.p.node = NodeView("test-node", "192.168.0.2", {"topology.kubernetes.io/zone": "zone-b"})
    c.now = 151.0
    assert c.sync().full                              # node labels changed
    assert not c.sync().full


def test_element_with_a_changed_value_is_deleted_and_added():
    svc_ = make_service("ns1", "svc1", clusterIP="172.30.0.41", internalTrafficPolicy="Local", ports=P80)
    p, _ = sync([svc_], [make_slice("ns1", "svc1", [ep("10.180.0.1", node="test-node")])])
    local = "local-ULMVA6XW-ns1/svc1/tcp/p80"
    assert elements(p, "service-ips") == [f"add element {KP} service-ips {{ 172.30.0.41 . tcp . 80 : goto {local} }}"]
    res = p.sync([svc_], [make_slice("ns1", "svc1", [ep("10.180.0.1")])])
    # iTP=Local without local endpoints: the ClusterIP is dropped, not rejected
    assert f"delete element {KP} service-ips {{ 172.30.0.41 . tcp . 80 }}" in res.payload
    assert elements(p, "no-endpoint-services") == [
        f'add element {KP} no-endpoint-services {{ 172.30.0.41 . tcp . 80 comment "ns1/svc1:p80" : drop }}']
    assert f"flush chain {KP} {local}" in res.payload


def test_stale_affinity_sets_are_deleted_at_once():
    svc5 = overall_services()[4]
    p, _ = sync([svc5], [overall_slices()[4]])
    aff = "affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80"
    assert aff in p.elements
    res = p.sync([svc5], [make_slice("ns5", "svc5", [ep("10.180.0.7")])], now=0.1)
    assert f"delete set {KP} {aff}" in res.payload and aff not in p.elements
    assert res.stale_chains_deleted == 0 and "endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80" in p.chains


# ---- 4. rule behaviour ----------------------------------------------------------------------------------
def lb_service(**spec):
    base = dict(type="LoadBalancer", clusterIP="172.30.0.41", externalIPs=["192.168.99.11"],
                ports=[{**P80[0], "nodePort": 3001}], healthCheckNodePort=30000, status=lb("1.2.3.4"))
    return make_service("ns1", "svc1", **{**base, **spec})


S1, L1, X1, F1 = (f"{k}-ULMVA6XW-ns1/svc1/tcp/p80" for k in ("service", "local", "external", "firewall"))
E1 = "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"


def test_masquerade_all_drops_the_source_test():
    p, _ = sync([lb_service()], [make_slice("ns1", "svc1", [ep("10.180.0.1")])], masquerade_all=True)
    assert dump_lines(p, S1)[0] == f"add rule {KP} {S1} ip daddr 172.30.0.41 jump mark-for-masquerade"


def test_no_local_detector():
    """No pod CIDR: no ClusterIP masquerade rule and no pod short-circuit in external-."""
    p, _ = sync([lb_service(externalTrafficPolicy="Local")],
                [make_slice("ns1", "svc1", [ep("10.180.0.1", node="test-node")])], cluster_cidr="")
    assert not any("mark-for-masquerade" in r for r in dump_lines(p, S1))
    assert dump_lines(p, X1) == [
        f'add rule {KP} {X1} fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"',
        f'add rule {KP} {X1} fib saddr type local goto {S1} comment "short-circuit local traffic"',
        f"add rule {KP} {X1} goto {L1}"]


def test_external_policy_local_with_a_local_endpoint_uses_the_local_chain():
    p, _ = sync([lb_service(externalTrafficPolicy="Local")],
                [make_slice("ns1", "svc1", [ep("10.180.0.1"), ep("10.180.2.1", node="test-node")])])
    assert dump_lines(p, X1)[0] == (f"add rule {KP} {X1} ip saddr 10.0.0.0/8 goto {S1} "
                                    'comment "short-circuit pod traffic"')
    assert dump_lines(p, X1)[-1] == f"add rule {KP} {X1} goto {L1}"
    local_ep = "endpoint-" + endpoint_chain_base("ns1", "svc1", "tcp", "p80", "10.180.2.1:80")
    assert dump_lines(p, L1) == [f"add rule {KP} {L1} numgen random mod 1 vmap {{ 0 : goto {local_ep} }}"]
    # the local chain has no masquerade rule: it is not the internal chain
    assert len(dump_lines(p, S1)) == 2 and "goto " + L1 not in "".join(elements(p, "service-ips"))


def test_no_endpoints_reject_everything():
    p, _ = sync([lb_service()], [])
    assert sorted(elements(p, "no-endpoint-services")) == sorted(
        f'add element {KP} no-endpoint-services {{ {ip} . tcp . 80 comment "ns1/svc1:p80" : goto reject-chain }}'
        for ip in ("172.30.0.41", "192.168.99.11", "1.2.3.4"))
    assert elements(p, "no-endpoint-nodeports") == [
        f'add element {KP} no-endpoint-nodeports {{ tcp . 3001 comment "ns1/svc1:p80" : goto reject-chain }}']
    assert elements(p, "service-ips") == [] and not any("/" in c for c in p.chains)


def test_source_ranges_containing_the_node_ip_admit_the_lb_ips():
    """nft-test TestLoadBalancer's service: two ranges (one with extra whitespace) and two LB IPs;
    192.168.0.0/24 holds the node IP, so traffic from the VIPs themselves is allowed too."""
    svc_ = make_service("ns1", "svc1", type="LoadBalancer", clusterIP="172.30.0.41",
                        ports=[{**P80[0], "nodePort": 3001}], status=lb("1.2.3.4", "5.6.7.8"),
                        loadBalancerSourceRanges=["192.168.0.0/24", " 203.0.113.0/25"])
    p, _ = sync([svc_], [make_slice("ns1", "svc1", [ep("10.180.0.1")])])
    assert dump_lines(p, F1) == [
        f"add rule {KP} {F1} ip saddr != {{ 192.168.0.0/24 , 203.0.113.0/25 , 1.2.3.4 , 5.6.7.8 }} drop"]
    assert sorted(elements(p, "firewall-ips")) == [
        f"add element {KP} firewall-ips {{ {ip} . tcp . 80 : goto {F1} }}" for ip in ("1.2.3.4", "5.6.7.8")]


def test_firewall_without_endpoints_still_drops_before_dnat():
    svc_ = lb_service(loadBalancerSourceRanges=["203.0.113.0/25"])
    p, _ = sync([svc_], [])
    assert dump_lines(p, F1) == [f"add rule {KP} {F1} ip saddr != {{ 203.0.113.0/25 }} drop"]


def test_bad_ips_are_normalised():
    """nft-test TestBadIPs."""
    svc_ = make_service("ns1", "svc1", type="LoadBalancer", clusterIP="172.30.0.041",
                        ports=[{**P80[0], "nodePort": 3001}], status=lb("1.2.3.004"),
                        externalIPs=["192.168.099.022"], loadBalancerSourceRanges=["203.0.113.000/025"])
    p, _ = sync([svc_], [make_slice("ns1", "svc1", [ep("10.180.00.001")])])
    assert_dump(p, f"""
add chain {KP} {S1}
add rule {KP} {S1} ip daddr 172.30.0.41 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
add rule {KP} {S1} numgen random mod 1 vmap {{ 0 : goto {E1} }}
add chain {KP} {X1}
add rule {KP} {X1} jump mark-for-masquerade
add rule {KP} {X1} goto {S1}
add chain {KP} {E1}
add rule {KP} {E1} ip saddr 10.180.0.1 jump mark-for-masquerade
add rule {KP} {E1} meta l4proto tcp dnat to 10.180.0.1:80
add chain {KP} {F1}
add rule {KP} {F1} ip saddr != {{ 203.0.113.0/25 }} drop
add element {KP} cluster-ips {{ 172.30.0.41 }}
add element {KP} service-ips {{ 172.30.0.41 . tcp . 80 : goto {S1} }}
add element {KP} service-ips {{ 192.168.99.22 . tcp . 80 : goto {X1} }}
add element {KP} service-ips {{ 1.2.3.4 . tcp . 80 : goto {X1} }}
add element {KP} service-nodeports {{ tcp . 3001 : goto {X1} }}
add element {KP} firewall-ips {{ 1.2.3.4 . tcp . 80 : goto {F1} }}
""")


def test_masquerade_bit_and_service_cidr():
    p, _ = sync([], [], masquerade_bit=1, service_cidr="")
    assert dump_lines(p, "mark-for-masquerade") == [f"add rule {KP} mark-for-masquerade mark set mark or 0x2"]
    assert dump_lines(p, "masquerading")[0] == f"add rule {KP} masquerading mark and 0x2 == 0 return"
    assert dump_lines(p, "cluster-ips-check") == [
        f'add rule {KP} cluster-ips-check ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of '
        'ClusterIPs"']
    p, _ = sync([], [], service_cidr="172.30.0.0/16,fd00:10:96::/112,172.50.0.0/16")
    assert "ip daddr { 172.30.0.0/16,172.50.0.0/16 } drop" in dump_lines(p, "cluster-ips-check")[1]


def test_ipv6_node():
    node = NodeView("test-node", "2001:db8::1")
    svc_ = make_service("ns1", "svc1", type="NodePort", clusterIP="fd00:172:30::41",
                        ports=[{**P80[0], "nodePort": 3001}])
    slices = [make_slice("ns1", "svc1", [ep("fd00:10:180::1")], address_type="IPv6"),
              make_slice("ns1", "svc1", [ep("10.180.0.1")], n=2)]
    p = proxier(node=node, cluster_cidr="fd00:10::/64", service_cidr="fd00:172:30::/112")
    p.sync([svc_], slices)
    text = p.transaction_dump()
    e = "endpoint-" + endpoint_chain_base("ns1", "svc1", "tcp", "p80", "[fd00:10:180::1]:80")
    assert "__fd00.10.180..1/80" in e
    assert f"add rule ip6 kube-proxy {e} ip6 saddr fd00:10:180::1 jump mark-for-masquerade" in text
    assert f"add rule ip6 kube-proxy {e} meta l4proto tcp dnat to [fd00:10:180::1]:80" in text
    assert (f"add rule ip6 kube-proxy {S1} ip6 daddr fd00:172:30::41 ip6 saddr != fd00:10::/64 "
            "jump mark-for-masquerade") in text
    assert "add set ip6 kube-proxy cluster-ips { type ipv6_addr ;" in text
    assert "add element ip6 kube-proxy nodeport-ips { 2001:db8::1 }" in text
    assert "10.180.0.1" not in text


# ---- 5. render ------------------------------------------------------------------------------------------
def test_render_is_nft_list_ruleset_shaped():
    p, _ = sync(overall_services(), overall_slices())
    text = p.render()
    lines = text.splitlines()
    assert lines[:3] == ["table ip kube-proxy {", '\tcomment "rules for kube-proxy"', "\tset cluster-ips {"]
    assert lines[-1] == "}" and text.endswith("}\n")
    # sets and maps (creation order) before chains (creation order)
    heads = [ln.strip() for ln in lines if re.match(r"\t(set|map|chain) ", ln)]
    kinds = [h.split()[0] for h in heads]
    assert kinds == sorted(kinds, key=lambda k: k == "chain")
    assert heads[:8] == ["set cluster-ips {", "set nodeport-ips {", "map no-endpoint-services {",
                         "map no-endpoint-nodeports {", "map firewall-ips {", "map service-ips {",
                         "map service-nodeports {", "set affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 {"]
    assert "\t\telements = { 172.30.0.41, 172.30.0.42, 172.30.0.43, 172.30.0.44, 172.30.0.45, 172.30.0.46 }" in lines
    assert ('\t\telements = { 1.2.3.4 . tcp . 80 comment "ns2/svc2:p80" : drop,\n'
            '\t\t\t     172.30.0.46 . tcp . 80 comment "ns6/svc6:p80" : goto reject-chain,\n') in text
    assert "\tset affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 {\n\t\ttype ipv4_addr\n" \
           "\t\tflags dynamic,timeout\n\t\ttimeout 10800s\n\t}" in text
    for header in ("type filter hook prerouting priority dstnat - 10; policy accept;",
                   "type filter hook output priority -110; policy accept;",
                   "type filter hook input priority filter; policy accept;",
                   "type nat hook prerouting priority dstnat; policy accept;",
                   "type nat hook output priority -100; policy accept;",
                   "type nat hook postrouting priority srcnat; policy accept;"):
        assert f"\t\t{header}" in lines
    assert "\tchain mark-for-masquerade {\n\t\tmark set mark or 0x4000\n\t}" in text
    assert "\tchain reject-chain {\n\t\tcomment \"helper for @no-endpoint-services / @no-endpoint-nodeports\"\n" \
           "\t\treject\n\t}" in text
    assert "\t\tip saddr != { 203.0.113.0/25 } drop" in lines
    # every rule of the table, once
    rules = [ln for ln in lines if ln.startswith("\t\t") and not re.match(
        r"\t\t(type|comment|elements|flags|timeout) |\t\t\t", ln)]
    assert len(rules) == sum(len(r) for r in p.chains.values())


def test_render_of_a_fresh_proxier_is_empty():
    assert proxier().render() == "" and proxier().transaction_dump() == ""


# ---- 6. kernel ------------------------------------------------------------------------------------------
def _kernel_tools_missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    missing = [t for t in ("ip", "nft") if shutil.which(t) is None]
    return f"missing {', '.join(missing)}" if missing else None


@pytest.fixture
def netns():
    reason = _kernel_tools_missing()
    if reason:
        pytest.skip(reason)
    ns = f"kslibtest-{uuid.uuid4().hex[:8]}"
    if subprocess.run(["ip", "netns", "add", ns], capture_output=True).returncode != 0:
        pytest.skip("cannot create network namespaces here")
    try:
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def nft(ns, *args, text=""):
    out = subprocess.run(["ip", "netns", "exec", ns, "nft", *args], input=text, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def listing(text):
    """chains -> rule count, sets/maps -> element strings, from nft list ruleset (or render())."""
    chains, sets, name, kind, elems = {}, {}, None, None, None
    for ln in text.splitlines():
        m = re.match(r"\t(chain|set|map) (\S+) \{$", ln)
        if m:
            kind, name = m.groups()
            if kind == "chain":
                chains[name] = 0
            else:
                sets[name] = set()
            continue
        if ln == "\t}":
            name = None
            continue
        if name is None:
            continue
        body = ln.strip()
        if kind != "chain":
            if body.startswith("elements = {"):
                elems = body[len("elements = {"):]
            elif elems is not None:
                elems += " " + body
            if elems is not None and elems.endswith("}"):
                sets[name] = {e.strip() for e in elems[:-1].split(",") if e.strip()}
                elems = None
        elif not re.match(r"(type|comment) ", body):
            chains[name] += 1
    return chains, sets


@pytest.mark.kernel
def test_render_loads_into_a_network_namespace(netns):
    p, _ = sync(overall_services(), overall_slices())
    nft(netns, "-f", "-", text=p.render())
    listed = nft(netns, "list", "ruleset")
    assert listing(listed) == listing(p.render())
    assert "chain service-ULMVA6XW-ns1/svc1/tcp/p80 {" in listed
    # the dump is a loadable transaction too
    nft(netns, "flush", "ruleset")
    nft(netns, "-f", "-", text=p.transaction_dump())
    assert listing(nft(netns, "list", "ruleset")) == listing(p.render())


@pytest.mark.kernel
def test_sync_payloads_apply_to_the_kernel_like_to_the_model(netns):
    """Every transaction kube-proxy would send, applied in order with nft -f, leaves the same
    chains, rule counts and elements as the model's table."""
    p = proxier()
    svcs, slices = overall_services(), overall_slices()
    steps = [
        (svcs, slices, 0.0),
        ([s for s in svcs if s.name not in ("svc2", "svc6")], [s for s in slices if s.service_name != "svc2"], 0.5),
        ([s for s in svcs if s.name != "svc2"], slices[:3] + [make_slice("ns4", "svc4", [ep("10.180.0.9")])]
         + slices[4:], 3.0),
        ([s for s in svcs if s.name != "svc5"], slices, 6.0),
    ]
    for services, sl, now in steps:
        res = p.sync(services, sl, now=now)
        if res.payload:
            nft(netns, "-f", "-", text=res.payload)
        assert listing(nft(netns, "list", "ruleset")) == listing(p.render())
