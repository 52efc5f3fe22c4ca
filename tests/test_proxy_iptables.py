"""kube-proxy's iptables proxier: golden output, chain names, endpoint choice, rule behaviour,
partial syncs and loading the result into a real kernel.

Fixtures follow kube-proxy's pkg/proxy/iptables/proxier_test.go conventions (ipt-test): pod CIDR
10.0.0.0/8, ClusterIPs 172.30.0.0/16, node test-node 192.168.0.2, LB source range 203.0.113.0/25.
"""
import re
from dataclasses import replace
from pathlib import Path

import pytest

from kslib.api.endpointslice import EndpointSlice
from kslib.api.service import Service
from kslib.lab.netns import Namespaces
from kslib.lab.netns import available as lab_available
from kslib.proxy import NodeView, ProxyConfig
from kslib.proxy.iptables import (IptablesProxier, SyncResult, compute_probability, endpoint_chain,
                                  service_chain)
from kslib.proxy.topology import (EndpointInfo, ServicePortInfo, categorize, parse_cidr, parse_ip,
                                  service_port_infos, service_ports)

GOLDEN = Path(__file__).parent / "data" / "iptables_golden.txt"
NODE = NodeView("test-node", "192.168.0.2")
P80 = [{"name": "p80", "port": 80, "protocol": "TCP"}]


# ---- fixtures ------------------------------------------------------------------------------------
def make_service(ns, name, status=None, **spec):
    svc = Service.from_dict({"metadata": {"name": name, "namespace": ns}, "spec": spec,
                             "status": {"loadBalancer": status or {}}})
    svc.apply_defaults()
    return svc


def make_slice(ns, name, endpoints, ports=P80, n=1, address_type="IPv4"):
    return EndpointSlice.from_dict({
        "metadata": {"name": f"{name}-{n}", "namespace": ns, "labels": {"kubernetes.io/service-name": name}},
        "addressType": address_type, "endpoints": endpoints, "ports": ports})


def ep(ip, node=None, ready=None, serving=None, terminating=None, zones=None):
    out = {"addresses": [ip], "conditions": {k: v for k, v in (("ready", ready), ("serving", serving),
                                                                ("terminating", terminating)) if v is not None}}
    if node:
        out["nodeName"] = node
    if zones:
        out["hints"] = {"forZones": [{"name": z} for z in zones]}
    return out


def proxier(node=NODE, **cfg):
    return IptablesProxier(node, ProxyConfig(**{"cluster_cidr": "10.0.0.0/8", "service_cidr": "172.30.0.0/16",
                                                **cfg}))


def sync(services, slices, **cfg) -> tuple[IptablesProxier, SyncResult]:
    p = proxier(**cfg)
    return p, p.sync(services, slices)


def rules(p, chain, table="nat"):
    return p.tables[table].get(chain, [])


def lb(*ips, mode=None):
    return {"ingress": [{"ip": ip, **({"ipMode": mode} if mode else {})} for ip in ips]}


def overall_services():
    """The six services of ipt-test TestOverallIPTablesRules."""
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


# ---- ipt-test sortIPTablesRules --------------------------------------------------------------------
def _comment_service(rule: str) -> str:
    """orderByCommentServiceName: the comment up to its first space or colon."""
    m = re.search(r'--comment (?:"([^"]*)"|(\S+))', rule)
    text = (m.group(1) or m.group(2)) if m else ""
    return re.split(r"[ :]", text, maxsplit=1)[0]


def _chain_order(name: str):
    return ({"KUBE-NODEPORTS": 0, "KUBE-SERVICES": 1}.get(name, 2 if name.startswith("KUBE-") else 3), name)


def _rule_order(table: str, chain: str):
    def key(rule):
        last = table == "nat" and chain == "KUBE-SERVICES" and "must be the last rule" in rule
        return (last, _comment_service(rule))
    return key


def sort_restore(text: str) -> str:
    """Sort iptables-restore input as kube-proxy's test does: tables by name; chains with
    KUBE-NODEPORTS, KUBE-SERVICES first, then alphabetically; rules grouped by chain in that
    order, KUBE-NODEPORTS/KUBE-SERVICES rules stably by service (the "must be the last rule" rule
    last), other chains' rule order kept; -X lines after all rules."""
    tables: dict[str, tuple[list, dict, list]] = {}
    for ln in text.splitlines():
        if ln.startswith("*"):
            chains, by_chain, deleted = tables.setdefault(ln[1:], ([], {}, []))
        elif ln.startswith(":"):
            chains.append(ln[1:].split()[0])
        elif ln.startswith("-A "):
            by_chain.setdefault(ln.split()[1], []).append(ln)
        elif ln.startswith("-X "):
            deleted.append(ln.split()[1])
    out = []
    for name in sorted(tables):
        chains, by_chain, deleted = tables[name]
        chains = sorted(chains, key=_chain_order)
        out += [f"*{name}"] + [f":{c} - [0:0]" for c in chains]
        for c in chains:
            rs = by_chain.get(c, [])
            out += sorted(rs, key=_rule_order(name, c)) if c in ("KUBE-NODEPORTS", "KUBE-SERVICES") else rs
        out += [f"-X {c}" for c in chains if c in deleted]
        out.append("COMMIT")
    return "\n".join(out) + "\n"


# ---- 1. golden ------------------------------------------------------------------------------------
def test_overall_rules_match_kube_proxy_golden():
    """ipt-test TestOverallIPTablesRules, line for line."""
    p, res = sync(overall_services(), overall_slices())
    assert res.full
    assert sort_restore(res.payload) == GOLDEN.read_text()
    # the metric sync_proxy_rules_iptables_total{table="nat"} equals the nat -A lines
    nat = res.payload.split("*nat\n")[1]
    assert res.rules_total == {"filter": 10, "nat": nat.count("\n-A ")}
    assert res.rules_sent == res.payload.count("\n-A ")
    assert res.chains_sent == res.payload.count("\n:")
    assert res.services_synced == 6 and res.stale_chains_deleted == 0


def test_payload_order_follows_proxier_go():
    """Top-level chain lines first (filter: SERVICES, EXTERNAL-SERVICES, FORWARD, NODEPORTS,
    PROXY-FIREWALL, FIREWALL; nat: SERVICES, NODEPORTS, POSTROUTING, MARK-MASQ), per service
    EXT, FW, SVC, SEP; the NodePort hand-off is the payload's last nat rule."""
    _, res = sync(overall_services(), overall_slices())
    filt, nat = res.payload.split("*nat\n")
    assert [ln for ln in filt.splitlines() if ln.startswith(":")] == [
        ":KUBE-SERVICES - [0:0]", ":KUBE-EXTERNAL-SERVICES - [0:0]", ":KUBE-FORWARD - [0:0]",
        ":KUBE-NODEPORTS - [0:0]", ":KUBE-PROXY-FIREWALL - [0:0]", ":KUBE-FIREWALL - [0:0]"]
    chains = [ln.split()[0][1:] for ln in nat.splitlines() if ln.startswith(":")]
    assert chains[:4] == ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"]
    assert chains[-4:] == ["KUBE-EXT-NUKIZ6OKUXPJNT4C", "KUBE-FW-NUKIZ6OKUXPJNT4C", "KUBE-SVC-NUKIZ6OKUXPJNT4C",
                           "KUBE-SEP-I77PXRDZVX7PMWMN"]
    assert nat.splitlines()[-2].endswith("-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")
    assert filt.splitlines()[7].startswith("-A KUBE-FIREWALL")


