"""The cluster DNS server (``Cluster.dns``): the records CoreDNS's kubernetes plugin serves, NXDOMAIN
vs NODATA, SRV priority/weight/port/target, ExternalName, pod records, PTR, TTLs and the SOA, and the
server's settings, checked against shared/reference/controlplane-dns.md section 4 (CoreDNS v1.14
plugin/kubernetes and plugin/backend_lookup.go)."""
import pytest

from kslib import Cluster
from kslib.dns import SRV, Record

ZONE = "cluster.local."
SOA_PREFIX = "ns.dns.cluster.local. hostmaster.cluster.local. "

SHOP = """
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: shop}
spec: {nodeName: node-1, containers: [{name: c}]}
---
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec:
  clusterIP: 10.96.100.10
  selector: {app: cart}
  ports: [{name: http, port: 80, targetPort: 8080}, {name: grpc, port: 9090}]
---
apiVersion: v1
kind: Pod
metadata: {name: cart-1, namespace: shop, labels: {app: cart}}
spec: {nodeName: node-1, containers: [{name: c, ports: [{containerPort: 8080}, {containerPort: 9090}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: cart-2, namespace: shop, labels: {app: cart}}
spec: {nodeName: node-2, containers: [{name: c, ports: [{containerPort: 8080}, {containerPort: 9090}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: billing}
spec: {clusterIP: 10.96.100.20, selector: {app: cart}, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Pod
metadata: {name: cart-b, namespace: billing, labels: {app: cart}}
spec: {nodeName: node-2, containers: [{name: c, ports: [{containerPort: 8080}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec: {clusterIP: None, selector: {app: db}, ports: [{name: pg, port: 5432}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec:
  serviceName: db
  replicas: 3
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: pg, ports: [{name: pg, containerPort: 5432}]}]
---
apiVersion: v1
kind: Service
metadata: {name: mail, namespace: shop}
spec: {type: ExternalName, externalName: smtp.example.com}
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: shop}
spec: {clusterIP: 10.96.100.30, selector: {app: nothing}, ports: [{port: 80}]}
"""


def shop_cluster(**kw):
    c = Cluster(nodes=2, **kw)
    c.apply(SHOP)
    c.dns.upstream.add("smtp.example.com", "203.0.113.25")
    return c


@pytest.fixture(scope="module")
def shop():
    """Read-only: tests that change the cluster build their own."""
    return shop_cluster()


def ip(c, pod):
    return c.pod(pod).pod_ip


def soa_only(answer):
    return [r.type for r in answer.authority] == ["SOA"] and answer.authority[0].name == ZONE


# ---- A records ------------------------------------------------------------------------------------------------
def test_clusterip_service_answers_its_cluster_ip(shop):
    a = shop.dns.query("cart.shop.svc.cluster.local", "A")
    assert (a.rcode, a.answer, a.authority) == (
        "NOERROR", [Record("cart.shop.svc.cluster.local.", "A", 30, "10.96.100.10")], [])


def test_clusterip_service_without_endpoints_still_answers(shop):
    assert shop.dns.query("empty.shop.svc.cluster.local").data == ["10.96.100.30"]


def test_same_service_name_in_two_namespaces(shop):
    assert shop.dns.query("cart.billing.svc.cluster.local").data == ["10.96.100.20"]


def test_headless_service_answers_one_a_per_ready_endpoint(shop):
    a = shop.dns.query("db.shop.svc.cluster.local", "A")
    assert a.rcode == "NOERROR"
    assert sorted(a.data) == sorted(ip(shop, f"shop/db-{i}") for i in range(3))
    assert {(r.name, r.type, r.ttl) for r in a.answer} == {("db.shop.svc.cluster.local.", "A", 30)}


def test_statefulset_pods_get_hostname_records_under_the_headless_service(shop):
    for i in range(3):
        a = shop.dns.query(f"db-{i}.db.shop.svc.cluster.local")
        assert a.answer == [Record(f"db-{i}.db.shop.svc.cluster.local.", "A", 30, ip(shop, f"shop/db-{i}"))]


