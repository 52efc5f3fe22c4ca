"""First-packet latency through the real kernel against the number of Services, in iptables and
nftables modes, with the rules kslib renders: the measured side of the scale story (issue 8 and
lesson 13 set the model's prediction beside it).

The experiment: ``kslib.scale.cluster(N, endpoints=2, nodes=1)``, one node with a client pod and
two backend pods, and N Services that all select the two backends. For every N the node gets what ``cluster.render(node)``
prints, then ``connections`` new TCP connections go from the client to ClusterIPs drawn uniformly
from the N Services (fixed seed): each connect() is timed from the SYN to the SYN-ACK (the first
packet walks PREROUTING nat, the reply follows conntrack). The same targets go through the model,
which records how many rules each first packet visited, so a latency model can be fitted to
(rules visited, latency) pairs measured on the same connections.

``kslib/data/kernel_scaling.json`` holds a run made on the project's machine (see its "source");
``load()`` reads it, ``measure()`` runs the experiment again where the lab is available.
"""
from __future__ import annotations

import datetime as dt
import json
import platform
from pathlib import Path

import numpy as np

from .kernel import KernelCluster
from .netns import tool

# nftables stops at 20,000: a cold `nft -f` of kube-proxy's ruleset grows super-linearly in the kernel's
# commit (measured here: 0.4 s at 1,000 Services, 45 s at 10,000; kubernetes/kubernetes#139513 and
# #139328 report the same), so 40,000 would take about half an hour to load
SIZES = {"iptables": (1, 1_000, 10_000, 40_000), "nftables": (1, 1_000, 10_000, 20_000)}
DATA = Path(__file__).resolve().parent.parent / "data" / "kernel_scaling.json"

def rule_count(mode: str, text: str) -> int:
    """Rules in a rendered ruleset: ``-A`` lines (iptables), statements inside chains (nftables)."""
    if mode == "iptables":
        return sum(1 for ln in text.splitlines() if ln.startswith("-A "))
    chain, n = False, 0
    for ln in text.splitlines():
        s = ln.strip()
        if s.startswith("chain "):
            chain = True
        elif chain and s == "}":
            chain = False
        elif chain and s and not s.startswith(("type ", "comment ")):
            n += 1
    return n


def measure(sizes: dict = SIZES, connections: int = 3_000, seed: int = 0, model: bool = True,
            progress: bool = True) -> dict:
    """Run the experiment for ``sizes`` ({mode: Service counts}); root and network namespaces needed
    (``kslib.lab.available``)."""
    from tqdm.auto import tqdm

    from .. import scale               # kslib.scale imports this module for its calibration data
    rng = np.random.default_rng(seed)
    runs = []
    bar = tqdm(total=sum(len(v) for v in sizes.values()), desc="kernel scaling", disable=not progress)
    for n in sorted({n for v in sizes.values() for n in v}):
        modes = [m for m in sizes if n in sizes[m]]
        c = scale.cluster(n, endpoints=2, nodes=1, mode=modes[0], seed=seed)
        vips = scale.service_ips(c)
        targets = [vips[i] for i in rng.integers(0, n, connections)]
        for mode in modes:
            bar.set_postfix_str(f"{mode}, {n:,} Services")
            c.set_mode(mode)
            text = c.render("node-1")
            with KernelCluster(c) as k:
                lat = k.latency("client", targets, 80)
                load = k.load_seconds["node-1"]
            visited = [c.connect("client", t, 80).rules_visited for t in targets] if model else []
            us = np.round(lat * 1e6, 1)
            runs.append({"mode": mode, "services": n, "rules": rule_count(mode, text), "load_seconds": round(load, 3),
                         "median_us": float(np.median(us)), "p99_us": float(np.percentile(us, 99)),
                         "mean_rules_visited": float(np.mean(visited)) if visited else None,
                         "latency_us": us.tolist(), "rules_visited": visited})
            bar.update()
    bar.close()
    return {"source": source(), "connections": connections, "endpoints_per_service": 2, "seed": seed,
            "runs": runs}


def source() -> str:
    def version(argv):
        path = tool(argv[0])
        if not path:
            return f"{argv[0]} missing"
        import subprocess
        return subprocess.run([path, *argv[1:]], capture_output=True, text=True).stdout.strip()
    return (f"kslib.lab.scaling.measure() on {platform.node() or 'a'} {platform.machine()} VM, Linux "
            f"{platform.release()}, {version(['iptables', '--version'])}, {version(['nft', '--version'])}, "
            f"Python client, {dt.date.today().isoformat()}")


def save(result: dict, path: Path = DATA) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, separators=(",", ":")) + "\n")


def load(path: Path = DATA) -> dict:
    """The shipped measurement (or another saved one)."""
    return json.loads(Path(path).read_text())


def table(result: dict) -> str:
    """The measurement as a text table: per mode and N, rules, load time, median and p99 latency."""
    rows = [f"{'mode':9} {'Services':>9} {'rules':>8} {'load s':>7} {'median us':>10} {'p99 us':>8} "
            f"{'rules visited':>13}"]
    for r in result["runs"]:
        visited = f"{r['mean_rules_visited']:.0f}" if r["mean_rules_visited"] is not None else "-"
        rows.append(f"{r['mode']:9} {r['services']:>9,} {r['rules']:>8,} {r['load_seconds']:>7.2f} "
                    f"{r['median_us']:>10.1f} {r['p99_us']:>8.1f} {visited:>13}")
    return "\n".join(rows)