# ---- 2. chain names -------------------------------------------------------------------------------
@pytest.mark.parametrize("spn, expected", [
    ("ns1/svc1:p80", "XPGD46QRK7WJZT7O"), ("ns2/svc2:p80", "GNZBNJ2PO5MGZ6GT"),
    ("ns3/svc3:p80", "X27LE4BHSL4DOUIK"), ("ns4/svc4:p80", "4SW47YFZTEDKD3PK"),
    ("ns5/svc5:p80", "NUKIZ6OKUXPJNT4C"), ("ns2/svc2:p8080", "2VJB64SDSIJUP5T6"),
    ("ns4/svc4:p8082", "EBDQOQU5SJFXRIL3"), ("ns1/svc1", "AQI2S6QIMU7PVVRP"),
])
def test_service_chain_names(spn, expected):
    for prefix in ("KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-"):
        assert service_chain(prefix, spn, "TCP") == prefix + expected


@pytest.mark.parametrize("spn, endpoint, expected", [
    ("ns1/svc1:p80", "10.180.0.1:80", "SXIVWICOYRO3J4NJ"), ("ns2/svc2:p80", "10.180.0.2:80", "RS4RBKLTHTF2IUXJ"),
    ("ns3/svc3:p80", "10.180.0.3:80", "OYPFS5VJICHGATKP"), ("ns4/svc4:p80", "10.180.0.4:80", "UKSFD7AGPMPPLUHC"),
    ("ns4/svc4:p80", "10.180.0.5:80", "C6EBXVWJJZMIWKLZ"), ("ns5/svc5:p80", "10.180.0.3:80", "I77PXRDZVX7PMWMN"),
    ("ns1/svc1:p80", "10.0.0.0:80", "DKGQUZGBKLTPAR56"), ("ns3/svc3:p8081", "203.0.113.4:8081", "RUVVH7YV3PHQBDOS"),
    ("ns4/svc4:p8082", "10.4.0.1:8082", "SU5STNODRYEWJAUF"), ("ns1/svc1:p80", "10.0.1.1:80", "SNQ3ZNILQDEJNDQO"),
    ("ns2/svc2:p8080", "10.0.2.1:8080", "UHEGFW77JX3KXTOV"), ("ns3/svc3:p80", "10.0.3.1:80", "BSWRHOQ77KEXZLNL"),
    ("ns3/svc3:p80", "10.0.3.2:80", "DKCFIS26GWF2WLWC"), ("ns3/svc3:p80", "10.0.3.3:80", "JVVZVJ7BSEPPRNBS"),
    ("ns4/svc4:p80", "10.0.4.1:80", "AYCN5HPXMIRJNJXU"),
])
def test_endpoint_chain_names(spn, endpoint, expected):
    assert endpoint_chain(spn, "TCP", endpoint) == "KUBE-SEP-" + expected


# ---- 3. probabilities -----------------------------------------------------------------------------
@pytest.mark.parametrize("n, expected", [
    (1, "1.0000000000"), (2, "0.5000000000"), (10, "0.1000000000"), (100, "0.0100000000"),
    (1000, "0.0010000000"), (10000, "0.0001000000"), (100000, "0.0000100000"), (100001, "0.0000099999"),
])
def test_compute_probability(n, expected):
    """ipt-test TestComputeProbability."""
    assert compute_probability(n) == expected


def test_probabilities_strictly_increase_as_n_falls():
    values = [float(compute_probability(n)) for n in range(1, 2000)]
    assert all(a > b for a, b in zip(values, values[1:]))


def test_three_endpoints_dispatch_thirds_then_half_then_rest():
    svc = make_service("ns1", "svc1", clusterIP="172.30.0.41", ports=P80)
    p, _ = sync([svc], [make_slice("ns1", "svc1", [ep("10.180.0.1"), ep("10.180.0.2"), ep("10.180.0.3")])])
    chances = [re.findall(r"--probability (\S+)", r) for r in rules(p, "KUBE-SVC-XPGD46QRK7WJZT7O")[1:]]
    assert chances == [["0.3333333333"], ["0.5000000000"], []]


# ---- 4. endpoint selection (topology.py) ----------------------------------------------------------
def einfo(last_octet, zones=(), ready=True, local=False, serving=True, terminating=False, nodes=()):
    return EndpointInfo(ip=f"10.1.2.{last_octet}", port=80, ready=ready, serving=serving, terminating=terminating,
                        is_local=local, zone_hints=frozenset(zones), node_hints=frozenset(nodes))


def cluster_info(**kw):
    return ServicePortInfo(namespace="ns1", name="svc1", port_name="p80", protocol="TCP", cluster_ip="172.30.0.41",
                           port=80, **kw)


def ips(endpoints):
    return sorted(e.ip.rsplit(".", 1)[1] for e in endpoints)


def zone_node(zone):
    return NodeView("test-node", "192.168.0.2", {"topology.kubernetes.io/zone": zone})


@pytest.mark.parametrize("node_zone, endpoints, expected", [
    ("zone-a", [einfo(3, "a"), einfo(4, "b"), einfo(5, "c"), einfo(6, "a")], ["3", "6"]),
    ("zone-b", [einfo(3, "a"), einfo(4, "a")], ["3", "4"]),              # no hint for the node's zone
    ("zone-a", [einfo(3, "a"), einfo(4, "b"), einfo(5, "c"), einfo(6)], ["3", "4", "5", "6"]),  # a hint missing
    ("zone-a", [einfo(3, "a"), einfo(4, "b"), einfo(5, "c"), einfo(6, "a", ready=False)], ["3"]),
    ("zone-a", [einfo(3, "a", ready=False), einfo(4, "b"), einfo(5, "c"), einfo(6, "a", ready=False)], ["4", "5"]),
    ("zone-c", [einfo(3, "abc"), einfo(4, "bc"), einfo(5, "bd"), einfo(6, "c")], ["3", "4", "6"]),
])
def test_topology_zone_hints(node_zone, endpoints, expected):
    """topology-test examples (reference section 2.10)."""
    endpoints = [replace(e, zone_hints=frozenset(f"zone-{z}" for z in e.zone_hints)) for e in endpoints]
    cat = categorize(cluster_info(), endpoints, zone_node(node_zone))
    assert ips(cat.cluster) == expected and cat.has_endpoints


