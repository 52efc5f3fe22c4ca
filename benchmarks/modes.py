"""Per-connection cost of the four dataplanes against the number of Services.

Run from the repository root:

    NUMBA_CACHE_DIR=.cache/numba .venv/bin/python benchmarks/modes.py                 # 100, 1000, 10000
    NUMBA_CACHE_DIR=.cache/numba .venv/bin/python benchmarks/modes.py --services 100,1000

The same clusters as benchmarks/engine.py (2 nodes, S ClusterIP Services x 5 ready endpoints, built
directly), synced by each mode's proxier (iptables, nftables, IPVS with rr, Cilium eBPF) and loaded
into one ClusterNetwork. Traffic: new TCP connections from a client pod on node-1 to the ClusterIPs
of Services drawn at random (fixed seed), through ``engine.run_batch`` (the kernel ``connect_many``
calls), best of 3 repeats on one core. Printed per mode and size: build time, first packets per
second, ns per connection, rules walked per connection, and the ratio of the largest to the smallest
size's cost (flat for the hashed modes, linear for iptables).
"""
from __future__ import annotations

import argparse
import sys
import time

from engine import (CLIENT, CLUSTER_CIDR, NODES, NOW, PORT, REPEATS, SERVICE_CIDR, build_objects, cluster_ip,
                    draw_targets, endpoint_pods, pin_one_core)

import numpy as np  # noqa: E402
from kslib.dataplane import codes as C  # noqa: E402
from kslib.dataplane import engine as E  # noqa: E402
from kslib.dataplane.network import PROTO_NUMBERS, ClusterNetwork, NodeSpec, PodSpec, ip_int  # noqa: E402
from kslib.proxy import NodeView, ProxyConfig  # noqa: E402
from kslib.proxy.ebpf import CiliumProxier  # noqa: E402
from kslib.proxy.iptables import IptablesProxier  # noqa: E402
from kslib.proxy.ipvs import IpvsProxier  # noqa: E402
from kslib.proxy.nftables import NftablesProxier  # noqa: E402

MODES = ("iptables", "nftables", "ipvs", "ebpf")
PER = 2000          # connections per drawn Service and repeat


def build(mode: str, services, slices, n: int) -> tuple[ClusterNetwork, float]:
    t = time.perf_counter()
    config = ProxyConfig(cluster_cidr=CLUSTER_CIDR, service_cidr=SERVICE_CIDR)
    cls = {"iptables": IptablesProxier, "nftables": NftablesProxier, "ipvs": IpvsProxier, "ebpf": CiliumProxier}[mode]
    planes = {}
    for name, node_ip, _ in NODES:
        p = cls(NodeView(name, node_ip), config)
        p.sync(services, slices, now=0.0)
        planes[name] = p.dataplane()
    pods = [PodSpec(*CLIENT, None)] + [PodSpec(key, ip, node, None) for i in range(n)
                                       for key, ip, node in endpoint_pods(i)]
    net = ClusterNetwork(seed=0, service_cidr=SERVICE_CIDR)
    net.load([NodeSpec(name, node_ip, cidr) for name, node_ip, cidr in NODES], pods, planes)
    return net, time.perf_counter() - t


def kernel_rate(net: ClusterNetwork, targets: list[int]) -> tuple[float, float]:
    """(connections per second, rules walked per connection), best of REPEATS."""
    node, src = net.node_index(CLIENT[2]), ip_int(CLIENT[1])
    dsts = [ip_int(cluster_ip(i)) for i in targets]
    best, rules = float("inf"), 0
    for rep in range(REPEATS + 1):                    # the first round warms the caches
        net._ensure_elements(NOW, room=64 + 2 * len(net.ipvs.dests))
        tables = net._tables()
        counts = np.zeros(len(net.pods) + 4, np.int64)
        t = time.perf_counter()
        walked = 0
        for k, dst in enumerate(dsts):
            walked += int(E.run_batch(*tables, node, C.FROM_POD, src, dst, PORT, PROTO_NUMBERS["TCP"], PER,
                                      (rep * len(dsts) + k) * PER, NOW, counts))
        elapsed = time.perf_counter() - t
        assert counts[len(net.pods):].sum() == 0, f"not delivered: {counts[len(net.pods):]}"
        if rep:
            best, rules = min(best, elapsed), walked
    n = PER * len(dsts)
    return n / best, rules / n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--services", default="100,1000,10000")
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.services.split(",")]
    print(f"one core: {pin_one_core()}")
    print(f"{'mode':<9} {'services':>8} {'build s':>8} {'conn/s':>10} {'ns/conn':>8} {'rules/conn':>10}")
    results: dict = {}
    for n in sizes:
        services, slices = build_objects(n)
        targets = draw_targets(n)
        for mode in MODES:
            net, built = build(mode, services, slices, n)
            rate, rules = kernel_rate(net, targets)
            results[(mode, n)] = rate
            print(f"{mode:<9} {n:>8} {built:>8.1f} {rate:>10,.0f} {1e9 / rate:>8.0f} {rules:>10.1f}", flush=True)
    lo, hi = min(sizes), max(sizes)
    print(f"\ncost at {hi} Services / cost at {lo} Services (1.0 = flat):")
    for mode in MODES:
        print(f"  {mode:<9} {results[(mode, lo)] / results[(mode, hi)]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
