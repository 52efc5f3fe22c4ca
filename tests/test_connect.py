"""Service networking through the public API: ``Cluster.connect``/``connect_many`` on small clusters
built from YAML, checked against kube-proxy's documented behaviour (shared/reference/
kube-proxy-iptables-nftables.md 2.4-2.10, esp. the masquerade table in 2.6), and the golden ruleset of
kube-proxy's TestOverallIPTablesRules through ``Cluster.render``."""
from pathlib import Path

import pytest

from kslib import Cluster

GOLDEN = Path(__file__).parent / "data" / "iptables_golden.txt"
NODE_IP = {"node-1": "192.168.0.2", "node-2": "192.168.0.3", "node-3": "192.168.0.4"}
CNI0 = {"node-1": "10.244.0.1", "node-2": "10.244.1.1", "node-3": "10.244.2.1"}


# ---- manifests --------------------------------------------------------------------------------------------
def pod(name, node, app="web", ports=(8080,), protocol="TCP", ready=True):
    """A Pod YAML document, bound to ``node``; ``ports`` () declares none (it listens on any port)."""
    plist = ", ".join(f"{{containerPort: {p}, protocol: {protocol}}}" for p in ports)
    status = "" if ready else "\nstatus: {conditions: [{type: Ready, status: 'False'}]}"
    return (f"---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: {app}}}}}\n"
            f"spec: {{nodeName: {node}, containers: [{{name: c, ports: [{plist}]}}]}}{status}\n")


def client(name="client", node="node-1"):
    return pod(name, node, app="client", ports=())