def test_topology_with_external_policy_local():
    endpoints = [einfo(3, ["zone-a"], local=True), einfo(4, ["zone-b"], local=True), einfo(5, ["zone-c"]),
                 einfo(6, ["zone-a"])]
    info = cluster_info(node_port=3001, external_local=True)
    cat = categorize(info, endpoints, zone_node("zone-a"))
    assert (ips(cat.cluster), ips(cat.local), ips(cat.reachable)) == (["3", "6"], ["3", "4"], ["3", "4", "6"])


def test_topology_prefer_same_node_hints():
    endpoints = [einfo(3, nodes=["test-node"]), einfo(4, nodes=["other"])]
    assert ips(categorize(cluster_info(), endpoints, NODE).cluster) == ["3"]
    endpoints.append(einfo(5))   # a Ready endpoint without a node hint disables PreferSameNode
    assert ips(categorize(cluster_info(), endpoints, NODE).cluster) == ["3", "4", "5"]


def test_terminating_fallback_uses_serving_terminating_only():
    endpoints = [einfo(3, ready=False, terminating=True), einfo(4, ready=False, serving=False, terminating=True),
                 einfo(5, ready=False)]
    cat = categorize(cluster_info(), endpoints, NODE)
    assert ips(cat.cluster) == ["3"] and cat.has_endpoints
    assert ips(categorize(cluster_info(), endpoints + [einfo(6)], NODE).cluster) == ["6"]


def test_local_policy_prefers_ready_then_serving_terminating_local_endpoints():
    info = cluster_info(internal_local=True)
    ready_remote = einfo(3)
    term_local = einfo(4, ready=False, terminating=True, local=True)
    cat = categorize(info, [ready_remote, term_local], NODE)
    assert (ips(cat.cluster), ips(cat.local), cat.has_internal_endpoints) == ([], ["4"], True)
    cat = categorize(info, [ready_remote], NODE)
    assert cat.has_endpoints and not cat.has_internal_endpoints and cat.has_external_endpoints


def test_service_port_info_fields():
    svc = make_service("ns1", "svc1", type="LoadBalancer", clusterIP="172.30.0.41", externalTrafficPolicy="Local",
                       ports=[{"port": 80, "nodePort": 3001}], healthCheckNodePort=30000,
                       externalIPs=["192.168.99.11", "2001:db8::5"],
                       loadBalancerSourceRanges=[" 203.0.113.0/25 ", "fd00::/64"],
                       status={"ingress": [{"ip": "1.2.3.4"}, {"ip": "5.6.7.8", "ipMode": "Proxy"},
                                           {"hostname": "lb.example"}]})
    (info,) = service_port_infos(svc, 4)
    assert (info.spn, info.protocol, info.cluster_ip, info.node_port) == ("ns1/svc1", "TCP", "172.30.0.41", 3001)
    assert info.external_ips == ("192.168.99.11",) and info.lb_ips == ("1.2.3.4",)
    assert info.source_ranges == ("203.0.113.0/25",)
    assert info.external_local and not info.internal_local and info.externally_accessible
    assert info.uses_cluster_endpoints and info.uses_local_endpoints
    assert info.health_check_node_port == 30000 and info.affinity_timeout is None


def test_health_check_port_only_for_load_balancer_with_local_policy():
    np = make_service("ns1", "svc1", type="NodePort", clusterIP="172.30.0.41", externalTrafficPolicy="Local",
                      ports=[{**P80[0], "nodePort": 3001}], healthCheckNodePort=30000)
    assert service_port_infos(np, 4)[0].health_check_node_port == 0


@pytest.mark.parametrize("spec", [
    {"type": "ExternalName", "externalName": "example.com"},
    {"clusterIP": "None"},
    {"clusterIP": ""},
    {"clusterIP": "fd00::1"},          # no clusterIP of the IPv4 proxier's family
])
def test_services_kube_proxy_skips(spec):
    svc = make_service("ns1", "svc1", ports=P80, **spec)
    assert service_port_infos(svc, 4) == []


def test_endpoints_merged_matched_by_port_name_and_sorted_as_strings():
    svc = make_service("ns1", "svc1", clusterIP="172.30.0.41",
                       ports=[{"name": "p80", "port": 80}, {"name": "p81", "port": 81}])
    slices = [
        make_slice("ns1", "svc1", [ep("10.1.1.1"), ep("10.1.1.11"), {"addresses": ["10.1.1.2", "10.9.9.9"]}],
                   ports=[{"name": "p80", "port": 11, "protocol": "TCP"}, {"name": "p81", "port": None},
                          {"name": "p80", "port": 12, "protocol": "UDP"}]),
        make_slice("ns1", "svc1", [ep("10.1.1.1", node="test-node")], n=2,
                   ports=[{"name": "p80", "port": 11, "protocol": "TCP"}]),
        make_slice("ns1", "other", [ep("10.7.7.7")]),
    ]
    (_, cat80), (_, cat81) = service_ports([svc], slices, NODE)
    assert [e.addr for e in cat80.endpoints] == ["10.1.1.11:11", "10.1.1.1:11", "10.1.1.2:11"]
    assert [e.is_local for e in cat80.endpoints] == [False, True, False]    # the local duplicate won
    assert cat81.endpoints == [] and not cat81.has_endpoints


def test_endpoint_fields():
    slice_ = make_slice("ns1", "svc1", [{**ep("10.1.1.1", node="test-node", zones=["zone-a"]),
                                         "targetRef": {"kind": "Pod", "namespace": "ns1", "name": "web-0"}}])
    svc = make_service("ns1", "svc1", clusterIP="172.30.0.41", ports=P80)
    ((_, cat),) = service_ports([svc], [slice_], NODE)
    e = cat.endpoints[0]
    assert (e.ip, e.port, e.ready, e.serving, e.terminating, e.is_local) == ("10.1.1.1", 80, True, True, False, True)
    assert e.zone_hints == {"zone-a"} and e.node_hints == frozenset() and e.pod == "ns1/web-0"


@pytest.mark.parametrize("text, expected", [
    ("172.30.0.041", "172.30.0.41"), ("1.2.3.004", "1.2.3.4"), ("192.168.099.022", "192.168.99.22"),
    ("10.180.00.001", "10.180.0.1"), ("fd00:0::01", "fd00::1"), ("1.2.3.256", None), ("nope", None),
])
def test_parse_ip_reads_leading_zeros_as_decimal(text, expected):
    ip = parse_ip(text)
    assert (str(ip) if ip else None) == expected


def test_parse_cidr_masks_and_trims():
    assert str(parse_cidr(" 203.0.113.000/025")) == "203.0.113.0/25"
    assert str(parse_cidr("203.0.113.7/24")) == "203.0.113.0/24"
    assert parse_cidr("203.0.113.0") is None


