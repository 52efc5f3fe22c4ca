"""How fast the packet engine opens connections, against the rules it walks.

Run from the repository root:

    NUMBA_CACHE_DIR=.cache/numba .venv/bin/python benchmarks/engine.py            # 10, 100, 1000, 10000 Services
    NUMBA_CACHE_DIR=.cache/numba .venv/bin/python benchmarks/engine.py --quick    # 10 and 1000
    NUMBA_CACHE_DIR=.cache/numba .venv/bin/python benchmarks/engine.py --services 10,1000,10000

Every cluster has 2 nodes and S ClusterIP Services of 5 ready endpoints each (spread over both
nodes). The objects are built directly (``Service.from_dict``/``EndpointSlice.from_dict``), then
each node's ``IptablesProxier`` syncs and renders its rules and ``ClusterNetwork.load`` parses and
compiles them; every build step is timed.

Traffic: new TCP connections from a client pod on node-1 to the ClusterIP:80 of Services drawn at
random (fixed seed) from all S, so a connection meets its Service's rule at a uniformly random
place in KUBE-SERVICES. Measured:

* numba, ``ClusterNetwork.connect_many`` (the public call: kernel plus its Python wrapper), once per
  drawn Service, after a warm-up call (compilation excluded), best of 3 repeats;
* numba, the kernel alone (``engine.run_batch`` on the same tables, what ``connect_many`` calls),
  best of 3: ns per connection and ns per rule visited come from this one;
* the pure-Python reference (``ReferenceNetwork.flow``) on the same drawn Services, once.

Then the four dataplanes side by side (iptables, nftables, IPVS with rr, Cilium eBPF): the same
clusters synced by each mode's proxier and loaded into one ClusterNetwork, the same traffic through
``engine.run_batch``: build time, first packets per second, rules walked, and the cost ratio of the
largest to the smallest size (flat for the hashed modes, linear for iptables).

Everything runs on one core: numba kernels here are single-threaded and the process is pinned
to one CPU (``sched_setaffinity``) when the OS allows it.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import platform
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import numba  # noqa: E402
from kslib.api.endpointslice import EndpointSlice  # noqa: E402
from kslib.api.service import Service  # noqa: E402
from kslib.dataplane import codes as C  # noqa: E402
from kslib.dataplane import engine as E  # noqa: E402
from kslib.dataplane.network import PROTO_NUMBERS, ClusterNetwork, NodeSpec, PodSpec, ip_int  # noqa: E402
from kslib.dataplane.reference import ReferenceNetwork  # noqa: E402
from kslib.dataplane.rules import parse  # noqa: E402
from kslib.proxy import NodeView, ProxyConfig  # noqa: E402
from kslib.proxy.ebpf import CiliumProxier  # noqa: E402
from kslib.proxy.iptables import IptablesProxier  # noqa: E402
from kslib.proxy.ipvs import IpvsProxier  # noqa: E402
from kslib.proxy.nftables import NftablesProxier  # noqa: E402

SEED = 20240601
ENDPOINTS = 5
SERVICE_CIDR = "10.96.0.0/12"
# node-1 pods in 10.64.0.0/12, node-2 pods in 10.80.0.0/12 (a /24 per node would hold only 254 pods);
# the cluster CIDR is exactly their union, 10.64.0.0/11, which stays clear of the service CIDR
# (10.64.0.0/10 would contain 10.96.0.0/12)
CLUSTER_CIDR = "10.64.0.0/11"
NODES = (("node-1", "192.168.0.2", "10.64.0.0/12"), ("node-2", "192.168.0.3", "10.80.0.0/12"))
CLIENT = ("bench/client", "10.64.0.2", "node-1")
FIRST_POD = 16                       # pod addresses start at network + 16 (the gateway is network + 1)
PORT, TARGET_PORT = 80, 8080
MAX_TARGETS = 256                    # Services drawn per size (all of them when there are fewer)
NUMBA_SECONDS = 0.25                 # kernel time aimed at per repeat
REPEATS = 3
REF_SECONDS = 1.5                    # reference time aimed at (200..2000 connections)
REF_MIN, REF_MAX = 200, 2000
NOW = 1000.0


# ---- the cluster ----------------------------------------------------------------------------------------
def ip_text(n: int) -> str:
    return f"{n >> 24 & 255}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def cluster_ip(i: int) -> str:
    return ip_text(ip_int("10.96.0.0") + 10 + i)           # 10.96.0.1 is the kubernetes Service's


def endpoint_pods(i: int) -> list[tuple[str, str, str]]:
    """(pod key, IP, node) of Service i's endpoints: pod p = 5i + j lives on node p % 2."""
    out = []
    for j in range(ENDPOINTS):
        p = i * ENDPOINTS + j
        name, _, cidr = NODES[p % 2]
        out.append((f"ns/svc{i}-{j}", ip_text(ip_int(cidr.split("/")[0]) + FIRST_POD + p // 2), name))
    return out


def build_objects(n: int) -> tuple[list[Service], list[EndpointSlice]]:
    services, slices = [], []
    for i in range(n):
        svc = Service.from_dict({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"svc{i}", "namespace": "ns"},
            "spec": {"type": "ClusterIP", "clusterIP": cluster_ip(i), "clusterIPs": [cluster_ip(i)],
                     "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "selector": {"app": f"svc{i}"},
                     "ports": [{"name": "http", "port": PORT, "targetPort": TARGET_PORT, "protocol": "TCP"}]}})
        svc.apply_defaults()
        es = EndpointSlice.from_dict({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"svc{i}-bench", "namespace": "ns",
                         "labels": {"kubernetes.io/service-name": f"svc{i}",
                                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": TARGET_PORT, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True, "serving": True, "terminating": False},
                           "nodeName": node, "targetRef": {"kind": "Pod", "namespace": "ns", "name": key[3:]}}
                          for key, ip, node in endpoint_pods(i)]})
        services.append(svc)
        slices.append(es)
    return services, slices


class Built:
    """One cluster of ``n`` Services: its network and how long each build step took."""

    def __init__(self, n: int, profile_sync: bool = False):
        self.n = n
        self.times: dict[str, float] = {}
        t = time.perf_counter()
        services, slices = build_objects(n)
        self.times["objects"] = time.perf_counter() - t
        config = ProxyConfig(cluster_cidr=CLUSTER_CIDR, service_cidr=SERVICE_CIDR)
        texts, self.sync_profile = {}, None
        self.times["sync"] = self.times["render"] = 0.0
        for k, (name, node_ip, _) in enumerate(NODES):
            proxier = IptablesProxier(NodeView(name, node_ip), config)
            prof = cProfile.Profile() if profile_sync and k == 0 else None
            t = time.perf_counter()
            if prof:
                prof.enable()
            proxier.sync(services, slices, now=0.0)
            if prof:
                prof.disable()
                self.sync_profile = prof
            self.times["sync"] += time.perf_counter() - t
            t = time.perf_counter()
            texts[name] = proxier.render()
            self.times["render"] += time.perf_counter() - t
        self.pods = [PodSpec(*CLIENT, None)] + [PodSpec(key, ip, node, None)
                                                 for i in range(n) for key, ip, node in endpoint_pods(i)]
        self.nodes = [NodeSpec(name, node_ip, cidr) for name, node_ip, cidr in NODES]
        self.net = ClusterNetwork(seed=0, service_cidr=SERVICE_CIDR)
        # parse each node's text ourselves, into the cache load() consults, to time parse and compile apart
        t = time.perf_counter()
        for name, text in texts.items():
            self.net._parsed[(name, "iptables")] = (text, parse(text, source=f"{name} rules"))
        self.times["parse"] = time.perf_counter() - t
        t = time.perf_counter()
        self.net.load(self.nodes, self.pods, texts)
        self.times["compile"] = time.perf_counter() - t
        rs = self.ruleset("node-1")
        self.rules = {tb: sum(len(c.rules) for c in rs.tables.get(tb, {}).values()) for tb in ("nat", "filter")}
        self.text_bytes = len(texts["node-1"])

    def ruleset(self, node: str):
        return self.net._parsed[(node, "iptables")][1]

    def reference(self, rng_state: int) -> ReferenceNetwork:
        return ReferenceNetwork(self.nodes, self.pods, {n: self.ruleset(n) for n, _, _ in NODES}, rng_state)


# ---- traffic ----------------------------------------------------------------------------------------------
def draw_targets(n: int) -> list[int]:
    rng = np.random.default_rng(SEED + n)
    k = min(n, MAX_TARGETS)
    return [int(i) for i in rng.choice(n, size=k, replace=False)]


def numba_connect_many(b: Built, targets: list[int], per: int) -> tuple[float, int, dict]:
    """One repeat through the public call: (seconds, rules visited, outcomes)."""
    net, node, src = b.net, b.net.node_index(CLIENT[2]), ip_int(CLIENT[1])
    outcomes: dict = {}
    rules = 0
    t = time.perf_counter()
    for i in targets:
        got = net.connect_many(node, C.FROM_POD, src, ip_int(cluster_ip(i)), PORT, "TCP", per, NOW)
        rules += net.last_batch_rules
        for k, v in got.items():
            key = "delivered" if "/" in k else k
            outcomes[key] = outcomes.get(key, 0) + v
    return time.perf_counter() - t, rules, outcomes


def numba_kernel(b: Built, targets: list[int], per: int) -> tuple[float, int]:
    """One repeat of the kernel alone, with the arguments connect_many gives it: (seconds, rules visited)."""
    net, node, src = b.net, b.net.node_index(CLIENT[2]), ip_int(CLIENT[1])
    tables = net._tables()
    counts = np.zeros(len(net.pods) + 4, np.int64)
    seen = np.zeros(len(net.pods), np.int64)
    dsts = [ip_int(cluster_ip(i)) for i in targets]
    rules, sport = 0, 0
    t = time.perf_counter()
    for dst in dsts:
        rules += int(E.run_batch(tables, node, C.FROM_POD, src, dst, PORT, PROTO_NUMBERS["TCP"], per, sport,
                                 NOW, 0, counts, seen))
        sport += per
    elapsed = time.perf_counter() - t
    assert counts[len(net.pods):].sum() == 0, f"kernel: {counts[len(net.pods):]} not delivered"
    return elapsed, rules


def reference_run(b: Built, targets: list[int], conns: int) -> tuple[float, int, dict]:
    """``conns`` connections over the drawn Services, round robin: (seconds, rules visited, outcomes)."""
    ref = b.reference(int(b.net.rng[0]))
    src = ip_int(CLIENT[1])
    outcomes: dict = {}
    t = time.perf_counter()
    for k in range(conns):
        r = ref.flow(CLIENT[2], C.FROM_POD, src, ip_int(cluster_ip(targets[k % len(targets)])),
                     C.EPHEMERAL_LO + k, PORT, 6, NOW, commit=False, ttl=0.0, reply=False)
        outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
    return time.perf_counter() - t, ref.visited, outcomes


def cross_check(b: Built, targets: list[int], per: int = 40) -> str:
    """Same rng state, same connections: numba and the reference must pick the same backends and
    visit the same number of rules."""
    net, node, src = b.net, b.net.node_index(CLIENT[2]), ip_int(CLIENT[1])
    bad = 0
    checked = 0
    for i in targets[:4]:
        ref = b.reference(int(net.rng[0]))
        sport0 = net._ports.get(src, 0)
        got = net.connect_many(node, C.FROM_POD, src, ip_int(cluster_ip(i)), PORT, "TCP", per, NOW)
        want: dict = {}
        span = C.EPHEMERAL_HI - C.EPHEMERAL_LO + 1
        for k in range(per):
            r = ref.flow(CLIENT[2], C.FROM_POD, src, ip_int(cluster_ip(i)), C.EPHEMERAL_LO + (sport0 + k) % span,
                         PORT, 6, NOW, commit=False, ttl=0.0, reply=False)
            key = r["pod"] if r["outcome"] == "delivered" and r["pod"] else r["outcome"]
            want[key] = want.get(key, 0) + 1
        checked += per
        if dict(got) != want or net.last_batch_rules != ref.visited:
            bad += 1
            print(f"  MISMATCH svc{i}: numba {dict(got)} rules {net.last_batch_rules}; "
                  f"reference {want} rules {ref.visited}")
    return f"{checked} conns {'agree' if not bad else f'DISAGREE on {bad} Services'}"


def call_overhead(b: Built, targets: list[int], calls: int = 20) -> float:
    """Seconds one ``connect_many`` call costs besides the connections: a call with n = 0."""
    net, node, src = b.net, b.net.node_index(CLIENT[2]), ip_int(CLIENT[1])
    best = None
    for _ in range(REPEATS):
        t = time.perf_counter()
        for k in range(calls):
            net.connect_many(node, C.FROM_POD, src, ip_int(cluster_ip(targets[k % len(targets)])), PORT, "TCP", 0,
                             NOW)
        dt = (time.perf_counter() - t) / calls
        best = dt if best is None or dt < best else best
    return best


def calibrate(b: Built, targets: list[int]) -> int:
    """Connections per drawn Service so that a kernel repeat takes about NUMBA_SECONDS."""
    per = 20
    while True:
        dt, _ = numba_kernel(b, targets, per)
        if dt >= 0.02 or per >= 1 << 20:
            break
        per *= 4
    return max(1, int(per * NUMBA_SECONDS / dt))


# ---- reporting ----------------------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def pin_one_core() -> str:
    try:
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[-1]})
        return f"pinned to CPU {cpus[-1]} of {len(cpus)}"
    except (AttributeError, OSError):
        return "not pinned (sched_setaffinity unavailable)"


