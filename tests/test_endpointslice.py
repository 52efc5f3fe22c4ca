"""The EndpointSlice controller: selection, conditions, packing, placeholder, Endpoints, cost."""
import re

import pytest

import kslib
from kslib.api.endpointslice import CONTROLLER_NAME, HEADLESS_LABEL, MANAGED_BY_LABEL, SERVICE_NAME_LABEL


def pods(n, start=0, app="x", node=None, ready=True, ports=None):
    out = []
    for i in range(start, start + n):
        spec = {"containers": [{"name": "c", "ports": ports or [{"name": "http", "containerPort": 8080}]}]}
        if node:
            spec["nodeName"] = node
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{app}-{i}", "labels": {"app": app}},
               "spec": spec}
        if not ready:
            pod["status"] = {"conditions": [{"type": "Ready", "status": "False"}]}
        out.append(pod)
    return out


def service(name="x", selector=None, **spec):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": selector if selector is not None else {"app": name},
                     "ports": [{"name": "web", "port": 80, "targetPort": "http"}], **spec}}


def sizes(c, svc="x"):
    return sorted((len(s.endpoints) for s in c.endpoint_slices(svc)), reverse=True)


def test_250_ready_pods_give_slices_of_100_100_50():
    c = kslib.Cluster(nodes=3)
    c.apply([service()] + pods(250))
    assert sizes(c) == [100, 100, 50]
    for s in c.endpoint_slices("x"):
        assert s.metadata.labels[SERVICE_NAME_LABEL] == "x"
        assert s.metadata.labels[MANAGED_BY_LABEL] == CONTROLLER_NAME
        assert re.fullmatch(r"x-[bcdfghjklmnpqrstvwxz2456789]{5}", s.name)
        assert s.metadata.owner_references[0]["kind"] == "Service"


def test_max_endpoints_per_slice_is_configurable_within_1_to_1000():
    c = kslib.Cluster(nodes=1, max_endpoints_per_slice=10)
    c.apply([service()] + pods(25))
    assert sizes(c) == [10, 10, 5]
    with pytest.raises(ValueError, match="max-endpoints-per-slice"):
        kslib.Cluster(max_endpoints_per_slice=1001)


class TestPackingWorkedExamples:
    """controlplane-dns.md 1.4: the controller fills, it never rebalances."""

    def start(self):
        c = kslib.Cluster(nodes=2)
        c.apply([service()] + pods(140))      # 140 from nothing: a full slice and one of 40
        assert sizes(c) == [100, 40]
        return c

    def test_five_more_go_into_the_partial_slice(self):
        c = self.start()
        names = {s.name for s in c.endpoint_slices("x")}
        c.apply(pods(5, start=140))
        assert sizes(c) == [100, 45]
        assert {s.name for s in c.endpoint_slices("x")} == names

    def test_150_more_make_a_new_full_slice_and_top_up_the_partial_one(self):
        c = self.start()
        c.apply(pods(150, start=140))
        assert sizes(c) == [100, 100, 90]

    def test_delete_one_from_the_full_slice_and_add_three(self):
        c = self.start()
        full = next(s for s in c.endpoint_slices("x") if len(s.endpoints) == 100)
        victim = full.endpoints[0].target_ref["name"]
        # one sync sees both changes: the victim stops matching, three new pods appear
        relabelled = pods(1, start=int(victim.split("-")[1]))[0]
        relabelled["metadata"]["labels"] = {"app": "elsewhere"}
        c.apply([relabelled] + pods(3, start=140))
        assert sizes(c) == [100, 42]

    def test_ten_new_endpoints_with_two_half_empty_slices_make_one_new_slice(self):
        c = kslib.Cluster(nodes=1, max_endpoints_per_slice=10)
        c.apply([service()] + pods(20))
        for s in c.endpoint_slices("x"):           # leave two slices of 5
            for e in s.endpoints[:5]:
                c.delete("pod", e.target_ref["name"])
        c.advance(30)
        assert sizes(c) == [5, 5]
        c.apply(pods(10, start=100))
        assert sizes(c) == [10, 5, 5]