def test_endpoint_without_hostname_is_named_by_its_dashed_ip_even_under_a_clusterip_service(shop):
    pod_ip = ip(shop, "shop/cart-1")
    name = f"{pod_ip.replace('.', '-')}.cart.shop.svc.cluster.local"
    assert shop.dns.query(name).data == [pod_ip]


def test_names_are_case_insensitive(shop):
    assert shop.dns.query("CART.Shop.SVC.cluster.LOCAL").data == ["10.96.100.10"]


# ---- NXDOMAIN / NODATA --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [
    "cart.nowhere.svc.cluster.local",            # namespace that does not exist
    "nope.shop.svc.cluster.local",               # Service that does not exist
    "db-7.db.shop.svc.cluster.local",            # endpoint hostname that does not exist
    "_nope._tcp.cart.shop.svc.cluster.local",    # unknown port name
    "_http._udp.cart.shop.svc.cluster.local",    # known port, wrong protocol
    "x.y.z.svc.shop.svc.cluster.local",          # too many labels
    "cart.shop.foo.cluster.local",               # neither svc nor pod where one belongs
    "nowhere.svc.cluster.local",                 # <ns>.svc of a namespace that does not exist
    "apex.dns.cluster.local",
])
def test_nxdomain_cases_carry_the_soa(shop, name):
    a = shop.dns.query(name, "A")
    assert (a.rcode, a.answer) == ("NXDOMAIN", [])
    assert soa_only(a)


@pytest.mark.parametrize("name,qtype", [
    ("cluster.local", "A"),                      # the apex
    ("svc.cluster.local", "A"),
    ("pod.cluster.local", "A"),
    ("shop.svc.cluster.local", "A"),             # <ns>.svc of an existing namespace
    ("default.svc.cluster.local", "A"),          # a namespace every cluster starts with
    ("cart.shop.svc.cluster.local", "AAAA"),     # IPv4-only Service asked for AAAA
    ("cart.shop.svc.cluster.local", "MX"),       # a type no Service has
    ("cart.shop.svc.cluster.local", "TXT"),
    ("db-0.db.shop.svc.cluster.local", "AAAA"),
])
def test_nodata_cases_are_noerror_with_an_empty_answer_and_the_soa(shop, name, qtype):
    a = shop.dns.query(name, qtype)
    assert (a.rcode, a.answer, a.nodata, a.status) == ("NOERROR", [], True, "NODATA")
    assert soa_only(a)


def test_txt_for_a_name_that_does_not_exist_is_nxdomain(shop):
    assert shop.dns.query("nope.shop.svc.cluster.local", "TXT").rcode == "NXDOMAIN"


def test_txt_dns_version_is_the_schema_version(shop):
    assert shop.dns.query("dns-version.cluster.local", "TXT").answer == [
        Record("dns-version.cluster.local.", "TXT", 28800, '"1.1.0"')]


# ---- SRV ---------------------------------------------------------------------------------------------------------
def test_srv_for_a_named_port_of_a_clusterip_service(shop):
    a = shop.dns.query("_http._tcp.cart.shop.svc.cluster.local", "SRV")
    assert a.answer == [Record("_http._tcp.cart.shop.svc.cluster.local.", "SRV", 30,
                               "0 100 80 cart.shop.svc.cluster.local.")]
    assert a.answer[0].srv == SRV(priority=0, weight=100, port=80, target="cart.shop.svc.cluster.local.")
    assert a.additional == [Record("cart.shop.svc.cluster.local.", "A", 30, "10.96.100.10")]


def test_srv_labels_match_without_underscores_and_ignoring_case(shop):
    assert shop.dns.query("HTTP.tcp.cart.shop.svc.cluster.local", "SRV").answer[0].srv.port == 80


def test_bare_srv_matches_every_port_and_splits_the_weight(shop):
    a = shop.dns.query("cart.shop.svc.cluster.local", "SRV")
    assert [r.srv for r in a.answer] == [SRV(0, 50, 80, "cart.shop.svc.cluster.local."),
                                         SRV(0, 50, 9090, "cart.shop.svc.cluster.local.")]
    assert a.additional == [Record("cart.shop.svc.cluster.local.", "A", 30, "10.96.100.10")]