# ---- 4. rule behaviour ----------------------------------------------------------------------------
def lb_service(**spec):
    base = dict(type="LoadBalancer", clusterIP="172.30.0.41", externalIPs=["192.168.99.11"],
                ports=[{**P80[0], "nodePort": 3001}], healthCheckNodePort=30000, status=lb("1.2.3.4"))
    return make_service("ns1", "svc1", **{**base, **spec})


SVC1 = "KUBE-SVC-XPGD46QRK7WJZT7O"
SVL1 = "KUBE-SVL-XPGD46QRK7WJZT7O"
EXT1 = "KUBE-EXT-XPGD46QRK7WJZT7O"
FW1 = "KUBE-FW-XPGD46QRK7WJZT7O"


def test_masquerade_all_masquerades_every_cluster_ip_packet():
    p, _ = sync([lb_service()], [make_slice("ns1", "svc1", [ep("10.180.0.1")])], masquerade_all=True)
    assert rules(p, SVC1)[0] == ('-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" '
                                 '-m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-MARK-MASQ')


def test_no_local_detector_means_no_cluster_ip_masquerade_and_no_pod_short_circuit():
    svc = lb_service(externalTrafficPolicy="Local")
    p, _ = sync([svc], [make_slice("ns1", "svc1", [ep("10.180.0.1", node="test-node")])], cluster_cidr="")
    assert not any("KUBE-MARK-MASQ" in r for r in rules(p, SVC1))
    assert rules(p, EXT1) == [
        '-A KUBE-EXT-XPGD46QRK7WJZT7O -m comment --comment "masquerade LOCAL traffic for ns1/svc1:p80 external '
        'destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ',
        '-A KUBE-EXT-XPGD46QRK7WJZT7O -m comment --comment "route LOCAL traffic for ns1/svc1:p80 external '
        'destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-XPGD46QRK7WJZT7O',
        "-A KUBE-EXT-XPGD46QRK7WJZT7O -j KUBE-SVL-XPGD46QRK7WJZT7O"]


def test_hairpin_traffic_is_masqueraded_in_the_endpoint_chain():
    p, _ = sync([lb_service()], [make_slice("ns1", "svc1", [ep("10.180.0.1")])])
    assert rules(p, "KUBE-SEP-SXIVWICOYRO3J4NJ") == [
        "-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ",
        "-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp "
        "-j DNAT --to-destination 10.180.0.1:80"]


def test_external_policy_local_with_local_endpoint_uses_svl():
    svc = lb_service(externalTrafficPolicy="Local")
    p, res = sync([svc], [make_slice("ns1", "svc1", [ep("10.180.0.1"), ep("10.180.2.1", node="test-node")])])
    assert rules(p, EXT1)[0] == ('-A KUBE-EXT-XPGD46QRK7WJZT7O -m comment --comment "pod traffic for ns1/svc1:p80 '
                                 'external destinations" -s 10.0.0.0/8 -j KUBE-SVC-XPGD46QRK7WJZT7O')
    assert rules(p, EXT1)[-1] == "-A KUBE-EXT-XPGD46QRK7WJZT7O -j KUBE-SVL-XPGD46QRK7WJZT7O"
    local_sep = endpoint_chain("ns1/svc1:p80", "tcp", "10.180.2.1:80")
    assert rules(p, SVL1) == [f'-A {SVL1} -m comment --comment "ns1/svc1:p80 -> 10.180.2.1:80" -j {local_sep}']
    assert len(rules(p, SVC1)) == 3            # masquerade rule + both endpoints
    assert not rules(p, "KUBE-EXTERNAL-SERVICES", "filter")


def test_external_policy_local_without_local_endpoints_drops_external_traffic():
    svc = lb_service(externalTrafficPolicy="Local")
    p, _ = sync([svc], [make_slice("ns1", "svc1", [ep("10.180.0.1")])])
    assert SVL1 not in p.tables["nat"]
    assert len(rules(p, EXT1)) == 3 and not any("-j KUBE-SVL" in r for r in rules(p, EXT1))
    assert rules(p, "KUBE-EXTERNAL-SERVICES", "filter") == [
        '-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns1/svc1:p80 has no local endpoints" '
        "-m tcp -p tcp -d 192.168.99.11 --dport 80 -j DROP",
        '-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns1/svc1:p80 has no local endpoints" '
        "-m tcp -p tcp -d 1.2.3.4 --dport 80 -j DROP",
        '-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns1/svc1:p80 has no local endpoints" '
        "-m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j DROP"]


def test_health_check_node_port_accepted_even_without_endpoints():
    svc = lb_service(externalTrafficPolicy="Local")
    p, _ = sync([svc], [])
    assert rules(p, "KUBE-NODEPORTS", "filter") == [
        '-A KUBE-NODEPORTS -m comment --comment "ns1/svc1:p80 health check node port" '
        "-m tcp -p tcp --dport 30000 -j ACCEPT"]
    p, _ = sync([lb_service()], [])             # eTP=Cluster: no health check port
    assert rules(p, "KUBE-NODEPORTS", "filter") == []


def test_internal_policy_local_without_local_endpoints_drops_cluster_ip():
    svc = lb_service(internalTrafficPolicy="Local")
    p, _ = sync([svc], [make_slice("ns1", "svc1", [ep("10.180.0.1")])])
    assert rules(p, "KUBE-SERVICES", "filter") == [
        '-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 has no local endpoints" '
        "-m tcp -p tcp -d 172.30.0.41 --dport 80 -j DROP"]
    # external traffic still reaches the Cluster endpoints
    assert rules(p, EXT1)[-1] == "-A KUBE-EXT-XPGD46QRK7WJZT7O -j KUBE-SVC-XPGD46QRK7WJZT7O"
    assert not any("cluster IP" in r for r in rules(p, "KUBE-SERVICES"))


def test_internal_policy_local_with_local_endpoint_jumps_to_svl():
    svc = make_service("ns1", "svc1", clusterIP="172.30.0.41", ports=P80, internalTrafficPolicy="Local")
    p, _ = sync([svc], [make_slice("ns1", "svc1", [ep("10.180.0.1"), ep("10.180.2.1", node="test-node")])])
    assert rules(p, "KUBE-SERVICES")[0].endswith("-j KUBE-SVL-XPGD46QRK7WJZT7O")
    assert "! -s 10.0.0.0/8 -j KUBE-MARK-MASQ" in rules(p, SVL1)[0]
    assert SVC1 not in p.tables["nat"] and len(rules(p, SVL1)) == 2


