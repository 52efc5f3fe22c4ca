"""Lessons 01 (pods are ephemeral) and 02 (the ClusterIP and the VIP): the trace drawing
(kslib/viz/trace.py), and every quiz key that is a fact the model computes, derived from the model."""
import ipaddress

import plotly.graph_objects as go
import pytest

import kslib
from kslib.viz import lanes, marks, nat_points, quiz, summary, trace_figure
from kslib.viz.trace import KINDS, STAGES, lane, stage

TWO_NODES = """
apiVersion: v1
kind: Pod
metadata: {name: client}
spec: {nodeName: node-1, containers: [{name: curl, image: curlimages/curl}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client-2}
spec: {nodeName: node-2, containers: [{name: curl, image: curlimages/curl}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, labels: {app: web}}
spec: {nodeName: node-2, containers: [{name: web, image: nginx, ports: [{containerPort: 8080}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""


def two_nodes(mode="iptables"):
    c = kslib.Cluster(nodes=2, seed=0, mode=mode)
    c.apply(TWO_NODES)
    return c


@pytest.fixture(scope="module")
def lesson2():
    c = two_nodes()
    return c, c.get("svc", "web").cluster_ip


def node_ip(c, name):
    return c.get("node", name).internal_ip


def gateway(c, name):
    return str(ipaddress.ip_network(c.get("node", name).pod_cidr)[1])


# ---- the trace, read -------------------------------------------------------------------------------------------
def test_lanes_follow_the_packet_node_by_node_in_hook_order(lesson2):
    c, vip = lesson2
    conn = c.connect("client", vip, 80)
    assert lanes(conn) == ["node-1 conntrack", "node-1 PREROUTING", "node-1 routing", "node-1 FORWARD",
                           "node-1 POSTROUTING", "node-1 delivery",
                           "node-2 conntrack", "node-2 PREROUTING", "node-2 routing", "node-2 FORWARD",
                           "node-2 POSTROUTING", "node-2 delivery"]
    assert set(lanes(conn)) == {lane(s) for s in conn.trace}, "every step has its lane, and no lane is unused"
    assert lanes(conn) == lanes(conn.trace), "a Connection or its trace"


def test_a_hooks_lane_is_the_hook_and_other_steps_are_named_for_what_they_are(lesson2):
    c, vip = lesson2
    conn = c.connect("node-1", vip, 80)
    for s in conn.trace:
        assert stage(s) in STAGES
        if s.what in ("rule", "policy") and s.hook:
            assert stage(s) == s.hook
    assert "node-1 OUTPUT" in lanes(conn) and "node-1 PREROUTING" not in lanes(conn)


def test_the_dnat_mark_is_the_dnat_step_of_the_trace(lesson2):
    c, vip = lesson2
    conn = c.connect("client", vip, 80)
    web_ip = c.pod("web-1").pod_ip
    (i, step) = next((i, s) for i, s in enumerate(conn.trace, 1) if s.verdict == f"DNAT to {web_ip}:8080")
    (m,) = [m for m in marks(conn) if m.kind == "DNAT"]
    assert (m.step, m.lane, m.label, m.text) == (i, "node-1 PREROUTING", f"DNAT to {web_ip}:8080", str(step))
    assert not [m for m in marks(conn) if m.kind == "SNAT"], "a pod's connection is not masqueraded"


def test_marks_show_routing_delivery_and_the_reply_un_nat(lesson2):
    c, vip = lesson2
    conn = c.connect("client", vip, 80)
    ms = marks(conn)
    assert [m.label for m in ms if m.kind == "routing" and m.label.startswith("to ")] == ["to node-2", "to node-1"]
    assert [(m.lane, m.label) for m in ms if m.kind == "delivered"] == [
        ("node-2 delivery", "delivered to default/web-1"), ("node-1 delivery", "reply delivered to default/client")]
    (un,) = [m for m in ms if m.kind == "un-NAT"]
    assert conn.trace[un.step - 1].reply and un.label.startswith(f"reply un-NAT: {vip}:80 -> ")
    assert [m.step for m in ms] == sorted(m.step for m in ms)


def test_a_dropped_and_a_rejected_connection_end_in_a_failure_mark(lesson2):
    c, vip = lesson2
    dropped = c.connect("client", vip, 81)
    assert dropped.outcome == "dropped" and marks(dropped)[-1].kind == "failed"
    assert marks(dropped)[-1].label == "dropped" and marks(dropped)[-1].step == len(dropped.trace)
    e = two_nodes()
    e.delete("pod", "web-1")
    e.advance(30)
    rejected = e.connect("client", e.get("svc", "web").cluster_ip, 80)
    assert rejected.outcome == "rejected" and (marks(rejected)[-1].kind, marks(rejected)[-1].label) == ("failed", "rejected")


@pytest.mark.parametrize("src, dnat_at, snat", [
    ("client", "node-1 PREROUTING", None),
    ("client-2", "node-2 PREROUTING", None),
    ("node-1", "node-1 OUTPUT", "node"),
    ("node-2", "node-2 OUTPUT", "gateway"),
    ("web-1", "node-2 PREROUTING", "gateway"),
])
def test_nat_points_read_dnat_and_masquerade_and_agree_with_the_connection(lesson2, src, dnat_at, snat):
    c, vip = lesson2
    conn = c.connect(src, vip, 80)
    p = nat_points(conn)
    where = conn.node
    assert (p.dnat, p.dnat_at) == (f"{c.pod('web-1').pod_ip}:8080", dnat_at)
    want = {None: None, "node": node_ip(c, "node-1"), "gateway": gateway(c, "node-2")}[snat]
    assert p.snat == want and p.masqueraded == (snat is not None)
    assert conn.source_ip == (want or c.pod(src).pod_ip)
    assert p.snat_at == (f"{dnat_at.split()[0]} POSTROUTING" if snat else None)
    assert p.reply_unnat and conn.reply_source == vip and where == "node-2"


def test_nat_points_of_an_untranslated_connection_are_empty(lesson2):
    c, vip = lesson2
    p = nat_points(c.connect("client", c.pod("web-1").pod_ip, 8080))
    assert (p.dnat, p.snat, p.reply_unnat, p.masqueraded) == (None, None, False, False)


# ---- the trace, drawn ---------------------------------------------------------------------------------------------
def test_the_figure_has_one_lane_per_node_and_hook_and_marks_where_the_trace_says(lesson2):
    c, vip = lesson2
    conn = c.connect("node-1", vip, 80)
    fig = trace_figure(conn)
    assert isinstance(fig, go.Figure)
    assert fig.layout.title.text == f"The path of node-1 -> {vip}:80/TCP: delivered"
    assert fig.layout.xaxis.title.text == "step of the trace" and fig.layout.yaxis.title.text == "node and hook"
    assert list(fig.layout.yaxis.categoryarray) == lanes(conn) and fig.layout.yaxis.autorange == "reversed"
    by_name = {t.name: t for t in fig.data}
    request, reply = by_name["request path"], by_name["reply path"]
    assert list(request.x) == [i for i, s in enumerate(conn.trace, 1) if not s.reply]
    assert list(request.y) == [lane(s) for s in conn.trace if not s.reply]
    assert reply.x[0] == request.x[-1] and reply.line.dash == "dash", "the reply starts where the request ended"
    for kind, (name, color, symbol) in KINDS.items():
        mine = [m for m in marks(conn) if m.kind == kind]
        if mine:
            t = by_name[name]
            assert (list(t.x), list(t.y), list(t.text)) == ([m.step for m in mine], [m.lane for m in mine],
                                                            [m.label for m in mine])
            assert t.marker.color == color and t.marker.symbol == symbol
        else:
            assert name not in by_name
    dnat = by_name[KINDS["DNAT"][0]]
    (i,) = [i for i, s in enumerate(conn.trace, 1) if s.verdict.startswith("DNAT to ")]
    assert (list(dnat.x), list(dnat.y)) == ([i], ["node-1 OUTPUT"])
    snat = by_name[KINDS["SNAT"][0]]
    assert list(snat.y) == ["node-1 POSTROUTING"] and list(snat.text) == [f"SNAT to {node_ip(c, 'node-1')}:{conn.source_port}"]
    text = summary(fig)
    assert f"- DNAT (destination rewritten): {i}: node-1 OUTPUT." in text


def test_the_figure_takes_a_trace_a_title_and_refuses_what_is_not_one(lesson2):
    c, vip = lesson2
    conn = c.connect("client", vip, 80)
    assert trace_figure(conn.trace).layout.title.text == "The path of one connection"
    assert trace_figure(conn, title="mine").layout.title.text == "mine"
    with pytest.raises(ValueError, match="empty"):
        trace_figure([])
    with pytest.raises(ValueError, match="Connection"):
        trace_figure(["not a step"])


@pytest.mark.parametrize("mode", ["nftables", "ipvs", "ebpf"])
def test_the_figure_draws_every_modes_trace(mode):
    c = two_nodes(mode)
    conn = c.connect("client", c.get("svc", "web").cluster_ip, 80)
    fig = trace_figure(conn)
    assert list(fig.layout.yaxis.categoryarray) == lanes(conn)
    kinds = {m.kind for m in marks(conn)}
    assert "delivered" in kinds
    assert ("socket" in kinds) if mode == "ebpf" else ("DNAT" in kinds)


# ---- lesson 01: the model facts it relies on, and its quiz -----------------------------------------------------------
WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx, ports: [{containerPort: 8080}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec: {nodeName: node-1, containers: [{name: curl, image: curlimages/curl}]}
"""
SERVICE = "apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec:\n  selector: {{{pairs}}}\n" \
          "  ports: [{{port: 80, targetPort: 8080}}]\n"