def test_bare_srv_includes_unnamed_ports(shop):
    assert [r.srv for r in shop.dns.query("empty.shop.svc.cluster.local", "SRV").answer] == [
        SRV(0, 100, 80, "empty.shop.svc.cluster.local.")]


def test_srv_of_a_headless_service_names_each_ready_endpoint(shop):
    a = shop.dns.query("_pg._tcp.db.shop.svc.cluster.local", "SRV")
    assert sorted(r.srv for r in a.answer) == [SRV(0, 33, 5432, f"db-{i}.db.shop.svc.cluster.local.") for i in range(3)]
    assert sorted((r.name, r.data) for r in a.additional) == [
        (f"db-{i}.db.shop.svc.cluster.local.", ip(shop, f"shop/db-{i}")) for i in range(3)]


# ---- ExternalName -------------------------------------------------------------------------------------------------
def test_externalname_answers_a_cname_and_the_upstream_address(shop):
    a = shop.dns.query("mail.shop.svc.cluster.local", "A")
    assert a.answer == [Record("mail.shop.svc.cluster.local.", "CNAME", 30, "smtp.example.com."),
                        Record("smtp.example.com.", "A", 300, "203.0.113.25")]


def test_externalname_cname_query(shop):
    assert shop.dns.query("mail.shop.svc.cluster.local", "CNAME").data == ["smtp.example.com."]


def test_externalname_with_an_unknown_target_is_a_cname_alone():
    c = Cluster(nodes=1)
    c.apply("apiVersion: v1\nkind: Service\nmetadata: {name: ext}\n"
            "spec: {type: ExternalName, externalName: nowhere.example.org}")
    a = c.dns.query("ext.default.svc.cluster.local")
    assert (a.rcode, a.data) == ("NOERROR", ["nowhere.example.org."])


def test_externalname_bare_srv_is_nodata_and_labels_under_it_are_nxdomain(shop):
    assert shop.dns.query("mail.shop.svc.cluster.local", "SRV").status == "NODATA"
    assert shop.dns.query("_smtp._tcp.mail.shop.svc.cluster.local", "SRV").rcode == "NXDOMAIN"
    assert shop.dns.query("_smtp._tcp.mail.shop.svc.cluster.local", "A").rcode == "NXDOMAIN"
    assert shop.dns.query("x.mail.shop.svc.cluster.local", "A").rcode == "NXDOMAIN"


def test_externalname_pointing_inside_the_zone_is_followed_there():
    c = shop_cluster()
    c.apply("apiVersion: v1\nkind: Service\nmetadata: {name: alias, namespace: shop}\n"
            "spec: {type: ExternalName, externalName: cart.billing.svc.cluster.local}")
    assert c.dns.query("alias.shop.svc.cluster.local").data == ["cart.billing.svc.cluster.local.", "10.96.100.20"]


# ---- EndpointSlice readiness ---------------------------------------------------------------------------------------
MANUAL = """
apiVersion: v1
kind: Service
metadata: {name: manual, namespace: shop}
spec: {clusterIP: None}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: manual-1, namespace: shop, labels: {kubernetes.io/service-name: manual}}
addressType: IPv4
endpoints:
- {addresses: [10.244.9.9], conditions: {}}
- {addresses: [10.244.9.10], conditions: {ready: false, serving: true}}
- {addresses: [10.244.9.11], hostname: x, conditions: {ready: true}}
ports: []
"""


def test_records_come_from_endpointslices_with_ready_true_or_unset():
    c = Cluster(nodes=1)
    c.apply(MANUAL)
    assert c.dns.query("manual.shop.svc.cluster.local").data == ["10.244.9.9", "10.244.9.11"]
    assert c.dns.query("x.manual.shop.svc.cluster.local").data == ["10.244.9.11"]
    assert c.dns.query("10-244-9-10.manual.shop.svc.cluster.local").rcode == "NXDOMAIN"
    # a slice without ports gives no SRV records: the name exists, so NODATA
    assert c.dns.query("manual.shop.svc.cluster.local", "SRV").status == "NODATA"


