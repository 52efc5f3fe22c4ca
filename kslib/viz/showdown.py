"""Lesson 13, the scale showdown: the four dataplanes at thousands of Services, side by side.

``showdown(sizes)`` builds ``kslib.scale.cluster(N, ...)`` once per size and measures every mode on it
(``kslib.scale.measure``), adding what the node's kernel would hold in each mode (``state_entries``);
``lookup`` serves the lesson's widget from those rows. The rest are small pieces of the production
story: rules for Services x endpoints, the cost of walking them under the latency model calibrated on
the kernel lab, and what a sidecar that connects to pod IPs skips.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from .. import scale
from ..lab import scaling
from .dataplanes import iptables_rules_per_service

MODES = scale.MODES


@dataclass(frozen=True)
class Row:
    """One mode at one size (node-1 of a 2-node cluster, 5 endpoints per Service by default)."""
    mode: str
    services: int
    endpoints: int
    entries: dict = field(compare=False)      # what the node's kernel holds, by kind
    payload_bytes: int                        # the full sync's payload
    partial_bytes: int                        # the sync after one more Service appears
    sync_seconds: float                       # the model's time to compute every node's full sync
    visited: float                            # rules a first packet visits (mean over connections)
    p50_us: float                             # the calibrated latency model's median and p99
    p99_us: float
    calibrated: bool

    @property
    def total(self) -> int:
        return sum(self.entries.values())


IPVS_SERVICE = re.compile(r"^(TCP|UDP|SCTP)\s+\S+:\d+ ")


def state_entries(c, node: str = "node-1") -> dict:
    """What kube-proxy keeps in the node's kernel in the cluster's current mode: iptables or nft rules;
    for IPVS the virtual and real servers plus the fixed iptables rules around them; for eBPF the
    entries of Cilium's service, backend and reverse-NAT maps."""
    totals = c.last_sync(node).rules_total
    if c.mode == "iptables":
        return {"iptables rules": sum(totals.values())}
    if c.mode == "nftables":
        return {"nft rules": sum(totals.values())}
    if c.mode == "ebpf":
        return {"BPF map entries": sum(totals.values())}
    text = c.render(node)
    lines = text.split("\n\n", 1)[0].splitlines()
    return {"IPVS virtual servers": sum(1 for ln in lines if IPVS_SERVICE.match(ln)),
            "IPVS real servers": sum(1 for ln in lines if ln.startswith("  -> ") and ":" in ln[5:]) - 1,
            "iptables rules": sum(totals.values())}


def showdown(sizes=(100, 1_000), endpoints: int = 5, nodes: int = 2, connections: int = 100,
             seed: int = 0) -> list[Row]:
    """Every mode at every size; the cluster of each size is built once and switched between modes."""
    rows = []
    for n in sizes:
        c = scale.cluster(n, endpoints, nodes, "iptables", seed)
        for mode in MODES:
            if c.mode != mode:
                c.set_mode(mode)
            entries = state_entries(c)
            p = scale.measure(c, mode, connections, seed)
            c.delete("svc", f"extra-{n}")
            rows.append(Row(mode, n, endpoints, entries, p.payload_bytes, p.partial_bytes, p.sync_seconds,
                            float(np.mean(p.rules_visited)), p.latency_p50_us, p.latency_p99_us, p.calibrated))
    return rows


def lookup(rows: list[Row], mode: str, services) -> Row:
    """The row of ``mode`` at ``services``; ValueError naming what exists otherwise."""
    sizes = sorted({r.services for r in rows})
    if mode not in MODES:
        raise ValueError(f"mode: unsupported value {mode!r}: supported values: " + ", ".join(MODES))
    for r in rows:
        if r.mode == mode and r.services == services:
            return r
    raise ValueError(f"services: no measurement at {services!r}; measured: " + ", ".join(f"{s:,}" for s in sizes))


def describe(r: Row) -> str:
    entries = ", ".join(f"{v:,} {k}" for k, v in r.entries.items())
    note = "" if r.calibrated else " (latency not calibrated: the kernel lab cannot run this mode)"
    return (f"{r.mode}, {r.services:,} Services x {r.endpoints} endpoints: {entries}; full sync "
            f"{r.payload_bytes / 1e3:,.0f} kB, after one more Service {r.partial_bytes / 1e3:,.1f} kB; "
            f"model sync {r.sync_seconds:.2f} s; a first packet visits {r.visited:,.0f} rules; "
            f"p50 {r.p50_us:.0f} µs, p99 {r.p99_us:.0f} µs{note}")