class TestConditions:
    def test_not_ready_pod_is_listed_not_ready_not_serving(self):
        c = kslib.Cluster(nodes=1)
        c.apply([service()] + pods(1, ready=False))
        (ep,) = c.endpoint_slices("x")[0].endpoints
        assert (ep.conditions.ready, ep.conditions.serving, ep.conditions.terminating) == (False, False, False)

    def test_readiness_flip_updates_the_endpoint(self):
        c = kslib.Cluster(nodes=1)
        c.apply([service()] + pods(2))
        c.set_ready("x-0", False)
        ready = {e.target_ref["name"]: e.conditions.ready for e in c.endpoint_slices("x")[0].endpoints}
        assert ready == {"x-0": False, "x-1": True}

    def test_terminating_pod_stays_serving_but_not_ready_until_gone(self):
        c = kslib.Cluster(nodes=1)
        c.apply([service()] + pods(1))
        c.delete("pod", "x-0")
        (ep,) = c.endpoint_slices("x")[0].endpoints
        assert (ep.conditions.ready, ep.conditions.serving, ep.conditions.terminating) == (False, True, True)
        c.advance(29)
        assert len(c.endpoint_slices("x")[0].endpoints) == 1
        c.advance(1)
        assert [len(s.endpoints) for s in c.endpoint_slices("x")] == [0]     # the placeholder

    def test_publish_not_ready_addresses_makes_every_endpoint_ready(self):
        c = kslib.Cluster(nodes=1)
        c.apply([service(publishNotReadyAddresses=True)] + pods(1, ready=False))
        (ep,) = c.endpoint_slices("x")[0].endpoints
        assert (ep.conditions.ready, ep.conditions.serving) == (True, False)

    def test_pods_without_ip_terminal_or_on_unknown_nodes_are_left_out(self):
        c = kslib.Cluster(nodes=1)
        gone = pods(1, start=7, node="no-such-node")
        done = pods(1, start=8)
        done[0]["status"] = {"phase": "Succeeded", "podIP": "10.244.0.99"}
        c.apply([service()] + pods(1) + gone + done)
        assert [e.target_ref["name"] for s in c.endpoint_slices("x") for e in s.endpoints] == ["x-0"]

    def test_zone_and_node_name_come_from_the_pod_and_its_node(self):
        c = kslib.Cluster(nodes=2, zones=["eu-1a", "eu-1b"])
        c.apply([service()] + pods(1, node="node-2"))
        (ep,) = c.endpoint_slices("x")[0].endpoints
        assert (ep.node_name, ep.zone) == ("node-2", "eu-1b")


def test_selector_mismatch_leaves_only_an_empty_placeholder():
    c = kslib.Cluster(nodes=1)
    c.apply([service(selector={"app": "x", "tier": "web"})] + pods(3))
    (s,) = c.endpoint_slices("x")
    assert s.endpoints == [] and s.ports == []


def test_placeholder_is_reused_when_endpoints_appear():
    c = kslib.Cluster(nodes=1)
    c.apply(service())
    (placeholder,) = c.endpoint_slices("x")
    c.apply(pods(2))
    (s,) = c.endpoint_slices("x")
    assert s.name == placeholder.name and len(s.endpoints) == 2


def test_named_target_port_resolves_per_pod_and_groups_by_port_set():
    c = kslib.Cluster(nodes=1)
    c.apply([service()] + pods(2) + pods(1, start=2, ports=[{"name": "http", "containerPort": 9090}])
            + pods(1, start=3, ports=[{"name": "metrics", "containerPort": 9100}]))
    by_port = {tuple(p.port for p in s.ports): sorted(e.target_ref["name"] for e in s.endpoints)
               for s in c.endpoint_slices("x")}
    # a Pod that lacks the named port gets an endpoint without that port, in its own slice
    assert by_port == {(8080,): ["x-0", "x-1"], (9090,): ["x-2"], (): ["x-3"]}


