"""kslib.snapshot: a kubectl dump loaded into the model, and a real node's iptables-save traced.

The sample dump (kslib/data/sample_cluster.yaml) is a hand-made but consistent `kubectl get
nodes,pods,services,endpointslices -A -o yaml` of a kubeadm cluster; the sample node dump
(kslib/data/sample_node_iptables_save.txt) is genuine iptables-save output of its worker-1, made by
scripts/make_sample_node_dump.py (checked below where the kernel lab can run)."""
import ipaddress
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import kslib
import kslib.snapshot as ks
from kslib.dataplane.rules import IptablesSaveError, parse

ROOT = Path(__file__).resolve().parents[1]
WEB = {"shop/web-6b7f9c8d5f-2xkqp", "shop/web-6b7f9c8d5f-8mzt4", "shop/web-6b7f9c8d5f-qr9vn"}
DOCS = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]


@pytest.fixture(scope="module")
def sample():
    return ks.load("sample")


@pytest.fixture(scope="module")
def dump(sample):
    return ks.NodeDump(sample, ks.SAMPLE_NODE, ks.SAMPLE_NODE_DUMP.read_text(), source="sample dump")


# ---- the sample dump itself ------------------------------------------------------------------------------
def test_the_sample_is_a_kubectl_list_of_the_four_kinds():
    data = yaml.safe_load(ks.SAMPLE.read_text())
    assert (data["kind"], data["apiVersion"], data["metadata"]) == ("List", "v1", {"resourceVersion": ""})
    kinds = [o["kind"] for o in data["items"]]
    # kubectl prints the types in the order asked for
    assert kinds == sorted(kinds, key=["Node", "Pod", "Service", "EndpointSlice"].index)
    assert all("managedFields" not in o["metadata"] for o in data["items"]), "kubectl omits managedFields"
    assert all(o["metadata"].get("uid") and o["metadata"].get("resourceVersion") for o in data["items"])


