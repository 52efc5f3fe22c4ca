"""Load balancing, measured: what lessons 5 (IPVS) and 7 (eBPF) compute from the model.

IPVS (lesson 5): the ``ipvsadm -Ln`` view of one node and one virtual server read back as numbers,
the addresses on kube-ipvs0, one workload (long-lived streams, a scale-up, a population of external
clients) run under any kernel scheduler, and the rules a first packet visits as Services grow.

Maglev (lesson 7): a fixed population of flows hashed as Cilium's datapath hashes them, mapped to
backends by Cilium's Maglev lookup table (kslib.proxy.maglev) or by a naive hash mod N, and the
fraction of flows that change backend when one backend goes away.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from kslib.cluster import Cluster
from kslib.dataplane.hashes import maglev_flow_hash
from kslib.dataplane.ipvs import SCHEDULERS
from kslib.proxy import maglev as mg
from kslib.traffic import clients as client_population

# ---- IPVS: reading a node -------------------------------------------------------------------------


def ipvsadm(cluster: Cluster, node: str) -> str:
    """The ``ipvsadm -Ln`` part of ``cluster.render(node)`` (IPVS mode)."""
    if cluster.mode != "ipvs":
        raise ValueError(f"ipvsadm: the cluster is in {cluster.mode} mode, not ipvs")
    return cluster.render(node).split("\n\n")[0] + "\n"


def virtual_server(cluster: Cluster, node: str, address: str) -> str:
    """The lines of one virtual server ("ip:port") in ``ipvsadm -Ln``: its line, then its real servers."""
    out, inside = [], False
    for line in ipvsadm(cluster, node).splitlines():
        if line.startswith(("TCP ", "UDP ", "SCTP ")):
            inside = line.split()[1] == address
        if inside:
            out.append(line.rstrip())
    if not out:
        raise ValueError(f"virtual_server: no virtual server {address} on {node}")
    return "\n".join(out) + "\n"


def ipvs_dests(cluster: Cluster, node: str, address: str) -> dict[str, tuple[int, int, int]]:
    """{real server "ip:port": (Weight, ActiveConn, InActConn)} of one virtual server."""
    out = {}
    for line in virtual_server(cluster, node, address).splitlines()[1:]:
        _, dest, _forward, weight, active, inactive = line.split()
        out[dest] = (int(weight), int(active), int(inactive))
    return out


def pod_names(cluster: Cluster) -> dict[str, str]:
    """Pod IP -> pod name (default namespace) or "namespace/name"."""
    return {p.pod_ip: (p.name if p.namespace == "default" else p.key) for p in cluster.pods if p.pod_ip}


def active_per_pod(cluster: Cluster, node: str, address: str) -> dict[str, int]:
    """ActiveConn of each real server of one virtual server, keyed by the pod behind it, by pod name."""
    names = pod_names(cluster)
    got = {names.get(d.rsplit(":", 1)[0], d): v[1] for d, v in ipvs_dests(cluster, node, address).items()}
    return dict(sorted(got.items()))


def kube_ipvs0(cluster: Cluster, node: str) -> list[str]:
    """The addresses kube-proxy bound on the node's kube-ipvs0 dummy interface (IPVS mode)."""
    if cluster.mode != "ipvs":
        raise ValueError(f"kube_ipvs0: the cluster is in {cluster.mode} mode: only IPVS mode creates kube-ipvs0")
    cluster._node(node)
    return list(cluster.proxiers[node].dummy_addresses)


def ipset_members(cluster: Cluster, node: str) -> dict[str, list[str]]:
    """The ipsets kube-proxy filled on the node (IPVS mode): set name -> members, empty sets left out."""
    if cluster.mode != "ipvs":
        raise ValueError(f"ipset_members: the cluster is in {cluster.mode} mode: only IPVS mode uses ipsets")
    cluster._node(node)
    return {name: list(s.entries) for name, s in cluster.proxiers[node].ipsets.items() if s.entries}


# ---- IPVS: one workload under every scheduler ----------------------------------------------------------
def _pod(name: str, node: str, app: str = "web") -> str:
    return (f"---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: {app}}}}}\n"
            f"spec:\n  nodeName: {node}\n  containers: [{{name: c, image: nginx, ports: [{{containerPort: 8080}}]}}]\n")


# three nodes; a client pod on node-1; web-1..3 one per node; a NodePort Service in front
WORKLOAD = (_pod("client", "node-1", "client") + _pod("web-1", "node-1") + _pod("web-2", "node-2")
            + _pod("web-3", "node-3")
            + "---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  type: NodePort\n"
              "  selector: {app: web}\n  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]\n")