def test_l01_q1_a_replacement_pod_gets_a_new_address():
    c = kslib.Cluster(nodes=2, seed=0)
    c.apply(WEB)
    q = quiz(1).questions[0]
    before = {p.name for p in c.pods}
    old = c.pod(sorted(n for n in before if n.startswith("web-"))[0])
    c.delete("pod", old.name)
    c.advance(30)
    (new,) = [p for p in c.pods if p.name not in before]
    assert new.pod_ip != old.pod_ip and old.pod_ip not in {p.pod_ip for p in c.pods}
    node = c.get("node", new.node_name)
    assert ipaddress.ip_address(new.pod_ip) in ipaddress.ip_network(node.pod_cidr)
    assert q.choices[q.answer].startswith("A new address from the podCIDR")


def test_l01_q2_a_selector_needs_every_label_and_ignores_extra_ones():
    q = quiz(1).questions[1]
    docs = {0: "{app: web}", 1: "{app: web, tier: api, version: v2}", 2: "{tier: api}"}
    c = kslib.Cluster(nodes=1, seed=0)
    c.apply("".join(f"---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}, labels: {labels}}}\n"
                    f"spec: {{nodeName: node-1, containers: [{{name: c, ports: [{{containerPort: 8080}}]}}]}}\n"
                    for i, labels in docs.items()) + "---\n" + SERVICE.format(pairs="app: web, tier: api"))
    ips = {a for s in c.endpoint_slices("web") for e in s.endpoints for a in e.addresses}
    chosen = [i for i in docs if c.pod(f"p{i}").pod_ip in ips]
    assert chosen == [q.answer], chosen
    assert "version: v2" in q.choices[q.answer]