def test_headless_with_not_ready_pods_and_publish_not_ready_addresses():
    c = shop_cluster()
    c.set_ready("shop/db-1", False)
    a = c.dns.query("db.shop.svc.cluster.local")
    assert sorted(a.data) == sorted([ip(c, "shop/db-0"), ip(c, "shop/db-2")])
    assert c.dns.query("db-1.db.shop.svc.cluster.local").rcode == "NXDOMAIN"
    assert {r.srv.weight for r in c.dns.query("_pg._tcp.db.shop.svc.cluster.local", "SRV").answer} == {50}

    c.set_ready("shop/db-0", False)
    c.set_ready("shop/db-2", False)
    a = c.dns.query("db.shop.svc.cluster.local")
    assert (a.rcode, a.answer) == ("NXDOMAIN", [])               # headless with no ready endpoint
    assert c.dns.query("cart.shop.svc.cluster.local").rcode == "NOERROR"

    c.apply("apiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: shop}\n"
            "spec: {clusterIP: None, publishNotReadyAddresses: true, selector: {app: db},"
            " ports: [{name: pg, port: 5432}]}")
    assert sorted(c.dns.query("db.shop.svc.cluster.local").data) == sorted(ip(c, f"shop/db-{i}") for i in range(3))
    assert c.dns.query("db-1.db.shop.svc.cluster.local").data == [ip(c, "shop/db-1")]


def test_hostname_and_subdomain_pod_gets_its_own_name():
    c = Cluster(nodes=1)
    c.apply("""
apiVersion: v1
kind: Service
metadata: {name: team}
spec: {clusterIP: None, selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-a, labels: {app: web}}
spec: {hostname: alpha, subdomain: team, containers: [{name: c}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-b, labels: {app: web}}
spec: {containers: [{name: c}]}
""")
    assert c.dns.query("alpha.team.default.svc.cluster.local").data == [ip(c, "web-a")]
    b = ip(c, "web-b")
    assert c.dns.query(f"{b.replace('.', '-')}.team.default.svc.cluster.local").data == [b]
    assert sorted(c.dns.query("team.default.svc.cluster.local").data) == sorted([ip(c, "web-a"), b])


# ---- pod records -----------------------------------------------------------------------------------------------------
def test_pods_insecure_answers_any_ip_shaped_name_in_an_existing_namespace(shop):
    assert shop.dns.pods == "insecure"
    assert shop.dns.query("10-244-7-7.shop.pod.cluster.local").answer == [
        Record("10-244-7-7.shop.pod.cluster.local.", "A", 30, "10.244.7.7")]
    assert shop.dns.query("10-244-7-7.nowhere.pod.cluster.local").rcode == "NXDOMAIN"
    assert shop.dns.query("not-an-ip.shop.pod.cluster.local").rcode == "NXDOMAIN"
    assert shop.dns.query("10-244-7-7.shop.pod.cluster.local", "AAAA").status == "NODATA"


def test_pods_verified_answers_only_a_pod_with_that_ip_in_that_namespace():
    c = shop_cluster(dns_pods="verified")
    client = ip(c, "shop/client").replace(".", "-")
    assert c.dns.query(f"{client}.shop.pod.cluster.local").data == [ip(c, "shop/client")]
    assert c.dns.query(f"{client}.billing.pod.cluster.local").rcode == "NXDOMAIN"
    assert c.dns.query("10-244-7-7.shop.pod.cluster.local").rcode == "NXDOMAIN"


def test_pods_disabled_is_nxdomain_but_the_pod_label_itself_is_nodata():
    c = shop_cluster(dns_pods="disabled")
    assert c.dns.query(f"{ip(c, 'shop/client').replace('.', '-')}.shop.pod.cluster.local").rcode == "NXDOMAIN"
    assert c.dns.query("shop.pod.cluster.local").rcode == "NXDOMAIN"
    assert c.dns.query("pod.cluster.local").status == "NODATA"


