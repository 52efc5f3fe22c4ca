"""Reading kube-proxy's rules as lessons 4 (iptables) and 6 (nftables) do: the chains of an
``iptables-save`` text, the statistic probabilities and the shares they give, the rules a first
packet walks, the nftables verdict maps, and a few small measurements over a cluster. Every
function reads model state or rendered text; none changes a cluster except ``set_replicas``,
which is ``kubectl scale`` with its refusal reported instead of raised."""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..api.errors import ValidationError
from ..lab.scaling import rule_count
from ..proxy import iptables as proxier

# ---- iptables mode ------------------------------------------------------------------------------


def iptables_chain_name(prefix: str, service_port: str, protocol: str, endpoint: str = "") -> str:
    """kube-proxy's chain name for a service port ("ns/svc" or "ns/svc:port-name"), or for one of its
    endpoints ("ip:port") with prefix KUBE-SEP- (pkg/proxy/iptables portProtoHash /
    servicePortEndpointChainName), as kslib's iptables proxier names them."""
    if endpoint:
        return proxier.endpoint_chain(service_port, protocol, endpoint)
    return proxier.service_chain(prefix, service_port, protocol)


def chain_rules(text: str, chain: str) -> list[str]:
    """The ``-A <chain> ...`` lines of an iptables-save text, in order (every table)."""
    head = f"-A {chain} "
    return [ln for ln in text.splitlines() if ln.startswith(head)]


def service_rule_position(text: str, ip: str, port: int) -> int | None:
    """1-based position in nat KUBE-SERVICES of the rule matching ``-d ip --dport port``, or None."""
    for i, ln in enumerate(nat_rules(text, "KUBE-SERVICES"), 1):
        if f" -d {ip} " in ln and f"--dport {port} " in ln:
            return i
    return None


def nat_rules(text: str, chain: str) -> list[str]:
    """``chain_rules`` restricted to the nat table (filter has a KUBE-SERVICES chain too)."""
    return chain_rules(_nat(text), chain)


def _nat(text: str) -> str:
    start = text.find("*nat")
    if start < 0:
        return ""
    end = text.find("COMMIT", start)
    return text[start:end if end >= 0 else None]


def service_chain(text: str, ip: str, port: int) -> str | None:
    """The KUBE-SVC-... chain KUBE-SERVICES jumps to for ClusterIP ``ip:port`` (None: no such rule,
    as for a Service without endpoints, which gets a filter REJECT rule instead)."""
    pos = service_rule_position(text, ip, port)
    if pos is None:
        return None
    return nat_rules(text, "KUBE-SERVICES")[pos - 1].rsplit("-j ", 1)[1].strip()


@dataclass(frozen=True)
class Pick:
    """One rule of a KUBE-SVC chain's random choice: the endpoint chain it jumps to, the endpoint
    ("ip:port", from the DNAT rule of that chain) and the probability it is taken when reached
    (1.0 for the last, unconditional rule)."""
    target: str
    endpoint: str
    probability: float


def statistic_picks(text: str, chain: str) -> list[Pick]:
    """The jump rules of a KUBE-SVC chain to its KUBE-SEP chains, in order, with their
    ``--probability`` (1.0 when the rule has none)."""
    out = []
    for ln in nat_rules(text, chain):
        target = ln.rsplit("-j ", 1)[1].strip()
        if not target.startswith("KUBE-SEP-"):
            continue
        m = re.search(r"--probability (\S+)", ln)
        dnat = [r for r in nat_rules(text, target) if "--to-destination" in r]
        endpoint = dnat[0].split("--to-destination ")[1].split()[0] if dnat else ""
        out.append(Pick(target, endpoint, float(m.group(1)) if m else 1.0))
    return out


def selection_shares(probabilities) -> list[float]:
    """The product rule: rule i is taken with p_i times the chance that every earlier rule was not
    (prod_{j<i} (1 - p_j)). With 1/n, 1/(n-1), ..., 1 every share is 1/n."""
    shares, missed = [], 1.0
    for p in probabilities:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"probability {p} is not between 0 and 1")
        shares.append(missed * p)
        missed *= 1.0 - p
    return shares


def kernel_threshold(probability: float) -> float:
    """The probability the kernel really applies: xt_statistic keeps lround(2^31 * p) and matches
    when (random & 0x7fffffff) is below it, so p is quantised to a multiple of 2^-31."""
    return math.floor(probability * 2 ** 31 + 0.5) / 2 ** 31


def iptables_rules_per_service(endpoints: int) -> int:
    """nat rules one ClusterIP Service port with ``endpoints`` ready endpoints adds in iptables
    mode: its KUBE-SERVICES rule, the KUBE-SVC masquerade rule for off-cluster sources, one jump
    per endpoint, and two rules (hairpin masquerade, DNAT) in each KUBE-SEP chain."""
    if endpoints < 1:
        raise ValueError("endpoints: a Service without endpoints gets a filter REJECT rule, not chains")
    return 2 + 3 * endpoints


def kube_rules(cluster, node: str) -> int:
    """Rules in kube-proxy's own chains on ``node`` after its last sync (every table)."""
    return sum(cluster.last_sync(node).rules_total.values())


