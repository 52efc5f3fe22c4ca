"""Record lesson 16's kernel-lab run for machines that cannot run the lab (Binder: no root).

    sudo NUMBA_CACHE_DIR=.cache/numba .venv/bin/python benchmarks/lab_record.py        # saves kslib/data/lab_recorded.json
    sudo NUMBA_CACHE_DIR=.cache/numba .venv/bin/python benchmarks/lab_record.py --dry  # prints, saves nothing

The cluster of ``kslib.viz.kernel`` (two nodes; Services web (NodePort), web-local (NodePort,
externalTrafficPolicy Local), empty (no endpoints) and pool (3 endpoints)) is built out of network
namespaces by ``kslib.lab.KernelCluster`` in iptables and then nftables mode. Per mode it records
every probe's answer from the model and from the kernel, node-1's ``conntrack -L`` (kernel and model),
``iptables-save`` / ``nft list ruleset`` of node-1 beside ``cluster.render("node-1")``, and 600 new
connections to pool on both sides. The JSON's "source" says where, when, and with which kernel and
tool versions. The namespaces (kslib-<pid>-...) are removed when each run closes.
"""
from __future__ import annotations

import argparse
import sys
import time

from kslib.lab import available
from kslib.viz import kernel


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry", action="store_true", help="print the tables, do not save")
    ap.add_argument("-n", type=int, default=600, help="connections for the distribution check (600)")
    args = ap.parse_args(argv)
    ok, reason = available()
    if not ok:
        print(f"kernel lab unavailable: {reason}", file=sys.stderr)
        return 1
    start = time.perf_counter()
    res = kernel.run(n=args.n)
    print(res["source"])
    for mode in res["modes"]:
        print(f"\n{mode}\n{kernel.probe_table(res, mode)}")
        print("distribution:", res["modes"][mode]["distribution"])
    bad = kernel.disagreements(res)
    print(f"\n{len(bad)} disagreements" + "".join(f"\n  {b}" for b in bad) + f"; {time.perf_counter() - start:.1f} s")
    if not args.dry:
        kernel.save(res)
        print(f"saved {kernel.DATA}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