# ---- PTR ------------------------------------------------------------------------------------------------------------
def reverse(address):
    return ".".join(reversed(address.split("."))) + ".in-addr.arpa"


def test_ptr_for_a_cluster_ip_and_for_endpoints(shop):
    assert shop.dns.query(reverse("10.96.100.10"), "PTR").data == ["cart.shop.svc.cluster.local."]
    assert shop.dns.query(reverse(ip(shop, "shop/db-2")), "PTR").data == ["db-2.db.shop.svc.cluster.local."]
    cart = ip(shop, "shop/cart-1")
    assert shop.dns.query(reverse(cart), "PTR").data == [f"{cart.replace('.', '-')}.cart.shop.svc.cluster.local."]


def test_ptr_for_an_unknown_address_falls_through_to_the_upstream(shop):
    a = shop.dns.query(reverse("192.0.2.99"), "PTR")
    assert (a.rcode, a.server) == ("NXDOMAIN", "upstream")


# ---- SOA, NS, TTL ----------------------------------------------------------------------------------------------------
def test_soa_record_and_ns_of_the_zone(shop):
    soa = shop.dns.query("cluster.local", "SOA").answer[0]
    assert (soa.name, soa.type, soa.ttl) == (ZONE, "SOA", 30)
    assert soa.data.startswith(SOA_PREFIX) and soa.data.endswith(" 7200 1800 86400 30")
    ns = shop.dns.query("cluster.local", "NS")
    assert ns.data == ["ns.dns.cluster.local."]
    assert ns.additional == [Record("ns.dns.cluster.local.", "A", 30, "10.96.0.10")]
    assert shop.dns.query("ns.dns.cluster.local").data == ["10.96.0.10"]


def test_soa_serial_is_the_time_of_the_last_service_or_slice_change():
    c = shop_cluster()
    before = int(c.dns.query("cluster.local", "SOA").answer[0].data.split()[2])
    c.advance(100)
    assert int(c.dns.query("cluster.local", "SOA").answer[0].data.split()[2]) == before
    c.apply("apiVersion: v1\nkind: Service\nmetadata: {name: late}\nspec: {ports: [{port: 80}]}")
    assert int(c.dns.query("cluster.local", "SOA").answer[0].data.split()[2]) == before + 100


def test_ttl_setting_applies_to_every_record_and_the_soa_caps_at_300():
    c = shop_cluster(dns_ttl=3600)
    assert c.dns.query("cart.shop.svc.cluster.local").answer[0].ttl == 3600
    soa = c.dns.query("nope.shop.svc.cluster.local").authority[0]
    assert soa.ttl == 300 and soa.data.endswith(" 3600")
    c.dns.ttl = 0
    assert c.dns.query("_http._tcp.cart.shop.svc.cluster.local", "SRV").answer[0].ttl == 0
    assert c.dns.query("cluster.local", "SOA").answer[0].ttl == 0


def test_the_default_ttl_is_kubeadms_30_and_the_corefile_shows_the_settings():
    c = Cluster(dns_pods="verified", dns_ttl=5)
    text = c.dns.corefile()
    assert "kubernetes cluster.local in-addr.arpa ip6.arpa {\n       pods verified\n" in text
    assert "       ttl 5\n" in text and "forward . /etc/resolv.conf" in text
    assert Cluster().dns.ttl == 30


def test_cluster_domain_is_configurable():
    c = Cluster(nodes=1, cluster_domain="corp.internal")
    c.apply("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {clusterIP: 10.96.5.5, ports: [{port: 80}]}")
    assert c.dns.query("web.default.svc.corp.internal").data == ["10.96.5.5"]
    a = c.dns.query("web.default.svc.cluster.local")
    assert (a.rcode, a.server) == ("NXDOMAIN", "upstream")     # not the cluster's zone any more


