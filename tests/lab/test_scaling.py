"""The scaling experiment end to end on a small scale (the kernel lab), and the measurement kslib
ships (kslib/data/kernel_scaling.json): its shape, and that its summary figures are its own data's."""
from kslib.lab import scaling


def test_a_small_experiment_runs_end_to_end():
    r = scaling.measure({"iptables": (1, 200), "nftables": (1, 200)}, connections=40, progress=False)
    runs = {(x["mode"], x["services"]): x for x in r["runs"]}
    assert set(runs) == {("iptables", 1), ("iptables", 200), ("nftables", 1), ("nftables", 200)}
    for x in runs.values():
        assert len(x["latency_us"]) == len(x["rules_visited"]) == 40
        assert all(0 < v < 1e6 for v in x["latency_us"])
    # the first packet walks KUBE-SERVICES in iptables mode (to a uniformly drawn Service: about N/2 more
    # rules, 100 +- 9 for 40 draws), one verdict-map lookup in nftables mode
    grown = runs["iptables", 200]["mean_rules_visited"] - runs["iptables", 1]["mean_rules_visited"]
    assert 60 < grown < 140
    assert runs["nftables", 200]["mean_rules_visited"] == runs["nftables", 1]["mean_rules_visited"]
    assert runs["iptables", 200]["rules"] > runs["iptables", 1]["rules"] + 200 * 5
    assert "iptables" in scaling.table(r) and "200" in scaling.table(r)