def test_external_ips_capture_to_ext_chain():
    svc = make_service("ns1", "svc1", clusterIP="172.30.0.41", ports=P80, externalIPs=["192.168.99.11"])
    p, _ = sync([svc], [make_slice("ns1", "svc1", [ep("10.180.0.1")])])
    assert rules(p, "KUBE-SERVICES")[1] == (
        '-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 external IP" -m tcp -p tcp -d 192.168.99.11 '
        "--dport 80 -j KUBE-EXT-XPGD46QRK7WJZT7O")
    assert rules(p, EXT1)[0].endswith("-j KUBE-MARK-MASQ")


def test_source_ranges_containing_the_node_ip_also_allow_the_lb_ips():
    """ipt-test TestLoadBalancer: two LB IPs, ranges 192.168.0.0/24 (holds the node IP) and
    " 203.0.113.0/25"."""
    svc = lb_service(externalIPs=[], loadBalancerSourceRanges=["192.168.0.0/24", " 203.0.113.0/25"],
                     status=lb("1.2.3.4", "5.6.7.8"))
    p, _ = sync([svc], [make_slice("ns1", "svc1", [ep("10.180.0.1")])])
    head = '-A KUBE-FW-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 loadbalancer IP"'
    assert rules(p, FW1) == [
        f"{head} -s 192.168.0.0/24 -j {EXT1}", f"{head} -s 203.0.113.0/25 -j {EXT1}",
        f"{head} -s 1.2.3.4 -j {EXT1}", f"{head} -s 5.6.7.8 -j {EXT1}",
        '-A KUBE-FW-XPGD46QRK7WJZT7O -m comment --comment "other traffic to ns1/svc1:p80 will be dropped by '
        'KUBE-PROXY-FIREWALL"']
    assert [r.split(" -d ")[1] for r in rules(p, "KUBE-PROXY-FIREWALL", "filter")] == [
        "1.2.3.4 --dport 80 -j DROP", "5.6.7.8 --dport 80 -j DROP"]
    assert all(r.endswith(f"-j {FW1}") for r in rules(p, "KUBE-SERVICES") if "loadbalancer IP" in r)
    assert all(r.endswith(f"-j {EXT1}") for r in rules(p, "KUBE-NODEPORTS"))   # NodePorts bypass ranges


def test_lb_ingress_with_ip_mode_proxy_is_not_programmed():
    """ipt-test TestLoadBalancerIngressRouteTypeProxy."""
    svc = lb_service(externalIPs=[], status=lb("1.2.3.4", mode="Proxy"))
    p, _ = sync([svc], [make_slice("ns1", "svc1", [ep("10.180.0.1")])])
    assert not any("1.2.3.4" in r for t in p.tables.values() for rs in t.values() for r in rs)


def test_session_affinity_checks_recent_list_then_sets_it():
    svc = make_service("ns1", "svc1", clusterIP="172.30.0.41", ports=P80, sessionAffinity="ClientIP",
                       sessionAffinityConfig={"clientIP": {"timeoutSeconds": 300}})
    p, _ = sync([svc], [make_slice("ns1", "svc1", [ep("10.180.0.1"), ep("10.180.0.2")])])
    sep1, sep2 = (endpoint_chain("ns1/svc1:p80", "TCP", f"10.180.0.{i}:80") for i in (1, 2))
    assert rules(p, SVC1)[1:3] == [
        f'-A {SVC1} -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m recent --name {sep1} '
        f"--rcheck --seconds 300 --reap -j {sep1}",
        f'-A {SVC1} -m comment --comment "ns1/svc1:p80 -> 10.180.0.2:80" -m recent --name {sep2} '
        f"--rcheck --seconds 300 --reap -j {sep2}"]
    assert f"-m recent --name {sep2} --set -m tcp -p tcp -j DNAT" in rules(p, sep2)[1]


def test_no_endpoints_rejects_every_service_address():
    """ipt-test TestNoEndpointsReject."""
    p, _ = sync([lb_service(healthCheckNodePort=0)], [])
    reject = '"ns1/svc1:p80 has no endpoints"'
    assert rules(p, "KUBE-SERVICES", "filter") == [
        f"-A KUBE-SERVICES -m comment --comment {reject} -m tcp -p tcp -d 172.30.0.41 --dport 80 -j REJECT"]
    assert rules(p, "KUBE-EXTERNAL-SERVICES", "filter") == [
        f"-A KUBE-EXTERNAL-SERVICES -m comment --comment {reject} -m tcp -p tcp -d 192.168.99.11 --dport 80 -j REJECT",
        f"-A KUBE-EXTERNAL-SERVICES -m comment --comment {reject} -m tcp -p tcp -d 1.2.3.4 --dport 80 -j REJECT",
        f"-A KUBE-EXTERNAL-SERVICES -m comment --comment {reject} -m addrtype --dst-type LOCAL -m tcp -p tcp "
        "--dport 3001 -j REJECT"]
    assert not [c for c in p.tables["nat"] if c.startswith(("KUBE-SVC", "KUBE-EXT", "KUBE-SEP"))]
    assert [r.split(" -j ")[1] for r in rules(p, "KUBE-SERVICES")] == ["KUBE-NODEPORTS"]   # only the hand-off


def test_terminating_fallback_in_rules():
    """ipt-test TestEndpointSliceWithTerminatingEndpointsTrafficPolicyCluster, "only terminating"."""
    svc = lb_service(externalIPs=[], healthCheckNodePort=0)
    slice_ = make_slice("ns1", "svc1", [
        ep("10.0.1.2", node="test-node", ready=False, serving=True, terminating=True),
        ep("10.0.1.4", node="node-1", ready=False, serving=False, terminating=True),
        ep("10.0.1.5", node="node-1", ready=False, serving=True, terminating=True)])
    p, _ = sync([svc], [slice_])
    assert [r.split("-> ")[1].split('"')[0] for r in rules(p, SVC1)[1:]] == ["10.0.1.2:80", "10.0.1.5:80"]
    slice_ = make_slice("ns1", "svc1", [ep("10.0.1.5", node="node-1", ready=False, serving=False, terminating=True)])
    p, _ = sync([svc], [slice_])
    assert rules(p, "KUBE-SERVICES", "filter")[0].endswith("-j REJECT")


def test_remote_serving_terminating_endpoint_with_local_policy_drops_external_traffic():
    svc = lb_service(externalTrafficPolicy="Local", healthCheckNodePort=30000)
    slice_ = make_slice("ns1", "svc1", [ep("10.0.1.5", node="node-1", ready=False, serving=True, terminating=True)])
    p, _ = sync([svc], [slice_])
    assert all(r.endswith("-j DROP") for r in rules(p, "KUBE-EXTERNAL-SERVICES", "filter"))
    assert rules(p, "KUBE-SERVICES")[0].endswith(f"-j {SVC1}")