SCALE_UP = _pod("web-4", "node-2")          # the scale-up: a fourth replica joins
NODE = "node-1"
NODE_PORT = 30080


@dataclass
class SchedulerRun:
    """One scheduler under the lesson's workload; counts are ipvsadm's ActiveConn on node-1, per pod."""
    scheduler: str
    first_wave: dict[str, int]          # after `streams` held streams from the client pod (3 replicas)
    after_scale_up: dict[str, int]      # after web-4 joined and `new_streams` more streams opened
    servers_per_client: dict[str, int]  # external client -> distinct pods its held connections reached
    client_load: dict[str, int]         # the NodePort virtual server's ActiveConn per pod
    table: str                          # the ClusterIP virtual server in ipvsadm -Ln at the end
    cluster: Cluster

    @property
    def new_pod_share(self) -> float:
        """The share of the second wave's streams that went to the new pod, web-4."""
        new = sum(self.after_scale_up.values()) - sum(self.first_wave.values())
        return self.after_scale_up.get("web-4", 0) / new if new else 0.0


def run_workload(scheduler: str = "rr", streams: int = 30, new_streams: int = 12, clients: int = 20,
                 per_client: int = 8, seed: int = 0) -> SchedulerRun:
    """The WORKLOAD cluster in IPVS mode with ``scheduler``: the client pod opens ``streams``
    long-lived connections to the ClusterIP one after another, web-4 joins (SCALE_UP), the client
    opens ``new_streams`` more; then ``clients`` external clients (``kslib.clients``) each open
    ``per_client`` long-lived connections to node-1's NodePort. A bad scheduler raises ValueError
    before any cluster is built."""
    for name, v in (("streams", streams), ("new_streams", new_streams), ("per_client", per_client)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{name}: Invalid value: {v!r}: must be a non-negative integer")
    population = client_population(clients)
    c = Cluster(nodes=3, seed=seed)
    c.apply(WORKLOAD)
    c.set_mode("ipvs", scheduler=scheduler)
    vip = c.get("svc", "web").cluster_ip
    vs = f"{vip}:80"
    for _ in range(streams):
        c.connect("client", vip, 80, hold=True)
    first = active_per_pod(c, NODE, vs)
    c.apply(SCALE_UP)
    for _ in range(new_streams):
        c.connect("client", vip, 80, hold=True)
    after = active_per_pod(c, NODE, vs)
    node_ip = c.get("node", NODE).internal_ip
    reached: dict[str, set] = {}
    if per_client:
        traffic = c.connect_many(population, node_ip, NODE_PORT, clients * per_client, via=NODE, hold=True)
        for f in traffic.flows:
            reached.setdefault(f.client, set()).add(f.pod)
    load = active_per_pod(c, NODE, f"{node_ip}:{NODE_PORT}")
    return SchedulerRun(scheduler, first, after, {k: len(v) for k, v in reached.items()}, load,
                        virtual_server(c, NODE, vs), c)


def compare_schedulers(schedulers=SCHEDULERS, **workload) -> dict[str, SchedulerRun]:
    """``run_workload`` under each scheduler (the same seed and workload for all)."""
    return {s: run_workload(s, **workload) for s in schedulers}


def scheduler_report(run: SchedulerRun) -> str:
    """The text the lesson's widget shows for one run."""
    pods = sorted(run.after_scale_up)
    spc = Counter(run.servers_per_client.values())
    lines = [f"scheduler {run.scheduler}",
             "ActiveConn per pod, ClusterIP virtual server (node-1):",
             "  " + "  ".join(f"{p}: {run.first_wave.get(p, 0):>2}" for p in pods) + "   <- first wave, 3 replicas",
             "  " + "  ".join(f"{p}: {run.after_scale_up[p]:>2}" for p in pods) + "   <- after web-4 joined",
             f"external clients: {len(run.servers_per_client)}, each reached "
             + ", ".join(f"{k} pod(s): {v} client(s)" for k, v in sorted(spc.items())),
             "", run.table]
    return "\n".join(lines)


# ---- IPVS vs iptables: what a first packet walks as Services grow ---------------------------------------
@dataclass
class ScalePoint:
    mode: str
    services: int
    rules: int               # kube-proxy's iptables rules on node 1 (IPVS mode keeps only a few)
    visited: float           # mean rules a first packet walked, over the sampled Services


def rules_visited(sizes=(10, 100, 1_000), modes=("iptables", "ipvs"), samples: int = 20,
                  endpoints: int = 5, seed: int = 0) -> list[ScalePoint]:
    """For each size a ``kslib.scale.cluster`` of that many Services, then in each mode the mean rules
    a first packet from the client pod walks to ``samples`` Services spread over the list."""
    from kslib import scale
    out = []
    for n in sizes:
        c = scale.cluster(n, endpoints=endpoints, nodes=2, mode=modes[0], seed=seed)
        ips = scale.service_ips(c)
        targets = ips[::max(1, len(ips) // samples)][:samples]
        for m in modes:
            if c.mode != m:
                c.set_mode(m)
            node = c.nodes[0].name
            visited = [c.connect("client", ip, 80).rules_visited for ip in targets]
            rules = c.last_sync(node).rules_total
            out.append(ScalePoint(m, n, sum(v for k, v in rules.items() if k in ("nat", "filter")),
                                  float(np.mean(visited))))
    return out


# ---- Maglev vs hash mod N ---------------------------------------------------------------------------
EPHEMERAL_PORTS = (32768, 60999)     # Linux net.ipv4.ip_local_port_range default


def flow_population(n: int = 20_000, seed: int = 0) -> np.ndarray:
    """``n`` flows as (client address as an int, source port): client i of ``kslib.clients(n)``
    with a source port drawn from the Linux ephemeral range."""
    pop = client_population(n)
    rng = np.random.default_rng(seed)
    ports = rng.integers(EPHEMERAL_PORTS[0], EPHEMERAL_PORTS[1] + 1, n)
    addrs = [int.from_bytes(bytes(int(x) for x in a.split(".")), "big") for a in pop.addresses]
    return np.column_stack([np.array(addrs, dtype=np.int64), ports.astype(np.int64)])


def flow_hashes(flows: np.ndarray, dport: int = NODE_PORT, proto: int = 6,
                hash_seed: str = mg.DEFAULT_SEED) -> np.ndarray:
    """Cilium's Maglev flow hash of each flow to ``dport`` (jhash of source address, ports and
    protocol, seeded with the IPv4 seed that ``maglev.hashSeed`` decodes to)."""
    seed4 = mg.seeds(hash_seed)[1]
    return np.array([maglev_flow_hash(int(a), int(p), dport, proto, seed4) for a, p in flows], dtype=np.int64)


def backend_names(n: int) -> list[str]:
    """``n`` backends as Cilium names them for hashing: pod addresses 10.244.0.1... port 8080."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"backends: Invalid value: {n!r}: must be a positive integer")
    return [mg.backend_hash_string(f"10.244.{i // 250}.{i % 250 + 1}", 8080) for i in range(n)]


def _maglev_index(hashes: np.ndarray, names: list[str], m: int) -> np.ndarray:
    """Index into ``names`` of each flow's backend under Maglev."""
    return np.asarray(mg.table(list(names), m), dtype=np.int64)[hashes % m]


def maglev_assign(hashes: np.ndarray, names: list[str], m: int = mg.DEFAULT_TABLE_SIZE) -> list[str]:
    """The backend each flow gets from Cilium's Maglev table over ``names``: table[hash mod M]."""
    return [names[i] for i in _maglev_index(hashes, names, m)]


def mod_n_assign(hashes: np.ndarray, names: list[str]) -> list[str]:
    """The naive scheme: the same flow hash, then backend number hash mod N of the list."""
    return [names[i] for i in hashes % len(names)]


def moved_fraction(before, after) -> float:
    """The fraction of flows whose backend differs."""
    if len(before) != len(after) or not len(before):
        raise ValueError("moved_fraction: two equally long, non-empty assignments are needed")
    return float(np.mean(np.asarray(before) != np.asarray(after)))


@dataclass
class Disruption:
    """Flows that change backend when backend ``removed`` of ``backends`` goes away (-1: the mean over
    removing each backend in turn)."""
    backends: int
    removed: int
    table_size: int
    removed_share: float      # flows that were on the removed backend: they must move (the minimum)
    maglev: float             # fraction of all flows that changed backend under Maglev
    mod_n: float              # ... under hash mod N

    @property
    def maglev_collateral(self) -> float:
        """Flows Maglev moved between surviving backends (its small extra disruption)."""
        return self.maglev - self.removed_share


def _check_removal(backends, removed, m) -> None:
    backend_names(backends)
    if backends < 2:
        raise ValueError(f"backends: Invalid value: {backends}: removing one needs at least 2")
    if isinstance(removed, bool) or not isinstance(removed, int) or not 0 <= removed < backends:
        raise ValueError(f"removed: Invalid value: {removed!r}: must be between 0 and {backends - 1}")
    mg.check_table_size(m)


def _removal(names, removed, hashes, m, before_mg) -> Disruption:
    n = len(names)
    rest = np.array([i for i in range(n) if i != removed])
    after_mg = rest[_maglev_index(hashes, names[:removed] + names[removed + 1:], m)]
    before_mod, after_mod = hashes % n, rest[hashes % (n - 1)]
    return Disruption(n, removed, m, float(np.mean(before_mg == removed)), moved_fraction(before_mg, after_mg),
                      moved_fraction(before_mod, after_mod))


def removal_disruption(backends: int, removed: int, hashes: np.ndarray,
                       m: int = mg.DEFAULT_TABLE_SIZE) -> Disruption:
    """Remove backend ``removed`` (0-based) of ``backends`` and measure both schemes on ``hashes``."""
    _check_removal(backends, removed, m)
    names = backend_names(backends)
    return _removal(names, removed, hashes, m, _maglev_index(hashes, names, m))


def disruption_curve(ns, hashes: np.ndarray, m: int = mg.DEFAULT_TABLE_SIZE) -> list[Disruption]:
    """For each N in ``ns``, the mean over removing each backend in turn (fields averaged; removed=-1)."""
    out = []
    for n in ns:
        _check_removal(n, 0, m)
        names = backend_names(n)
        before = _maglev_index(hashes, names, m)
        runs = [_removal(names, r, hashes, m, before) for r in range(n)]
        out.append(Disruption(n, -1, m, float(np.mean([d.removed_share for d in runs])),
                              float(np.mean([d.maglev for d in runs])), float(np.mean([d.mod_n for d in runs]))))
    return out


def disruption_report(d: Disruption) -> str:
    """The text the lesson's widget shows."""
    return (f"{d.backends} backends, backend {d.removed} removed, Maglev table M={d.table_size}:\n"
            f"  flows that were on the removed backend: {d.removed_share:6.1%}  (the minimum that must move)\n"
            f"  Maglev:      {d.maglev:6.1%} of flows changed backend "
            f"({d.maglev_collateral:.2%} moved between surviving backends)\n"
            f"  hash mod N:  {d.mod_n:6.1%} of flows changed backend")


def maglev_tables(cluster: Cluster, node: str) -> dict[str, dict[str, int]]:
    """The node's Cilium Maglev tables (eBPF mode, ``algorithm="maglev"``): frontend ("ip:port/TCP")
    -> {backend "ip:port/TCP": table entries it owns}."""
    if cluster.mode != "ebpf":
        raise ValueError(f"maglev_tables: the cluster is in {cluster.mode} mode, not ebpf")
    cluster._node(node)
    proxier = cluster.proxiers[node]
    out = {}
    for fe in proxier.frontends:
        if fe.rev_nat_id in proxier.maglev:
            owned = mg.slots_owned(proxier.maglev[fe.rev_nat_id])
            out[fe.key] = {proxier.backends[b].addr: k for b, k in sorted(owned.items())}
    return out


def cluster_maglev_backends(cluster: Cluster, node: str, frontend: str, flows: np.ndarray) -> list[str]:
    """The backend ("ip:port/TCP") the node's Cilium Maglev lookup gives each flow to ``frontend``
    (as ``cilium-dbg service list`` names it, e.g. "192.168.0.2:30080/TCP"), eBPF mode with
    ``algorithm="maglev"``."""
    if cluster.mode != "ebpf" or cluster.mode_options.get("algorithm") != "maglev":
        raise ValueError("cluster_maglev_backends: needs set_mode('ebpf', algorithm='maglev')")
    cluster._node(node)
    proxier = cluster.proxiers[node]
    fe = next((f for f in proxier.frontends if f.key == frontend), None)
    if fe is None or fe.rev_nat_id not in proxier.maglev:
        raise ValueError(f"cluster_maglev_backends: {frontend} has no Maglev table on {node}")
    return [proxier.backends[proxier.maglev_backend(fe.rev_nat_id, int(a), int(p))].addr for a, p in flows]


__all__ = ["Disruption", "SchedulerRun", "ScalePoint", "WORKLOAD", "SCALE_UP", "active_per_pod", "backend_names",
           "cluster_maglev_backends", "compare_schedulers", "disruption_curve", "disruption_report",
           "flow_hashes", "flow_population", "ipset_members", "ipvs_dests", "ipvsadm", "kube_ipvs0", "maglev_assign",
           "maglev_tables", "mod_n_assign", "moved_fraction", "pod_names", "removal_disruption", "rules_visited", "run_workload",
           "scheduler_report", "virtual_server"]