def test_cluster_dns_defaults_to_the_10th_address_of_the_service_cidr():
    assert Cluster(service_cidr="10.0.0.0/24").dns.ip == "10.0.0.10"
    assert Cluster(cluster_dns="10.96.0.53").dns.query("ns.dns.cluster.local").data == ["10.96.0.53"]


def test_requests_count_replies_by_rcode():
    c = shop_cluster()
    c.dns.query("cart.shop.svc.cluster.local")
    c.dns.query("nope.shop.svc.cluster.local")
    c.dns.query("shop.svc.cluster.local")
    assert c.dns.requests == {"NOERROR": 2, "NXDOMAIN": 1}


# ---- the upstream ----------------------------------------------------------------------------------------------------
def test_upstream_store_answers_what_a_lesson_adds():
    c = Cluster()
    up = c.dns.upstream
    up.add("api.example.com", "203.0.113.10", "203.0.113.11", ttl=60)
    up.add("www.example.com", "api.example.com")
    assert c.dns.query("api.example.com").answer == [Record("api.example.com.", "A", 60, "203.0.113.10"),
                                                     Record("api.example.com.", "A", 60, "203.0.113.11")]
    assert c.dns.query("www.example.com").data == ["api.example.com.", "203.0.113.10", "203.0.113.11"]
    assert c.dns.query("api.example.com", "AAAA").status == "NODATA"
    assert c.dns.query("example.com").status == "NODATA"            # a name with names below it exists
    assert c.dns.query("nope.example.com").rcode == "NXDOMAIN"
    up.remove("api.example.com")
    assert c.dns.query("api.example.com").rcode == "NXDOMAIN"


# ---- bad input -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw,field", [
    ({"dns_ttl": 3601}, "dns_ttl"), ({"dns_ttl": -1}, "dns_ttl"), ({"dns_ttl": "30"}, "dns_ttl"),
    ({"dns_ttl": True}, "dns_ttl"), ({"dns_pods": "maybe"}, "dns_pods"), ({"cluster_dns": "10.96.0"}, "cluster_dns"),
    ({"cluster_domain": "Cluster_Local"}, "cluster_domain"), ({"cluster_domain": ""}, "cluster_domain"),
    ({"node_resolv_conf": "nameserver dns.example.com"}, "node_resolv_conf line 1"),
    ({"node_resolv_conf": "nameserver 192.0.2.1\noptions ndots:x"}, "node_resolv_conf line 2"),
])
def test_bad_dns_options_name_the_field(kw, field):
    with pytest.raises(ValueError, match=f"^{field}: "):
        Cluster(**kw)


def test_bad_runtime_settings_name_the_setting():
    c = Cluster()
    with pytest.raises(ValueError, match='^pods: Unsupported value: "on": '
                                         'supported values: "disabled", "insecure", "verified"'):
        c.dns.pods = "on"
    with pytest.raises(ValueError, match="^ttl: Invalid value: 4000: must be between 0 and 3600, inclusive"):
        c.dns.ttl = 4000
    assert (c.dns.pods, c.dns.ttl) == ("insecure", 30)


@pytest.mark.parametrize("qname", ["", "a..b", "x" * 64 + ".com", "bad name!.com", ".", 42])
def test_bad_query_names_name_qname(qname):
    with pytest.raises(ValueError, match="^qname: Invalid value"):
        Cluster().dns.query(qname)


def test_bad_qtype_and_bad_upstream_records():
    c = Cluster()
    with pytest.raises(ValueError, match="^qtype: Unsupported value"):
        c.dns.query("cart.shop.svc.cluster.local", "AXFR")
    with pytest.raises(ValueError, match="^values\\[0\\]: Invalid value"):
        c.dns.upstream.add("x.example.com", "not a name")
    c.dns.upstream.add("alias.example.com", "x.example.com")
    with pytest.raises(ValueError, match="a CNAME must be the only record of its name"):
        c.dns.upstream.add("alias.example.com", "192.0.2.1")
    with pytest.raises(KeyError):
        c.dns.upstream.remove("never.example.com")