def test_headless_and_service_labels_and_externalname_skipped():
    c = kslib.Cluster(nodes=1)
    svc = service(clusterIP="None")
    svc["metadata"]["labels"] = {"team": "a"}
    c.apply([svc, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext"},
                   "spec": {"type": "ExternalName", "externalName": "example.com", "selector": {"app": "x"}}}]
            + pods(1))
    (s,) = c.endpoint_slices("x")
    assert s.metadata.labels[HEADLESS_LABEL] == "" and s.metadata.labels["team"] == "a"
    assert c.endpoint_slices("ext") == [] and c.endpoints("ext") is None


def test_deleting_the_service_deletes_its_slices():
    c = kslib.Cluster(nodes=1)
    c.apply([service()] + pods(2))
    c.delete("svc", "x")
    assert c.endpoint_slices("x") == [] and c.endpoints("x") is None


class TestLegacyEndpoints:
    def test_ready_and_not_ready_addresses_sorted_by_ip(self):
        c = kslib.Cluster(nodes=1)
        c.apply([service()] + pods(3))
        c.set_ready("x-1", False)
        (subset,) = c.endpoints("x").subsets
        assert [a.ip for a in subset.addresses] == ["10.244.0.2", "10.244.0.4"]
        assert [a.ip for a in subset.not_ready_addresses] == ["10.244.0.3"]

    def test_truncated_at_1000_addresses_with_the_annotation(self):
        c = kslib.Cluster(nodes=8)
        c.apply([service()] + pods(1010))
        ep = c.endpoints("x")
        assert sum(len(s.addresses) for s in ep.subsets) == 1000
        assert ep.metadata.annotations["endpoints.kubernetes.io/over-capacity"] == "truncated"
        assert sum(len(s.endpoints) for s in c.endpoint_slices("x")) == 1010


def test_one_pod_change_rewrites_one_slice_but_the_whole_endpoints_object():
    c = kslib.Cluster(nodes=3)
    c.apply([service()] + pods(500))
    mark = len(c.slices.ledger.writes)
    c.set_ready("x-7", False)
    cost = c.slices.ledger.totals(since=mark)
    assert cost["EndpointSlice"]["objects"] == 1 and cost["Endpoints"]["objects"] == 1
    # one slice holds 100 of the 500 endpoints; the Endpoints object holds all of them
    assert 3 < cost["Endpoints"]["bytes"] / cost["EndpointSlice"]["bytes"] < 6


class TestWorkloads:
    DEPLOY = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 4
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx:1.27, ports: [{containerPort: 80}]}]
"""

    def test_deployment_pods_are_named_by_template_hash_and_spread(self):
        c = kslib.Cluster(nodes=2)
        c.apply(self.DEPLOY)
        names = [p.name for p in c.pods]
        assert len(names) == 4
        for p in c.pods:
            h = p.metadata.labels["pod-template-hash"]
            assert re.fullmatch(r"[4-9bcdf]{1,10}", h)
            assert re.fullmatch(rf"web-{h}-[bcdfghjklmnpqrstvwxz2456789]{{5}}", p.name)
        assert sorted(p.node_name for p in c.pods) == ["node-1", "node-1", "node-2", "node-2"]

    def test_a_deleted_deployment_pod_is_replaced_with_a_new_name_and_ip(self):
        c = kslib.Cluster(nodes=1)
        c.apply(self.DEPLOY)
        victim = c.pods[0]
        c.delete("pod", victim.name)
        c.advance(30)
        live = c.pods
        assert len(live) == 4 and victim.name not in [p.name for p in live]
        assert victim.pod_ip not in [p.pod_ip for p in live]

    def test_template_change_rolls_every_pod(self):
        c = kslib.Cluster(nodes=2)
        c.apply(self.DEPLOY)
        old = {p.metadata.labels["pod-template-hash"] for p in c.pods}
        c.apply(self.DEPLOY.replace("nginx:1.27", "nginx:1.28"))
        c.advance(30)
        new = {p.metadata.labels["pod-template-hash"] for p in c.pods}
        assert len(c.pods) == 4 and len(new) == 1 and new != old

    def test_scale(self):
        c = kslib.Cluster(nodes=1)
        c.apply(self.DEPLOY)
        c.scale("deploy", "web", 2)
        c.advance(30)
        assert len(c.pods) == 2

    def test_statefulset_pods_have_ordinal_names_hostnames_and_dns_endpoints(self):
        c = kslib.Cluster(nodes=2)
        c.apply("""
