"""Lessons 13 (scale showdown) and 16 (kernel lab): the helpers in kslib.viz.showdown and
kslib.viz.kernel, the recorded kernel run's branch, the live kernel branch (marked ``kernel``,
skipped with the lab's reason where it cannot run), and the quizzes' answer keys derived from the
model (a wrong key fails here)."""
import os

import numpy as np
import pytest

import kslib
import kslib.scale
from kslib.lab import available, netns
from kslib.viz import kernel, quiz
from kslib.viz import showdown as sd

LAB, REASON = available()


def key(lesson, i):
    q = quiz(lesson).questions[i]
    return q.choices[q.answer]


# ---- lesson 13 ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rows():
    return sd.showdown((10, 200), endpoints=3, nodes=2, connections=30)


def test_showdown_rows_and_state(rows):
    at = {(r.mode, r.services): r for r in rows}
    assert len(rows) == 8 and {r.mode for r in rows} == set(sd.MODES)
    assert at["ipvs", 200].entries["IPVS virtual servers"] == 201
    assert at["ipvs", 200].entries["IPVS real servers"] == 601
    assert at["iptables", 200].total - at["iptables", 10].total == 190 * sd.iptables_rules_per_service(3)
    assert at["ebpf", 200].visited == 0 and at["nftables", 200].visited == at["nftables", 10].visited
    assert at["iptables", 200].visited > at["iptables", 10].visited + 100
    assert at["iptables", 200].partial_bytes > 5 * at["iptables", 10].partial_bytes


def test_lookup_and_describe(rows):
    r = sd.lookup(rows, "ipvs", 200)
    assert r.mode == "ipvs" and "201 IPVS virtual servers" in sd.describe(r) and "not calibrated" in sd.describe(r)
    with pytest.raises(ValueError, match=r"services: no measurement at 5; measured: 10, 200"):
        sd.lookup(rows, "ipvs", 5)
    with pytest.raises(ValueError, match="mode: unsupported value 'bpf'"):
        sd.lookup(rows, "bpf", 10)
    assert "iptables" in sd.table(rows).splitlines()[1]


def test_model_line_and_kernel_points():
    m = kslib.scale.latency_model("iptables")
    assert sd.model_line("iptables", [m.base_visited])[0] == pytest.approx(m.fixed_us)
    line = sd.model_line("iptables", [1_016])[0]
    assert line == pytest.approx(m.fixed_us + 1_000 * m.per_rule_us)
    pts = sd.kernel_points(kslib.lab.scaling.load(), "iptables")
    assert [p["services"] for p in pts] == [1, 1_000, 10_000, 40_000]
    assert all(a["visited"] < b["visited"] for a, b in zip(pts, pts[1:]))
    assert sd.full_walk_us(200_000) == pytest.approx(200_000 * m.per_rule_us)


def test_rule_arithmetic():
    assert sd.endpoints_for(200_000, 500) == 133
    assert 500 * sd.iptables_rules_per_service(132) < 200_000 <= 500 * sd.iptables_rules_per_service(133)
    assert sd.services_for(200_000, 5) == 11_765


def test_walk_counts_rules_and_visits():
    w = sd.walk(20, 10, connections=10)
    assert 20 * sd.iptables_rules_per_service(10) <= w.rules < 20 * sd.iptables_rules_per_service(10) + 20
    assert 0 < w.visited < w.rules and w.p50_us > 0


def test_mesh_paths():
    c = kslib.scale.cluster(50, 3, nodes=2)
    vip, pod = sd.paths(c, "svc-00007")
    assert vip.translated and vip.svc_rules >= 2 and not pod.translated and pod.svc_rules == 0
    assert pod.visited > 50, "iptables: KUBE-SERVICES walked without a match"
    c.set_mode("nftables")
    vip, pod = sd.paths(c, "svc-00007")
    assert vip.translated and pod.svc_rules == 0 and pod.visited < 20