def table(rows: list[Row]) -> str:
    out = [f"{'mode':9} {'Services':>8} {'kernel state':>12} {'full kB':>9} {'partial kB':>10} {'sync s':>7} "
           f"{'visited':>8} {'p50 µs':>7} {'p99 µs':>7}"]
    for r in rows:
        out.append(f"{r.mode:9} {r.services:>8,} {r.total:>12,} {r.payload_bytes / 1e3:>9,.0f} "
                   f"{r.partial_bytes / 1e3:>10,.1f} {r.sync_seconds:>7.2f} {r.visited:>8,.0f} {r.p50_us:>7.1f} "
                   f"{r.p99_us:>7.1f}{'' if r.calibrated else '  (not calibrated)'}")
    return "\n".join(out)


# ---- the model's line and the kernel's points --------------------------------------------------------
def model_line(mode: str, visited) -> list[float]:
    """The calibrated model's median first-packet latency (µs) for connections visiting ``visited``
    rules (one value per entry)."""
    m = scale.latency_model(mode)
    return [m.fixed_us + m.per_rule_us * (v - m.base_visited) for v in visited]


def kernel_points(data: dict, mode: str) -> list[dict]:
    """The measured runs of one mode, by N: Services, mean rules visited, median and p99 (µs)."""
    runs = sorted((r for r in data["runs"] if r["mode"] == mode), key=lambda r: r["services"])
    return [{"services": r["services"], "visited": float(np.mean(r["rules_visited"])),
             "median_us": r["median_us"], "p99_us": r["p99_us"]} for r in runs]


def remeasure(sizes=(1, 1_000), connections: int = 300, seed: int = 0) -> dict:
    """The kernel lab's scaling experiment again, small (root and network namespaces needed)."""
    return scaling.measure({"iptables": tuple(sizes), "nftables": tuple(sizes)}, connections=connections,
                           seed=seed, progress=False)


# ---- the production story -----------------------------------------------------------------------------
def endpoints_for(rules: int, services: int) -> int:
    """The fewest endpoints per Service for ``services`` one-port Services to need ``rules`` nat rules
    (2 + 3 x endpoints each, lesson 4)."""
    e = 1
    while services * iptables_rules_per_service(e) < rules:
        e += 1
    return e


def services_for(rules: int, endpoints: int) -> int:
    return math.ceil(rules / iptables_rules_per_service(endpoints))


@dataclass(frozen=True)
class Walk:
    services: int
    endpoints: int
    rules: int            # kube-proxy's rules on node-1
    visited: float        # mean rules a first packet visits
    p50_us: float
    p99_us: float


def walk(services: int, endpoints: int, mode: str = "iptables", connections: int = 30, seed: int = 0) -> Walk:
    """A 2-node cluster of ``services`` x ``endpoints``: rules on node-1 and the first-packet walk to
    Services drawn at random, with the calibrated latency."""
    c = scale.cluster(services, endpoints, 2, mode, seed)
    ips = scale.service_ips(c)
    rng = np.random.default_rng(seed)
    visited = [c.connect("client", ips[i], 80).rules_visited for i in rng.integers(0, len(ips), connections)]
    p50, p99 = scale.latency_model(mode).percentiles(visited)
    return Walk(services, endpoints, sum(c.last_sync("node-1").rules_total.values()), float(np.mean(visited)),
                p50, p99)


def full_walk_us(rules: int, mode: str = "iptables") -> float:
    """The calibrated per-rule cost times ``rules``: a first packet compared with every rule (µs),
    an extrapolation beyond the measured range."""
    return scale.latency_model(mode).per_rule_us * rules


# ---- service-mesh offload -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Path:
    dst: str
    visited: int
    svc_rules: int        # trace steps in a Service's chain (KUBE-SVC-/KUBE-SEP-, or nft service-/endpoint-)
    translated: bool      # was the destination DNATed?


def paths(c, service: str, src: str = "client") -> tuple[Path, Path]:
    """One connection to the Service's ClusterIP (what kube-proxy balances) and one straight to a
    backend pod's IP (what a sidecar doing client-side load balancing opens)."""
    svc = c.get("svc", service)
    slice_ = c.endpoint_slices(service)[0]
    pod_ip, port = slice_.endpoints[0].addresses[0], slice_.ports[0].port
    out = []
    for dst, p in ((svc.cluster_ip, svc.ports[0].port), (pod_ip, port)):
        conn = c.connect(src, dst, p)
        steps = [str(s) for s in conn.trace]
        out.append(Path(dst, conn.rules_visited,
                        sum(1 for s in steps if re.search(r"KUBE-(SVC|SEP)-|goto (service|endpoint)-|: (service|endpoint)-", s)),
                        any("DNAT to" in s for s in steps)))
    return out[0], out[1]