apiVersion: v1
kind: Service
metadata: {name: kafka-headless, namespace: messaging}
spec:
  clusterIP: None
  selector: {app: kafka}
  ports: [{name: broker, port: 9092}]
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
      containers: [{name: kafka, ports: [{containerPort: 9092}]}]
""")
        ps = c.list("pod", "messaging")
        assert [p.name for p in ps] == ["kafka-0", "kafka-1", "kafka-2"]
        for i, p in enumerate(ps):
            assert (p.hostname, p.subdomain) == (f"kafka-{i}", "kafka-headless")
            assert p.metadata.labels["statefulset.kubernetes.io/pod-name"] == f"kafka-{i}"
            assert p.metadata.labels["apps.kubernetes.io/pod-index"] == str(i)
        hostnames = sorted(e.hostname for s in c.endpoint_slices("kafka-headless", "messaging") for e in s.endpoints)
        assert hostnames == ["kafka-0", "kafka-1", "kafka-2"]
        old_ip = c.get("pod", "kafka-1", "messaging").pod_ip
        c.delete("pod", "kafka-1", "messaging")
        assert c.get("pod", "kafka-1", "messaging").terminating       # same name waits for the old pod
        c.advance(30)
        again = c.get("pod", "kafka-1", "messaging")
        assert again is not None and not again.terminating and again.pod_ip != old_ip

    def test_bad_template_is_refused_with_template_paths(self):
        c = kslib.Cluster(nodes=1)
        bad = self.DEPLOY.replace("containerPort: 80", "containerPort: 0")
        with pytest.raises(kslib.ValidationError) as e:
            c.apply(bad)
        assert "spec.template.spec.containers[0].ports[0].containerPort: Invalid value: 0" in str(e.value)
        mismatch = self.DEPLOY.replace("labels: {app: web}", "labels: {app: api}")
        with pytest.raises(kslib.ValidationError, match="`selector` does not match template `labels`"):
            c.apply(mismatch)
        assert c.pods == []


def test_kubernetes_service_and_its_endpoint():
    c = kslib.Cluster(nodes=2)
    svc = c.get("svc", "kubernetes")
    assert svc.cluster_ip == "10.96.0.1" and svc.ports[0].port == 443
    (s,) = c.endpoint_slices("kubernetes")
    assert s.endpoints[0].addresses == ["192.168.0.2"] and s.ports[0].port == 6443


def test_events_reach_subscribers_and_modes_are_checked():
    c = kslib.Cluster(nodes=1)
    seen = []
    c.subscribe(lambda e: seen.append((e.type, e.kind)))
    c.apply([service()] + pods(1))
    assert ("ADDED", "Service") in seen and ("ADDED", "EndpointSlice") in seen
    c.set_mode("nftables")
    assert c.mode == "nftables"
    with pytest.raises(ValueError, match="supported values: iptables, ipvs, nftables, ebpf"):
        c.set_mode("userspace")


def test_a_node_out_of_pod_addresses_leaves_the_extra_pods_pending_without_an_ip():
    c = kslib.Cluster(nodes=1)                       # one /24: 253 pod addresses after the gateway
    c.apply([service()] + pods(260))
    running = [p for p in c.pods if p.pod_ip]
    pending = [p for p in c.pods if not p.pod_ip]
    assert len(running) == 253 and len(pending) == 7
    assert all(p.node_name == "node-1" and p.phase in ("", "Pending") for p in pending)    # kubectl: Pending
    assert sum(len(s.endpoints) for s in c.endpoint_slices("x")) == 253