def test_quiz_13_keys_from_the_model(rows):
    at = {(r.mode, r.services): r for r in rows}
    # Q1: 500 x 133 -> ~200k rules; a first packet visits under 1% (checked on 50 x 133 here)
    w = sd.walk(50, 133, connections=10)
    assert sd.endpoints_for(200_000, 500) == 133 and w.visited < 0.01 * w.rules
    assert key(13, 0) == "about 200,000 written; well under 1% of them visited"
    # Q2: flat modes
    flat = [m for m in sd.MODES if all(at[m, n].visited < 40 for n in (10, 200))]
    assert flat == ["nftables", "ipvs", "ebpf"] and key(13, 1) == "nftables, IPVS and eBPF"
    # Q3: whose partial payload grows
    grows = [m for m in sd.MODES if at[m, 200].partial_bytes > 2 * at[m, 10].partial_bytes]
    assert grows == ["iptables"] and key(13, 2) == "iptables"
    # Q4: a pod IP in iptables mode walks KUBE-SERVICES without a match
    c = kslib.scale.cluster(30, 2, nodes=1)
    _, pod = sd.paths(c, "svc-00003")
    assert pod.svc_rules == 0 and not pod.translated and pod.visited > 30
    assert key(13, 3).startswith("KUBE-SERVICES, without a match")
    # Q5: tens of microseconds at 200k rules (p50 of the walk), far below 800 ms
    assert 10 < w.p50_us < 100 and 800_000 / w.p99_us > 1_000
    assert key(13, 4).startswith("the walk alone does not explain it")


# ---- lesson 16 ------------------------------------------------------------------------------------------------
def test_recorded_branch_agrees_with_the_model_now():
    res = kernel.results(False)
    assert res["live"] is False and "Linux" in res["source"] and "iptables v" in res["source"]
    c = kernel.build("iptables")
    fresh = {}
    for mode in kernel.MODES:
        c.set_mode(mode)
        fresh[mode] = kernel.model_answers(c)
    assert kernel.disagreements(res, fresh) == []
    assert kernel.disagreements(res) == []
    for mode in kernel.MODES:
        c.set_mode(mode)
        rendered, held = c.render("node-1"), res["modes"][mode]["ruleset"]
        assert kernel.chain_sizes(mode, rendered) == kernel.chain_sizes(mode, held)
        ct = res["modes"][mode]["conntrack"]
        assert kernel.conntrack_tuples(ct["kernel"]) == kernel.conntrack_tuples(ct["model"])
        d = res["modes"][mode]["distribution"]
        assert d["n"] == 600 and sum(d["kernel"].values()) == 600
        assert kernel.homogeneity(d["kernel"], d["model"]).p_value > 1e-4
    c.set_mode("iptables")
    assert kernel.ruleset_diff("iptables", c.render("node-1"), res["modes"]["iptables"]["ruleset"]) == ([], [])


def ruleset(line, table="nat"):
    """One rule as an iptables-restore text, its chains declared."""
    chains = {line.split()[1], "KUBE-MARK-MASQ"}
    return f"*{table}\n" + "".join(f":{c} - [0:0]\n" for c in sorted(chains)) + line + "\nCOMMIT\n"


def test_iptables_canonical_form():
    a = "-A KUBE-SEP-X -m comment --comment default/web -s 10.244.1.4 -j KUBE-MARK-MASQ"
    b = '-A KUBE-SEP-X -s 10.244.1.4/32 -m comment --comment "default/web" -j KUBE-MARK-MASQ'
    assert kernel.kube_lines("iptables", ruleset(a)) == kernel.kube_lines("iptables", ruleset(b))
    assert kernel.kube_lines("iptables", ruleset("-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000")) == \
        kernel.kube_lines("iptables", ruleset("-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000"))
    assert kernel.kube_lines("iptables", ruleset("-A KUBE-X -j REJECT", "filter")) == \
        kernel.kube_lines("iptables", ruleset("-A KUBE-X -j REJECT --reject-with icmp-port-unreachable", "filter"))
    assert kernel.kube_lines("iptables", ruleset("-A KUBE-X -s 10.0.0.1 -j ACCEPT", "filter")) != \
        kernel.kube_lines("iptables", ruleset("-A KUBE-X -s 10.0.0.2 -j ACCEPT", "filter"))