def test_l01_q3_no_endpoints_is_rejected_by_the_has_no_endpoints_rule():
    q = quiz(1).questions[2]
    c = kslib.Cluster(nodes=2, seed=0)
    c.apply(WEB + "---\n" + SERVICE.format(pairs="app: api"))
    conn = c.connect("client", "web", 80)
    (reject,) = [s for s in conn.trace if s.verdict == "REJECT"]
    assert conn.outcome == "rejected" and "default/web has no endpoints" in reject.rule
    assert reject.node == "node-1" and reject.rule in c.render("node-1").splitlines()
    assert "has no endpoints" in q.choices[q.answer] and "rejected" in q.choices[q.answer]
    assert not c.endpoint_slices("web")[0].endpoints, "and the first thing to check (q4) is empty"
    assert "EndpointSlices" in quiz(1).questions[3].choices[quiz(1).questions[3].answer]


def test_l01_the_selector_widget_input_is_parsed_and_validated_by_the_api_server():
    # the widget turns "key=value, key=value" into the YAML flow map of SERVICE; kslib parses and validates it
    c = kslib.Cluster(nodes=1, seed=0)
    c.apply(WEB)
    c.apply(SERVICE.format(pairs="app=web, track=canary".replace("=", ": ")))
    assert c.get("svc", "web").selector == {"app": "web", "track": "canary"}
    for bad, message in (("app=web, track=v1!", 'spec.selector: Invalid value: "v1!"'),
                         ("app", "spec.selector[app]: Invalid value: null: must be a string"),
                         ("app=web}", "manifest:")):
        with pytest.raises(ValueError) as err:
            c.apply(SERVICE.format(pairs=bad.replace("=", ": ")))
        assert message in str(err.value)
        assert c.get("svc", "web").selector == {"app": "web", "track": "canary"}, "a refused apply changes nothing"


# ---- lesson 02's quiz ----------------------------------------------------------------------------------------------
def test_l02_q1_an_undefined_port_is_dropped_in_iptables_mode_and_rejected_in_nftables(lesson2):
    c, vip = lesson2
    q = quiz(2).questions[0]
    conn = c.connect("client", vip, 81)
    assert conn.outcome == "dropped" and not any(s.verdict.startswith("DNAT") for s in conn.trace)
    assert q.choices[q.answer].split(":")[0] == "No rule translates it and nothing answers for the ClusterIP"
    assert "dropped" in q.choices[q.answer]
    n = two_nodes("nftables")
    assert n.connect("client", n.get("svc", "web").cluster_ip, 81).outcome == "rejected"


def test_l02_q2_q3_the_dnat_place_and_the_source_a_pod_keeps(lesson2):
    c, vip = lesson2
    conn = c.connect("client", vip, 80)
    q2, q3 = quiz(2).questions[1:3]
    assert q2.choices[q2.answer] == nat_points(conn).dnat_at.replace(" ", ", in nat ")
    assert conn.source_ip == c.pod("client").pod_ip
    assert q3.choices[q3.answer] == "the client pod's own address"


def test_l02_q4_q5_a_nodes_own_connection_is_masqueraded_to_its_ip_and_replies_come_from_the_vip(lesson2):
    c, vip = lesson2
    conn = c.connect("node-1", vip, 80)
    q4, q5 = quiz(2).questions[3:5]
    assert conn.source_ip == node_ip(c, "node-1") and q4.choices[q4.answer] == "node-1's InternalIP"
    assert conn.reply_source == vip and q5.choices[q5.answer] == "the ClusterIP"
