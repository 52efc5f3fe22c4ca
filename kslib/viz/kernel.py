"""Lesson 16, the kernel lab: one small cluster run through the model and through the real Linux
kernel (``kslib.lab.KernelCluster``), probe by probe, in iptables and nftables modes; the kernel's
conntrack table and ruleset beside the model's; and a distribution check.

``run()`` measures it on this machine (root and network namespaces: ``kslib.lab.available()``);
``recorded()`` reads the run shipped in kslib/data/lab_recorded.json (made by
benchmarks/lab_record.py on the project's machine); ``results(live)`` picks one of the two.
"""
from __future__ import annotations

import datetime as dt
import json
import platform
import re
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..dataplane.rules import meaning, parse
from .dataplanes import chi2_sf

DATA = Path(__file__).resolve().parent.parent / "data" / "lab_recorded.json"
MODES = ("iptables", "nftables")
EXT = "203.0.113.9"              # an external client (TEST-NET-3)

# lesson 02's cluster (client, client-2, web-1 on node-2, Service web), with web made a NodePort,
# an externalTrafficPolicy: Local NodePort over the same pod, three "pool" pods for the
# distribution check and a Service whose selector matches nothing
MANIFESTS = """
apiVersion: v1
kind: Pod
metadata: {name: client}
spec: {nodeName: node-1, containers: [{name: curl, image: curlimages/curl}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client-2}
spec: {nodeName: node-2, containers: [{name: curl, image: curlimages/curl}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, labels: {app: web}}
spec: {nodeName: node-2, containers: [{name: web, image: nginx:1.27, ports: [{containerPort: 8080}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-local}
spec:
  type: NodePort
  externalTrafficPolicy: Local
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30090}]
---
apiVersion: v1
kind: Service
metadata: {name: empty}
spec:
  selector: {app: nothing}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: pool}
spec:
  replicas: 3
  selector:
    matchLabels: {app: pool}
  template:
    metadata:
      labels: {app: pool}
    spec:
      containers: [{name: pool, image: nginx:1.27, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: pool}
spec:
  selector: {app: pool}
  ports: [{port: 80, targetPort: 8080}]
"""


@dataclass(frozen=True)
class Probe:
    name: str
    src: str
    dst: str          # "vip:<service>", "node:<node>" or an address
    port: int
    via: str | None
    what: str


PROBES = (
    Probe("pod -> ClusterIP", "client", "vip:web", 80, None, "client (node-1) to web's ClusterIP"),
    Probe("node -> ClusterIP", "node-1", "vip:web", 80, None, "node-1's host network to web's ClusterIP"),
    Probe("hairpin", "web-1", "vip:web", 80, None, "web-1 to its own Service"),
    Probe("NodePort from outside", EXT, "node:node-1", 30080, "node-1", "an external client to node-1:30080"),
    Probe("eTP Local, node with the pod", EXT, "node:node-2", 30090, "node-2",
          "an external client to node-2:30090 (web-local)"),
    Probe("eTP Local, node without", EXT, "node:node-1", 30090, "node-1",
          "an external client to node-1:30090 (web-local)"),
    Probe("no endpoints", "client", "vip:empty", 80, None, "client to the ClusterIP of empty"),
    Probe("undefined port", "client", "vip:web", 81, None, "client to web's ClusterIP on port 81"),
)
PROBE_NAMES = tuple(p.name for p in PROBES)


def build(mode: str = "iptables", seed: int = 0):
    """The lesson's cluster: two nodes, in ``mode``."""
    from ..cluster import Cluster
    c = Cluster(mode=mode, nodes=2, seed=seed)
    c.apply(MANIFESTS)
    return c


def probe(name: str) -> Probe:
    for p in PROBES:
        if p.name == name:
            return p
    raise ValueError(f"probe: unknown {name!r}; probes: " + ", ".join(PROBE_NAMES))


def address(c, dst: str) -> str:
    kind, _, name = dst.partition(":")
    if kind == "vip":
        return c.get("svc", name).cluster_ip
    if kind == "node":
        return c.get("node", name).internal_ip
    return dst


def answer(conn) -> dict:
    """What a connection's fate comes to, the same fields for model and kernel."""
    return {"outcome": conn.outcome, "pod": conn.pod, "source_ip": conn.source_ip}


def connect(side, c, p: Probe):
    """One connection of probe ``p`` through ``side`` (the Cluster or a KernelCluster)."""
    return side.connect(p.src, address(c, p.dst), p.port, via=p.via)


def model_answers(c) -> dict:
    return {p.name: answer(connect(c, c, p)) for p in PROBES}