def test_topology_hints_filter_cluster_endpoints_in_rules():
    node = zone_node("zone-a")
    svc = make_service("ns1", "svc1", clusterIP="172.30.0.41", ports=P80)
    slice_ = make_slice("ns1", "svc1", [ep(f"10.1.2.{i}", zones=[z]) for i, z in
                                        ((3, "zone-a"), (4, "zone-b"), (5, "zone-c"), (6, "zone-a"))])
    p = proxier(node=node)
    p.sync([svc], [slice_])
    assert [r.split("-> ")[1].split('"')[0] for r in rules(p, SVC1)[1:]] == ["10.1.2.3:80", "10.1.2.6:80"]


def large_cluster(n):
    svc = make_service("ns1", "svc1", clusterIP="172.30.0.41", ports=P80)
    return [svc], [make_slice("ns1", "svc1", [ep(f"10.0.{i // 256}.{i % 256}") for i in range(n)])]


def test_large_cluster_mode_drops_per_endpoint_comments():
    """ipt-test TestSyncProxyRulesLargeClusterMode: more than 1000 endpoints."""
    sep = "KUBE-SEP-DKGQUZGBKLTPAR56"
    p, _ = sync(*large_cluster(1000))
    assert rules(p, sep)[1] == (f"-A {sep} -m comment --comment ns1/svc1:p80 -m tcp -p tcp "
                                "-j DNAT --to-destination 10.0.0.0:80")
    p, _ = sync(*large_cluster(1001))
    assert rules(p, sep) == [f"-A {sep} -s 10.0.0.0 -j KUBE-MARK-MASQ",
                             f"-A {sep} -m tcp -p tcp -j DNAT --to-destination 10.0.0.0:80"]
    assert rules(p, SVC1)[1] == (f"-A {SVC1} -m statistic --mode random --probability 0.0009990010 -j {sep}")
    assert '"ns1/svc1:p80 cluster IP"' in rules(p, SVC1)[0]       # the masquerade rule keeps its comment


def test_large_cluster_mode_cleans_stale_chains_once_per_sync_period():
    p = proxier(large_cluster_threshold=2)
    svcs, slices = large_cluster(4)
    p.sync(svcs, slices, now=0.0)
    fewer = large_cluster(3)[1]
    assert p.sync(svcs, fewer, now=10.0).stale_chains_deleted == 0
    res = p.sync(svcs, fewer, now=40.0)
    assert res.stale_chains_deleted == 1 and "-X KUBE-SEP-" in res.payload


def test_udp_and_sctp_ports():
    """ipt-test TestClusterIPGeneral: one Service, TCP, UDP and SCTP on port 53."""
    ports = [{"name": f"dns-{p.lower()}", "port": 53, "protocol": p} for p in ("UDP", "TCP", "SCTP")]
    svc = make_service("ns2", "svc2", clusterIP="172.30.0.42", ports=ports)
    p, _ = sync([svc], [make_slice("ns2", "svc2", [ep("10.180.0.1")], ports=[{**p} for p in ports])])
    for proto in ("udp", "sctp", "tcp"):
        spn = f"ns2/svc2:dns-{proto}"
        svc_chain = service_chain("KUBE-SVC-", spn, proto)
        assert (f'-A KUBE-SERVICES -m comment --comment "{spn} cluster IP" -m {proto} -p {proto} '
                f"-d 172.30.0.42 --dport 53 -j {svc_chain}") in rules(p, "KUBE-SERVICES")
        sep = endpoint_chain(spn, proto, "10.180.0.1:53")
        assert rules(p, sep)[1].endswith(f"-m {proto} -p {proto} -j DNAT --to-destination 10.180.0.1:53")


def test_unnamed_port():
    svc = make_service("ns1", "svc1", clusterIP="172.30.0.41", ports=[{"port": 80}])
    p, _ = sync([svc], [make_slice("ns1", "svc1", [ep("10.180.0.1")], ports=[{"port": 80, "protocol": "TCP"}])])
    assert rules(p, "KUBE-SERVICES")[0] == ('-A KUBE-SERVICES -m comment --comment "ns1/svc1 cluster IP" '
                                            "-m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-AQI2S6QIMU7PVVRP")
    assert rules(p, "KUBE-SVC-AQI2S6QIMU7PVVRP")[1].startswith(
        '-A KUBE-SVC-AQI2S6QIMU7PVVRP -m comment --comment "ns1/svc1 -> 10.180.0.1:80"')


def test_bad_ips_are_normalised():
    """ipt-test TestBadIPs: leading zeros read as decimal everywhere."""
    svc = lb_service(clusterIP="172.30.0.041", externalIPs=["192.168.099.022"],
                     loadBalancerSourceRanges=["203.0.113.000/025"], status=lb("1.2.3.004"))
    p, res = sync([svc], [make_slice("ns1", "svc1", [ep("10.180.00.001")])])
    for good in ("-d 172.30.0.41 ", "-d 192.168.99.22 ", "-d 1.2.3.4 ", "-s 203.0.113.0/25 ",
                 "--to-destination 10.180.0.1:80", "-s 10.180.0.1 "):
        assert good in res.payload
    assert "KUBE-SEP-SXIVWICOYRO3J4NJ" in p.tables["nat"]


