"""A Pod's resolver through the public API: the resolv.conf the kubelet writes for each dnsPolicy and
dnsConfig (and its limits), the glibc and musl search walks of shared/reference/controlplane-dns.md
4.5-4.6 (every query counted), the ndots:2 and trailing-dot fixes, bad input, and connecting by name."""
import pytest

from kslib import Cluster
from kslib.dns import Query

SHOP = """
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: shop}
spec: {nodeName: node-1, containers: [{name: c}]}
---
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec: {clusterIP: 10.96.100.10, selector: {app: cart}, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Pod
metadata: {name: cart-1, namespace: shop, labels: {app: cart}}
spec: {nodeName: node-2, containers: [{name: c, ports: [{containerPort: 8080}]}]}
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
  replicas: 2
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
"""

CLUSTER_SEARCH = ("shop.svc.cluster.local", "svc.cluster.local", "cluster.local")


def pod(name, ns="shop", **spec):
    """A Pod manifest with extra spec fields given as YAML flow text."""
    extra = "".join(f", {k}: {v}" for k, v in spec.items())
    return (f"---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}}}\n"
            f"spec: {{nodeName: node-1, containers: [{{name: c}}]{extra}}}\n")


def shop_cluster(*docs, **kw):
    c = Cluster(nodes=2, **kw)
    c.apply(SHOP + "".join(docs))
    c.dns.upstream.add("api.example.com", "203.0.113.10")
    c.dns.upstream.add("smtp.example.com", "203.0.113.25")
    return c


@pytest.fixture(scope="module")
def shop():
    """Read-only: tests that change the cluster build their own."""
    return shop_cluster(pod("musl1", dnsConfig="{options: [{name: ndots, value: '1'}]}"),
                        pod("ndots2", dnsConfig="{options: [{name: ndots, value: '2'}]}"),
                        pod("upstream-only", dnsPolicy="Default"))


def both(*names):
    """The queries getaddrinfo(AF_UNSPEC) sends for these candidates: A and AAAA each."""
    return [Query(n, t) for n in names for t in ("A", "AAAA")]


# ---- resolv.conf ----------------------------------------------------------------------------------------------------
def test_cluster_first_resolv_conf(shop):
    conf = shop.resolv_conf("shop/client")
    assert conf.text() == ("search shop.svc.cluster.local svc.cluster.local cluster.local\n"
                           "nameserver 10.96.0.10\noptions ndots:5\n")
    assert (conf.policy, conf.ndots, conf.warnings) == ("ClusterFirst", 5, ())


def test_the_nodes_search_list_is_appended_without_duplicates_and_its_options_dropped():
    c = shop_cluster(node_resolv_conf="# the node's file\nnameserver 192.168.0.1\nnameserver 192.168.0.254\n"
                                      "search corp.example.com cluster.local lab.example.com.\noptions timeout:2\n")
    conf = c.resolv_conf("shop/client")
    assert conf.searches == CLUSTER_SEARCH + ("corp.example.com", "lab.example.com")
    assert (conf.nameservers, conf.options) == (("10.96.0.10",), ("ndots:5",))
    node = c.resolv_conf("node-1")
    assert node.text() == ("search corp.example.com cluster.local lab.example.com\n"
                           "nameserver 192.168.0.1\nnameserver 192.168.0.254\noptions timeout:2\n")


def test_default_policy_takes_the_nodes_file_and_the_default_node_file(shop):
    assert shop.resolv_conf("shop/upstream-only").text() == "nameserver 192.168.0.1\n"
    assert shop.resolv_conf("node-2").text() == "nameserver 192.168.0.1\n"
    assert shop.resolv_conf("shop/upstream-only").ndots == 1


def test_host_network_pods_fall_back_to_default_unless_cluster_first_with_host_net():
    c = shop_cluster(pod("hn", hostNetwork="true"), pod("hn2", hostNetwork="true", dnsPolicy="ClusterFirstWithHostNet"))
    hn = c.resolv_conf("shop/hn")
    assert (hn.nameservers, hn.searches) == (("192.168.0.1",), ())
    assert hn.policy == "Default (a hostNetwork Pod with ClusterFirst)"
    hn2 = c.resolv_conf("shop/hn2")
    assert (hn2.nameservers, hn2.searches, hn2.policy) == (("10.96.0.10",), CLUSTER_SEARCH, "ClusterFirstWithHostNet")
    assert c.resolve("cart", "shop/hn").rcode == "NXDOMAIN"
    assert c.resolve("cart", "shop/hn2").answers == ["10.96.100.10"]