def test_the_sample_uses_private_and_documentation_addresses_only():
    text = ks.SAMPLE.read_text()
    ips = {m for m in re.findall(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?![\d.])", text)}
    assert ips
    for a in ips:
        ip = ipaddress.ip_address(a)
        assert ip.is_private or any(ip in n for n in DOCS), a


def test_the_sample_is_consistent():
    objs = ks.read("sample")
    nodes = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Node"}
    for p in (o for o in objs if o["kind"] == "Pod"):
        node = nodes[p["spec"]["nodeName"]]
        ip = ipaddress.ip_address(p["status"]["podIP"])
        node_ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
        if p["spec"].get("hostNetwork"):
            assert str(ip) == node_ip == p["status"]["hostIP"]
        else:
            assert ip in ipaddress.ip_network(node["spec"]["podCIDR"]), p["metadata"]["name"]
    assert ks.load(objs).snapshot.slice_differences == [], "the slices are what the controller writes"


def test_the_sample_holds_what_the_lesson_names(sample):
    assert [n.name for n in sample.nodes] == ["cp-1", "worker-1", "worker-2"]
    assert sample.get("node", "cp-1").is_control_plane and not sample.get("node", "worker-1").is_control_plane
    types = {s.key: s.type for s in sample.services}
    assert types["shop/web"] == "ClusterIP" and types["shop/api"] == "NodePort"
    assert types["shop/frontend"] == "LoadBalancer" and types["shop/payments"] == "ExternalName"
    assert sample.get("svc", "db", "shop").cluster_ip == "None"
    fe = sample.get("svc", "frontend", "shop")
    assert (fe.external_traffic_policy, fe.health_check_node_port, [i.ip for i in fe.ingress]) == \
        ("Local", 32415, ["203.0.113.10"])
    assert sample.get("svc", "web", "shop").ports[0].target_port == "http"
    assert not sample.pod("shop/api-5d4f8b7c9-t9p6z").ready
    assert sample.pod("shop/web-5c8d7b9f4d-jj5wz").terminating
    assert sample.pod("kube-system/kube-proxy-8vjnf").host_network


# ---- load: what is kept and what is inferred ----------------------------------------------------------------
def test_load_keeps_the_dumps_addresses(sample):
    objs = ks.read("sample")
    for o in objs:
        if o["kind"] == "Node":
            n = sample.get("node", o["metadata"]["name"])
            assert n.pod_cidr == o["spec"]["podCIDR"]
            assert n.internal_ip == o["status"]["addresses"][0]["address"]
        elif o["kind"] == "Pod":
            assert sample.pod(ks._key(o)).pod_ip == o["status"]["podIP"]
            assert sample.pod(ks._key(o)).node_name == o["spec"]["nodeName"]
        elif o["kind"] == "Service":
            s = sample.get("svc", o["metadata"]["name"], o["metadata"]["namespace"])
            assert s.cluster_ip == o["spec"].get("clusterIP", "")
            assert [p.node_port for p in s.ports if p.node_port] == \
                [p["nodePort"] for p in o["spec"].get("ports", []) if "nodePort" in p]


def test_load_reads_the_settings_where_the_cluster_records_them(sample):
    s = sample.snapshot.settings
    assert (s["service_cidr"].value, s["service_cidr"].recorded) == ("10.96.0.0/16", True)
    assert "kube-system/kube-apiserver-cp-1 --service-cluster-ip-range" in s["service_cidr"].source
    assert (s["cluster_cidr"].value, s["cluster_cidr"].recorded) == ("10.244.0.0/16", True)
    assert "kube-controller-manager-cp-1 --cluster-cidr" in s["cluster_cidr"].source
    assert (s["cluster_dns"].value, s["cluster_domain"].value) == ("10.96.0.10", "cluster.local")
    assert s["cluster_domain"].recorded and "--service-account-issuer" in s["cluster_domain"].source
    assert (s["node_cidr"].value, s["node_cidr"].recorded) == ("10.0.1.0/24", False)
    assert (s["node_port_range"].value, s["node_port_range"].recorded) == ("30000-32767", False)
    assert (sample.service_cidr, sample.cluster_cidr, str(sample.api.node_net)) == \
        ("10.96.0.0/16", "10.244.0.0/16", "10.0.1.0/24")
    assert sample.dns.ip == "10.96.0.10"
    assert "10.96.0.0/16" in str(sample.snapshot) and "fallback" in str(sample.snapshot)


def test_fallbacks_when_the_control_plane_is_hidden():
    c = ks.load(ks.managed_view(ks.read("sample")))
    s = c.snapshot.settings
    assert (s["service_cidr"].value, s["service_cidr"].recorded) == ("10.96.0.0/12", False)
    assert (s["cluster_cidr"].value, s["cluster_cidr"].recorded) == ("10.244.0.0/16", False)
    assert s["cluster_dns"].value == "10.96.0.10", "kube-dns is still listed"
    assert c.snapshot.counts["Pod"] == 22


def test_fallback_is_the_smallest_network_when_the_default_does_not_hold_the_addresses():
    objs = [{"kind": "Service", "metadata": {"name": n, "namespace": "default"}, "spec": {"clusterIP": ip}}
            for n, ip in (("a", "172.20.0.1"), ("b", "172.20.3.9"), ("c", "172.20.100.7"))]
    objs.append({"kind": "Node", "metadata": {"name": "n"}, "spec": {"podCIDR": "100.64.3.0/24"},
                 "status": {"addresses": [{"type": "InternalIP", "address": "10.1.2.3"}]}})
    s = ks.infer_settings(objs)
    assert s["service_cidr"].value == "172.20.0.0/17" and "smallest" in s["service_cidr"].source
    assert s["cluster_cidr"].value == "100.64.0.0/16", "podCIDRs widen to at most /16"
    assert s["node_cidr"].value == "10.1.2.0/24"
    assert s["cluster_dns"].value == "172.20.0.10", "kubeadm: the 10th address of the service range"


def test_dual_stack_flags_give_their_ipv4_part():
    objs = ks.read("sample")
    for o in objs:
        for c in o.get("spec", {}).get("containers", []) if o["kind"] == "Pod" else []:
            c["command"] = [w.replace("--cluster-cidr=10.244.0.0/16", "--cluster-cidr=10.244.0.0/16,fd00:10:244::/56")
                            for w in c.get("command", [])]
    s = ks.infer_settings(objs)
    assert s["cluster_cidr"].value == "10.244.0.0/16" and "IPv4 part" in s["cluster_cidr"].source


def test_options_win_and_are_reported_as_given():
    c = ks.load("sample", seed=3, proxy_options={"random_fully": True}, cluster_domain="cluster.local")
    assert c.seed == 3 and c.proxy_config.random_fully
    assert c.snapshot.settings["cluster_domain"].source == "given to load()"
    with pytest.raises(ValueError, match="load: colour: not an option"):
        ks.load("sample", colour="blue")


def test_the_clock_is_set_to_when_the_dump_was_taken_and_terminating_pods_finish(sample):
    assert sample.snapshot.taken_at == "2026-02-12T10:31:07Z"
    assert sample.api.now == "2026-02-12T10:31:07Z"
    c = ks.load("sample")
    pod = c.pod("shop/web-5c8d7b9f4d-jj5wz")
    assert pod.deletion_deadline == pytest.approx(ks._seconds("2026-02-12T10:31:35Z"))
    c.advance(27)
    assert c.api.get("Pod", "shop/web-5c8d7b9f4d-jj5wz") is not None
    c.advance(1)
    assert c.api.get("Pod", "shop/web-5c8d7b9f4d-jj5wz") is None, "gone when its grace period ends"
    assert "10.244.2.3" not in {a for s in c.endpoint_slices("web", "shop") for e in s.endpoints for a in e.addresses}


def test_a_models_own_dump_round_trips():
    c = kslib.Cluster(nodes=2, seed=1)
    c.apply("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80}]}
""")
    back = ks.load(c.dump())
    assert {p.key: p.pod_ip for p in back.pods} == {p.key: p.pod_ip for p in c.pods}
    assert back.get("svc", "web").cluster_ip == c.get("svc", "web").cluster_ip
    assert back.snapshot.slice_differences == []
    assert back.snapshot.settings["service_cidr"].value == "10.96.0.0/12"


def test_pods_the_dump_shows_without_an_address_are_reported_as_started_by_the_model():
    objs = ks.read("sample")
    objs.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pending", "namespace": "shop"},
                 "spec": {"containers": [{"name": "c", "image": "busybox"}]}, "status": {"phase": "Pending"}})
    snap = ks.load(objs).snapshot
    assert len(snap.started_pods) == 1 and snap.started_pods[0].startswith("shop/pending on ")


# ---- EndpointSlices: the dump's against the controller's ---------------------------------------------------
def test_slices_are_recomputed_and_agree_with_the_sample(sample):
    snap = sample.snapshot
    assert snap.slice_differences == []
    assert snap.compared_services == ["kube-system/kube-dns", "metallb-system/metallb-webhook-service", "shop/api",
                                      "shop/db", "shop/frontend", "shop/web"]
    assert [s.name for s in sample.endpoint_slices("web", "shop")] == ["web-7xk2p"], "unchanged slices keep their name"
    assert len(snap.kept_slices) == 1 and snap.kept_slices[0].startswith("shop/legacy-billing-1 (managed by staff")
    legacy = sample.endpoint_slices("legacy-billing", "shop")
    assert [e.addresses for s in legacy for e in s.endpoints] == [["10.0.2.50"]], "a selectorless slice is kept"


def test_a_stale_slice_in_the_dump_is_reported():
    objs = ks.set_pod_ready(ks.read("sample"), "shop/api-5d4f8b7c9-t9p6z")
    c = ks.load(objs)
    assert [(d.service, d.address, d.field, d.dump, d.recomputed) for d in c.snapshot.slice_differences] == [
        ("shop/api", "10.244.2.4", "ready", False, True), ("shop/api", "10.244.2.4", "serving", False, True)]
    assert "shop/api 10.244.2.4: ready: dump False, recomputed True" in str(c.snapshot)
    assert "10.244.2.4:9000" in c.render("worker-1"), "kube-proxy follows the recomputed slice"
    with pytest.raises(KeyError, match="not in the dump"):
        ks.set_pod_ready(objs, "shop/nope")


def test_a_slice_the_controller_would_not_write_is_reported():
    objs = ks.read("sample")
    for o in objs:
        if o["kind"] == "EndpointSlice" and o["metadata"]["name"] == "web-7xk2p":
            o["endpoints"].append({"addresses": ["10.244.2.99"], "conditions": {"ready": True}})
    diffs = ks.load(objs).snapshot.slice_differences
    assert [(d.service, d.address, d.field, d.dump, d.recomputed) for d in diffs] == \
        [("shop/web", "10.244.2.99", "endpoint", True, False)]
    assert str(diffs[0]) == "shop/web 10.244.2.99: only in the dump's slices"


# ---- bad input ------------------------------------------------------------------------------------------------
def test_text_that_is_not_yaml_names_the_line():
    with pytest.raises(kslib.ManifestError, match="document 1, line 4, column 3"):
        ks.load("apiVersion: v1\nkind: List\nitems: [\n  - {a: \n")


def test_a_dump_without_nodes_says_what_to_run():
    with pytest.raises(ks.SnapshotError, match="holds no Node.*kubectl get nodes,pods,services,endpointslices"):
        ks.load("apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80}]}\n")


def test_a_bad_flag_names_the_pod_and_the_field():
    objs = ks.read("sample")
    for o in objs:
        if o["metadata"]["name"] == "kube-apiserver-cp-1":
            cmd = o["spec"]["containers"][0]["command"]
            cmd[cmd.index("--service-cluster-ip-range=10.96.0.0/16")] = "--service-cluster-ip-range=10.96.0.0/33"
    with pytest.raises(kslib.ValidationError) as info:
        ks.load(objs)
    msg = str(info.value)
    assert msg.startswith('The Pod "kube-apiserver-cp-1" is invalid: spec.containers[0].command[')
    assert "--service-cluster-ip-range=10.96.0.0/33" in msg and "is not a CIDR" in msg


def test_a_bad_object_is_refused_with_the_api_servers_message():
    objs = ks.read("sample")
    for o in objs:
        if o["kind"] == "Pod" and o["metadata"]["name"] == "debug":
            o["status"]["podIP"] = "10.244.1.300"
    with pytest.raises(kslib.ValidationError, match=r'The Pod "debug" is invalid: status.podIP: Invalid value: '
                                                    r'"10.244.1.300"'):
        ks.load(objs)


def test_a_cluster_ip_outside_the_recorded_range_is_refused():
    text = ks.SAMPLE.read_text().replace("10.96.37.120", "10.97.37.120")
    with pytest.raises(kslib.ValidationError, match=r'The Service "web" is invalid: spec.clusterIPs: .*'
                                                    r'The range of valid IPs is 10.96.0.0/16'):
        ks.load(text)


def test_a_field_of_the_wrong_type_names_it():
    objs = ks.read("sample")
    for o in objs:
        if o["kind"] == "Service" and o["metadata"]["name"] == "api":
            o["spec"]["ports"][0]["nodePort"] = "30900"
    with pytest.raises(kslib.ValidationError, match=r'The Service "api" is invalid: spec.ports\[0\].nodePort'):
        ks.load(objs)


# ---- views -----------------------------------------------------------------------------------------------------
def test_get_nodes(sample):
    lines = ks.get_nodes(sample).splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "ROLES", "INTERNAL-IP", "POD-CIDR", "ZONE"]
    assert lines[1].split() == ["cp-1", "Ready", "control-plane", "10.0.1.10", "10.244.0.0/24", "zone-a"]


def test_three_layers_of_web(sample):
    lay = ks.layers(sample, "shop/web", "worker-1")
    assert (lay.selector, lay.cluster_ip) == ({"app": "web"}, "10.96.37.120")
    assert len(lay.selected_pods) == 4 and len(lay.endpoints) == 4
    assert sum("ready=true" in e for e in lay.endpoints) == 3
    assert sum("-j DNAT --to-destination" in r for r in lay.rules) == 3, "the terminating endpoint gets no rule"
    assert "3. kube-proxy on worker-1" in lay.text()
    with pytest.raises(KeyError):
        ks.layers(sample, "shop/nope", "worker-1")


def test_node_rules_in_every_mode_and_errors_change_nothing():
    c = ks.load("sample")
    assert "*nat" in ks.node_rules(c, "worker-1", "iptables")
    assert "table ip kube-proxy" in ks.node_rules(c, "worker-2", "nftables")
    assert "IP Virtual Server" in ks.node_rules(c, "cp-1", "ipvs")
    with pytest.raises(ValueError, match="mode: unsupported value 'userspace'"):
        ks.node_rules(c, "worker-1", "userspace")
    assert c.mode == "ipvs"
    with pytest.raises(ValueError, match='node: "worker-9" not found; nodes: cp-1, worker-1, worker-2'):
        ks.node_rules(c, "worker-9", "iptables")
    assert c.mode == "ipvs"


# ---- the real node dump ------------------------------------------------------------------------------------------
def test_the_node_dump_is_iptables_save_output_with_a_header():
    lines = ks.SAMPLE_NODE_DUMP.read_text().splitlines()
    header = [ln for ln in lines[:10] if ln.startswith("# ") and "Generated by" not in ln]
    assert any("scripts/make_sample_node_dump.py" in ln for ln in header)
    assert any("iptables-restore and iptables-save" in ln for ln in header)
    assert sum(ln.startswith("# Generated by iptables-save v1.8.9 (nf_tables)") for ln in lines) == 3
    rs = parse(ks.SAMPLE_NODE_DUMP.read_text())
    assert set(rs.tables) == {"mangle", "filter", "nat"}
    assert rs.chain("nat", "FLANNEL-POSTRTG") and rs.chain("filter", "KUBE-KUBELET-CANARY") is not None


def test_the_node_dump_compares_chain_by_chain(dump):
    rows = {(r.table, r.chain): r for r in dump.compare()}
    kube = [r for r in rows.values() if r.owner == "kube-proxy"]
    assert [(r.chain, r.status) for r in kube if r.status != "same"] == [("KUBE-POSTROUTING", "differs")]
    post = rows["nat", "KUBE-POSTROUTING"]
    assert post.only_dump[0].endswith("-j MASQUERADE --random-fully") and post.only_model[0].endswith("-j MASQUERADE")
    assert rows["filter", "INPUT"].status == "same rules, other order"
    assert rows["nat", "FLANNEL-POSTRTG"].status == "only in the dump" and rows["nat", "FLANNEL-POSTRTG"].owner == \
        "flannel (CNI)"
    assert rows["mangle", "KUBE-KUBELET-CANARY"].owner == "kubelet"
    assert not any(r.status == "only in the model" for r in rows.values())
    same = ks.load("sample", proxy_options={"random_fully": True})
    rows2 = ks.NodeDump(same, "worker-1", ks.SAMPLE_NODE_DUMP.read_text()).compare()
    assert all(r.status == "same" for r in rows2 if r.owner == "kube-proxy")


PROBES_AGREE = [("shop/debug", "10.96.37.120", 80, "TCP"), ("shop/debug", "web.shop", 80, "TCP"),
                ("shop/db-0", "10.96.37.120", 80, "TCP"), ("shop/debug", "10.96.0.10", 53, "UDP"),
                ("worker-1", "10.96.0.10", 53, "UDP"), ("worker-1", "10.96.0.1", 443, "TCP"),
                ("shop/debug", "10.96.112.33", 9000, "TCP"), ("shop/debug", "203.0.113.10", 80, "TCP"),
                ("198.51.100.7", "203.0.113.10", 80, "TCP"), ("198.51.100.7", "10.0.1.11", 30900, "TCP"),
                ("198.51.100.7", "10.0.1.11", 31380, "TCP"), ("shop/debug", "10.96.37.120", 81, "TCP"),
                ("worker-1", "127.0.0.1", 30900, "TCP")]


def test_tracing_through_the_real_dump_agrees_with_the_model(dump):
    results = ks.agreement(dump, PROBES_AGREE, n=20)
    for a in results:
        assert a.agree, str(a)
    by = {a.probe: a for a in results}
    assert {w for (_, w, _) in by[PROBES_AGREE[0]].dump} == WEB, "every ready web pod, none terminating"
    assert set(by["198.51.100.7", "10.0.1.11", 31380, "TCP"].dump) == {("dropped", None, None)}, \
        "eTP Local: worker-1 has no frontend pod"


def test_the_cni_masquerade_is_what_the_dump_adds(dump):
    """flannel --ip-masq masquerades pod traffic leaving the pod network; the model has no CNI rules."""
    for dst, port, to in (("10.96.201.15", 80, "10.0.2.50:8080"), ("10.96.0.1", 443, "10.0.1.10:6443")):
        real, model = dump.connect("shop/debug", dst, port), dump.model_connect("shop/debug", dst, port)
        assert (real.endpoint, model.endpoint) == (to, to)
        assert (real.source_ip, model.source_ip) == ("10.0.1.11", "10.244.1.7")
        assert any("FLANNEL-POSTRTG" in s.rule and "MASQUERADE" in s.rule for s in real.trace)


def test_a_dump_trace_quotes_the_dumps_own_lines(dump):
    conn = dump.connect("shop/debug", "web.shop", 80)
    lines = ks.SAMPLE_NODE_DUMP.read_text().splitlines()
    quoted = dump.quoted(conn)
    assert quoted and all(lines[n - 1] == text for n, text in quoted)
    assert any("-j DNAT --to-destination" in t and t.endswith(":8080") for _, t in quoted)
    assert any("/32" in t for _, t in quoted), "iptables-save's spelling, not kube-proxy's"
    assert conn.outcome == "delivered" and conn.pod in WEB


def test_a_dump_traces_only_what_starts_on_its_node(dump):
    with pytest.raises(ValueError, match="is on worker-2, but the dump holds worker-1's rules"):
        dump.connect("shop/web-6b7f9c8d5f-8mzt4", "10.96.37.120", 80)
    with pytest.raises(ValueError, match="port: Invalid value"):
        dump.connect("shop/debug", "10.96.37.120", 0)


@pytest.mark.parametrize("bad, line, token", [
    ("-A KUBE-MARK-MASQ -m owner --uid-owner 0 -j MARK --set-xmark 0x4000/0x4000", 111, "-m owner"),
    ("-A KUBE-MARK-MASQ -j CONNMARK --set-mark 0x1", 111, "CONNMARK"),
])
def test_unsupported_lines_name_the_line_and_the_token(sample, bad, line, token):
    lines = ks.SAMPLE_NODE_DUMP.read_text().splitlines()
    at = lines.index("-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000")
    lines[at] = bad
    with pytest.raises(IptablesSaveError) as info:
        ks.trace_text(sample, "worker-1", "\n".join(lines), "shop/debug", "web.shop", 80)
    assert (info.value.line_no, info.value.token) == (at + 1, token)
    assert f"line {at + 1}" in str(info.value) and repr(token) in str(info.value)
    assert at + 1 == line


def test_empty_text_is_refused(sample):
    with pytest.raises(IptablesSaveError, match="empty text"):
        ks.NodeDump(sample, "worker-1", "  \n")


def test_trace_text(sample):
    t = ks.trace_text(sample, "worker-1", ks.SAMPLE_NODE_DUMP.read_text(), "shop/debug", "10.96.112.33", 9000)
    assert t.conn.pod == "shop/api-5d4f8b7c9-k7w2x" and "Lines of the dump the trace quotes" in t.text()


def test_the_dump_follows_later_changes_to_the_cluster():
    c = ks.load("sample")
    d = ks.NodeDump(c, "worker-1", ks.SAMPLE_NODE_DUMP.read_text())
    assert d.connect("shop/debug", "10.96.112.33", 9000).outcome == "delivered"
    c.delete("pod", "api-5d4f8b7c9-k7w2x", "shop")
    c.advance(31)
    # the dump still DNATs to the gone pod's address: nothing answers there any more
    assert d.connect("shop/debug", "10.96.112.33", 9000).outcome == "dropped"


# ---- the dump is regenerated exactly by its script ----------------------------------------------------------------
def test_the_script_regenerates_the_committed_node_dump():
    ok, why = kslib.lab.available("iptables")
    if not ok:
        pytest.skip(why)
    from kslib.lab.netns import tool
    if tool("nfacct") is None:
        pytest.skip("nfacct is not installed")
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_sample_node_dump.py"), "--check"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "up to date" in done.stdout


def test_addresses_the_model_cannot_route_as_the_cni_does_are_warned_about(sample):
    assert sample.snapshot.warnings == []
    objs = ks.read("sample")
    for o in objs:
        if o["kind"] == "Node" and o["metadata"]["name"] == "worker-2":
            del o["spec"]["podCIDR"], o["spec"]["podCIDRs"]
        if o["kind"] == "Pod" and o["metadata"]["name"] == "debug":
            o["status"]["podIP"], o["status"]["podIPs"] = "10.244.77.7", [{"ip": "10.244.77.7"}]
    warnings = ks.load(objs).snapshot.warnings
    assert warnings[0] == "node worker-2 has no spec.podCIDR in the dump; the model gave it 10.244.2.0/24"
    assert warnings[1].startswith("1 pod(s) have addresses outside their node's podCIDR")
    assert "shop/debug (10.244.77.7 on worker-1, podCIDR 10.244.1.0/24)" in warnings[1]


def test_json_text_loads_and_is_named():
    import json
    c = ks.load(json.dumps({"apiVersion": "v1", "kind": "List", "items": ks.read("sample")}))
    assert c.snapshot.source == "the given text" and c.snapshot.slice_differences == []
    assert ks.load(str(ks.SAMPLE)).snapshot.source == str(ks.SAMPLE)
