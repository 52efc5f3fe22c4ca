"""Scale: clusters of N Services x E endpoints built quickly, and sweeps over N of what grows with
them in each mode: rules per node, render time, the sync payload (full and partial), rules a first
packet visits, the engine's cost per connection, and a first-packet latency that a model calibrated
on the real kernel (kslib/data/kernel_scaling.json, measured by the kernel lab) turns visits into.

    pts = kslib.scale.sweep(["iptables", "nftables"], [100, 1_000, 10_000])   # tqdm progress
    kslib.scale.table(pts)

A sweep keeps every finished point in a cache file (``cache=``); interrupted, it resumes from there.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .cluster import Cluster
from .lab import scaling as kernel_scaling

MODES = ("iptables", "nftables", "ipvs", "ebpf")


def cluster(services: int, endpoints: int = 5, nodes: int = 2, mode: str = "iptables", seed: int = 0) -> Cluster:
    """``services`` ClusterIP Services (port 80 -> 8080), each with the same ``endpoints`` backend pods
    spread over ``nodes`` nodes, built from objects in one apply (no YAML text). Every Service has its
    own chains per endpoint (kube-proxy names them by Service and endpoint), so the rules are those of
    ``services`` x ``endpoints`` distinct endpoints."""
    c = Cluster(mode=mode, nodes=nodes, seed=seed)
    c.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "backend"},
             "spec": {"replicas": endpoints, "selector": {"matchLabels": {"app": "backend"}},
                      "template": {"metadata": {"labels": {"app": "backend"}},
                                   "spec": {"containers": [{"name": "app", "ports": [{"containerPort": 8080}]}]}}}})
    c.apply([{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client", "labels": {"app": "client"}},
              "spec": {"nodeName": c.nodes[0].name, "containers": [{"name": "c"}]}}]
            + [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"svc-{i:05d}"},
                "spec": {"selector": {"app": "backend"}, "ports": [{"port": 80, "targetPort": 8080}]}}
               for i in range(services)])
    return c


def last_sync_seconds(c: Cluster) -> float:
    """The model's time for the last sync of every node's proxier."""
    return sum(c.sync_log[-i].seconds for i in range(1, len(c.nodes) + 1))


def service_ips(c: Cluster) -> list[str]:
    return [s.cluster_ip for s in c.services if s.name.startswith("svc-")]


# ---- the latency model ------------------------------------------------------------------------------
@dataclass
class LatencyModel:
    """First-packet latency = fixed cost + per_rule x (rules visited - at the smallest N) + jitter,
    calibrated on the kernel lab's measurement (``kslib/data/kernel_scaling.json``: where, when and
    how is in its "source"). The line goes through each measured N's (median rules visited, median
    latency); the jitter is the kernel's own spread at the smallest N. ``calibrated`` is False for
    modes the kernel lab cannot run (IPVS, eBPF): their figures borrow the nftables fixed cost and
    jitter and the iptables per-rule cost, and say so."""
    mode: str
    fixed_us: float
    per_rule_us: float
    base_visited: float
    jitter_us: np.ndarray = field(repr=False)
    calibrated: bool = True

    @classmethod
    def fit(cls, runs: list[dict], mode: str) -> LatencyModel:
        if mode not in {r["mode"] for r in runs}:
            ipt, nft = cls.fit(runs, "iptables"), cls.fit(runs, "nftables")
            return cls(mode, nft.fixed_us, ipt.per_rule_us, nft.base_visited, nft.jitter_us, calibrated=False)
        mine = sorted((r for r in runs if r["mode"] == mode), key=lambda r: r["services"])
        v = np.array([np.median(r["rules_visited"]) for r in mine])
        t = np.array([r["median_us"] for r in mine])
        slope = float(np.polyfit(v, t, 1)[0]) if np.ptp(v) > 0 else 0.0
        fixed = float(np.median(t - slope * (v - v[0])))
        lat = np.array(mine[0]["latency_us"])
        return cls(mode, fixed, max(slope, 0.0), float(v[0]), lat - np.median(lat))

    def samples(self, visited, draws: int = 20, seed: int = 0) -> np.ndarray:
        """Latency samples (µs) for connections that visited ``visited`` rules: each with ``draws``
        jitters drawn from the kernel's (fixed seed)."""
        v = np.asarray(visited, dtype=float)
        noise = np.random.default_rng(seed).choice(self.jitter_us, size=(len(v), draws))
        return (self.fixed_us + self.per_rule_us * (v - self.base_visited))[:, None] + noise

    def percentiles(self, visited) -> tuple[float, float]:
        s = self.samples(visited)
        return float(np.median(s)), float(np.percentile(s, 99))


def latency_model(mode: str) -> LatencyModel:
    return LatencyModel.fit(kernel_scaling.load()["runs"], mode)