def test_dns_config_is_merged_with_dedupe_and_option_override():
    cfg = ("{nameservers: [10.96.0.10, 192.0.2.53], searches: [corp.example.com, svc.cluster.local], "
           "options: [{name: ndots, value: '2'}, {name: edns0}]}")
    c = shop_cluster(pod("tuned", dnsConfig=cfg))
    assert c.resolv_conf("shop/tuned").text() == (
        "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example.com\n"
        "nameserver 10.96.0.10\nnameserver 192.0.2.53\noptions ndots:2 edns0\n")


def test_dns_policy_none_takes_only_the_dns_config():
    c = shop_cluster(pod("own", dnsPolicy="None", dnsConfig="{nameservers: [192.0.2.53], searches: [example.com]}"))
    assert c.resolv_conf("shop/own").text() == "search example.com\nnameserver 192.0.2.53\n"
    res = c.resolve("api", "shop/own")                  # upstream only: no cluster names
    assert res.queries == both("api.example.com.") and res.answers == ["203.0.113.10"]


def test_nameserver_limit_keeps_three_with_the_kubelets_warning():
    c = shop_cluster(pod("many", dnsConfig="{nameservers: [192.0.2.1, 192.0.2.2, 192.0.2.3]}"))
    conf = c.resolv_conf("shop/many")
    assert conf.nameservers == ("10.96.0.10", "192.0.2.1", "192.0.2.2")
    assert conf.warnings == ("Nameserver limits were exceeded, some nameservers have been omitted, "
                             "the applied nameserver line is: 10.96.0.10 192.0.2.1 192.0.2.2",)


def test_search_limit_keeps_32_domains_with_the_kubelets_warning():
    domains = [f"d{i}.example.com" for i in range(40)]
    c = shop_cluster(pod("wide", dnsConfig="{searches: [" + ", ".join(domains) + "]}"))
    conf = c.resolv_conf("shop/wide")
    assert conf.searches == CLUSTER_SEARCH + tuple(domains[:29])
    assert conf.warnings == ("Search Line limits were exceeded, some search paths have been omitted, "
                             "the applied search line is: " + " ".join(conf.searches),)


def test_search_line_is_cut_from_the_end_to_2048_characters():
    domains = [f"{'x' * 60}.d{i}.example.com" for i in range(28)]       # 75 characters each
    c = shop_cluster(pod("long", dnsConfig="{searches: [" + ", ".join(domains) + "]}"))
    conf = c.resolv_conf("shop/long")
    line = " ".join(conf.searches)
    assert len(line) <= 2048 < len(line) + 1 + 75
    assert conf.searches == CLUSTER_SEARCH + tuple(domains[:26]) and len(conf.warnings) == 1


# ---- the worked walks (glibc, ndots:5, getaddrinfo: A and AAAA per candidate) --------------------------------------
def test_short_name_answers_from_the_first_search_domain(shop):
    res = shop.resolve("cart", "shop/client")
    assert res.queries == both("cart.shop.svc.cluster.local.")
    assert (res.name, res.rcode, res.answers, res.count) == (
        "cart.shop.svc.cluster.local.", "NOERROR", ["10.96.100.10"], 2)


def test_cross_namespace_name_answers_from_the_second_search_domain(shop):
    res = shop.resolve("cart.billing", "shop/client")
    assert res.queries == both("cart.billing.shop.svc.cluster.local.", "cart.billing.svc.cluster.local.")
    assert [r.status for r in res.responses] == ["NXDOMAIN", "NXDOMAIN", "NOERROR", "NODATA"]
    assert (res.name, res.answers, res.count) == ("cart.billing.svc.cluster.local.", ["10.96.100.20"], 4)


