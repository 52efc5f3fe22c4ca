"""Applying one Deployment of N replicas through ``Cluster.apply``: the Deployment and ReplicaSet
controllers create the Pods, the scheduler binds them, the kubelet starts them, and the EndpointSlice
controller and every node's proxier see them (a Service selects them). Prints the seconds per apply and
per pod for each N, and the per-pod cost at the largest N against the smallest (1.0 is linear).

    NUMBA_CACHE_DIR=.cache/numba .venv/bin/python benchmarks/replicas.py                   # 250 .. 4,000
    NUMBA_CACHE_DIR=.cache/numba .venv/bin/python benchmarks/replicas.py --replicas 100,1000
"""
from __future__ import annotations

import argparse
import time

from kslib import Cluster


def deployment(n: int) -> list[dict]:
    labels = {"app": "web"}
    return [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
             "spec": {"replicas": n, "selector": {"matchLabels": labels},
                      "template": {"metadata": {"labels": labels},
                                   "spec": {"containers": [{"name": "web", "image": "nginx",
                                                            "ports": [{"containerPort": 8080}]}]}}}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
             "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}}]


def seconds(n: int) -> float:
    # 20 nodes, each with a /24 podCIDR (253 pod addresses): 4,000 pods fit. The model does not
    # enforce the kubelet's maxPods (110 by default), so up to 253 pods may land on a node.
    c = Cluster(mode="iptables", nodes=20, cluster_cidr="10.64.0.0/16")
    start = time.perf_counter()
    c.apply(deployment(n))
    took = time.perf_counter() - start
    ready = sum(p.ready for p in c.api.list("Pod"))
    assert ready == n, f"{ready} of {n} pods ready"
    return took


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replicas", default="250,500,1000,2000,4000", help="comma-separated replica counts")
    args = ap.parse_args(argv)
    counts = sorted(int(x) for x in args.replicas.split(","))
    seconds(10)                                   # warm: numba's cache load, first imports
    per_pod = {}
    print(f"{'replicas':>9} {'apply s':>9} {'ms/pod':>8}")
    for n in counts:
        s = seconds(n)
        per_pod[n] = s / n
        print(f"{n:>9,} {s:>9.2f} {1000 * s / n:>8.2f}")
    lo, hi = counts[0], counts[-1]
    print(f"per-pod cost at {hi:,} against {lo:,}: {per_pod[hi] / per_pod[lo]:.2f}x (1.0 is linear; one core)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
