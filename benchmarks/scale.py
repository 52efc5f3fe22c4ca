"""The scale table: for each mode and number of Services (x 5 endpoints), the rules on a node, the
full and partial sync payloads, the model's sync and engine-load times, the rules a first packet
visits, connect_many's time per connection, and the first-packet latency (p50/p99) of the latency
model calibrated on the kernel lab's measurement (kslib/data/kernel_scaling.json).

    NUMBA_CACHE_DIR=.cache/numba .venv/bin/python benchmarks/scale.py           # 100, 1,000, 10,000
                                        # Services in every mode, and 50,000 for nftables, IPVS, eBPF
    NUMBA_CACHE_DIR=.cache/numba .venv/bin/python benchmarks/scale.py --quick   # 100..10,000, one node

Finished points are cached in .cache/scale/ so an interrupted run resumes (--fresh starts over).
It also times the headline build: 10,000 Services x 5 endpoints, 2 nodes, iptables mode.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from kslib import scale

CACHE = Path(__file__).resolve().parent.parent / ".cache" / "scale"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one node, 100 connections, up to 10,000 Services")
    ap.add_argument("--fresh", action="store_true", help="ignore the cached points")
    args = ap.parse_args(argv)
    if args.fresh:
        shutil.rmtree(CACHE, ignore_errors=True)
    start = time.perf_counter()
    c = scale.cluster(10_000, 5, 2, "iptables")
    built = time.perf_counter() - start
    c._network()
    print(f"10,000 Services x 5 endpoints, 2 nodes, iptables: built and synced in {built:.1f} s "
          f"(every node's proxier sync {scale.last_sync_seconds(c):.1f} s of it), engine loaded in "
          f"{time.perf_counter() - start - built:.1f} s more; one core")
    del c
    if args.quick:
        sizes, nodes, conns = (100, 1_000, 10_000), 1, 100
    else:
        big = (100, 1_000, 10_000, 50_000)
        sizes, nodes, conns = {"iptables": big[:3], "nftables": big, "ipvs": big, "ebpf": big}, 2, 300
    start = time.perf_counter()
    points = scale.sweep(scale.MODES, sizes, nodes=nodes, connections=conns,
                         cache=CACHE / f"{'quick' if args.quick else 'full'}.json")
    print(scale.table(points))
    print(f"sweep: {time.perf_counter() - start:.0f} s (cached points are not re-measured)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