def test_fully_qualified_name_without_trailing_dot_walks_the_whole_search_list_first(shop):
    res = shop.resolve("cart.billing.svc.cluster.local", "shop/client")
    assert res.queries == both("cart.billing.svc.cluster.local.shop.svc.cluster.local.",
                               "cart.billing.svc.cluster.local.svc.cluster.local.",
                               "cart.billing.svc.cluster.local.cluster.local.",
                               "cart.billing.svc.cluster.local.")
    assert res.count == 8 and res.by_status == {"NXDOMAIN": 6, "NOERROR": 1, "NODATA": 1}
    assert res.answers == ["10.96.100.20"]


def test_trailing_dot_asks_once(shop):
    res = shop.resolve("cart.billing.svc.cluster.local.", "shop/client")
    assert res.queries == both("cart.billing.svc.cluster.local.") and res.answers == ["10.96.100.20"]


def test_external_name_costs_three_nxdomains_before_the_upstream_answers(shop):
    before = sum(shop.dns.requests.values())
    res = shop.resolve("api.example.com", "shop/client")
    assert res.queries == both("api.example.com.shop.svc.cluster.local.", "api.example.com.svc.cluster.local.",
                               "api.example.com.cluster.local.", "api.example.com.")
    assert (res.count, res.answers, res.by_status["NXDOMAIN"]) == (8, ["203.0.113.10"], 6)
    assert [r.server for r in res.responses[-2:]] == ["upstream", "upstream"]   # forwarded by CoreDNS
    assert sum(shop.dns.requests.values()) - before == 8                        # all 8 reached CoreDNS


def test_the_cost_of_ndots_5_over_a_request_rate_and_its_two_fixes(shop):
    rate = 1000            # lookups per second of an external API, e.g. one per outgoing request
    per_lookup = {how: shop.resolve(name, who).count for how, name, who in (
        ("ndots:5", "api.example.com", "shop/client"), ("trailing dot", "api.example.com.", "shop/client"),
        ("ndots:2", "api.example.com", "shop/ndots2"))}
    assert {k: v * rate for k, v in per_lookup.items()} == {"ndots:5": 8000, "trailing dot": 2000, "ndots:2": 2000}
    assert shop.resolve("api.example.com", "shop/ndots2").queries == both("api.example.com.")


def test_ndots_2_still_searches_short_names(shop):
    res = shop.resolve("cart.billing", "shop/ndots2")      # 1 dot < 2: search list first
    assert (res.name, res.count) == ("cart.billing.svc.cluster.local.", 4)
    res = shop.resolve("db-0.db.shop", "shop/ndots2")       # 2 dots: as-is first (NXDOMAIN upstream), then search
    assert res.queries == both("db-0.db.shop.", "db-0.db.shop.shop.svc.cluster.local.",
                               "db-0.db.shop.svc.cluster.local.")
    assert res.answers == [shop.pod("shop/db-0").pod_ip]


def test_a_single_type_query_asks_half_as_many(shop):
    res = shop.resolve("api.example.com", "shop/client", getaddrinfo=False)
    assert res.queries == [Query(n, "A") for n in ("api.example.com.shop.svc.cluster.local.",
                                                    "api.example.com.svc.cluster.local.",
                                                    "api.example.com.cluster.local.", "api.example.com.")]
    srv = shop.resolve("_pg._tcp.db", "shop/client", qtype="SRV")
    assert srv.queries == [Query("_pg._tcp.db.shop.svc.cluster.local.", "SRV")]
    assert sorted(srv.answers) == ["0 50 5432 db-0.db.shop.svc.cluster.local.",
                                   "0 50 5432 db-1.db.shop.svc.cluster.local."]


def test_unknown_name_walks_everything_and_reports_nxdomain(shop):
    res = shop.resolve("nosuch", "shop/client")
    assert res.queries == both("nosuch.shop.svc.cluster.local.", "nosuch.svc.cluster.local.",
                               "nosuch.cluster.local.", "nosuch.")
    assert (res.name, res.rcode, res.answers) == (None, "NXDOMAIN", [])


def test_externalname_resolves_to_its_cname_and_the_upstream_address(shop):
    res = shop.resolve("mail", "shop/client")
    assert res.answers == ["smtp.example.com.", "203.0.113.25"] and res.addresses == ["203.0.113.25"]