WEB_SVC = """---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""


def cluster(*docs, nodes=2, seed=0, **kw):
    c = Cluster(nodes=nodes, seed=seed, **kw)
    c.apply("".join(docs))
    return c


def vip(c, name="web"):
    return c.get("svc", name).cluster_ip


def backends(c, src, dst, port, n=300, **kw):
    """The set of pods (and outcomes) ``n`` connections reach."""
    return set(c.connect_many(src, dst, port, n, **kw))


# ---- ClusterIP ----------------------------------------------------------------------------------------------
def test_pod_to_pod_ip_is_delivered_without_nat():
    c = cluster(client(), pod("web-1", "node-2"))
    conn = c.connect("client", c.pod("web-1").pod_ip, 8080)
    assert (conn.outcome, conn.pod, conn.source_ip) == ("delivered", "default/web-1", c.pod("client").pod_ip)
    assert conn.reply_source == c.pod("web-1").pod_ip


def test_pod_to_cluster_ip_is_delivered_with_the_pods_own_ip_as_source():
    c = cluster(client(), pod("web-1", "node-2"), WEB_SVC)
    conn = c.connect("client", vip(c), 80)
    assert (conn.outcome, conn.pod, conn.endpoint) == ("delivered", "default/web-1", f"{c.pod('web-1').pod_ip}:8080")
    assert conn.source_ip == c.pod("client").pod_ip
    assert conn.reply_source == vip(c)


def test_node_to_cluster_ip_is_masqueraded_to_the_node_ip_for_a_remote_backend():
    c = cluster(pod("web-1", "node-2"), WEB_SVC)
    conn = c.connect("node-1", vip(c), 80)
    assert (conn.outcome, conn.pod, conn.source_ip) == ("delivered", "default/web-1", NODE_IP["node-1"])
    assert conn.reply_source == vip(c)


def test_node_to_cluster_ip_is_masqueraded_to_cni0_for_a_backend_on_the_same_node():
    c = cluster(pod("web-1", "node-1"), WEB_SVC)
    conn = c.connect("node-1", vip(c), 80)
    assert (conn.outcome, conn.pod, conn.source_ip) == ("delivered", "default/web-1", CNI0["node-1"])


def test_node_to_a_service_backed_by_its_own_host_network_keeps_the_node_ip():
    c = Cluster(nodes=2)
    conn = c.connect("node-1", "10.96.0.1", 443)       # default/kubernetes -> 192.168.0.2:6443 on node-1
    assert (conn.outcome, conn.endpoint) == ("delivered", "192.168.0.2:6443")
    assert conn.source_ip == NODE_IP["node-1"]
    (e,) = [x for x in c.conntrack("node-1") if "dport=443" in x]
    assert "src=192.168.0.2 dst=192.168.0.2 sport=6443" in e


def test_a_host_network_pod_listens_on_its_nodes_address():
    # hostNetwork: the pod shares the node's network namespace, so its declared ports are the node's
    c = cluster(client(), WEB_SVC.replace("targetPort: 8080", "targetPort: 9100"))
    c.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: exporter, labels: {app: web}}\n"
            "spec:\n  nodeName: node-2\n  hostNetwork: true\n"
            "  containers: [{name: c, image: x, ports: [{containerPort: 9100}]}]\n")
    conn = c.connect("client", vip(c), 80)
    assert (conn.outcome, conn.endpoint) == ("delivered", f"{NODE_IP['node-2']}:9100")
    assert c.connect("client", NODE_IP["node-2"], 9100).outcome == "delivered"
    assert c.connect("client", NODE_IP["node-1"], 9100).outcome == "rejected"     # not on node-1


def test_hairpin_a_pod_reaching_itself_through_its_service_sees_its_nodes_cni0_address():
    c = cluster(pod("web-1", "node-2"), WEB_SVC)
    conn = c.connect("web-1", vip(c), 80)
    assert (conn.outcome, conn.pod) == ("delivered", "default/web-1")
    assert conn.source_ip == CNI0["node-2"]
    assert any(s.rule.endswith(f"-s {c.pod('web-1').pod_ip} -j KUBE-MARK-MASQ") for s in conn.trace)


def test_masquerade_all_masquerades_pod_traffic_too():
    c = cluster(client(), pod("web-1", "node-2"), WEB_SVC, masquerade_all=True)
    conn = c.connect("client", vip(c), 80)
    assert (conn.outcome, conn.source_ip) == ("delivered", NODE_IP["node-1"])


def test_udp_service_is_delivered():
    svc = ("---\napiVersion: v1\nkind: Service\nmetadata: {name: dns}\nspec:\n  selector: {app: dns}\n"
           "  ports: [{port: 53, protocol: UDP}]\n")
    c = cluster(client(), pod("dns-1", "node-2", app="dns", ports=(53,), protocol="UDP"), svc)
    conn = c.connect("client", vip(c, "dns"), 53, protocol="UDP")
    assert (conn.outcome, conn.pod, conn.reply_source) == ("delivered", "default/dns-1", vip(c, "dns"))
    assert c.connect("client", vip(c, "dns"), 53, protocol="TCP").outcome == "dropped"   # no TCP port 53


def test_cluster_ip_on_an_undefined_port_is_dropped():
    c = cluster(client(), pod("web-1", "node-2"), WEB_SVC)
    assert c.connect("client", vip(c), 81).outcome == "dropped"


def test_external_client_to_a_cluster_ip_without_via_is_dropped():
    c = cluster(pod("web-1", "node-2"), WEB_SVC)
    conn = c.connect("203.0.113.9", vip(c), 80)
    assert (conn.outcome, conn.pod) == ("dropped", None)


def test_external_client_to_a_cluster_ip_via_a_node_is_masqueraded():
    c = cluster(pod("web-1", "node-2"), WEB_SVC)
    conn = c.connect("203.0.113.9", vip(c), 80, via="node-1")
    assert (conn.outcome, conn.pod, conn.source_ip) == ("delivered", "default/web-1", NODE_IP["node-1"])


def test_pod_not_listening_on_the_target_port_refuses_the_connection():
    svc = WEB_SVC.replace("targetPort: 8080", "targetPort: 9999")
    c = cluster(client(), pod("web-1", "node-2"), svc)
    conn = c.connect("client", vip(c), 80)
    assert conn.outcome == "rejected"
    assert "refused" in conn.reason and "default/web-1" in conn.reason and ":9999" in conn.reason


def test_a_pod_declaring_no_ports_accepts_any_target_port():
    svc = WEB_SVC.replace("targetPort: 8080", "targetPort: 9999")
    c = cluster(client(), pod("web-1", "node-2", ports=()), svc)
    assert c.connect("client", vip(c), 80).outcome == "delivered"


# ---- endpoints: none, not ready, terminating ------------------------------------------------------------------
def test_service_without_endpoints_is_rejected_by_the_has_no_endpoints_rule():
    c = cluster(client(), WEB_SVC)
    conn = c.connect("client", vip(c), 80)
    assert conn.outcome == "rejected"
    rejects = [s for s in conn.trace if s.verdict == "REJECT"]
    assert rejects and '"default/web has no endpoints"' in rejects[0].rule
    assert rejects[0].rule in c.render("node-1").splitlines()


def test_a_not_ready_pod_is_never_chosen():
    c = cluster(client(), pod("web-1", "node-1"), pod("web-2", "node-2"), pod("web-3", "node-2", ready=False), WEB_SVC)
    assert backends(c, "client", vip(c), 80) == {"default/web-1", "default/web-2"}
    c.set_ready("web-1", False)
    assert backends(c, "client", vip(c), 80) == {"default/web-2"}
    c.set_ready("web-3", True)
    assert backends(c, "client", vip(c), 80) == {"default/web-2", "default/web-3"}


def test_publish_not_ready_addresses_routes_to_a_not_ready_pod():
    svc = WEB_SVC.replace("spec:\n", "spec:\n  publishNotReadyAddresses: true\n")
    c = cluster(client(), pod("web-1", "node-2", ready=False), svc)
    assert c.connect("client", vip(c), 80).pod == "default/web-1"


def test_all_endpoints_terminating_but_serving_still_receive_traffic():
    c = cluster(client(), pod("web-1", "node-1"), pod("web-2", "node-2"), WEB_SVC)
    c.delete("pod", "web-1")
    c.delete("pod", "web-2")
    conds = [e.conditions for s in c.endpoint_slices("web") for e in s.endpoints]
    assert len(conds) == 2
    assert all((x.ready, x.serving, x.terminating) == (False, True, True) for x in conds)
    assert backends(c, "client", vip(c), 80) == {"default/web-1", "default/web-2"}
    c.advance(31)                                      # past the 30 s grace period: the pods are gone
    assert c.connect("client", vip(c), 80).outcome == "rejected"


def test_a_ready_endpoint_is_preferred_over_terminating_ones():
    c = cluster(client(), pod("web-1", "node-1"), pod("web-2", "node-2"), WEB_SVC)
    c.delete("pod", "web-1")
    assert backends(c, "client", vip(c), 80) == {"default/web-2"}


# ---- session affinity ------------------------------------------------------------------------------------------
STICKY = """---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}
  ports: [{port: 80, targetPort: 8080}]