def addresses(c) -> dict:
    """The addresses a reader needs to read the answers: nodes, pods, node pod gateways, ClusterIPs."""
    import ipaddress
    out = {n.name: n.internal_ip for n in c.nodes}
    out.update({f"{n.name} pod gateway": str(ipaddress.ip_network(n.pod_cidr)[1]) for n in c.nodes})
    out.update({p.key: p.pod_ip for p in c.pods})
    out.update({f"svc/{s.name}": s.cluster_ip for s in c.services})
    return out


# ---- measuring on the kernel ----------------------------------------------------------------------
def run_mode(mode: str, n: int = 600, seed: int = 0) -> dict:
    """The whole experiment in one mode on this machine's kernel: every probe, node-1's conntrack
    table (kernel and model) and ruleset (kernel and render), and ``n`` connections to pool."""
    from ..lab import KernelCluster
    c = build(mode, seed)
    pool = c.get("svc", "pool").cluster_ip
    with KernelCluster(c, timeout=0.5) as k:
        kernel = {p.name: answer(connect(k, c, p)) for p in PROBES}
        ruleset = k.ruleset("node-1")
        conntrack = k.conntrack("node-1")
        dist = k.connect_many("client", pool, 80, n)
    model = model_answers(c)
    return {"probes": {name: {"model": model[name], "kernel": kernel[name]} for name in PROBE_NAMES},
            "render": c.render("node-1"), "ruleset": ruleset,
            "conntrack": {"kernel": conntrack, "model": c.conntrack("node-1")},
            "distribution": {"n": n, "kernel": dict(sorted(dist.items())),
                             "model": dict(sorted(c.connect_many("client", pool, 80, n).items()))}}


def run(modes=MODES, n: int = 600, seed: int = 0) -> dict:
    """``run_mode`` for every mode, with where and when (``source``)."""
    return {"source": source(), "seed": seed, "modes": {m: run_mode(m, n, seed) for m in modes}}


def source() -> str:
    from ..lab.netns import tool

    def version(argv):
        path = tool(argv[0])
        if not path:
            return f"{argv[0]} missing"
        return subprocess.run([path, *argv[1:]], capture_output=True, text=True).stdout.strip().splitlines()[0]
    return (f"kslib.viz.kernel.run() (benchmarks/lab_record.py) on {platform.node() or 'a'} {platform.machine()} "
            f"VM, Linux {platform.release()}, {version(['iptables', '--version'])}, {version(['nft', '--version'])}, "
            f"{version(['conntrack', '--version'])}, {dt.date.today().isoformat()}")


def save(result: dict, path: Path = DATA) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")


def recorded(path: Path = DATA) -> dict:
    """The run shipped with kslib (benchmarks/lab_record.py)."""
    return json.loads(Path(path).read_text())


def results(live: bool, n: int = 600, seed: int = 0) -> dict:
    """A live run where ``live`` (pass ``kslib.lab.available()[0]``), else the recorded one; the
    answer says which (``"live"``)."""
    out = run(n=n, seed=seed) if live else recorded()
    return dict(out, live=bool(live))


# ---- comparing ------------------------------------------------------------------------------------
def disagreements(res: dict, fresh_model: dict | None = None) -> list[str]:
    """Probes where the kernel's answer differs from the model's (the model's answers of the run, or
    ``fresh_model``: {mode: model_answers(...)} computed now)."""
    out = []
    for mode, r in res["modes"].items():
        for name, row in r["probes"].items():
            model = fresh_model[mode][name] if fresh_model else row["model"]
            if model != row["kernel"]:
                out.append(f"{mode} {name}: model {model}, kernel {row['kernel']}")
    return out


def probe_table(res: dict, mode: str, fresh_model: dict | None = None) -> str:
    rows = [f"{'probe':29} {'model':38} {'kernel':38} agree"]
    for name, row in res["modes"][mode]["probes"].items():
        model = fresh_model[mode][name] if fresh_model else row["model"]
        cells = [f"{a['outcome']:9} {a['pod'] or '-':16} {a['source_ip'] or '-':11}" for a in (model, row["kernel"])]
        rows.append(f"{name:29} {cells[0]:38} {cells[1]:38} {'yes' if model == row['kernel'] else 'NO'}")
    return "\n".join(rows)


CT_FIELDS = re.compile(r"(src|dst|sport|dport)=(\S+)")


def conntrack_tuple(line: str) -> tuple | None:
    """(protocol, original src, dst, dport, reply src, reply dst, reply sport) of one ``conntrack -L``
    line, leaving out the client's source port, timers and flags; None for a line without both tuples."""
    parts = line.split()
    if not parts or parts[0] not in ("tcp", "udp"):
        return None
    f = CT_FIELDS.findall(line)
    if len(f) < 8:
        return None
    d = [v for _, v in f]
    return (parts[0], d[0], d[1], int(d[3]), d[4], d[5], int(d[6]))


def conntrack_tuples(lines) -> set:
    return {t for t in map(conntrack_tuple, lines) if t}