def test_conntrack_tuple_and_homogeneity():
    line = ("tcp      6 118 TIME_WAIT src=10.244.0.2 dst=10.110.143.83 sport=38692 dport=80 src=10.244.1.4 "
            "dst=10.244.0.2 sport=8080 dport=38692 [ASSURED] mark=0 use=1")
    assert kernel.conntrack_tuple(line) == ("tcp", "10.244.0.2", "10.110.143.83", 80, "10.244.1.4", "10.244.0.2", 8080)
    assert kernel.conntrack_tuple("conntrack v1.4.7: 3 flow entries") is None
    same = kernel.homogeneity({"a": 100, "b": 100, "c": 100}, {"a": 100, "b": 100, "c": 100})
    assert same.statistic == 0 and same.p_value == 1.0 and same.df == 2
    assert kernel.homogeneity({"a": 300, "b": 0}, {"a": 150, "b": 150}).p_value < 1e-10
    with pytest.raises(ValueError):
        kernel.homogeneity({"a": 1}, {"a": 2})


def test_compare_widget_text_and_errors():
    res = kernel.recorded()
    c = kernel.build("iptables")
    text = kernel.compare(c, res, "nftables", "undefined port")
    assert c.mode == "nftables" and text.endswith("they agree") and "'outcome': 'rejected'" in text
    with pytest.raises(ValueError, match="mode: 'ipvs' was not run on the kernel"):
        kernel.compare(c, res, "ipvs", "hairpin")
    with pytest.raises(ValueError, match="probe: unknown 'ping'"):
        kernel.compare(c, res, "iptables", "ping")
    assert c.mode == "nftables"


def test_quiz_16_keys_from_the_model():
    c = kernel.build("iptables")
    ans = {m: (c.set_mode(m), kernel.model_answers(c))[1] for m in kernel.MODES}
    assert ans["iptables"]["eTP Local, node without"]["outcome"] == "dropped"
    assert key(16, 0) == "it is dropped on node-1"
    assert (ans["iptables"]["undefined port"]["outcome"], ans["nftables"]["undefined port"]["outcome"]) == \
        ("dropped", "rejected")
    assert key(16, 1) == "a timeout in iptables mode, connection refused in nftables mode"
    assert ans["iptables"]["hairpin"]["source_ip"] == kernel.addresses(c)["node-2 pod gateway"]
    assert key(16, 2) == "node-2's pod gateway address"
    assert "CONFIG_IP_VS" in available("ipvs")[1] and "BPF" in available("ebpf")[1]
    assert key(16, 3).startswith("this kernel has no IPVS")
    res = kernel.recorded()
    c.set_mode("iptables")
    assert kernel.ruleset_diff("iptables", c.render("node-1"), res["modes"]["iptables"]["ruleset"]) == ([], [])
    assert key(16, 4) == "the same rules, in the kernel's own canonical spelling"


# ---- on the kernel ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", kernel.MODES)
@pytest.mark.kernel
@pytest.mark.skipif(not LAB, reason=f"kernel lab unavailable: {REASON}")
def test_live_run_agrees(mode):
    r = kernel.run_mode(mode, n=150)
    assert all(row["model"] == row["kernel"] for row in r["probes"].values()), r["probes"]
    assert kernel.chain_sizes(mode, r["render"]) == kernel.chain_sizes(mode, r["ruleset"])
    assert sum(r["distribution"]["kernel"].values()) == 150
    mine = [n for n in netns.listed() if netns.owner(n) == os.getpid()]
    assert mine == [], f"namespaces left behind: {mine}"


@pytest.mark.kernel
@pytest.mark.skipif(not LAB, reason=f"kernel lab unavailable: {REASON}")
def test_live_remeasure_small():
    live = sd.remeasure((1, 200), connections=50)
    assert {(r["mode"], r["services"]) for r in live["runs"]} == {(m, n) for m in kernel.MODES for n in (1, 200)}
    assert all(len(r["latency_us"]) == 50 and np.all(np.array(r["latency_us"]) > 0) for r in live["runs"])