"""


def sticky_cluster():
    return cluster(client(), pod("web-1", "node-1"), pod("web-2", "node-2"), pod("web-3", "node-2"), STICKY, seed=4)


def test_session_affinity_sends_200_connections_from_one_pod_to_one_backend():
    c = sticky_cluster()
    assert len({c.connect("client", vip(c), 80).pod for _ in range(200)}) == 1


def test_session_affinity_lasts_timeout_seconds_then_the_choice_is_random_again():
    c = sticky_cluster()
    first = c.connect("client", vip(c), 80).pod
    c.advance(59)
    assert c.connect("client", vip(c), 80).pod == first        # within 60 s of the last --set
    chosen = []
    for _ in range(12):
        c.advance(61)                                            # the affinity timed out
        pick = c.connect("client", vip(c), 80).pod
        assert all(c.connect("client", vip(c), 80).pod == pick for _ in range(5))
        chosen.append(pick)
    assert len(set(chosen)) == 3, chosen


def test_session_affinity_survives_a_resync_and_moves_when_its_backend_goes():
    c = sticky_cluster()
    first = c.connect("client", vip(c), 80).pod
    c.apply(pod("web-4", "node-1") + client("other", "node-2"))     # kube-proxy rewrites the rules
    assert {c.connect("client", vip(c), 80).pod for _ in range(20)} == {first}
    c.delete("pod", first.split("/")[1])
    c.advance(31)
    after = {c.connect("client", vip(c), 80).pod for _ in range(20)}
    assert len(after) == 1 and first not in after


def test_session_affinity_is_per_client_ip():
    c = cluster(client("a", "node-1"), client("b", "node-2"), pod("web-1", "node-1"), pod("web-2", "node-2"),
                pod("web-3", "node-2"), STICKY, seed=2)
    for who in ("a", "b"):
        assert len(backends(c, who, vip(c), 80, n=200)) == 1


# ---- conntrack ----------------------------------------------------------------------------------------------------
def test_conntrack_shows_the_dnat_reply_tuple_until_it_expires():
    c = cluster(client(), pod("web-1", "node-2"), WEB_SVC)
    conn = c.connect("client", vip(c), 80)
    cip, wip = c.pod("client").pod_ip, c.pod("web-1").pod_ip
    entries = [e for e in c.conntrack("node-1") if f"dst={vip(c)}" in e]
    assert len(entries) == 1
    e = entries[0]
    assert e.startswith("tcp ")
    assert f"src={cip} dst={vip(c)} sport={conn.source_port} dport=80 src={wip} dst={cip} sport=8080 " \
           f"dport={conn.source_port}" in e
    assert conn.reply_source == vip(c)
    c.advance(121)                                     # TIME_WAIT is 120 s
    assert not [x for x in c.conntrack("node-1") if f"dst={vip(c)}" in x]


def test_udp_conntrack_entry_lasts_30_seconds():
    svc = ("---\napiVersion: v1\nkind: Service\nmetadata: {name: dns}\nspec:\n  selector: {app: dns}\n"
           "  ports: [{port: 53, protocol: UDP}]\n")
    c = cluster(client(), pod("dns-1", "node-2", app="dns", ports=(53,), protocol="UDP"), svc)
    c.connect("client", vip(c, "dns"), 53, protocol="UDP")
    (e,) = [x for x in c.conntrack("node-1") if f"dst={vip(c, 'dns')}" in x]
    assert e.startswith("udp ")
    c.advance(29)
    assert [x for x in c.conntrack("node-1") if f"dst={vip(c, 'dns')}" in x]
    c.advance(2)
    assert not [x for x in c.conntrack("node-1") if f"dst={vip(c, 'dns')}" in x]


def test_conntrack_of_a_masqueraded_connection_shows_the_snat_in_the_reply_tuple():
    c = cluster(pod("web-1", "node-2"), WEB_SVC)
    conn = c.connect("node-1", vip(c), 80)
    wip = c.pod("web-1").pod_ip
    (e,) = [x for x in c.conntrack("node-1") if f"dst={vip(c)}" in x]
    assert f"src={wip} dst={NODE_IP['node-1']} sport=8080" in e
    assert conn.reply_source == vip(c)


# ---- NodePort, externalTrafficPolicy ---------------------------------------------------------------------------------
NODEPORT = """---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
"""


def test_nodeport_from_outside_is_masqueraded_to_the_entry_node_and_forwarded():
    c = cluster(pod("web-1", "node-2"), NODEPORT)
    conn = c.connect("203.0.113.9", NODE_IP["node-1"], 30080, via="node-1")
    assert (conn.outcome, conn.pod, conn.node) == ("delivered", "default/web-1", "node-2")
    assert conn.source_ip == NODE_IP["node-1"]
    assert conn.reply_source == NODE_IP["node-1"]


def test_two_clients_masqueraded_to_one_node_ip_get_distinct_ports_and_their_own_replies():
    c = cluster(pod("web-1", "node-2"), NODEPORT)
    a = c.connect("203.0.113.1", NODE_IP["node-1"], 30080, via="node-1")
    b = c.connect("203.0.113.2", NODE_IP["node-1"], 30080, via="node-1")
    assert a.source_ip == b.source_ip == NODE_IP["node-1"]
    assert a.source_port != b.source_port
    assert a.reply_source == b.reply_source == NODE_IP["node-1"]


def test_localhost_nodeport_works_from_the_node():
    c = cluster(pod("web-1", "node-2"), NODEPORT)
    conn = c.connect("node-1", "127.0.0.1", 30080)
    assert (conn.outcome, conn.pod, conn.source_ip) == ("delivered", "default/web-1", NODE_IP["node-1"])


def test_a_pods_localhost_is_its_own_not_the_nodes():
    c = cluster(pod("client", "node-1", app="client", ports=(80,)), pod("web-1", "node-2"), NODEPORT)
    assert c.connect("client", "127.0.0.1", 30080).outcome == "rejected"
    conn = c.connect("client", "127.0.0.1", 80)
    assert (conn.outcome, conn.pod) == ("delivered", "default/client")


def test_nodeport_on_the_node_ip_without_via_enters_at_that_node():
    c = cluster(pod("web-1", "node-1"), NODEPORT)
    conn = c.connect("203.0.113.9", NODE_IP["node-2"], 30080)
    assert (conn.outcome, conn.pod, conn.source_ip) == ("delivered", "default/web-1", NODE_IP["node-2"])


LOCAL_LB = """---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
status:
  loadBalancer: {ingress: [{ip: 198.51.100.10}]}
