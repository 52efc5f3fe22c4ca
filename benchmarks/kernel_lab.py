"""The kernel lab's scaling experiment: first-packet (new TCP connection) latency through the real
kernel against the number of Services, iptables and nftables modes, with the rules kslib renders.

    sudo .venv/bin/python benchmarks/kernel_lab.py            # the full run (about 15 minutes),
                                                              # saved to kslib/data/kernel_scaling.json
    sudo .venv/bin/python benchmarks/kernel_lab.py --quick    # 1 and 1,000 Services, 500 connections

Prints per mode and Service count: rules in the node's ruleset, the load time (iptables-restore or
nft -f), median and p99 connect latency, and the rules the model's first packet visited on the same
connections (see kslib/lab/scaling.py for the set-up).
"""
from __future__ import annotations

import argparse
import sys
import time

from kslib.lab import available
from kslib.lab import scaling


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 and 1,000 Services, 500 connections, not saved")
    ap.add_argument("--connections", type=int, default=3_000)
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    ok, reason = available()
    if not ok:
        print(f"kernel lab unavailable: {reason}")
        return 1
    sizes = {m: (1, 1_000) for m in scaling.SIZES} if args.quick else scaling.SIZES
    start = time.perf_counter()
    result = scaling.measure(sizes, connections=500 if args.quick else args.connections)
    print(result["source"])
    print(scaling.table(result))
    print(f"({time.perf_counter() - start:.0f} s)")
    if not (args.quick or args.no_save):
        scaling.save(result)
        print(f"saved to {scaling.DATA}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