# ---- one point of a sweep ---------------------------------------------------------------------------
@dataclass
class Point:
    mode: str
    services: int
    endpoints: int
    nodes: int
    rules: int                   # kube-proxy's rules (or entries) on node 1 after the full sync
    payload_bytes: int           # the full sync's payload (iptables-restore / nft -f / ipvsadm / map input)
    partial_bytes: int           # the payload after one more Service appears (a partial sync where the mode has one)
    partial_full: bool           # was that second sync a full one anyway?
    render_seconds: float        # render() of node 1 (the model's cost)
    apply_seconds: float         # objects and controllers, before kube-proxy (the model's cost; once per size)
    sync_seconds: float          # every node's proxier computing its full sync (the model's cost)
    load_seconds: float          # the engine loading every node's dataplane (the model's cost)
    rules_visited: list          # per sampled connection, the first packet's rules walked
    engine_ns: float             # connect_many's time per connection: the numba engine in batches plus
                                 # the Python bookkeeping of each flow (one core)
    latency_p50_us: float        # the calibrated latency model's median and p99 for these connections
    latency_p99_us: float
    calibrated: bool

    @property
    def key(self) -> str:
        return f"{self.mode}/{self.services}x{self.endpoints}/{self.nodes}"


def measure(c: Cluster, mode: str, connections: int = 300, seed: int = 0, apply_seconds: float = 0.0) -> Point:
    """Measure one cluster (from ``cluster()``) in ``mode``."""
    node = c.nodes[0].name
    if c.mode != mode:
        c.set_mode(mode)
    full = c.last_sync(node)
    sync = last_sync_seconds(c)
    start = time.perf_counter()
    c._network()
    load = time.perf_counter() - start
    start = time.perf_counter()
    c.render(node)
    render = time.perf_counter() - start
    ips = service_ips(c)
    rng = np.random.default_rng(seed)
    targets = [ips[i] for i in rng.integers(0, len(ips), connections)]
    visited = [c.connect("client", t, 80).rules_visited for t in targets]
    c.connect_many("client", targets[0], 80, 2_000)      # first batch: tables built, element store grown
    start = time.perf_counter()
    c.connect_many("client", targets[0], 80, 20_000)
    engine_ns = (time.perf_counter() - start) / 20_000 * 1e9
    n = len(ips)
    c.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"extra-{n}"},
             "spec": {"selector": {"app": "backend"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    partial = c.last_sync(node)
    model = latency_model(mode)
    p50, p99 = model.percentiles(visited)
    return Point(mode, n, len(c.pods) - 1, len(c.nodes), sum(full.rules_total.values()), len(full.payload),
                 len(partial.payload), partial.full, render, apply_seconds, sync, load, visited, engine_ns,
                 p50, p99, model.calibrated)


def sweep(modes=MODES, sizes=(100, 1_000, 10_000), endpoints: int = 5, nodes: int = 2, connections: int = 300,
          seed: int = 0, cache: str | Path | None = None, progress: bool = True) -> list[Point]:
    """Every mode at every size (``sizes``: one list for all modes, or {mode: sizes}). The cluster of
    each size is built once and switched between modes. With ``cache``, each finished point is saved
    as it comes and reused: an interrupted sweep resumes where it stopped."""
    from tqdm.auto import tqdm
    plan = {m: tuple(sizes[m] if isinstance(sizes, dict) else sizes) for m in modes}
    path = Path(cache) if cache else None
    done = {p["key"]: Point(**{k: v for k, v in p.items() if k != "key"})
            for p in (json.loads(path.read_text()) if path and path.exists() else [])}
    out = []
    bar = tqdm(total=sum(len(v) for v in plan.values()), desc="scale sweep", disable=not progress)
    for n in sorted({n for v in plan.values() for n in v}):
        c = None
        for m in [m for m in modes if n in plan[m]]:
            key = f"{m}/{n}x{endpoints}/{nodes}"
            if key not in done:
                bar.set_postfix_str(f"{m}, {n:,} Services")
                if c is None:
                    start = time.perf_counter()
                    c = cluster(n, endpoints, nodes, m, seed)
                    p = measure(c, m, connections, seed, time.perf_counter() - start - last_sync_seconds(c))
                else:
                    p = measure(c, m, connections, seed)
                c.delete("svc", f"extra-{n}")
                done[key] = p
                if path:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(json.dumps([dict(asdict(q), key=q.key) for q in done.values()]))
            out.append(done[key])
            bar.update()
    bar.close()
    return out


def table(points: list[Point]) -> str:
    """The sweep as text: one row per mode and size."""
    rows = [f"{'mode':9} {'Services':>8} {'rules':>8} {'payload kB':>10} {'partial kB':>10} {'sync s':>6} "
            f"{'load s':>6} {'visited':>8} {'engine ns':>9} {'p50 us':>7} {'p99 us':>7}"]
    for p in points:
        rows.append(f"{p.mode:9} {p.services:>8,} {p.rules:>8,} {p.payload_bytes / 1e3:>10.1f} "
                    f"{p.partial_bytes / 1e3:>10.1f} {p.sync_seconds:>6.2f} {p.load_seconds:>6.2f} "
                    f"{np.mean(p.rules_visited):>8.0f} {p.engine_ns:>9.0f} {p.latency_p50_us:>7.1f} "
                    f"{p.latency_p99_us:>7.1f}{'' if p.calibrated else ' (not calibrated)'}")
    return "\n".join(rows)