def _kube_rules(text: str) -> list:
    """kube-proxy's iptables rules in a ruleset (its KUBE- chains and the jumps to them), parsed by the
    engine's own parser, which reads kube-proxy's spelling and iptables-save's alike."""
    return [r for r in parse(text, source="ruleset").rules() if "KUBE-" in r.chain or "KUBE-" in r.target]


def kube_lines(mode: str, text: str) -> list:
    """kube-proxy's rules in a ruleset, comparable between what the model renders and what the kernel
    prints: iptables rules as (table, chain, meaning) (``kslib.dataplane.rules.meaning``: the same
    rule in either spelling is equal); nftables statements inside chains, whitespace collapsed."""
    if mode == "iptables":
        return [(r.table, r.chain, meaning(r)) for r in _kube_rules(text)]
    return [s for statements in nft_chains(text).values() for s in statements]


def nft_chains(text: str) -> dict:
    """{chain: [statements]} of an nftables ruleset, whitespace collapsed."""
    out, chain = {}, None
    for ln in text.splitlines():
        s = " ".join(ln.split())
        if s.startswith("chain "):
            chain = s.split()[1]
            out[chain] = []
        elif chain and s == "}":
            chain = None
        elif chain and s and not s.startswith(("type ", "comment ")):
            out[chain].append(s)
    return out


def spelling_pairs(rendered: str, kernel: str) -> list[tuple[str, str]]:
    """nftables: (as rendered, as the kernel lists it) for each statement that prints differently, matched
    by chain and position."""
    a, b = nft_chains(rendered), nft_chains(kernel)
    return [(x, y) for chain in a for x, y in zip(a[chain], b.get(chain, [])) if x != y]


def chain_sizes(mode: str, text: str) -> dict:
    """{chain: number of rules (statements)} of kube-proxy's chains in a ruleset."""
    if mode == "iptables":
        return dict(Counter(r.chain for r in _kube_rules(text)))
    return {chain: len(statements) for chain, statements in nft_chains(text).items()}


def ruleset_diff(mode: str, rendered: str, kernel: str) -> tuple[list[str], list[str]]:
    """(rules only the model rendered, rules only the kernel printed), compared as multisets of
    ``kube_lines`` and shown as written on each side."""
    def texts(text: str) -> list[tuple]:
        if mode == "iptables":
            return [((r.table, r.chain, meaning(r)), r.text) for r in _kube_rules(text)]
        return [(s, s) for s in kube_lines(mode, text)]
    a, b = texts(rendered), texts(kernel)
    only_a = Counter(k for k, _ in a) - Counter(k for k, _ in b)
    only_b = Counter(k for k, _ in b) - Counter(k for k, _ in a)

    def pick(items, left):
        out = []
        for k, t in items:
            if left[k] > 0:
                left[k] -= 1
                out.append(t)
        return sorted(out)
    return pick(a, only_a), pick(b, only_b)


@dataclass(frozen=True)
class Homogeneity:
    statistic: float
    df: int
    p_value: float


def homogeneity(a: dict, b: dict) -> Homogeneity:
    """Pearson's chi-square test that two counts over the same backends come from one distribution."""
    keys = sorted(set(a) | set(b))
    if len(keys) < 2:
        raise ValueError("counts: need two or more backends")
    na, nb = sum(a.values()), sum(b.values())
    stat = 0.0
    for k in keys:
        tot = a.get(k, 0) + b.get(k, 0)
        for n, c in ((na, a.get(k, 0)), (nb, b.get(k, 0))):
            e = tot * n / (na + nb)
            stat += (c - e) ** 2 / e
    return Homogeneity(stat, len(keys) - 1, chi2_sf(stat, len(keys) - 1))


def shares(counts: dict) -> dict:
    n = sum(counts.values())
    return {k: v / n for k, v in counts.items()}


# ---- the widget -----------------------------------------------------------------------------------
def compare(c, res: dict, mode: str, name: str) -> str:
    """The model's trace of probe ``name`` in ``mode`` (``c`` is switched to it) beside the kernel's
    answer in ``res``; ValueError for an unknown probe or mode."""
    if mode not in res["modes"]:
        raise ValueError(f"mode: {mode!r} was not run on the kernel; modes: " + ", ".join(res["modes"]))
    p = probe(name)
    if c.mode != mode:
        c.set_mode(mode)
    conn = connect(c, c, p)
    kernel = res["modes"][mode]["probes"][name]["kernel"]
    lines = [f"{p.name}: {p.what} ({mode})", "model trace:"] + [f"  {s}" for s in conn.trace]
    lines += [f"model:  {answer(conn)}", f"kernel: {kernel}",
              "they agree" if answer(conn) == kernel else "they DISAGREE"]
    return "\n".join(lines)