@pytest.mark.parametrize("random_fully, suffix", [(False, ""), (True, " --random-fully")])
def test_masquerade_rule_random_fully(random_fully, suffix):
    """ipt-test TestMasqueradeRule."""
    p, _ = sync([], [], random_fully=random_fully)
    assert rules(p, "KUBE-POSTROUTING") == [
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE' + suffix]


@pytest.mark.parametrize("liberal, nfacct, drop", [
    (False, False, "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP"),
    (False, True, "-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name "
                  "ct_state_invalid_dropped_pkts -j DROP"),
    (True, False, None),
])
def test_drop_invalid_rule(liberal, nfacct, drop):
    """ipt-test TestDropInvalidRule."""
    p, _ = sync([], [], tcp_be_liberal=liberal, nfacct=nfacct)
    tail = ['-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT',
            '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" '
            "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"]
    assert rules(p, "KUBE-FORWARD", "filter") == ([drop] if drop else []) + tail


def test_masquerade_bit_sets_the_mark():
    p, _ = sync([], [], masquerade_bit=1)
    assert rules(p, "KUBE-MARK-MASQ") == ["-A KUBE-MARK-MASQ -j MARK --or-mark 0x2"]


def test_localhost_nodeports_off():
    svc = make_service("ns3", "svc3", type="NodePort", clusterIP="172.30.0.43", ports=[{**P80[0], "nodePort": 3003}])
    p, res = sync([svc], [make_slice("ns3", "svc3", [ep("10.180.0.3")])], localhost_nodeports=False)
    assert "KUBE-FIREWALL -m comment" not in res.payload and "127.0.0.0/8 --dport" not in res.payload
    assert rules(p, "KUBE-SERVICES")[-1].endswith("-m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS")
    assert p.tables["filter"]["KUBE-FIREWALL"] == []      # EnsureChain'd for kubelet's jump, left empty


def test_ipv6_node():
    node = NodeView("test-node", "2001:db8::1")
    svc = make_service("ns1", "svc1", type="NodePort", clusterIP="fd00:172:30::41",
                       ports=[{**P80[0], "nodePort": 3001}])
    slices = [make_slice("ns1", "svc1", [ep("fd00:10:180::1")], address_type="IPv6"),
              make_slice("ns1", "svc1", [ep("10.180.0.1")], n=2)]
    p = proxier(node=node, cluster_cidr="fd00:10::/64")
    res = p.sync([svc], slices)
    sep = endpoint_chain("ns1/svc1:p80", "tcp", "[fd00:10:180::1]:80")
    assert rules(p, sep) == [f"-A {sep} -m comment --comment ns1/svc1:p80 -s fd00:10:180::1 -j KUBE-MARK-MASQ",
                             f"-A {sep} -m comment --comment ns1/svc1:p80 -m tcp -p tcp "
                             "-j DNAT --to-destination [fd00:10:180::1]:80"]
    assert "! -s fd00:10::/64" in rules(p, SVC1)[0] and len(rules(p, SVC1)) == 2
    assert rules(p, "KUBE-SERVICES")[-1].endswith("-m addrtype --dst-type LOCAL ! -d ::1/128 -j KUBE-NODEPORTS")
    assert "KUBE-FIREWALL" not in res.payload and "nfacct-name localhost" not in res.payload


def test_builtin_chain_jumps_in_fresh_node_order():
    """Each jump is prepended in proxier.go's list order (iptablesJumpChains, then
    iptablesKubeletJumpChains), so the last ensured sits on top."""
    p, _ = sync([], [])
    f, n = p.tables["filter"], p.tables["nat"]
    new, lbf = "-m conntrack --ctstate NEW", '-m comment --comment "kubernetes load balancer firewall"'
    assert f["INPUT"] == [
        "-A INPUT -j KUBE-FIREWALL",
        f"-A INPUT {new} {lbf} -j KUBE-PROXY-FIREWALL",
        '-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS',
        f'-A INPUT {new} -m comment --comment "kubernetes externally-visible service portals" '
        "-j KUBE-EXTERNAL-SERVICES"]
    assert [r.split(" -j ")[1] for r in f["FORWARD"]] == [
        "KUBE-PROXY-FIREWALL", "KUBE-FORWARD", "KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES"]
    assert [r.split(" -j ")[1] for r in f["OUTPUT"]] == ["KUBE-FIREWALL", "KUBE-PROXY-FIREWALL", "KUBE-SERVICES"]
    assert n["PREROUTING"] == ['-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES']
    assert n["OUTPUT"] == ['-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES']
    assert n["POSTROUTING"] == ['-A POSTROUTING -m comment --comment "kubernetes postrouting rules" '
                                "-j KUBE-POSTROUTING"]
    assert n["INPUT"] == [] and list(n)[:4] == ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"]
    p.sync([], [], full=True)
    assert p.tables["filter"]["INPUT"] == f["INPUT"]       # EnsureRule does not duplicate


def test_render_is_iptables_save_shaped():
    p, _ = sync(overall_services(), overall_slices())
    text = p.render()
    filt, nat = text.split("COMMIT\n")[:2]
    assert filt.splitlines()[:4] == ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    assert nat.splitlines()[:5] == ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]",
                                    ":OUTPUT ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]"]
    body = [ln for ln in nat.splitlines() if ln.startswith("-A")]
    assert body[0].startswith("-A PREROUTING") and body[2].startswith("-A POSTROUTING")
    assert text.endswith("COMMIT\n")


# ---- 5. partial sync ------------------------------------------------------------------------------
FILTER_BASE = """*filter
:KUBE-NODEPORTS - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
{services}-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
"""
NAT_TAIL = """-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE
"""
NAT_HEAD = ":KUBE-NODEPORTS - [0:0]\n:KUBE-SERVICES - [0:0]\n"
NAT_FIXED = ":KUBE-MARK-MASQ - [0:0]\n:KUBE-POSTROUTING - [0:0]\n"


def cluster_ip_rule(n, port=80):
    name = f"ns{n}/svc{n}:p{port}"
    return (f'-A KUBE-SERVICES -m comment --comment "{name} cluster IP" -m tcp -p tcp -d 172.30.0.4{n} '
            f"--dport {port} -j {service_chain('KUBE-SVC-', name, 'tcp')}\n")


def repeated_fixture():
    """ipt-test TestSyncProxyRulesRepeated's starting point: svc1 p80 and svc2 p8080."""
    svcs = {1: make_service("ns1", "svc1", clusterIP="172.30.0.41", ports=P80),
            2: make_service("ns2", "svc2", clusterIP="172.30.0.42",
                            ports=[{"name": "p8080", "port": 8080, "protocol": "TCP"}])}
    slices = {1: make_slice("ns1", "svc1", [ep("10.0.1.1")]),
              2: make_slice("ns2", "svc2", [ep("10.0.2.1")],
                            ports=[{"name": "p8080", "port": 8080, "protocol": "TCP"}])}
    return svcs, slices


def run(p, svcs, slices, **kw):
    return p.sync(list(svcs.values()), list(slices.values()), **kw)


