"""The kernel lab's shipped measurement (kslib/data/kernel_scaling.json, made by
benchmarks/kernel_lab.py): complete, and its summary figures computed from its own data."""
import numpy as np

from kslib.lab import scaling


def test_the_shipped_measurement_covers_every_mode_and_size_it_claims():
    data = scaling.load()
    assert "kslib.lab.scaling.measure()" in data["source"] and "Linux" in data["source"]
    have = {(r["mode"], r["services"]) for r in data["runs"]}
    assert have == {(m, n) for m, sizes in scaling.SIZES.items() for n in sizes}
    for r in data["runs"]:
        lat = np.array(r["latency_us"])
        assert len(lat) == len(r["rules_visited"]) == data["connections"]
        assert r["median_us"] == np.median(lat) and abs(r["p99_us"] - np.percentile(lat, 99)) < 1e-6
        assert r["mean_rules_visited"] == np.mean(r["rules_visited"])


def test_iptables_walks_grow_with_services_and_the_nftables_lookup_does_not():
    runs = {(r["mode"], r["services"]): r for r in scaling.load()["runs"]}
    ipt = [runs["iptables", n]["mean_rules_visited"] for n in scaling.SIZES["iptables"]]
    nft = [runs["nftables", n]["mean_rules_visited"] for n in scaling.SIZES["nftables"]]
    assert ipt == sorted(ipt) and ipt[-1] > 1000 * ipt[0]
    assert len(set(nft)) == 1