"""


def local_cluster():
    return cluster(client("client", "node-3"), pod("web-1", "node-1"), pod("web-2", "node-2"), LOCAL_LB, nodes=3)


def test_etp_local_via_a_node_with_a_local_endpoint_keeps_the_client_ip():
    c = local_cluster()
    conn = c.connect("203.0.113.9", NODE_IP["node-1"], 30080, via="node-1")
    assert (conn.outcome, conn.pod, conn.source_ip) == ("delivered", "default/web-1", "203.0.113.9")
    assert backends(c, "203.0.113.9", NODE_IP["node-2"], 30080, via="node-2") == {"default/web-2"}


def test_etp_local_via_a_node_without_a_local_endpoint_is_dropped():
    c = local_cluster()
    conn = c.connect("203.0.113.9", NODE_IP["node-3"], 30080, via="node-3")
    assert (conn.outcome, conn.pod) == ("dropped", None)
    assert any("has no local endpoints" in s.rule for s in conn.trace)


def test_etp_local_lb_ip_from_outside_keeps_the_client_ip():
    c = local_cluster()
    for _ in range(20):                                  # the load balancer only picks healthy nodes
        conn = c.connect("203.0.113.9", "198.51.100.10", 80)
        assert conn.outcome == "delivered" and conn.source_ip == "203.0.113.9"


@pytest.mark.parametrize("dst, port", [("198.51.100.10", 80), (NODE_IP["node-3"], 30080)])
def test_pod_to_etp_local_lb_ip_or_nodeport_is_short_circuited_to_all_endpoints_without_masquerade(dst, port):
    c = local_cluster()                                  # the client's node-3 has no endpoint
    assert backends(c, "client", dst, port) == {"default/web-1", "default/web-2"}
    conn = c.connect("client", dst, port)
    assert conn.outcome == "delivered" and conn.source_ip == c.pod("client").pod_ip


def test_node_to_etp_local_lb_ip_is_masqueraded_and_reaches_all_endpoints():
    c = local_cluster()
    assert backends(c, "node-3", "198.51.100.10", 80) == {"default/web-1", "default/web-2"}
    assert c.connect("node-3", "198.51.100.10", 80).source_ip == NODE_IP["node-3"]


def test_health_check_node_port_is_accepted_on_the_host():
    c = local_cluster()
    hc = c.get("svc", "web").health_check_node_port
    assert hc
    for node in ("node-1", "node-3"):                    # with and without a local endpoint
        conn = c.connect("203.0.113.9", NODE_IP[node], hc, via=node)
        assert (conn.outcome, conn.pod, conn.node) == ("delivered", None, node)


# ---- internalTrafficPolicy ----------------------------------------------------------------------------------------
ITP_LOCAL = WEB_SVC.replace("spec:\n", "spec:\n  internalTrafficPolicy: Local\n")


def test_itp_local_from_a_node_without_a_local_endpoint_is_dropped():
    c = cluster(client("client", "node-2"), pod("web-1", "node-1"), ITP_LOCAL)
    for src in ("client", "node-2"):
        conn = c.connect(src, vip(c), 80)
        assert (conn.outcome, conn.pod) == ("dropped", None), src
    assert any("has no local endpoints" in s.rule for s in c.connect("client", vip(c), 80).trace)


def test_itp_local_from_a_node_with_a_local_endpoint_is_delivered_locally():
    c = cluster(client("client", "node-1"), pod("web-1", "node-1"), pod("web-2", "node-2"), ITP_LOCAL)
    assert backends(c, "client", vip(c), 80) == {"default/web-1"}
    conn = c.connect("node-1", vip(c), 80)
    assert (conn.outcome, conn.pod, conn.node) == ("delivered", "default/web-1", "node-1")


# ---- externalIPs and LoadBalancer source ranges ---------------------------------------------------------
EXTERNAL_IP = WEB_SVC.replace("spec:\n", "spec:\n  externalIPs: [198.51.100.20]\n")


def test_external_ip_is_captured_from_a_pod_and_from_outside():
    c = cluster(client(), pod("web-1", "node-2"), EXTERNAL_IP)
    conn = c.connect("client", "198.51.100.20", 80)
    assert (conn.outcome, conn.pod) == ("delivered", "default/web-1")
    conn = c.connect("203.0.113.9", "198.51.100.20", 80, via="node-1")
    assert (conn.outcome, conn.pod, conn.source_ip) == ("delivered", "default/web-1", NODE_IP["node-1"])


def test_external_ip_on_another_port_is_not_captured():
    c = cluster(client(), pod("web-1", "node-2"), EXTERNAL_IP)
    conn = c.connect("client", "198.51.100.20", 81)
    assert conn.pod is None and conn.endpoint in (None, "198.51.100.20:81")


SOURCE_RANGES = """---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: LoadBalancer
  selector: {app: web}
  loadBalancerSourceRanges: [203.0.113.0/25]
  ports: [{port: 80, targetPort: 8080}]
