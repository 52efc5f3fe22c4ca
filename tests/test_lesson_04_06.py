"""Lessons 4 (iptables mode) and 6 (nftables mode): the helpers in kslib.viz.dataplanes, and the
quizzes' answer keys derived from the model (a wrong key fails here)."""
from collections import Counter

import pytest

import kslib
import kslib.scale
from kslib.lab import scaling
from kslib.viz import dataplanes as dp
from kslib.viz import quiz

WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers: [{{name: web, image: nginx, ports: [{{name: http, containerPort: 8080}}]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: http}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  nodeName: node-1
  containers: [{{name: c, image: curl}}]
"""


def web_cluster(replicas=3, mode="iptables", nodes=2):
    c = kslib.Cluster(nodes=nodes, seed=0, mode=mode)
    c.apply(WEB.format(replicas=replicas))
    return c


def vip(c):
    return c.get("svc", "web").cluster_ip


def add_service(c, name):
    c.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
             "spec": {"selector": {"app": "backend"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    return c.last_sync(c.nodes[0].name)


# ---- iptables helpers ------------------------------------------------------------------------------
def test_chain_names_are_kube_proxys_hashes():
    # worked examples from kube-proxy's proxier_test.go (shared/reference/kube-proxy-iptables-nftables.md 1.1)
    assert dp.iptables_chain_name("KUBE-SVC-", "ns1/svc1:p80", "TCP") == "KUBE-SVC-XPGD46QRK7WJZT7O"
    assert dp.iptables_chain_name("KUBE-SVC-", "ns2/svc2:p8080", "tcp") == "KUBE-SVC-2VJB64SDSIJUP5T6"
    assert dp.iptables_chain_name("KUBE-SEP-", "ns1/svc1:p80", "tcp", "10.180.0.1:80") == "KUBE-SEP-SXIVWICOYRO3J4NJ"
    c = web_cluster()
    text = c.render("node-1")
    chain = dp.service_chain(text, vip(c), 80)
    assert chain == dp.iptables_chain_name("KUBE-SVC-", "default/web", "TCP")
    assert f":{chain} - [0:0]" in text


def test_statistic_picks_and_the_product_rule():
    c = web_cluster(4)
    text = c.render("node-1")
    picks = dp.statistic_picks(text, dp.service_chain(text, vip(c), 80))
    assert [p.probability for p in picks] == [0.25, 0.3333333333, 0.5, 1.0]
    assert {p.endpoint for p in picks} == {f"{p.pod_ip}:8080" for p in c.pods if p.name.startswith("web-")}
    assert all(abs(s - 0.25) < 1e-10 for s in dp.selection_shares([p.probability for p in picks]))
    assert dp.selection_shares([0.5, 0.5, 1.0]) == [0.5, 0.25, 0.25]
    with pytest.raises(ValueError, match="between 0 and 1"):
        dp.selection_shares([1.5])


def test_kernel_threshold_is_the_31_bit_quantisation():
    assert f"{dp.kernel_threshold(0.3333333333):.11f}" == "0.33333333349"
    assert dp.kernel_threshold(0.5) == 0.5 and dp.kernel_threshold(1.0) == 1.0


def test_chi_square_survival_matches_tables():
    # 5 % critical values of the chi-square distribution for 1..6 and 9 degrees of freedom
    for x, df in ((3.841, 1), (5.991, 2), (7.815, 3), (9.488, 4), (11.070, 5), (12.592, 6), (16.919, 9)):
        assert dp.chi2_sf(x, df) == pytest.approx(0.05, abs=2e-4), df
    assert dp.chi2_sf(0, 3) == 1.0
    with pytest.raises(ValueError, match="df"):
        dp.chi2_sf(1.0, 0)
    assert dp.uniform_chi_square([100, 100, 100]).p_value == 1.0
    skewed = dp.uniform_chi_square(Counter(a=150, b=100, c=50))
    assert skewed.df == 2 and skewed.statistic == 50 and skewed.p_value < 1e-10
    with pytest.raises(ValueError, match="two or more"):
        dp.uniform_chi_square([5])


def test_rules_per_service_match_the_model():
    for e in (1, 3, 10):
        small = dp.kube_rules(kslib.scale.cluster(3, e, nodes=1), "node-1")
        large = dp.kube_rules(kslib.scale.cluster(5, e, nodes=1), "node-1")
        assert (large - small) / 2 == dp.iptables_rules_per_service(e)
    with pytest.raises(ValueError, match="REJECT"):
        dp.iptables_rules_per_service(0)


def test_first_packets_walk_kube_services_one_rule_per_position():
    c = kslib.scale.cluster(30, 2, nodes=1)
    walk = dp.first_packet_walk(c, "client", "node-1", limit=10)
    assert len(walk) == 11 and walk[-1][0] == 31          # every 3rd Service, and the last one
    assert abs(dp.slope(*zip(*walk)) - 1) < 0.05
    assert dp.service_rule_position(c.render("node-1"), "10.0.0.1", 80) is None


def test_chain_view_and_scaling_through_the_widget_helpers():
    c = web_cluster(2)
    view = dp.chain_view(c, "web", "client", "node-1", n=400)
    assert view.ready == 2 and [p.probability for p in view.picks] == [0.5, 1.0]
    assert sum(view.counts.values()) == 400 and set(view.endpoint_counts) == {p.endpoint for p in view.picks}
    assert sum(view.measured_endpoints.values()) == pytest.approx(1.0)
    assert dp.set_replicas(c, "web", -2).endswith("spec.replicas: Invalid value: -2: must be greater than or equal to 0")
    assert c.get("deployment", "web").replicas == 2
    assert dp.set_replicas(c, "web", 0) is None
    empty = dp.chain_view(c, "web", "client", "node-1", n=50)
    assert empty.chain is None and empty.picks == [] and empty.counts == Counter(rejected=50)
    assert empty.measured == {"rejected": 1.0} and empty.measured_endpoints == {}


def test_stream_growth():
    before = Counter(a=3, b=2)
    assert dp.stream_growth(before, Counter(a=5, b=2, c=4)) == {"a": (3, 2), "b": (2, 0), "c": (0, 4)}


# ---- nftables helpers ------------------------------------------------------------------------------
def test_nft_parsers_on_a_rendered_ruleset():
    c = web_cluster(3, mode="nftables")
    text = c.render("node-1")
    elements = dp.nft_map_elements(text, "service-ips")
    key = f"{vip(c)} . tcp . 80"
    assert set(elements) == {"10.96.0.1 . tcp . 443", key}
    chain = elements[key].split("goto ", 1)[1]
    assert chain in dp.nft_chains(text, "service-")
    n, targets = dp.numgen_targets(text, chain)
    assert n == 3 and len(targets) == 3 and set(targets) <= set(dp.nft_chains(text, "endpoint-"))
    assert dp.numgen_targets(text, "services") == (0, [])
    assert dp.nft_block(text, "chain", "services")[0] == "ip daddr . meta l4proto . th dport vmap @service-ips"
    assert dp.nft_block(text, "chain", "no-such-chain") == [] and dp.nft_map_elements(text, "firewall-ips") == {}


def test_kernel_runs_and_growth_exponent():
    data = scaling.load()
    for mode in ("iptables", "nftables"):
        runs = dp.kernel_runs(data, mode)
        assert [r["services"] for r in runs] == sorted(r["services"] for r in runs) and runs[0]["services"] == 1
    assert dp.growth_exponent(1, 1, 10, 100) == pytest.approx(2)
    assert dp.growth_exponent(2, 3, 8, 12) == pytest.approx(1)


def test_preview_refuses_bad_input_and_flat_nftables_walk():
    with pytest.raises(ValueError, match="services: Invalid value: 0"):
        dp.preview("nftables", 0)
    with pytest.raises(ValueError, match="supported values: iptables, nftables"):
        dp.preview("ipvs", 10)
    a, b = dp.preview("nftables", 10, connections=10), dp.preview("nftables", 60, connections=10)
    assert a.visited == b.visited and a.p50_us == b.p50_us and b.rules > a.rules
    i = dp.preview("iptables", 60, connections=10)
    assert i.visited > b.visited and i.calibrated


# ---- quiz keys, derived from the model -----------------------------------------------------------------
def key(lesson, i):
    q = quiz(lesson).questions[i]
    return q.choices[q.answer]


def test_l04_keys():
    c = web_cluster(4)
    text = c.render("node-1")
    picks = dp.statistic_picks(text, dp.service_chain(text, vip(c), 80))
    assert key(4, 0) == f"{picks[1].probability:.10f}"

    grow = [dp.kube_rules(kslib.scale.cluster(s, 10, nodes=1), "node-1") for s in (4, 5)]
    assert key(4, 1) == str(grow[1] - grow[0])

    walk = dict(dp.first_packet_walk(kslib.scale.cluster(12, 1, nodes=1), "client", "node-1"))
    first = min(walk)
    # one endpoint: no statistic rules, so the walk grows by exactly the rules above
    assert all(walk[p] - walk[first] == p - first for p in walk)
    assert key(4, 2).startswith("500: the 499 above it")

    s = web_cluster(3)
    s.connect_many("client", vip(s), 80, 300, hold=True)
    before = s.open_connections()
    s.scale("deployment", "web", 4)
    s.connect_many("client", vip(s), 80, 300, hold=True)
    growth = dp.stream_growth(before, s.open_connections())
    newest = sum(old + new for old, new in growth.values() if old == 0)
    nearest = min((0, 75, 150, 300), key=lambda v: abs(v - newest))
    assert key(4, 3) == ("0" if nearest == 0 else f"about {nearest}")

    big = kslib.scale.cluster(20, 2, nodes=1)
    partial = add_service(big, "one-more")
    services_rules = len(dp.nat_rules(big.render("node-1"), "KUBE-SERVICES"))
    assert not partial.full and partial.services_synced == 1
    assert partial.payload.count("-A KUBE-SERVICES ") == services_rules         # every rule of KUBE-SERVICES again
    assert "KUBE-SERVICES, rewritten whole" in key(4, 4)


def test_partial_payload_rewrites_kube_services_whole():
    big = kslib.scale.cluster(15, 2, nodes=1)
    partial = add_service(big, "one-more")
    rendered = dp.nat_rules(big.render("node-1"), "KUBE-SERVICES")
    sent = [ln for ln in partial.payload.splitlines() if ln.startswith("-A KUBE-SERVICES ")]
    assert sent == rendered and len(rendered) == 15 + 3    # 16 Services, kubernetes, the NodePort hand-off


def test_l06_keys():
    c = kslib.scale.cluster(40, 3, nodes=1, mode="nftables")
    text = c.render("node-1")
    ips = kslib.scale.service_ips(c)
    visits = {c.connect("client", ip, 80).rules_visited for ip in (ips[0], ips[-1])}
    assert len(visits) == 1 and "ip daddr . meta l4proto . th dport vmap @service-ips" in text
    assert "service-ips verdict map" in key(6, 0)

    chain = dp.nft_map_elements(text, "service-ips")[f"{ips[0]} . tcp . 80"].split("goto ", 1)[1]
    n, _ = dp.numgen_targets(text, chain)
    assert key(6, 1).startswith(f"numgen random mod {n} vmap")

    data = scaling.load()
    at = {r["mode"]: r for r in data["runs"] if r["services"] == 10_000}
    assert key(6, 2) == min(at, key=lambda m: at[m]["median_us"])

    nft = {r["services"]: r for r in dp.kernel_runs(data, "nftables")}
    assert at["nftables"]["load_seconds"] > at["iptables"]["load_seconds"]
    assert dp.growth_exponent(1_000, nft[1_000]["load_seconds"], 20_000, nft[20_000]["load_seconds"]) > 1.5
    assert "super-linearly" in key(6, 3)

    pts = kslib.scale.sweep(["iptables", "nftables"], (10, 60), nodes=1, connections=10, progress=False)
    part = {m: [p.partial_bytes for p in pts if p.mode == m] for m in ("iptables", "nftables")}
    nft_flat = abs(part["nftables"][1] - part["nftables"][0]) < 0.05 * part["nftables"][0]
    ipt_grows = part["iptables"][1] > 2 * part["iptables"][0]
    assert (nft_flat, ipt_grows) == (True, True)
    assert key(6, 4) == "nftables: about constant; iptables: grows with the Services"