def fit(xs, ys) -> tuple[float, float, float]:
    """Least squares y = a + b x: (a, b, R^2)."""
    x, y = np.asarray(xs, float), np.asarray(ys, float)
    b, a = np.polyfit(x, y, 1)
    ss_res = float(((y - (a + b * x)) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return a, b, (1.0 - ss_res / ss_tot) if ss_tot > 0 else 1.0


def si(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return f"{x / scale:.2f}{unit}"
    return f"{x:.0f}"


MODES = ("iptables", "nftables", "ipvs", "ebpf")
MODE_CONNS = 200_000  # connections per repeat in the four-mode sweep, spread over the drawn Services
MODE_REPEATS = 5


def build_mode(mode: str, services, slices, n: int) -> tuple[ClusterNetwork, float]:
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


def mode_rate(net: ClusterNetwork, targets: list[int]) -> tuple[float, float]:
    """(connections per second, rules walked per connection), best of MODE_REPEATS."""
    node, src = net.node_index(CLIENT[2]), ip_int(CLIENT[1])
    dsts = [ip_int(cluster_ip(i)) for i in targets]
    per = -(-MODE_CONNS // len(dsts))
    best, rules = float("inf"), 0
    for rep in range(MODE_REPEATS + 1):               # the first round warms the caches
        net._ensure_elements(NOW, room=64 + 2 * len(net.ipvs.dests))
        tables = net._tables()
        counts = np.zeros(len(net.pods) + 4, np.int64)
        seen = np.zeros(len(net.pods), np.int64)
        t = time.perf_counter()
        walked = 0
        for k, dst in enumerate(dsts):
            walked += int(E.run_batch(tables, node, C.FROM_POD, src, dst, PORT, PROTO_NUMBERS["TCP"], per,
                                      (rep * len(dsts) + k) * per, NOW, 0, counts, seen))
        elapsed = time.perf_counter() - t
        assert counts[len(net.pods):].sum() == 0, f"not delivered: {counts[len(net.pods):]}"
        if rep:
            best, rules = min(best, elapsed), walked
    n = per * len(dsts)
    return n / best, rules / n


def modes_sweep(sizes: list[int]) -> None:
    """The four dataplanes side by side: the same clusters synced by each mode's proxier, the same
    traffic through ``engine.run_batch``; the cost ratio shows which modes stay flat in Services."""
    print(f"\nfour modes (kernel alone, best of {MODE_REPEATS} repeats of about {MODE_CONNS:,} connections):")
    print(f"{'mode':<9} {'services':>8} {'build s':>8} {'conn/s':>10} {'ns/conn':>8} {'rules/conn':>10}")
    results: dict = {}
    for n in sizes:
        services, slices = build_objects(n)
        targets = draw_targets(n)
        for mode in MODES:
            net, built = build_mode(mode, services, slices, n)
            rate, rules = mode_rate(net, targets)
            results[(mode, n)] = rate
            print(f"{mode:<9} {n:>8} {built:>8.1f} {rate:>10,.0f} {1e9 / rate:>8.0f} {rules:>10.1f}", flush=True)
    lo, hi = min(sizes), max(sizes)
    print(f"cost at {hi} Services / cost at {lo} Services (1.0 = flat; within 2x is the goal for the hashed modes):")
    for mode in MODES:
        worst = min(results[(mode, n)] for n in sizes)
        print(f"  {mode:<9} {results[(mode, lo)] / results[(mode, hi)]:.2f}   slowest {worst / 1e6:.2f}M first "
              f"packets/s ({'meets' if worst >= 1e6 else 'misses'} 1M/s)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="10 and 1,000 Services only")
    ap.add_argument("--services", help="comma-separated cluster sizes (default 10,100,1000,10000)")
    ap.add_argument("--modes", help="cluster sizes for the four-mode sweep (default 100,1000,10000; "
                    "--quick: 100,1000; 'none' skips it)")
    ap.add_argument("--profile-sync", action="store_true",
                    help="cProfile node-1's proxier sync at the largest size and print the top functions")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.services.split(",")] if args.services else \
        ([10, 1000] if args.quick else [10, 100, 1000, 10000])

    started = time.perf_counter()
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs; Python {platform.python_version()}, "
          f"numba {numba.__version__}, numpy {np.__version__}")
    print(f"one core: single-threaded numba kernels, process {pin_one_core()}")
    print(f"cluster: 2 nodes, S ClusterIP Services x {ENDPOINTS} ready endpoints (TCP {PORT}->{TARGET_PORT}), "
          f"cluster CIDR {CLUSTER_CIDR}, service CIDR {SERVICE_CIDR}; traffic: new connections pod "
          f"{CLIENT[1]} (node-1) -> ClusterIP of min(S, {MAX_TARGETS}) Services drawn with seed {SEED}+S")
    print()

    # load numba's kernels (from its cache, or compile them) once, outside every measurement
    t = time.perf_counter()
    w = Built(2)
    w.net.connect_many(0, C.FROM_POD, ip_int(CLIENT[1]), ip_int(cluster_ip(0)), PORT, "TCP", 1, NOW)
    numba_kernel(w, [0], 1)
    print(f"startup: numba kernels loaded/compiled in {time.perf_counter() - t:.1f} s (not in any figure below)")
    del w

    rows = []
    for n in sizes:
        b = Built(n, profile_sync=args.profile_sync and n == max(sizes))
        targets = draw_targets(n)
        t = time.perf_counter()
        b.net.connect_many(0, C.FROM_POD, ip_int(CLIENT[1]), ip_int(cluster_ip(targets[0])), PORT, "TCP", 1, NOW)
        warm = time.perf_counter() - t
        check = cross_check(b, targets)
        per = calibrate(b, targets)
        cm_best, k_best = None, None
        for _ in range(REPEATS):
            dt, rules, outcomes = numba_connect_many(b, targets, per)
            if cm_best is None or dt < cm_best[0]:
                cm_best = (dt, rules, outcomes)
            dt, krules = numba_kernel(b, targets, per)
            if k_best is None or dt < k_best[0]:
                k_best = (dt, krules)
        conns = per * len(targets)
        overhead = call_overhead(b, targets)
        # the reference: time a few connections first, then enough for about REF_SECONDS
        probe_t, _, _ = reference_run(b, targets, 20)
        ref_n = int(min(REF_MAX, max(REF_MIN, REF_SECONDS / (probe_t / 20))))
        ref_n -= ref_n % len(targets) if ref_n >= len(targets) else 0
        ref_t, ref_rules, ref_out = reference_run(b, targets, ref_n)
        row = dict(
            n=n, rules=b.rules, times=b.times, warm=warm, overhead=overhead, check=check, per=per, conns=conns,
            targets=len(targets),
            cm_rate=conns / cm_best[0], cm_rules=cm_best[1] / conns, cm_out=cm_best[2],
            k_rate=conns / k_best[0], k_ns=k_best[0] / conns * 1e9, k_rules=k_best[1] / conns,
            ref_n=ref_n, ref_rate=ref_n / ref_t, ref_ns=ref_t / ref_n * 1e9, ref_rules=ref_rules / ref_n,
            ref_out=ref_out, text=b.text_bytes)
        row["k_ns_rule"] = row["k_ns"] / row["k_rules"]
        row["ref_ns_rule"] = row["ref_ns"] / row["ref_rules"]
        rows.append(row)
        tm = b.times
        print(f"[S={n}] built in {sum(tm.values()):.2f} s (both nodes): objects {tm['objects']:.2f} s, proxier "
              f"sync {tm['sync']:.2f} s, render {tm['render']:.2f} s, parse {tm['parse']:.2f} s, compile (load) "
              f"{tm['compile']:.2f} s; iptables-save text {b.text_bytes / 1e6:.1f} MB per node")
        print(f"         warm-up call {warm * 1e3:.1f} ms; numba vs reference on the same rng state: {check}; "
              f"outcomes: numba {cm_best[2]}, reference {ref_out}", flush=True)
        if b.sync_profile is not None:
            s = io.StringIO()
            pstats.Stats(b.sync_profile, stream=s).sort_stats("cumulative").print_stats(14)
            print("  cProfile of node-1's proxier sync (cumulative):")
            for line in s.getvalue().splitlines():
                if line.strip() and not line.startswith(("   Ordered", "         ")):
                    print("   ", line.rstrip())
            s = io.StringIO()
            pstats.Stats(b.sync_profile, stream=s).sort_stats("tottime").print_stats(8)
            print("  cProfile of node-1's proxier sync (own time):")
            for line in s.getvalue().splitlines():
                if line.strip() and not line.startswith(("   Ordered", "         ")):
                    print("   ", line.rstrip())
        del b

    print()
    head = (f"{'Services':>8} {'nat':>7} {'filter':>6} | {'numba conn/s':>12} {'call us':>7} "
            f"{'kernel conn/s':>13} {'rules/conn':>10} {'ns/conn':>8} {'ns/rule':>7} {'conns':>7} | "
            f"{'ref conn/s':>10} {'rules/conn':>10} {'ns/rule':>7} {'conns':>5} | {'numba/ref':>9} {'kernel/ref':>10}")
    print("nat, filter: rules in node-1's tables; numba conn/s: connect_many (kernel + its Python wrapper), best of "
          f"{REPEATS}; call us: wrapper cost per connect_many call (n = 0); kernel: engine.run_batch alone, best of "
          f"{REPEATS}, gives rules/conn, ns/conn, ns/rule; ref: ReferenceNetwork.flow, ns/rule = its time / rules")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['n']:>8} {r['rules']['nat']:>7} {r['rules']['filter']:>6} | {si(r['cm_rate']):>12} "
              f"{r['overhead'] * 1e6:>7.0f} {si(r['k_rate']):>13} {r['k_rules']:>10.1f} {r['k_ns']:>8.0f} "
              f"{r['k_ns_rule']:>7.2f} {r['conns']:>7} | {si(r['ref_rate']):>10} {r['ref_rules']:>10.1f} "
              f"{r['ref_ns_rule']:>7.0f} {r['ref_n']:>5} | {r['cm_rate'] / r['ref_rate']:>8.0f}x "
              f"{r['k_rate'] / r['ref_rate']:>9.0f}x")
    print()
    print("build steps (seconds, both nodes):")
    print(f"{'Services':>8} {'objects':>8} {'sync':>8} {'render':>8} {'parse':>8} {'compile':>8} {'total':>8}")
    for r in rows:
        tm = r["times"]
        print(f"{r['n']:>8} {tm['objects']:>8.2f} {tm['sync']:>8.2f} {tm['render']:>8.2f} {tm['parse']:>8.2f} "
              f"{tm['compile']:>8.2f} {sum(tm.values()):>8.2f}")
    print()
    if len(rows) >= 2:
        a, b_, r2 = fit([r["k_rules"] for r in rows], [r["k_ns"] for r in rows])
        ra, rb, rr2 = fit([r["ref_rules"] for r in rows], [r["ref_ns"] for r in rows])
        print(f"linear fit, numba kernel:  ns/conn = {a:.0f} + {b_:.3f} x rules visited   (R^2 = {r2:.4f})")
        print(f"linear fit, reference:     ns/conn = {ra:.0f} + {rb:.1f} x rules visited   (R^2 = {rr2:.4f})")
    hundred = next((r for r in rows if r["n"] == 100), None)
    target = (f"100 Services: {si(hundred['cm_rate'])} first packets/s via connect_many "
              f"({'meets' if hundred['cm_rate'] >= 1e6 else 'MISSES'} the 1M/s goal)" if hundred else
              "no 100-Service line")
    spread = ", ".join(f"{r['cm_rate'] / r['ref_rate']:.0f}x at {r['n']}" for r in rows)
    spread = f"{spread} (connect_many/flow)"
    print(f"summary: {target}; numba vs reference {spread}; "
          + (f"cost grows linearly with rules walked ({b_:.2f} ns per rule, R^2 {r2:.3f}); " if len(rows) >= 2
             else ""))
    mode_sizes = args.modes or ("100,1000" if args.quick else "100,1000,10000")
    if mode_sizes != "none":
        modes_sweep([int(x) for x in mode_sizes.split(",")])
    print(f"one core, total run {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