def test_partial_sync_sequence_matches_kube_proxy():
    """ipt-test TestSyncProxyRulesRepeated: add a service, delete one, change and add endpoints,
    sync without changes; each payload exactly as kube-proxy writes it."""
    svcs, slices = repeated_fixture()
    p = proxier()
    assert run(p, svcs, slices).full
    base_total = p.sync(list(svcs.values()), list(slices.values())).rules_total["nat"]

    # add svc3 with an endpoint: only its chains are written
    svcs[3] = make_service("ns3", "svc3", clusterIP="172.30.0.43", ports=P80)
    slices[3] = make_slice("ns3", "svc3", [ep("10.0.3.1")])
    res = run(p, svcs, slices)
    assert not res.full and res.services_synced == 1
    assert sort_restore(res.payload) == FILTER_BASE.format(services="") + "*nat\n" + NAT_HEAD + NAT_FIXED + (
        ":KUBE-SEP-BSWRHOQ77KEXZLNL - [0:0]\n:KUBE-SVC-X27LE4BHSL4DOUIK - [0:0]\n"
        + cluster_ip_rule(1) + cluster_ip_rule(2, 8080) + cluster_ip_rule(3) + NAT_TAIL +
        "-A KUBE-SEP-BSWRHOQ77KEXZLNL -m comment --comment ns3/svc3:p80 -s 10.0.3.1 -j KUBE-MARK-MASQ\n"
        "-A KUBE-SEP-BSWRHOQ77KEXZLNL -m comment --comment ns3/svc3:p80 -m tcp -p tcp -j DNAT --to-destination 10.0.3.1:80\n"
        '-A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ\n'
        '-A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 -> 10.0.3.1:80" -j KUBE-SEP-BSWRHOQ77KEXZLNL\n'
        "COMMIT\n")
    assert res.rules_total["nat"] == base_total + 5

    # delete svc2: its chains are flushed and deleted, nothing else rewritten
    del svcs[2], slices[2]
    res = run(p, svcs, slices)
    assert res.stale_chains_deleted == 2 and res.services_synced == 0
    assert sort_restore(res.payload) == FILTER_BASE.format(services="") + "*nat\n" + NAT_HEAD + NAT_FIXED + (
        ":KUBE-SEP-UHEGFW77JX3KXTOV - [0:0]\n:KUBE-SVC-2VJB64SDSIJUP5T6 - [0:0]\n"
        + cluster_ip_rule(1) + cluster_ip_rule(3) + NAT_TAIL +
        "-X KUBE-SEP-UHEGFW77JX3KXTOV\n-X KUBE-SVC-2VJB64SDSIJUP5T6\nCOMMIT\n")
    assert res.rules_total["nat"] == base_total
    assert "KUBE-SVC-2VJB64SDSIJUP5T6" not in p.tables["nat"]

    # change svc3's endpoint IP: its SVC chain is rewritten, the old SEP chain deleted
    slices[3] = make_slice("ns3", "svc3", [ep("10.0.3.2")])
    res = run(p, svcs, slices)
    assert sort_restore(res.payload) == FILTER_BASE.format(services="") + "*nat\n" + NAT_HEAD + NAT_FIXED + (
        ":KUBE-SEP-BSWRHOQ77KEXZLNL - [0:0]\n:KUBE-SEP-DKCFIS26GWF2WLWC - [0:0]\n:KUBE-SVC-X27LE4BHSL4DOUIK - [0:0]\n"
        + cluster_ip_rule(1) + cluster_ip_rule(3) + NAT_TAIL +
        "-A KUBE-SEP-DKCFIS26GWF2WLWC -m comment --comment ns3/svc3:p80 -s 10.0.3.2 -j KUBE-MARK-MASQ\n"
        "-A KUBE-SEP-DKCFIS26GWF2WLWC -m comment --comment ns3/svc3:p80 -m tcp -p tcp -j DNAT --to-destination 10.0.3.2:80\n"
        '-A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ\n'
        '-A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 -> 10.0.3.2:80" -j KUBE-SEP-DKCFIS26GWF2WLWC\n'
        "-X KUBE-SEP-BSWRHOQ77KEXZLNL\nCOMMIT\n")

    # add an endpoint: three more nat rules in total
    slices[3] = make_slice("ns3", "svc3", [ep("10.0.3.2"), ep("10.0.3.3")])
    res = run(p, svcs, slices)
    assert res.rules_total["nat"] == base_total + 3
    assert "--probability 0.5000000000 -j KUBE-SEP-DKCFIS26GWF2WLWC" in res.payload
    assert "-A KUBE-SEP-JVVZVJ7BSEPPRNBS" in res.payload

    # no change: only the top-level chains
    res = run(p, svcs, slices)
    assert sort_restore(res.payload) == FILTER_BASE.format(services="") + "*nat\n" + NAT_HEAD + NAT_FIXED + (
        cluster_ip_rule(1) + cluster_ip_rule(3) + NAT_TAIL + "COMMIT\n")
    assert res.chains_sent == 10 and res.services_synced == 0 and res.stale_chains_deleted == 0


def test_service_without_endpoints_then_with_endpoints():
    svcs, slices = repeated_fixture()
    p = proxier()
    run(p, svcs, slices)
    svcs[4] = make_service("ns4", "svc4", clusterIP="172.30.0.44", ports=P80)
    res = run(p, svcs, slices)
    assert '-A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 has no endpoints"' in res.payload
    assert res.chains_sent == 10                      # the top-level chains only: no SVC/SEP chain
    slices[4] = make_slice("ns4", "svc4", [ep("10.0.4.1")])
    res = run(p, svcs, slices)
    assert ":KUBE-SVC-4SW47YFZTEDKD3PK - [0:0]" in res.payload and ":KUBE-SEP-AYCN5HPXMIRJNJXU - [0:0]" in res.payload
    assert ":KUBE-SVC-XPGD46QRK7WJZT7O" not in res.payload


def test_full_sync_triggers():
    svcs, slices = repeated_fixture()
    p = proxier(full_sync_period=100.0)
    assert run(p, svcs, slices, now=0.0).full
    assert not run(p, svcs, slices, now=50.0).full
    res = run(p, svcs, slices, now=60.0, full=True)
    assert res.full and res.services_synced == 2 and ":KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]" in res.payload
    assert not run(p, svcs, slices, now=159.0).full
    assert run(p, svcs, slices, now=160.0).full             # a full sync period since the last full one
    p.node = NodeView("test-node", "192.168.0.2", {"topology.kubernetes.io/zone": "zone-b"})
    assert run(p, svcs, slices, now=161.0).full              # node labels changed
    assert not run(p, svcs, slices, now=162.0).full


def test_unchanged_service_chains_survive_partial_syncs():
    p = proxier()
    svcs, slices = overall_services(), overall_slices()
    p.sync(svcs, slices)
    full_state = p.tables
    res = p.sync(svcs, slices)
    assert not res.full and res.services_synced == 0
    assert p.tables == full_state


def test_rules_total_counts_kube_chain_rules_in_render():
    p = proxier()
    svcs, slices = repeated_fixture()
    for step in range(3):
        res = run(p, svcs, slices)
        for table, text in zip(("filter", "nat"), p.render().split("COMMIT\n")):
            builtin = ("-A INPUT ", "-A FORWARD ", "-A OUTPUT ", "-A PREROUTING ", "-A POSTROUTING ")
            kube = [ln for ln in text.splitlines() if ln.startswith("-A ") and not ln.startswith(builtin)]
            assert res.rules_total[table] == len(kube)
        slices[1] = make_slice("ns1", "svc1", [ep(f"10.0.1.{i}") for i in range(1, step + 3)])


# ---- 6. kernel ------------------------------------------------------------------------------------
@pytest.mark.kernel
def test_render_loads_into_a_network_namespace():
    ok, reason = lab_available("iptables")
    if not ok:
        pytest.skip(reason)
    p = proxier(nfacct=False)       # nfacct matches need counters to exist in the kernel
    p.sync(overall_services(), overall_slices())
    lab = Namespaces()
    try:
        (ns,) = lab.add("load")
        lab.exec(ns, ["iptables-restore"], input=p.render())
        saved = lab.exec(ns, ["iptables-save"]).stdout
        kernel_rules = [ln for ln in saved.splitlines() if ln.startswith("-A ")]
        assert len(kernel_rules) == p.render().count("\n-A ")
        assert ":KUBE-SVC-NUKIZ6OKUXPJNT4C - [0:0]" in saved
    finally:
        lab.close()
