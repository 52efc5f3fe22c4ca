"""kslib.checklist: every step passes on a working Service and fails, with its cause, on a small
cluster broken in the way that step catches; it reads only the public Cluster API, so a cluster
loaded from a dump gives the same answers."""
import pytest

import kslib
from kslib import checklist

WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: "nginx:1.27", ports: [{name: http, containerPort: 8080}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec: {nodeName: node-1, containers: [{name: c}]}
"""


def cluster(text=WEB, nodes=2, mode="iptables", **kw):
    c = kslib.Cluster(nodes=nodes, seed=0, mode=mode, **kw)
    c.apply(text)
    return c


def service(spec_extra="", selector="{app: web}", ports="[{port: 80, targetPort: http}]"):
    return f"""
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {selector}
  ports: {ports}{spec_extra}
"""


@pytest.fixture(scope="module")
def working():
    return cluster()


def test_a_working_service_passes_every_step_in_order(working):
    r = checklist.run(working, "web", from_pod="client")
    assert [s.key for s in r] == ["service", "endpoints", "dns", "clusterip", "pod", "kube-proxy", "rules"]
    assert [s.number for s in r] == list(range(1, 8))
    assert r.passed and r.first_failure is None and set(r.statuses.values()) == {"pass"}
    assert r.node == "node-1" and r.from_pod == "default/client" and r.service == "default/web"
    assert "Every step passes." in str(r)
    assert r.step("service").command == "kubectl get svc web -n default"
    assert r.step("endpoints").command == "kubectl get endpointslices -n default -l kubernetes.io/service-name=web"
    assert r.step("dns").command == "kubectl exec client -- nslookup web"


# ---- 1. Service exists? ------------------------------------------------------------------------------------
def test_service_missing_fails_and_skips_the_rest(working):
    r = checklist.run(working, "wbe", from_pod="client")
    assert r.first_failure.key == "service" and r[0].ok is False
    assert "not found" in r[0].found and "typo" in r[0].cause
    assert all(s.ok is None for s in r[1:])


def test_service_in_another_namespace_is_named_as_the_cause():
    c = cluster(WEB.replace("metadata: {name: web}\nspec:\n  selector",
                            "metadata: {name: web, namespace: shop}\nspec:\n  selector"))
    r = checklist.run(c, "web", from_pod="client")
    assert r[0].ok is False and "shop/web" in r[0].cause


def test_service_without_the_port_asked_fails(working):
    r = checklist.run(working, "web", from_pod="client", port=81)
    assert r[0].ok is False and "no port 81" in r[0].found


# ---- 2. Endpoints non-empty? -------------------------------------------------------------------------------------
def test_selector_mismatch_shows_the_missing_label():
    c = cluster(WEB.replace("selector: {app: web}\n  ports", "selector: {app: webx}\n  ports"))
    r = checklist.run(c, "web", from_pod="client")
    step = r.first_failure
    assert step.key == "endpoints" and "matches no pod" in step.found and "selector" in step.cause
    assert any("lacks app=webx" in line for line in step.evidence)


def test_pods_not_ready_are_endpoints_but_fail_the_step():
    c = cluster()
    for p in c.pods:
        if p.name.startswith("web-"):
            c.set_ready(p.name, False)
    r = checklist.run(c, "web", from_pod="client")
    step = r.first_failure
    assert step.key == "endpoints" and step.found == "2 endpoint(s), none ready"
    assert "readiness probe" in step.cause and any("ready=false" in e for e in step.evidence)


def test_no_selector_means_no_controller_endpoints():
    c = cluster(WEB.replace("  selector: {app: web}\n  ports", "  ports"))
    step = checklist.run(c, "web", from_pod="client").step("endpoints")
    assert step.ok is False and "no selector" in step.found


def test_pending_pods_match_but_have_no_address():
    c = cluster(WEB.replace("spec: {containers:", "spec: {nodeSelector: {disk: ssd}, containers:"))
    step = checklist.run(c, "web", from_pod="client").step("endpoints")
    assert step.ok is False and "2 pod(s) match, none has an address" in step.found and "Pending" in step.cause


# ---- 3. DNS resolves? -------------------------------------------------------------------------------------------
def test_dns_passes_with_the_clusterip_and_is_skipped_without_a_pod(working):
    r = checklist.run(working, "web", from_pod="client")
    assert r.step("dns").ok and working.get("svc", "web").cluster_ip in r.step("dns").found
    assert checklist.run(working, "web").step("dns").ok is None


def test_dns_fails_for_a_pod_that_asks_the_node_resolver():
    c = cluster(WEB + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: hostdns}\n"
                      "spec: {nodeName: node-2, dnsPolicy: Default, containers: [{name: c}]}\n")
    step = checklist.run(c, "web", from_pod="hostdns").step("dns")
    assert step.ok is False and "NXDOMAIN" in step.found and "dnsPolicy Default" in step.cause


def test_dns_from_another_namespace_uses_name_dot_namespace():
    c = cluster(WEB + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: c2, namespace: other}\n"
                      "spec: {nodeName: node-2, containers: [{name: c}]}\n")
    step = checklist.run(c, "web", from_pod="other/c2").step("dns")
    assert step.ok and step.command.endswith("nslookup web.default")


# ---- 4. ClusterIP reachable? and 5. Pod reachable directly? ------------------------------------------------------
@pytest.mark.parametrize("mode", kslib.MODES)
def test_no_endpoints_is_refused_by_the_node_in_every_mode(mode):
    c = cluster(WEB.replace("selector: {app: web}\n  ports", "selector: {app: webx}\n  ports"), mode=mode)
    r = checklist.run(c, "web", from_pod="client")
    assert r.step("clusterip").ok is False and "no ready endpoint" in r.step("clusterip").found
    assert r.step("pod").ok is None, "no pod to try"
    assert r.step("rules").ok is False and "no backend" in r.step("rules").found


def test_wrong_target_port_is_refused_by_the_pod():
    c = cluster(WEB.replace("targetPort: http", "targetPort: 80"))
    r = checklist.run(c, "web", from_pod="client")
    ip, pod = r.step("clusterip"), r.step("pod")
    assert r.first_failure is ip and "nothing listens on" in ip.found and "targetPort 80 is wrong" in ip.cause
    assert "8080/TCP (http)" in ip.cause
    assert pod.ok is False and pod.found == "2 of 2 pod(s) refuse port 80" and "8080/TCP (http)" in pod.cause
    assert r.step("rules").ok, "the rules are there: they send to the wrong port"


def test_headless_service_skips_the_clusterip_steps():
    c = cluster(WEB.replace("  selector: {app: web}\n  ports", "  clusterIP: None\n  selector: {app: web}\n  ports"))
    r = checklist.run(c, "web", from_pod="client")
    assert r.step("clusterip").ok is None and r.step("rules").ok is None
    assert r.step("dns").ok, "a headless name answers the pods' addresses"
    assert r.step("pod").ok


# ---- 6. kube-proxy healthy? -----------------------------------------------------------------------------------------
def test_kube_proxy_step_reads_every_nodes_last_sync(working, monkeypatch):
    assert checklist.run(working, "web", from_pod="client").step("kube-proxy").ok
    real = working.last_sync

    def never_synced(node):
        if node == "node-2":
            raise KeyError('node "node-2" has not synced in iptables mode')
        return real(node)

    monkeypatch.setattr(working, "last_sync", never_synced)
    step = checklist.run(working, "web", from_pod="client").step("kube-proxy")
    assert step.ok is False and step.found == "no sync on node-2"


# ---- 7. Rules present? -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", kslib.MODES)
def test_rules_hold_every_ready_endpoint_in_every_mode(mode):
    c = cluster(mode=mode)
    step = checklist.run(c, "web", from_pod="client").step("rules")
    assert step.ok and "2 of 2 ready endpoints" in step.found
    assert step.command.endswith("# on the node")


def test_iptables_no_endpoints_evidence_is_the_reject_rule():
    c = cluster(WEB.replace("selector: {app: web}\n  ports", "selector: {app: webx}\n  ports"))
    step = checklist.run(c, "web", from_pod="client").step("rules")
    assert '"default/web has no endpoints"' in step.found and "-j REJECT" in step.found


# ---- 8. External address assigned? ----------------------------------------------------------------------------------
LB = WEB.replace("  selector: {app: web}\n  ports", "  type: LoadBalancer\n  selector: {app: web}\n  ports")


def test_pending_load_balancer_without_a_controller():
    r = checklist.run(cluster(LB), "web", from_pod="client")
    step = r.first_failure
    assert step.key == "external-address" and step.found == "EXTERNAL-IP <pending>"
    assert "no load-balancer controller" in step.cause and "Events: <none>" in step.evidence


def test_load_balancer_with_a_cloud_passes_with_its_events():
    r = checklist.run(cluster(LB, cloud=kslib.CloudProvider()), "web", from_pod="client")
    step = r.step("external-address")
    assert step.ok and step.found == "load balancer at 203.0.113.1"
    assert any("EnsuredLoadBalancer" in e for e in step.evidence)


def test_load_balancer_class_nobody_serves():
    text = LB.replace("type: LoadBalancer", "type: LoadBalancer\n  loadBalancerClass: example.com/lb")
    step = checklist.run(cluster(text, cloud=kslib.CloudProvider()), "web", from_pod="client").step("external-address")
    assert step.ok is False and "example.com/lb" in step.cause


# ---- 9. Reachable from outside at every node? ----------------------------------------------------------------------
NODEPORT = WEB.replace("  selector: {app: web}\n  ports: [{port: 80, targetPort: http}]",
                       "  type: NodePort\n  externalTrafficPolicy: Local\n  selector: {app: web}\n"
                       "  ports: [{port: 80, targetPort: http, nodePort: 30080}]")


def test_local_policy_drops_at_the_node_without_an_endpoint():
    c = cluster(NODEPORT, nodes=3)
    holders = {p.node_name for p in c.pods if p.name.startswith("web-")}
    (empty,) = {"node-1", "node-2", "node-3"} - holders
    step = checklist.run(c, "web", from_pod="client").step("external-entry")
    assert step.ok is False and step.found == f"1 of 3 node(s) fail: {empty}"
    assert "externalTrafficPolicy Local" in step.cause and empty in step.cause


def test_cluster_policy_delivers_everywhere_but_hides_the_client():
    c = cluster(NODEPORT.replace("externalTrafficPolicy: Local", "externalTrafficPolicy: Cluster"), nodes=3)
    assert checklist.run(c, "web", from_pod="client").step("external-entry").ok
    step = checklist.run(c, "web", from_pod="client", client_ip_matters=True).step("external-entry")
    assert step.ok is False and "masquerades" in step.cause


def test_local_policy_with_a_pod_on_every_node_keeps_the_client_ip():
    c = cluster(NODEPORT.replace("replicas: 2", "replicas: 3"), nodes=3)
    step = checklist.run(c, "web", from_pod="client", client_ip_matters=True).step("external-entry")
    assert step.ok and "the client's own address" in step.found


# ---- 10. Outside names cheap to resolve? ---------------------------------------------------------------------------
def test_lookups_fail_under_ndots_5_and_pass_under_ndots_2():
    text = WEB + ("---\napiVersion: v1\nkind: Pod\nmetadata: {name: tuned}\nspec: {nodeName: node-2, "
                  "dnsConfig: {options: [{name: ndots, value: '2'}]}, containers: [{name: c}]}\n")
    c = cluster(text)
    c.dns.upstream.add("api.example.com", "192.0.2.10")
    step = checklist.run(c, "web", from_pod="client", lookups=["api.example.com"]).step("lookups")
    assert step.ok is False and step.found == "api.example.com costs 8 queries, not 2" and "ndots:5" in step.cause
    assert checklist.run(c, "web", from_pod="tuned", lookups=["api.example.com"]).step("lookups").ok
    assert checklist.run(c, "web", from_pod="client", lookups=["api.example.com."]).step("lookups").ok
    step = checklist.run(c, "web", from_pod="client", lookups=["nope.example.com"]).step("lookups")
    assert step.ok is False and step.found == "nope.example.com does not resolve"


# ---- output and dumps ------------------------------------------------------------------------------------------------
def test_table_and_first_failure_text():
    c = cluster(WEB.replace("targetPort: http", "targetPort: 80"))
    r = checklist.run(c, "web", from_pod="client")
    text = str(r)
    assert text.splitlines()[0] == ("Checklist for Service default/web from pod default/client "
                                    "(iptables mode, rules read on node-1)")
    assert " 4  ClusterIP reachable?     FAIL  refused by pod" in text
    assert "First failing step:\n4. ClusterIP reachable? FAIL" in text and "likely cause:" in text and "fix:" in text


def test_a_cluster_loaded_from_a_dump_gives_the_same_answers():
    c = cluster(WEB.replace("targetPort: http", "targetPort: 80"))
    copy = kslib.Cluster(seed=1)
    copy.apply(c.dump())
    assert checklist.run(copy, "web", from_pod="client").statuses == checklist.run(c, "web", from_pod="client").statuses


def test_whole_word_does_not_match_inside_a_longer_address():
    pat = checklist.whole_word("10.244.1.2")
    assert pat.search("to 10.244.1.2:80") and not pat.search("to 10.244.1.23") and not pat.search("110.244.1.2")