status:
  loadBalancer: {ingress: [{ip: 198.51.100.10}]}
"""


def test_lb_ip_with_source_ranges_admits_an_allowed_source():
    c = cluster(pod("web-1", "node-2"), SOURCE_RANGES)
    conn = c.connect("203.0.113.5", "198.51.100.10", 80)
    assert (conn.outcome, conn.pod) == ("delivered", "default/web-1")


def test_lb_ip_with_source_ranges_drops_any_other_source():
    c = cluster(client(), pod("web-1", "node-2"), SOURCE_RANGES)
    conn = c.connect("203.0.113.200", "198.51.100.10", 80)
    assert (conn.outcome, conn.pod) == ("dropped", None)
    assert any("traffic not accepted by KUBE-FW-" in s.rule for s in conn.trace)
    assert c.connect("client", "198.51.100.10", 80).outcome == "dropped"      # a pod outside the ranges too
    assert c.connect("client", vip(c), 80).outcome == "delivered"             # the ClusterIP is not filtered


# ---- bad input -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small():
    return cluster(client(), pod("web-1", "node-2"), WEB_SVC)


@pytest.mark.parametrize("src", ["nobody", "default/nobody", "node-9", "", "10.0.0.999", "kube-system/client", 42,
                                 None, "10.96.0.1", "192.168.0.2"])
def test_an_unknown_source_is_a_value_error_naming_src(small, src):
    with pytest.raises(ValueError, match="src"):
        small.connect(src, vip(small), 80)
    with pytest.raises(ValueError, match="src"):
        small.connect_many(src, vip(small), 80, 10)


@pytest.mark.parametrize("dst", ["", "bad host!", "::1", None, 167772161])
def test_a_bad_destination_is_a_value_error_naming_dst(small, dst):
    with pytest.raises(ValueError, match="dst"):
        small.connect("client", dst, 80)


@pytest.mark.parametrize("protocol", ["ICMP", "tcpx", "", None, 6])
def test_a_bad_protocol_is_a_value_error_naming_protocol(small, protocol):
    with pytest.raises(ValueError, match="protocol"):
        small.connect("client", vip(small), 80, protocol=protocol)


@pytest.mark.parametrize("port", [0, 70000, -1, 65536, 80.5, True])
def test_a_bad_port_is_a_value_error_naming_port(small, port):
    with pytest.raises(ValueError, match="port"):
        small.connect("client", vip(small), port)
    with pytest.raises(ValueError, match="port"):
        small.connect_many("client", vip(small), port, 10)


def test_lowercase_protocol_is_accepted(small):
    assert small.connect("client", vip(small), 80, protocol="tcp").outcome == "delivered"


def test_render_and_conntrack_of_an_unknown_node_are_key_errors_naming_it(small):
    with pytest.raises(KeyError, match="node-9"):
        small.render("node-9")
    with pytest.raises(KeyError, match="node-9"):
        small.conntrack("node-9")


def test_via_an_unknown_node_is_a_value_error_naming_via(small):
    with pytest.raises(ValueError, match="via"):
        small.connect("203.0.113.9", vip(small), 80, via="node-9")


def test_every_trace_step_prints_as_one_line(small):
    conn = small.connect("client", vip(small), 80)
    assert len(conn.trace) > 5
    for step in conn.trace:
        text = str(step)
        assert text and "\n" not in text and step.node in text


# ---- the golden ruleset ----------------------------------------------------------------------------------------------
GOLDEN_YAML = """---
apiVersion: v1
kind: Service
metadata: {name: svc1, namespace: ns1}
spec:
  clusterIP: 172.30.0.41
  ports: [{name: p80, port: 80, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: svc2, namespace: ns2}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  clusterIP: 172.30.0.42
  ports: [{name: p80, port: 80, protocol: TCP, nodePort: 3001}]
  externalIPs: [192.168.99.22]
  healthCheckNodePort: 30000
status:
  loadBalancer: {ingress: [{ip: 1.2.3.4}]}
---
apiVersion: v1
kind: Service
metadata: {name: svc3, namespace: ns3}
spec:
  type: NodePort
  clusterIP: 172.30.0.43
  ports: [{name: p80, port: 80, protocol: TCP, nodePort: 3003}]
---
apiVersion: v1
kind: Service
metadata: {name: svc4, namespace: ns4}
spec:
  type: NodePort
  clusterIP: 172.30.0.44
  externalIPs: [192.168.99.33]
  ports: [{name: p80, port: 80, protocol: TCP, targetPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: svc5, namespace: ns5}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Cluster
  clusterIP: 172.30.0.45
  ports: [{name: p80, port: 80, protocol: TCP, nodePort: 3002}]
  loadBalancerSourceRanges: [" 203.0.113.0/25"]
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 10800}}
status:
  loadBalancer: {ingress: [{ip: 5.6.7.8}]}