def test_statefulset_pod_name_from_the_same_namespace(shop):
    res = shop.resolve("db-1.db", "shop/client")
    assert (res.name, res.answers) == ("db-1.db.shop.svc.cluster.local.", [shop.pod("shop/db-1").pod_ip])


def test_relative_name_captured_by_an_endpoint_of_a_local_headless_service():
    c = shop_cluster("""---
apiVersion: v1
kind: Service
metadata: {name: billing, namespace: shop}
spec: {clusterIP: None, selector: {app: ledger}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Pod
metadata: {name: ledger, namespace: shop, labels: {app: ledger}}
spec: {hostname: cart, subdomain: billing, containers: [{name: c}]}
""")
    res = c.resolve("cart.billing", "shop/client")         # meant billing's cart Service, got shop's endpoint
    assert (res.name, res.answers, res.count) == (
        "cart.billing.shop.svc.cluster.local.", [c.pod("shop/ledger").pod_ip], 2)


def test_a_node_and_a_default_policy_pod_ask_the_upstream_directly(shop):
    res = shop.resolve("cart.shop.svc.cluster.local", "node-1")
    assert res.queries == both("cart.shop.svc.cluster.local.")              # ndots 1: as-is, no search list
    assert (res.rcode, res.nameserver, res.responses[0].server) == ("NXDOMAIN", "192.168.0.1", "upstream")
    assert shop.resolve("api.example.com", "shop/upstream-only").answers == ["203.0.113.10"]


def test_no_tld_query_option_skips_the_bare_single_label():
    c = shop_cluster(pod("notld", dnsConfig="{options: [{name: no-tld-query}]}"))
    assert [q.name for q in c.resolve("nosuch", "shop/notld").queries[::2]] == [
        "nosuch.shop.svc.cluster.local.", "nosuch.svc.cluster.local.", "nosuch.cluster.local."]


# ---- musl ------------------------------------------------------------------------------------------------------------
def test_musl_with_dots_at_ndots_tries_the_name_as_is_only(shop):
    glibc = shop.resolve("cart.billing", "shop/musl1")          # ndots:1, 1 dot
    assert glibc.queries == both("cart.billing.", "cart.billing.shop.svc.cluster.local.",
                                 "cart.billing.svc.cluster.local.")
    assert glibc.answers == ["10.96.100.20"]
    musl = shop.resolve("cart.billing", "shop/musl1", libc="musl")
    assert musl.queries == both("cart.billing.")
    assert (musl.name, musl.rcode, musl.answers) == (None, "NXDOMAIN", [])


def test_musl_stops_at_nodata_where_glibc_goes_on():
    c = shop_cluster()
    c.dns.upstream.add("billing", "198.51.100.7")     # an intranet host called "billing"
    glibc = c.resolve("billing", "shop/client")
    assert [r.status for r in glibc.responses[::2]] == ["NXDOMAIN", "NODATA", "NXDOMAIN", "NOERROR"]
    assert glibc.answers == ["198.51.100.7"]
    musl = c.resolve("billing", "shop/client", libc="musl")
    assert musl.queries == both("billing.shop.svc.cluster.local.", "billing.svc.cluster.local.")   # namespace: NODATA
    assert (musl.name, musl.rcode, musl.answers) == (None, "NOERROR", [])


def test_glibc_reports_nodata_when_a_candidate_gave_it():
    res = shop_cluster().resolve("billing", "shop/client")
    assert (res.name, res.rcode, res.answers, res.count) == (None, "NOERROR", [], 8)


def test_musl_walks_like_glibc_for_short_names(shop):
    musl = shop.resolve("cart.billing", "shop/client", libc="musl")
    assert musl.queries == shop.resolve("cart.billing", "shop/client").queries
    assert musl.answers == ["10.96.100.20"]


def test_musl_loses_a_search_line_longer_than_its_line_buffer():
    searches = " ".join(f"{'team' * 12}.d{i}.corp.example.com" for i in range(4))   # 4 x 66 characters
    c = shop_cluster(node_resolv_conf=f"nameserver 192.168.0.1\nsearch {searches}\n")
    assert c.resolve("cart", "shop/client").answers == ["10.96.100.10"]
    musl = c.resolve("cart", "shop/client", libc="musl")
    assert musl.queries == both("cart.") and musl.rcode == "NXDOMAIN"
    assert musl.notes and "musl ignores the search line" in musl.notes[0]


