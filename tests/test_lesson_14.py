"""Lesson 14, the debugging lab (kslib.viz.debugging): every broken cluster fails its goal and the
checklist finds it; every correct fix passes, whichever one the learner picks; fixes that only look
right fail; the Apply button's function refuses bad input without side effects; the quiz's keys come
from the model."""
import pytest

from kslib.viz import debugging as d
from kslib.viz import quiz
from kslib.viz.discovery import one_change_cost

FIRST_FAILURE = {"selector": "endpoints", "not-ready": "endpoints", "target-port": "clusterip",
                 "local-policy": "external-entry", "pending-lb": "external-address", "ndots": "lookups"}


@pytest.mark.parametrize("key", list(d.EXERCISES))
def test_broken_fails_and_the_lessons_fix_passes(key):
    ex = d.EXERCISES[key]
    broken = ex.build()
    ok, message = ex.check(broken)
    assert not ok and message
    assert ex.checklist(broken).first_failure.key == FIRST_FAILURE[key]
    fixed = ex.build(ex.fixed_manifests())
    ok, message = ex.check(fixed)
    assert ok, message
    assert ex.checklist(fixed).passed, str(ex.checklist(fixed))


def test_fix_diff_shows_only_the_changed_lines():
    diff = d.EXERCISES["target-port"].fix_diff()
    assert diff.startswith("--- broken.yaml\n+++ fixed.yaml\n")
    changed = [line for line in diff.splitlines()[2:] if line[:1] in "+-"]
    assert changed == ["-  - {port: 80, targetPort: 80}", "+  - {port: 80, targetPort: 8080}"]


def test_exercise_symptoms_are_what_the_broken_clusters_do():
    sel = d.EXERCISES["selector"].build()
    assert sel.connect("client", "web", 80).outcome == "rejected", "refused at once"
    assert all(p.ready for p in d.web_pods(sel)), "the pods are Ready"
    nr = d.EXERCISES["not-ready"].build()
    assert not any(p.ready for p in d.web_pods(nr)) and all(p.phase == "Running" for p in d.web_pods(nr))
    assert nr.connect("client", "web", 80).outcome == "rejected"
    tp = d.EXERCISES["target-port"].build()
    assert tp.connect("client", "web", 80).outcome == "rejected"
    assert sum(e.conditions.is_ready for s in tp.endpoint_slices("web") for e in s.endpoints) == 3
    lp = d.EXERCISES["local-policy"].build()
    outcomes = [lp.connect(d.EXTERNAL_CLIENT, n.internal_ip, d.EDGE_NODE_PORT, via=n.name).outcome for n in lp.nodes]
    assert outcomes.count("dropped") == 1 and outcomes.count("delivered") == 2, "some time out, the others work"
    lb = d.EXERCISES["pending-lb"].build()
    assert lb.cloud is None and not lb.get("svc", "web").ingress
    nd = d.EXERCISES["ndots"].build()
    res = nd.resolve(d.API_HOST, "app")
    assert res.count == 8 and res.by_status["NXDOMAIN"] == 6


def _variant(key, *pairs):
    text = d.EXERCISES[key].manifests
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new)
    return d.attempt(key, text)


@pytest.mark.parametrize("key,pairs", [
    ("selector", [("tier: frontend}", "tier: front-end}")]),                       # relabel the pods instead
    ("selector", [("selector: {app: web, tier: front-end}", "selector: {app: web}")]),
    ("not-ready", [("port: 8081}", "port: 8080}")]),
    ("not-ready", [("\n        readinessProbe:\n          httpGet: {path: /healthz, port: 8081}\n"
                    "          periodSeconds: 5", "")]),
    ("target-port", [("targetPort: 80}", "targetPort: http}")]),
    ("local-policy", [("replicas: 2", "replicas: 6")]),
    ("ndots", [("annotations: {shop.example.com/api-host: api.example.com}",
                "annotations: {shop.example.com/api-host: api.example.com.}")]),      # the trailing dot
    ("ndots", [("  nodeName: node-2\n",
                "  nodeName: node-2\n  dnsConfig:\n    options: [{name: ndots, value: \"1\"}]\n")]),
])
def test_other_correct_fixes_pass(key, pairs):
    a = _variant(key, *pairs)
    assert a.ok, str(a)


@pytest.mark.parametrize("key,pairs,why", [
    ("not-ready", [("  selector: {app: web}\n", "  publishNotReadyAddresses: true\n  selector: {app: web}\n")],
     "not a Ready pod"),
    ("local-policy", [("externalTrafficPolicy: Local", "externalTrafficPolicy: Cluster")], "not the client's"),
    ("local-policy", [("replicas: 2", "replicas: 3"), ("nodePort: 30080", "nodePort: 30081")], "30080"),
    ("pending-lb", [("type: LoadBalancer", "type: NodePort")], "<pending>"),
    ("pending-lb", [("  ports:\n  - {port: 80, targetPort: http}\n",
                     "  ports:\n  - {port: 80, targetPort: http}\n"
                     "status:\n  loadBalancer:\n    ingress: [{ip: 203.0.113.9}]\n")],
     "by hand"),
    ("ndots", [("  nodeName: node-2\n", "  nodeName: node-2\n  dnsPolicy: Default\n")], "cluster names broke"),
    ("ndots", [("annotations: {shop.example.com/api-host: api.example.com}",
                "annotations: {shop.example.com/api-host: api.example.org.}")], "must still call"),
])
def test_fixes_that_only_look_right_fail(key, pairs, why):
    a = _variant(key, *pairs)
    assert not a.ok and why in a.message, a.message