---
apiVersion: v1
kind: Service
metadata: {name: svc6, namespace: ns6}
spec:
  type: ClusterIP
  clusterIP: 172.30.0.46
  ports: [{name: p80, port: 80, protocol: TCP, targetPort: 80}]
""" + "".join(f"""---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {svc}-1
  namespace: {ns}
  labels: {{kubernetes.io/service-name: {svc}}}
addressType: IPv4
ports: [{{name: p80, port: 80, protocol: TCP}}]
endpoints: [{eps}]
""" for ns, svc, eps in [
    ("ns1", "svc1", "{addresses: [10.180.0.1]}"),
    ("ns2", "svc2", "{addresses: [10.180.0.2]}"),
    ("ns3", "svc3", "{addresses: [10.180.0.3]}"),
    ("ns4", "svc4", "{addresses: [10.180.0.4]}, {addresses: [10.180.0.5], nodeName: test-node}"),
    ("ns5", "svc5", "{addresses: [10.180.0.3]}"),
])


def test_the_golden_ruleset_of_kube_proxys_overall_test_through_the_public_api():
    c = Cluster(cluster_cidr="10.0.0.0/8", service_cidr="172.30.0.0/16", node_port_range="3000-32767",
                nodes=["test-node"])
    c.apply(GOLDEN_YAML)
    assert c.nodes[0].internal_ip == "192.168.0.2"
    rendered = set(c.render("test-node").splitlines())
    missing = [line for line in GOLDEN.read_text().splitlines() if "svc4" not in line and line not in rendered]
    assert missing == []


def test_the_golden_cluster_routes_its_services():
    c = Cluster(cluster_cidr="10.0.0.0/8", service_cidr="172.30.0.0/16", node_port_range="3000-32767",
                nodes=["test-node"])
    c.apply(GOLDEN_YAML)
    assert c.connect("test-node", "172.30.0.46", 80).outcome == "rejected"                  # svc6: no endpoints
    assert c.connect("203.0.113.200", "5.6.7.8", 80, via="test-node").outcome == "dropped"  # svc5 source ranges
    conn = c.connect("test-node", "172.30.0.41", 80)                                       # svc1: 10.180.0.1
    assert conn.endpoint == "10.180.0.1:80" and conn.pod is None