def first_packet_walk(cluster, src: str, node: str, port: int = 80, limit: int | None = None,
                      ) -> list[tuple[int, int]]:
    """(position in nat KUBE-SERVICES, rules the first packet visited) for a new connection from
    ``src`` to each ClusterIP listed in ``node``'s KUBE-SERVICES on ``port`` (every ``k``-th one
    when there are more than ``limit``)."""
    rules = nat_rules(cluster.render(node), "KUBE-SERVICES")
    targets = [(i, re.search(r" -d (\S+) ", ln).group(1)) for i, ln in enumerate(rules, 1)
               if f"--dport {port} " in ln and " -d " in ln]
    if limit and len(targets) > limit:
        step = math.ceil(len(targets) / limit)
        targets = targets[::step] + ([targets[-1]] if (len(targets) - 1) % step else [])
    return [(i, cluster.connect(src, ip, port).rules_visited) for i, ip in targets]


def slope(xs, ys) -> float:
    """Least-squares slope of ys against xs."""
    return float(np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)[0])


# ---- statistics -----------------------------------------------------------------------------------


def chi2_sf(x: float, df: int) -> float:
    """P(X >= x) for a chi-square variable with ``df`` (a positive integer) degrees of freedom,
    from the closed forms for integer df (no SciPy needed)."""
    if df < 1 or int(df) != df:
        raise ValueError(f"df: must be a positive integer, got {df}")
    if x <= 0:
        return 1.0
    h = x / 2
    if df % 2 == 0:
        term, total = 1.0, 1.0
        for i in range(1, df // 2):
            term *= h / i
            total += term
        return min(1.0, math.exp(-h) * total)
    total, term = 0.0, math.sqrt(x) * math.sqrt(2 / math.pi)
    for i in range(1, (df - 1) // 2 + 1):
        if i > 1:
            term *= x / (2 * i - 1)
        total += term
    return min(1.0, math.erfc(math.sqrt(h)) + math.exp(-h) * total)


@dataclass(frozen=True)
class ChiSquare:
    statistic: float
    df: int
    p_value: float


def uniform_chi_square(counts) -> ChiSquare:
    """Pearson's chi-square test of ``counts`` (a Counter or list of counts per backend) against an
    equal share for every backend."""
    values = list(counts.values()) if isinstance(counts, dict) else list(counts)
    if len(values) < 2 or sum(values) == 0:
        raise ValueError("counts: need two or more backends and at least one connection")
    expected = sum(values) / len(values)
    stat = sum((v - expected) ** 2 / expected for v in values)
    return ChiSquare(stat, len(values) - 1, chi2_sf(stat, len(values) - 1))


# ---- the endpoint widget of lesson 4 ----------------------------------------------------------------


@dataclass
class ChainView:
    """A Service's dataplane on one node after a change, and a measured spread of new connections."""
    ready: int                         # ready endpoints in the Service's EndpointSlices
    chain: str | None                  # KUBE-SVC-... (None when the Service has no endpoints)
    rules: list[str]                   # the chain's rules (or the filter REJECT rule without endpoints)
    picks: list[Pick]
    counts: Counter = field(default_factory=Counter)            # per pod ("namespace/name"), or "rejected"
    endpoint_counts: Counter = field(default_factory=Counter)   # the same, per endpoint "ip:port"

    @property
    def measured_endpoints(self) -> dict[str, float]:
        total = sum(self.counts.values())
        return {k: v / total for k, v in self.endpoint_counts.items()} if total else {}

    @property
    def shares(self) -> list[float]:
        return selection_shares([p.probability for p in self.picks])

    @property
    def measured(self) -> dict[str, float]:
        total = sum(self.counts.values())
        return {k: v / total for k, v in sorted(self.counts.items())} if total else {}


def set_replicas(cluster, deployment: str, replicas, wait: float = 30) -> str | None:
    """``kubectl scale deployment/<deployment> --replicas=<replicas>``, then ``wait`` seconds on the
    cluster clock (the default terminationGracePeriodSeconds, so pods scaled away are gone rather
    than terminating). Returns None, or the API server's refusal message (a refused scale changes
    nothing)."""
    try:
        cluster.scale("deployment", deployment, replicas)
    except ValidationError as err:
        return str(err)
    cluster.advance(wait)
    return None


def chain_view(cluster, service: str, src: str, node: str, n: int = 0, port: int = 80) -> ChainView:
    """The Service's KUBE-SVC chain on ``node`` and, with ``n``, where ``n`` new connections from
    ``src`` went (connect_many)."""
    svc = cluster.get("svc", service)
    text = cluster.render(node)
    chain = service_chain(text, svc.cluster_ip, port)
    ready = sum(1 for s in cluster.endpoint_slices(service) for e in s.endpoints if e.conditions.ready is not False)
    if chain is None:
        rules = [ln for ln in text.splitlines() if ln.startswith("-A KUBE-SERVICES") and f" -d {svc.cluster_ip} " in ln]
        picks = []
    else:
        rules, picks = nat_rules(text, chain), statistic_picks(text, chain)
    counts = Counter(cluster.connect_many(src, svc.cluster_ip, port, n)) if n else Counter()
    by_ip = {p.endpoint.rsplit(":", 1)[0]: p.endpoint for p in picks}
    endpoint_counts = Counter()
    for key, k in counts.items():
        if "/" in key:
            endpoint_counts[by_ip.get(cluster.pod(key).pod_ip, key)] += k
    return ChainView(ready, chain, rules, picks, counts, endpoint_counts)


# ---- long-lived streams ---------------------------------------------------------------------------


def stream_growth(before: Counter, after: Counter) -> dict[str, tuple[int, int]]:
    """Per pod: (streams open before a change, streams added after it), from two
    ``open_connections()`` snapshots."""
    pods = sorted(set(before) | set(after))
    return {p: (before.get(p, 0), after.get(p, 0) - before.get(p, 0)) for p in pods}


# ---- nftables mode --------------------------------------------------------------------------------


def nft_block(text: str, kind: str, name: str) -> list[str]:
    """The stripped lines inside ``<kind> <name> { ... }`` (kind: "chain", "map", "set") of an
    ``nft list ruleset`` text, without the braces."""
    lines = text.splitlines()
    head = f"{kind} {name} {{"
    for i, ln in enumerate(lines):
        if ln.strip() == head:
            out = []
            for body in lines[i + 1:]:
                if body.strip() == "}" and body.startswith("\t}"):
                    return out
                out.append(body.strip())
    return []


def nft_chains(text: str, prefix: str) -> list[str]:
    """Names of the chains starting with ``prefix`` (e.g. "service-", "endpoint-")."""
    return [ln.strip()[6:-2] for ln in text.splitlines()
            if ln.strip().startswith(f"chain {prefix}") and ln.strip().endswith("{")]


def nft_map_elements(text: str, name: str) -> dict[str, str]:
    """The elements of a verdict map, "key : verdict" -> {key: verdict} (e.g. for service-ips,
    "10.96.0.1 . tcp . 443" -> "goto service-...")."""
    body = " ".join(nft_block(text, "map", name))
    m = re.search(r"elements = \{(.*)\}", body)
    if not m:
        return {}
    out = {}
    for item in m.group(1).split(","):
        if ":" in item:
            key, verdict = item.split(":", 1)
            out[key.strip()] = verdict.strip()
    return out


def numgen_targets(text: str, chain: str) -> tuple[int, list[str]]:
    """(N, endpoint chains) of the ``numgen random mod N vmap { 0 : goto ..., ... }`` rule of a
    service chain; (0, []) when it has none."""
    for ln in nft_block(text, "chain", chain):
        m = re.match(r"numgen random mod (\d+) vmap \{(.*)\}", ln)
        if m:
            return int(m.group(1)), [v.split("goto", 1)[1].strip() for v in m.group(2).split(",")]
    return 0, []


# ---- the measurement and the model across modes --------------------------------------------------


def kernel_runs(data: dict, mode: str) -> list[dict]:
    """The runs of one mode in a kernel scaling measurement (kslib.lab.scaling.load()), by N."""
    return sorted((r for r in data["runs"] if r["mode"] == mode), key=lambda r: r["services"])


def growth_exponent(x1: float, y1: float, x2: float, y2: float) -> float:
    """k in y ~ x^k between two points: 1 is linear, 2 quadratic."""
    return math.log(y2 / y1) / math.log(x2 / x1)


@dataclass(frozen=True)
class ScalePreview:
    """One mode at one size: the node's rules, the rules first packets visited (mean over
    connections to random Services) and the calibrated latency model's p50 and p99 (µs)."""
    mode: str
    services: int
    rules: int
    visited: float
    p50_us: float
    p99_us: float
    calibrated: bool


PREVIEW_MODES = ("iptables", "nftables")


def preview(mode: str, services: int, endpoints: int = 2, connections: int = 40, seed: int = 0) -> ScalePreview:
    """Build ``kslib.scale.cluster(services, endpoints, nodes=1, mode=mode)``, open ``connections``
    new connections to Services drawn at random (fixed seed) and predict their first-packet latency
    with ``kslib.scale.latency_model(mode)``."""
    from .. import scale
    if mode not in PREVIEW_MODES:
        raise ValueError(f"mode: unsupported value {mode!r}: supported values: " + ", ".join(PREVIEW_MODES))
    if isinstance(services, bool) or not isinstance(services, int) or services < 1:
        raise ValueError(f"services: Invalid value: {services!r}: must be a positive integer")
    c = scale.cluster(services, endpoints, nodes=1, mode=mode, seed=seed)
    ips = scale.service_ips(c)
    rng = np.random.default_rng(seed)
    visited = [c.connect("client", ips[i], 80).rules_visited for i in rng.integers(0, len(ips), connections)]
    model = scale.latency_model(mode)
    p50, p99 = model.percentiles(visited)
    node = c.nodes[0].name
    return ScalePreview(mode, services, rule_count(mode, c.render(node)), float(np.mean(visited)),
                        p50, p99, model.calibrated)