def test_attempt_refuses_bad_input_and_builds_nothing():
    for text, needle in [("", "no YAML"), ("kind: [", "line"),
                         (d.EXERCISES["selector"].manifests.replace("replicas: 3", "replicas: -1"), "replicas")]:
        a = d.attempt("selector", text)
        assert a.error and needle in a.error and a.cluster is None and a.checklist is None
        assert str(a).startswith("Refused, nothing changed:")
    no_ad = d.EXERCISES["pending-lb"].fixed_manifests().split("---\napiVersion: metallb.io/v1beta1\nkind: L2Adv")[0]
    a = d.attempt("pending-lb", no_ad)
    assert not a.ok and "<pending>" in a.message and "announce it nowhere" in a.notes[0]
    bgp = d.attempt("pending-lb",
                    d.EXERCISES["pending-lb"].fixed_manifests().replace("L2Advertisement", "BGPAdvertisement"))
    assert bgp.ok and "MetalLB installed (BGP) with pool(s) lab" in bgp.notes
    bad_pool = d.EXERCISES["pending-lb"].fixed_manifests().replace("203.0.113.240-203.0.113.250", "192.168.0.240/29")
    a = d.attempt("pending-lb", bad_pool)
    assert "overlaps the cluster's node_cidr" in a.error


def test_attempt_reports_notes_and_the_checklist():
    a = d.attempt("pending-lb", d.EXERCISES["pending-lb"].fixed_manifests())
    assert a.ok and "MetalLB installed (layer 2) with pool(s) lab" in a.notes
    assert str(a).startswith("Goal met: EXTERNAL-IP 203.0.113.240 (MetalLB)") and "Every step passes." in str(a)
    a = d.attempt("not-ready", d.EXERCISES["not-ready"].manifests)
    assert sum("readiness probe failed" in n for n in a.notes) == 3


def test_probe_passes_by_port_number_or_name():
    c = {"ports": [{"name": "http", "containerPort": 8080}]}
    assert d.probe_passes(c) and d.probe_passes({**c, "readinessProbe": {"httpGet": {"port": 8080}}})
    assert d.probe_passes({**c, "readinessProbe": {"tcpSocket": {"port": "http"}}})
    assert not d.probe_passes({**c, "readinessProbe": {"httpGet": {"port": 8081}}})
    assert not d.probe_passes({**c, "readinessProbe": {"grpc": {"port": "grpc"}}})
    assert d.probe_passes({**c, "readinessProbe": {"exec": {"command": ["true"]}}})
    assert d.probe_passes({"readinessProbe": {"httpGet": {"port": 1}}}), "no declared ports: cannot tell"


def test_first_failing_steps_of_the_broken_clusters():
    got = d.first_failing_steps()
    assert got == {"selector": (2, "Endpoints non-empty?"), "not-ready": (2, "Endpoints non-empty?"),
                   "target-port": (4, "ClusterIP reachable?"),
                   "local-policy": (8, "Reachable from outside at every node?"),
                   "pending-lb": (8, "External address assigned?"),
                   "ndots": (8, "Outside names cheap to resolve?")}


def test_no_rule_matches_a_clusterip_without_a_port():
    ex = d.EXERCISES["target-port"]
    c = ex.build(ex.fixed_manifests())
    lines = d.vip_rules(c, "node-1", c.get("svc", "web").cluster_ip)
    assert len(lines) == 2 and not d.portless(lines)
    assert d.portless(["-A KUBE-SERVICES -d 10.96.0.5 -j X"]) == ["-A KUBE-SERVICES -d 10.96.0.5 -j X"]


def test_load_balancer_bill():
    bill = d.load_balancer_bill(6)
    assert (bill.per_service_lbs, bill.shared_lbs) == (6, 1)
    assert (bill.per_service_cost, bill.shared_cost, bill.saving) == (109.5, 18.25, 91.25)


# ---- the quiz: keys from the model --------------------------------------------------------------------------------
def test_l14_q1_targetport_is_what_the_checklist_blames():
    q = quiz(14).questions[0]
    ex = d.EXERCISES["target-port"]
    r = ex.checklist(ex.build())
    assert r.step("endpoints").ok and r.step("clusterip").ok is False and r.step("pod").ok is False
    assert "targetPort" in r.step("pod").cause and "targetPort" in q.choices[q.answer]


def test_l14_q2_ndots_costs_8_queries():
    q = quiz(14).questions[1]
    c = d.EXERCISES["ndots"].build()
    assert q.choices[q.answer] == str(c.resolve(d.API_HOST, "app").count)


def test_l14_q3_local_policy_drops_at_a_node_without_endpoints():
    q = quiz(14).questions[2]
    c = d.EXERCISES["local-policy"].build()
    holders = {p.node_name for p in d.web_pods(c)}
    assert holders == {"node-2", "node-3"}, "the question's layout"
    conn = c.connect(d.EXTERNAL_CLIENT, c.get("node", "node-1").internal_ip, d.EDGE_NODE_PORT, via="node-1")
    assert conn.outcome == "dropped" and q.choices[q.answer].startswith("It is dropped")


def test_l14_q4_endpoints_truncate_at_1000():
    q = quiz(14).questions[3]
    cost = one_change_cost(1001)
    assert cost.endpoints_addresses == 1000 and cost.truncated and sum(cost.slice_sizes) == 1001
    keyed = q.choices[q.answer]
    assert keyed.startswith(f"{cost.endpoints_addresses:,} addresses") and "truncated" in keyed


def test_l14_q5_pending_without_a_controller_has_no_events():
    q = quiz(14).questions[4]
    ex = d.EXERCISES["pending-lb"]
    step = ex.checklist(ex.build()).step("external-address")
    assert step.ok is False and "Events: <none>" in step.evidence and "no load-balancer controller" in step.cause
    assert q.answer == 0 and "No load-balancer controller" in q.choices[q.answer]
