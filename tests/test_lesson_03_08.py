"""Lessons 03 (EndpointSlices) and 08 (DNS and discovery): the helpers they use (kslib.viz.discovery)
and their quizzes, every answer key derived from the model."""
import pytest

import kslib
from kslib.churn import rolling_update
from kslib.viz import quiz
from kslib.viz.discovery import dataplane_mentions, endpoint_rows, lookup_walk, one_change_cost, queries_per_lookup, service_with_pods

WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "nginx:1.27", ports: [{name: http, containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec: {nodeName: node-1, containers: [{name: c}]}
"""

DNS = """
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: shop}
spec: {nodeName: node-1, containers: [{name: c}]}
---
apiVersion: v1
kind: Pod
metadata: {name: tuned, namespace: shop}
spec: {nodeName: node-1, containers: [{name: c}], dnsConfig: {options: [{name: ndots, value: "2"}]}}
---
apiVersion: v1
kind: Pod
metadata: {name: ten, namespace: shop}
spec: {nodeName: node-1, containers: [{name: c}], dnsConfig: {options: [{name: ndots, value: "10"}]}}
---
apiVersion: v1
kind: Service
metadata: {name: payments, namespace: shop}
spec: {type: ExternalName, externalName: api.example.com}
---
apiVersion: v1
kind: Service
metadata: {name: kafka-headless, namespace: messaging}
spec: {clusterIP: None, selector: {app: kafka}, ports: [{name: broker, port: 9092}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: kafka, namespace: messaging}
spec:
  serviceName: kafka-headless
  replicas: 3
  selector: {matchLabels: {app: kafka}}
  template:
    metadata: {labels: {app: kafka}}
    spec:
      containers: [{name: kafka, ports: [{name: broker, containerPort: 9092}]}]
"""


def keyed(lesson, i):
    q = quiz(lesson).questions[i]
    return q.choices[q.answer]


@pytest.fixture
def web():
    c = kslib.Cluster(nodes=3)
    c.apply(WEB)
    return c


@pytest.fixture(scope="module")
def dns():
    c = kslib.Cluster(nodes=2)
    c.apply(DNS)
    c.dns.upstream.add("api.example.com", "203.0.113.10")
    c.dns.upstream.add("wiki", "198.51.100.7")
    return c


# ---- kslib.viz.discovery ---------------------------------------------------------------------------------------------
def test_endpoint_rows_show_a_not_ready_pod_still_in_the_slice(web):
    pod = sorted(p.name for p in web.pods if p.name.startswith("web-"))[0]
    web.set_ready(pod, False)
    rows = {r.pod: r for r in endpoint_rows(web, "web")}
    assert len(rows) == 3 and (rows[pod].ready, rows[pod].serving, rows[pod].terminating) == (False, False, False)
    assert rows[pod].address == web.pod(pod).pod_ip and "ready=false" in str(rows[pod])
    assert all(r.ready for name, r in rows.items() if name != pod)


def test_one_change_cost_250_pods():
    cost = one_change_cost(250)
    assert cost.slice_sizes == (100, 100, 50) and cost.endpoints_addresses == 250 and not cost.truncated
    assert (cost.slice_objects, cost.endpoints_objects) == (1, 1)
    assert cost.ratio == cost.endpoints_bytes / cost.slice_bytes > 1
    assert "3 slice(s) of 100, 100, 50" in str(cost)


def test_one_change_cost_small_services_favour_endpoints_and_large_ones_slices():
    small, large = one_change_cost(50), one_change_cost(1010)
    assert small.ratio < 1 < 3 < large.ratio
    assert large.truncated and large.endpoints_addresses == 1000 and sum(large.slice_sizes) == 1010
    assert one_change_cost(25, max_endpoints_per_slice=10).slice_sizes == (10, 10, 5)


@pytest.mark.parametrize("pods", [0, -1, 5001, True, 2.5, "10"])
def test_one_change_cost_refuses_bad_pod_counts(pods):
    with pytest.raises(ValueError, match="^pods: Invalid value"):
        one_change_cost(pods)


def test_one_change_cost_passes_on_the_controllers_limit():
    with pytest.raises(ValueError, match="max-endpoints-per-slice must be between 1 and 1000, got 1001"):
        one_change_cost(10, max_endpoints_per_slice=1001)


def test_service_with_pods_manifests():
    docs = service_with_pods(3, app="y")
    assert [d["kind"] for d in docs] == ["Service", "Pod", "Pod", "Pod"]
    assert docs[0]["spec"]["selector"] == {"app": "y"} and docs[3]["metadata"]["name"] == "y-2"


def test_lookup_walk_shows_every_query_or_the_error(dns):
    text = lookup_walk(dns, "api.example.com", "shop/client")
    assert text.count("NXDOMAIN") == 6 and text.endswith("(8 queries)")
    assert lookup_walk(dns, "bad name", "shop/client").startswith('error: name: Invalid value: "bad name"')
    assert lookup_walk(dns, "web", "shop/nobody").startswith('error: from_pod: pod "shop/nobody" not found')


def test_dataplane_mentions_matches_whole_words_and_restores_the_mode(web):
    web.set_mode("ipvs", scheduler="lc")
    backend = sorted(p.pod_ip for p in web.pods if p.name.startswith("web-"))[0]
    vip = web.get("svc", "web").cluster_ip
    found = dataplane_mentions(web, [backend, vip, backend + "9", "nosuch"])
    assert set(found) == set(kslib.MODES)
    assert all(f[backend] and f[vip] for f in found.values()), "endpoints and VIPs are in every mode's dataplane"
    assert not any(f[backend + "9"] or f["nosuch"] for f in found.values()), "whole matches only"
    assert found["iptables"] == dataplane_mentions(web, [backend, vip, backend + "9", "nosuch"])["iptables"]
    assert (web.mode, web.mode_options["scheduler"]) == ("ipvs", "lc"), "the mode and its options are restored"


def test_queries_per_lookup(dns):
    assert queries_per_lookup(dns, ["wiki", "api.example.com"], "shop/client") == [8, 8]
    assert queries_per_lookup(dns, ["wiki", "api.example.com"], "shop/tuned") == [8, 2]
    assert queries_per_lookup(dns, ["wiki.", "api.example.com."], "shop/client") == [2, 2]


# ---- lesson 03's quiz ------------------------------------------------------------------------------------------------
def test_l03_q1_the_controller_not_kube_proxy_runs_the_selector(web):
    # kube-proxy routes by whatever slice exists: a hand-written slice for a selector-less Service, to a pod
    # no selector matches, works; the controllers write nothing for that Service
    web.apply("""
apiVersion: v1
kind: Pod
metadata: {name: db, labels: {app: db}}
spec: {nodeName: node-2, containers: [{name: pg, ports: [{containerPort: 5432}]}]}
""")
    mark = len(web.slices.ledger.writes)
    web.apply(f"""
apiVersion: v1
kind: Service
metadata: {{name: legacy}}
spec: {{ports: [{{name: pg, port: 5432}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: legacy-1, labels: {{kubernetes.io/service-name: legacy}}}}
addressType: IPv4
ports: [{{name: pg, port: 5432, protocol: TCP}}]
endpoints: [{{addresses: [{web.pod("db").pod_ip}]}}]
""")
    assert not [w for w in web.slices.ledger.writes[mark:] if "legacy" in w.name]
    ip = web.get("svc", "legacy").cluster_ip
    assert web.connect_many("client", ip, 5432, 20) == {"default/db": 20}
    web.set_ready("db", False)
    assert web.connect_many("client", ip, 5432, 20) == {"default/db": 20}, "kube-proxy does not look at the pod"
    # while for a Service with a selector the EndpointSlice controller writes the slice
    assert [s.metadata.labels["endpointslice.kubernetes.io/managed-by"] for s in web.endpoint_slices("web")] == [
        "endpointslice-controller.k8s.io"]
    assert keyed(3, 0) == "The EndpointSlice controller in kube-controller-manager"


def test_l03_q2_a_not_ready_pod_stays_in_the_slice_and_gets_no_traffic(web):
    pod = sorted(p.name for p in web.pods if p.name.startswith("web-"))[0]
    web.set_ready(pod, False)
    row = {r.pod: r for r in endpoint_rows(web, "web")}.get(pod)
    counts = web.connect_many("client", web.get("svc", "web").cluster_ip, 80, 300)
    in_slice, ready, traffic = row is not None, row is not None and row.ready, counts[f"default/{pod}"] > 0
    assert (in_slice, ready, traffic) == (True, False, False)
    assert keyed(3, 1).startswith("It stays in the slice with ready=false, and kube-proxy sends it no new")


def test_l03_q3_slices_for_250_pods():
    assert int(keyed(3, 2)) == len(one_change_cost(250).slice_sizes)


def test_l03_q4_one_slice_against_the_whole_truncated_endpoints_object():
    cost = one_change_cost(1010)
    assert cost.slice_objects == 1 and max(cost.slice_sizes) <= 100
    assert cost.endpoints_objects == 1 and cost.endpoints_addresses == 1000 and cost.ratio > 3
    assert keyed(3, 3).startswith("One slice of at most 100 endpoints, and the whole Endpoints object of 1,000")


def test_l03_q5_pods_turning_ready_one_at_a_time_favour_slices():
    paced = rolling_update(replicas=100, nodes=2, max_endpoints_per_slice=10, ready_batch=1)
    bigger = max(paced.schemes, key=lambda s: paced.schemes[s].bytes_per_node)
    assert keyed(3, 4) == {"EndpointSlice": "EndpointSlices", "Endpoints": "Endpoints"}[bigger]


# ---- lesson 08's quiz ------------------------------------------------------------------------------------------------
def test_l08_q1_ndots_5_external_lookup_count(dns):
    assert int(keyed(8, 0)) == dns.resolve("api.example.com", "shop/client").count


def test_l08_q2_the_two_fixes_cost_2_and_the_others_do_not(dns):
    assert dns.resolve("api.example.com", "shop/tuned").count == 2
    assert dns.resolve("api.example.com.", "shop/client").count == 2
    assert dns.resolve("api.example.com", "shop/ten").count == 8           # ndots:10: still the search list first
    assert keyed(8, 1) == "ndots:2 in the pod's dnsConfig, or a trailing dot on the name"


def test_l08_q3_headless_answers_ready_pod_ips(dns):
    ips = sorted(dns.pod(f"messaging/kafka-{i}").pod_ip for i in range(3))
    assert sorted(dns.dns.query("kafka-headless.messaging.svc.cluster.local").data) == ips
    assert keyed(8, 2) == "The IPs of its ready pods"


def test_l08_q4_externalname_has_no_rules_in_any_mode():
    c = kslib.Cluster(nodes=1)
    c.apply(DNS)
    c.dns.upstream.add("api.example.com", "203.0.113.10")
    found = dataplane_mentions(c, ["payments", "api.example.com", "203.0.113.10", "10.96.0.1"])
    assert all(f == {"payments": False, "api.example.com": False, "203.0.113.10": False, "10.96.0.1": True}
               for f in found.values()), found
    assert c.dns.query("payments.shop.svc.cluster.local", "CNAME").data == ["api.example.com."]
    assert keyed(8, 3) == "Nothing: it exists only as a CNAME in DNS"


def test_l08_q5_srv_for_a_headless_statefulset(dns):
    srv = sorted(r.srv for r in dns.dns.query("_broker._tcp.kafka-headless.messaging.svc.cluster.local", "SRV").answer)
    assert [(s.port, s.target) for s in srv] == [(9092, f"kafka-{i}.kafka-headless.messaging.svc.cluster.local.")
                                                 for i in range(3)]
    assert {s.weight for s in srv} == {33}
    assert keyed(8, 4).startswith("Three records, one per pod: kafka-N.kafka-headless.messaging.svc.cluster.local")
    assert "weighted 33" in quiz(8).questions[4].why