# ---- bad input -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,rule", [
    ("", "non-empty"), ("a..b", "empty label"), ("x" * 64, "no more than 63"), (".", "root"),
    ("a." * 127 + "b", "no more than 253"), ("bad name", "only letters"), ("cart/x", "only letters"),
    (None, "non-empty"),
])
def test_invalid_names_are_refused_naming_the_field_and_rule(shop, name, rule):
    with pytest.raises(ValueError, match=f"^name: Invalid value: .*{rule}"):
        shop.resolve(name, "shop/client")


@pytest.mark.parametrize("who", ["nobody", "shop/nobody", "nowhere/client", ""])
def test_unknown_pod_is_refused_naming_it(shop, who):
    with pytest.raises(ValueError, match="^from_pod: "):
        shop.resolve("cart", who)
    if who:
        with pytest.raises(ValueError, match='pod "' + (who if "/" in who else f"default/{who}") + '" not found'):
            shop.resolve("cart", who)


def test_other_bad_arguments(shop):
    with pytest.raises(ValueError, match="^qtype: Unsupported value"):
        shop.resolve("cart", "shop/client", qtype="ANY")
    with pytest.raises(ValueError, match='^libc: Unsupported value: "uclibc"'):
        shop.resolve("cart", "shop/client", libc="uclibc")


def test_bad_dns_config_is_refused_when_the_resolv_conf_is_built():
    c = shop_cluster(pod("badns", dnsConfig="{nameservers: [dns.example.com]}"),
                     pod("badopt", dnsConfig="{options: [{name: ndots, value: 'five'}]}"),
                     pod("nons", dnsPolicy="None", dnsConfig="{searches: [example.com]}"))
    with pytest.raises(ValueError, match="^spec.dnsConfig.nameservers\\[0\\]: Invalid value"):
        c.resolve("cart", "shop/badns")
    with pytest.raises(ValueError, match="^spec.dnsConfig.options\\[0\\]: Invalid value"):
        c.resolve("cart", "shop/badopt")
    with pytest.raises(ValueError, match="no nameserver"):
        c.resolve("cart", "shop/nons")


# ---- connecting by name ----------------------------------------------------------------------------------------------
def test_connect_by_a_short_service_name_reaches_a_backend(shop):
    conn = shop.connect("shop/client", "cart", 80)
    assert (conn.dst, conn.outcome, conn.pod) == ("10.96.100.10", "delivered", "shop/cart-1")
    assert conn.endpoint == f"{shop.pod('shop/cart-1').pod_ip}:8080"


def test_connect_by_cross_namespace_and_statefulset_names(shop):
    assert shop.connect("shop/client", "cart.billing", 80).pod == "billing/cart-b"
    assert shop.connect("shop/client", "db-1.db", 5432).pod == "shop/db-1"
    assert shop.connect_many("shop/client", "cart.shop.svc.cluster.local.", 80, 20) == {"shop/cart-1": 20}


def test_connect_to_an_externalname_goes_to_the_upstream_address(shop):
    assert shop.connect("shop/client", "mail", 25).dst == "203.0.113.25"


def test_connect_by_a_name_that_does_not_resolve_names_it_and_the_rcode(shop):
    with pytest.raises(ValueError, match="^dst: 'nosuch' does not resolve from pod shop/client: NXDOMAIN"):
        shop.connect("shop/client", "nosuch", 80)
    with pytest.raises(ValueError, match="^dst: 'cart.shop.svc.cluster.local' does not resolve from node node-1: "
                                         "NXDOMAIN"):
        shop.connect_many("node-1", "cart.shop.svc.cluster.local", 80, 5)


def test_external_clients_cannot_use_cluster_names(shop):
    with pytest.raises(ValueError, match="^dst: 'cart': an external client \\(203.0.113.99\\) cannot use"):
        shop.connect("203.0.113.99", "cart", 80, via="node-1")
