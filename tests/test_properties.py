"""The model's promises, checked on generated clusters (tests/strategies.py) in every mode.

The expectation for each connection is computed here from the drawn pods and Services alone, never
from the model's EndpointSlices, with kube-proxy's rules:
  - EndpointSlice conditions (pkg/controller/endpointslice, podToEndpoint): serving = the pod is
    Ready, or publishNotReadyAddresses; terminating = it has a deletionTimestamp; ready = serving and
    not terminating, or publishNotReadyAddresses. A named targetPort needs a container port of that
    name and the Service port's protocol (podutil.FindPort); a numbered one is taken as is.
  - kube-proxy's choice (pkg/proxy/topology.go, CategorizeEndpoints): cluster endpoints are the
    ready ones, or the serving-terminating ones when none is ready; local endpoints the same on the
    client's node; a Service port with neither is rejected ("has no endpoints"), one with endpoints
    but no local ones under a Local policy is dropped ("has no local endpoints").
Where the four dataplanes differ, the expectation is tests/test_modes.py's DIFFERENCES entry.

Run with ``--hypothesis-profile ci`` (make test: 300 worlds per test and mode) or ``nightly`` (5,000);
see tests/conftest.py. A failure found once stays below as an explicit ``@example``.
"""
from __future__ import annotations

import ipaddress
import json
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import event, example, given, settings, strategies as st

from kslib.dataplane import nft, rules
from kslib.dns import SRV
from kslib.dns.names import dashed

from strategies import CLIENTS, PodDraw, PortDraw, ServiceDraw, World, pinned, worlds
from test_engine import agree_on_random_traffic
from test_modes import DIFFERENCES, MODES

all_modes = pytest.mark.parametrize("mode", MODES)
ARTIFACTS = Path(__file__).parent / "artifacts" / "properties"
RAN: Counter = Counter()            # test id -> generated examples run (explicit @examples included)
CURRENT = [""]                      # the running test's id


@pytest.fixture(autouse=True)
def count_examples(request):
    """Counts every world a test runs and, once the test is over, writes the counts to
    tests/artifacts/properties/<worker>.json (the closing notes quote them) and checks that the
    profile's number of examples really ran (Hypothesis stops early when generation keeps failing)."""
    RAN[request.node.nodeid] = 0
    CURRENT[0] = request.node.nodeid
    yield
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**old, request.node.nodeid: {"examples": RAN[request.node.nodeid],
                                                            "profile": settings._current_profile}}, indent=1))
    assert getattr(request.node, "call_failed", True) or RAN[request.node.nodeid] >= settings().max_examples, \
        f"only {RAN[request.node.nodeid]} examples ran (profile asks {settings().max_examples})"


def tick() -> None:
    """One more world for the running test."""
    RAN[CURRENT[0]] += 1


UNUSED_PORT = 1                     # no generated Service uses it
REFUSED = re.compile(r"nothing listens on ([\d.]+):(\d+) in (\S+): connection refused")


# ---- the expectation, from the drawn objects ---------------------------------------------------------------
@dataclass(frozen=True)
class Ep:
    pod: str                        # "default/p3"
    node: int
    port: int
    ready: bool
    serving: bool
    terminating: bool


def target_number(pod, port) -> int | None:
    if isinstance(port.target, int):
        return port.target
    for name, proto, number in pod.ports or ():
        if name == port.target and proto == port.protocol:
            return number
    return None


def selects(svc, pod) -> bool:
    """A Service's selector matches the pod (a Service without a selector matches none)."""
    return bool(svc.selector) and all(dict(pod.labels).get(k) == v for k, v in svc.selector)


def endpoints(world: World, svc, port) -> list[Ep]:
    out = []
    for p in world.pods:
        number = target_number(p, port)
        if number is None or not selects(svc, p):
            continue
        serving = p.ready or svc.publish_not_ready
        out.append(Ep(f"default/{p.name}", p.node, number, svc.publish_not_ready or (serving and not p.terminating),
                      serving, p.terminating))
    return out


def usable(eps: list[Ep]) -> list[Ep]:
    """Ready endpoints, or the serving-terminating ones when none is ready."""
    return [e for e in eps if e.ready] or [e for e in eps if e.serving and e.terminating]


@dataclass
class Expect:
    outcome: str                    # "delivered", "rejected", "dropped"
    allowed: list[Ep]               # the endpoints a delivered connection may land on
    scenario: str = ""              # a DIFFERENCES key when the modes differ here


def expect_internal(svc_eps: list[Ep], svc, node: int) -> Expect:
    """A ClusterIP connection from ``node`` (a pod's or the host's): iTP decides, and without a local
    endpoint IPVS's fallback depends on whether the Service is reachable from outside at all
    (serviceport.go UsesClusterEndpoints)."""
    want = expect(svc_eps, svc.itp, node)
    if want.scenario == "no_local_endpoint":
        want.scenario = "itp_local_no_local_endpoint" + ("" if svc.type == "ClusterIP" else "_external")
    return want


def expect(svc_eps: list[Ep], policy: str, node: int) -> Expect:
    cluster = usable(svc_eps)
    if not cluster:
        return Expect("rejected", [], "no_endpoints")
    if policy == "Cluster":
        return Expect("delivered", cluster)
    local = usable([e for e in svc_eps if e.node == node])
    return Expect("delivered", local) if local else Expect("dropped", cluster, "no_local_endpoint")


# ---- probing a built cluster -----------------------------------------------------------------------------
def listens(world: World, pod: str, protocol: str, number: int) -> bool:
    p = next(p for p in world.pods if f"default/{p.name}" == pod)
    return p.ports is None or any((proto, num) == (protocol, number) for _, proto, num in p.ports)


class Probe:
    """One world built in one mode, with the addresses every probe needs."""

    def __init__(self, world: World, mode: str, strict: bool = True):
        self.world, self.mode, self.strict = world, mode, strict
        self.c = world.build(mode)
        self.seen: dict = {}                # (src, dst, port, protocol, via) -> (scenario, what happened)
        self.node_ip = {n.name: n.internal_ip for n in self.c.nodes}
        self.cni0 = {n.name: str(ipaddress.ip_network(n.pod_cidr)[1]) for n in self.c.nodes}

    def check(self, src, node: int, dst: str, port: int, protocol: str, want: Expect, *, source: str,
              reply: str, via: str | None = None, pod_ip: str | None = None):
        """Connect and hold the result to ``want``. ``source``: "client" (the client's own address kept),
        "masquerade" (the address of the entry node's interface toward the pod: its bridge for a pod on
        it, else the node's address) or "snat" (eTP=Cluster from outside: as the mode does it)."""
        c, mode = self.c, self.mode
        conn = c.connect(src, dst, port, protocol=protocol, via=via)
        where = f"{mode}: {src} -> {dst}:{port}/{protocol}{' via ' + via if via else ''}: {conn!r}"
        event(f"{mode} {conn.outcome}")
        refused = REFUSED.fullmatch(conn.reason)
        if not self.strict:                 # recording only: a pod's own refusal still reached a backend
            reached = conn.outcome == "delivered" or (conn.outcome == "rejected" and refused is not None)
            self.seen[(src, dst, port, protocol, via)] = (want.scenario, "backend" if reached else conn.outcome)
            return conn
        outcome, allowed = want.outcome, want.allowed
        if want.scenario in DIFFERENCES:
            outcome = DIFFERENCES[want.scenario][0][mode]
            if outcome == "fallback":               # IPVS PR 97081: the cluster endpoints
                outcome = "delivered"
                if want.scenario.startswith("etp"):     # unmasqueraded: the reply leaves from the pod
                    source, reply = "client", "endpoint"
        if conn.outcome == "rejected" and outcome == "delivered" and refused:
            # the chosen endpoint's pod does not listen on the target port: it refuses the connection
            ip, number, pod = refused.groups()
            ep = next((e for e in allowed if (e.pod, e.port) == (pod, int(number))), None)
            assert ep is not None and c.pod(pod.split("/")[1]).pod_ip == ip, \
                f"{where}: refused by {pod} at {ip}:{number}, not an allowed endpoint"
            assert not listens(self.world, ep.pod, protocol, ep.port), f"{where}: refused by a listening pod"
            return conn
        assert conn.outcome == outcome, f"{where}: expected {outcome} ({want.scenario or 'policy'})"
        if outcome != "delivered":
            assert conn.pod is None, where
            return conn
        ep_ip, ep_port = conn.endpoint.rsplit(":", 1)
        match = [e for e in allowed if e.pod == conn.pod and e.port == int(ep_port)]
        assert match, f"{where}: landed on {conn.pod}:{ep_port}, allowed {[(e.pod, e.port) for e in allowed]}"
        assert c.pod(conn.pod.split("/")[1]).pod_ip == ep_ip, where
        entry = c.nodes[node].name
        if source == "snat":                        # eTP=Cluster from outside: the mode decides
            local = c.pod(conn.pod.split("/")[1]).node_name == entry
            kept = DIFFERENCES["nodeport_snat_local_backend" if local else "nodeport_snat"][0][mode] == "client"
            source = "client" if kept else "masquerade"
        if source == "client" and conn.pod == f"default/{src}":   # a pod reaching itself: hairpin
            hairpin = DIFFERENCES["hairpin_source"][0][mode]
            assert conn.source_ip == (self.cni0[entry] if hairpin == "cni0" else pod_ip), f"{where}: hairpin"
        elif source == "client":
            assert conn.source_ip == pod_ip or conn.source_ip == src, f"{where}: source {conn.source_ip}"
        elif source == "masquerade":                # MASQUERADE takes the outgoing interface's address
            out = self.cni0[entry] if c.pod(conn.pod.split("/")[1]).node_name == entry else self.node_ip[entry]
            assert conn.source_ip == out, f"{where}: source {conn.source_ip}, expected {out}"
        want_reply = ep_ip if reply == "endpoint" else reply
        assert conn.reply_source == want_reply, f"{where}: reply from {conn.reply_source}, expected {want_reply}"
        return conn


def probe_all(pr: Probe) -> None:
    """Every Service port from a client pod and the host of every node, from one of its own pods
    (hairpin), a second time where ClientIP affinity must keep the pod; NodePort and LoadBalancer IP
    from outside through every node (both clients, for the source ranges); an undefined port."""
    world, c = pr.world, pr.c
    for s in world.services:
        if s.type in ("Headless", "ExternalName"):
            continue
        svc = c.get("svc", s.name)
        own = [p for p in world.pods if selects(s, p)]
        for i, port in enumerate(s.ports):
            eps = endpoints(world, s, port)
            probe = (svc.cluster_ip, port.port, port.protocol)
            for n, node in enumerate(world.node_names):
                want = expect_internal(eps, s, n)
                client = f"client-{n + 1}"
                first = pr.check(client, n, *probe, want, source="client", reply=svc.cluster_ip,
                                 pod_ip=c.pod(client).pod_ip)
                if s.affinity and pr.strict and first.outcome == "delivered":
                    again = pr.check(client, n, *probe, want, source="client", reply=svc.cluster_ip,
                                     pod_ip=c.pod(client).pod_ip)
                    assert again.pod == first.pod, f"{pr.mode}: ClientIP affinity lost: {first!r} then {again!r}"
                pr.check(node, n, *probe, want, source="masquerade", reply=svc.cluster_ip)
                if s.type == "ClusterIP":
                    continue
                ext = expect(eps, s.etp, n)
                if ext.scenario == "no_local_endpoint":
                    ext.scenario = "etp_local_no_local_endpoint"
                source = "client" if s.etp == "Local" else "snat"
                pr.check(CLIENTS[0], n, pr.node_ip[node], svc.ports[i].node_port, port.protocol, ext,
                         source=source, reply=pr.node_ip[node], via=node)
                for ingress in svc.ingress:
                    for client_ip in CLIENTS:
                        allowed = not s.source_ranges or any(
                            ipaddress.ip_address(client_ip) in ipaddress.ip_network(r) for r in s.source_ranges)
                        lb = (ext if allowed else Expect("dropped", []) if usable(eps) else
                              Expect("?", [], "lb_source_ranges_without_endpoints"))
                        pr.check(client_ip, n, ingress.ip, port.port, port.protocol, lb, source=source,
                                 reply=ingress.ip, via=node)
            for p in own[:1]:
                want = expect_internal(eps, s, p.node)
                pr.check(p.name, p.node, *probe, want, source="client", reply=svc.cluster_ip,
                         pod_ip=c.pod(p.name).pod_ip)
        if UNUSED_PORT not in {p.port for p in s.ports}:
            pr.check("client-1", 0, svc.cluster_ip, UNUSED_PORT, "TCP", Expect("?", [], "undefined_port"),
                     source="client", reply=svc.cluster_ip)


# ---- regression examples: each once found a wrong model or a wrong expectation ------------------------------------
def _svc(kind="ClusterIP", target=8080, **kw):
    return ServiceDraw("s0", kind, (("app", "a"),), (PortDraw("", "TCP", 80, target),), **kw)


def _pod(name="p0", node=0, **kw):
    return PodDraw(name, node, (("app", "a"),), None, **kw)


# an LB with source ranges and no endpoints: iptables rejects every client (no firewall chain without
# endpoints), the others drop the outsider; Cilium answered "drop" for an allowed client (now ICMP)
NO_ENDPOINTS_SOURCE_RANGES = World(1, 1, (), (ServiceDraw("s0", "LoadBalancer", (), (PortDraw("", "TCP", 80, 8080),),
                                                          source_ranges=("203.0.113.0/28",)),))
# iTP=Local on a NodePort Service: IPVS falls back to the cluster endpoints (UsesClusterEndpoints)
ITP_LOCAL_NODEPORT = World(2, 1, (_pod(ready=False, terminating=True),),
                           (_svc("NodePort", itp="Local", etp="Local", publish_not_ready=True),))
# eTP=Cluster with the backend on the entry node: Cilium keeps the client's address
NODEPORT_LOCAL_BACKEND = World(1, 1, (_pod(ready=False, terminating=True),), (_svc("NodePort", publish_not_ready=True),))
# a host socket's ephemeral port clashed with a NodePort connection masqueraded to the same node address:
# the reply was lost (the kernel moves the new connection's port, nf_nat_core.c get_unique_tuple)
_SCTP = (("http", "TCP", 8080), ("dns", "UDP", 5353), ("dns-tcp", "TCP", 5353), ("sctp", "SCTP", 9000))
PORT_CLASH = World(2, 1, (PodDraw("p0", 0, (("app", "a"),), _SCTP, ready=False, terminating=True),),
                   tuple(ServiceDraw(n, k, (("app", "a"),), (PortDraw("", "SCTP", 80, "sctp"),), publish_not_ready=True)
                         for n, k in (("s0", "NodePort"), ("s1", "ClusterIP"))))
# a pod applied with status.podIP and no Ready condition never became Ready
PINNED_POD = World(1, 1, (_pod(terminating=True),), (_svc(),))


# ---- the properties ---------------------------------------------------------------------------------------------
@all_modes
@given(world=worlds())
@example(world=NO_ENDPOINTS_SOURCE_RANGES)
@example(world=ITP_LOCAL_NODEPORT)
@example(world=NODEPORT_LOCAL_BACKEND)
@example(world=PORT_CLASH)
def test_every_connection_lands_on_a_backend_of_its_service_port_or_is_refused_as_the_policy_says(mode, world):
    """The outcome, the endpoint (never another Service's pod, never a wrong port), the source the pod
    saw (SNAT only where the mode and policy say) and the reply's source (the address the client used)."""
    tick()
    probe_all(Probe(world, mode))


@given(world=worlds())
@example(world=NO_ENDPOINTS_SOURCE_RANGES)
@example(world=ITP_LOCAL_NODEPORT)
def test_the_four_modes_agree_except_where_the_real_dataplanes_differ(world):
    """The same probes in every mode reach a backend, are rejected or are dropped alike, except in the
    documented differences (tests/test_modes.py DIFFERENCES), where each mode does what its entry says."""
    tick()
    seen = {}
    for mode in MODES:
        pr = Probe(world, mode, strict=False)
        probe_all(pr)
        seen[mode] = pr.seen
    for key, (scenario, _) in seen["iptables"].items():
        got = {mode: seen[mode][key][1] for mode in MODES}
        if scenario in DIFFERENCES:
            want = {m: {"delivered": "backend", "fallback": "backend"}.get(v, v)
                    for m, v in DIFFERENCES[scenario][0].items() if m in MODES}
            assert got == want, f"{key}: {scenario}: {got}, documented {want}"
        else:
            assert len(set(got.values())) == 1, f"{key}: the modes disagree: {got}"


@given(world=worlds(), seed=st.integers(0, 2**32 - 1))
def test_the_numba_engine_and_the_python_reference_decide_alike(world, seed):
    """Random traffic through a generated cluster's iptables rules: the compiled engine and the plain
    Python reference (iptables only) reach the same fate, rule count and random stream per packet."""
    tick()
    c = world.build("iptables")
    seen = agree_on_random_traffic(c, seed, 150)
    for k in ("delivered", "rejected", "dropped"):
        event(f"engine: some {k}" if seen[k] else f"engine: no {k}")


# ---- DNS answers follow the Services and their ready endpoints ----------------------------------------------------
def dns_ready(world: World, svc) -> list:
    """The pods a Service's EndpointSlices list with ready=true, the only ones CoreDNS serves
    (object/endpoint.go skips the rest): Ready and not terminating, or all with publishNotReadyAddresses.
    A pod is listed even when none of the Service's ports resolves on it (reconciler.go getEndpointPorts
    skips the port, not the pod)."""
    return [p for p in world.pods if selects(svc, p) and (svc.publish_not_ready or (p.ready and not p.terminating))]


@given(world=worlds())
def test_cluster_dns_answers_from_the_services_and_their_ready_endpoints(world):
    """CoreDNS's kubernetes plugin (DNS is the same in every proxy mode, so one mode is built): a Service
    with a VIP answers it, a headless one every ready endpoint (NXDOMAIN with none), an ExternalName a
    CNAME and no SRV; ``_port._proto`` SRV names the VIP's port, or each ready endpoint's target port
    with equal weights; an endpoint's dashed-IP name its address; PTR of a VIP names the Service and of
    a pod every Service that lists it ready. A client pod's getaddrinfo, through its search list, gets
    the same addresses as the fully qualified query."""
    tick()
    c = world.build("iptables")
    ptr = defaultdict(set)
    for s in world.services:
        fqdn = f"{s.name}.default.svc.cluster.local."
        if s.type == "ExternalName":
            assert c.dns.query(fqdn, "CNAME").data == ["db.example.com."]
            assert c.dns.query(fqdn, "SRV").status == "NODATA"
            continue
        ready = dns_ready(world, s)
        ips = {p.name: c.pod(p.name).pod_ip for p in ready}
        a = c.dns.query(fqdn, "A")
        if s.type == "Headless":
            assert (a.rcode, sorted(a.data)) == (("NOERROR", sorted(ips.values())) if ips else ("NXDOMAIN", [])), a
        else:
            vip = c.get("svc", s.name).cluster_ip
            assert (a.rcode, a.data) == ("NOERROR", [vip]), a
            assert c.dns.query(ipaddress.ip_address(vip).reverse_pointer, "PTR").data == [fqdn]
        assert sorted(c.resolve(s.name, "client-1").addresses) == sorted(a.data)
        for ip in ips.values():
            assert c.dns.query(f"{dashed(ip)}.{fqdn}").data == [ip]
            ptr[ip].add(f"{dashed(ip)}.{fqdn}")
        for port in (p for p in s.ports if p.name):
            got = c.dns.query(f"_{port.name}._{port.protocol.lower()}.{fqdn}", "SRV")
            if s.type != "Headless":
                want = [SRV(0, 100, port.port, fqdn)]
            else:
                found = [(target_number(p, port), f"{dashed(ips[p.name])}.{fqdn}") for p in ready
                         if target_number(p, port) is not None]
                want = sorted(SRV(0, max(1, 100 // len(found)), n, t) for n, t in found)
            assert (got.rcode, sorted(r.srv for r in got.answer)) == ("NOERROR" if want else "NXDOMAIN", want), got
    for ip, names in ptr.items():
        assert set(c.dns.query(ipaddress.ip_address(ip).reverse_pointer, "PTR").data) == names, ip
    event(f"dns: {sum(map(len, ptr.values()))} endpoint names")


# ---- render() parses back into the tables the engine runs -------------------------------------------------------
IPVSADM_SERVICE = re.compile(r"(TCP|UDP|SCTP)\s+(\S+):(\d+) (\S+).*")
IPVSADM_DEST = re.compile(r"\s+-> (\S+):(\d+)\s+(\w+)\s+(\d+)\s+\d+\s+\d+\s*")
BPF_LB_LINE = re.compile(r"(\S+) \((\d+)\)\s+(\S+) \((\d+)\) \((\d+)\)(?: \[(.*)\])?")


def rules_meaning(text: str) -> dict:
    """{(table, chain): [what each rule does]} in file order (rules.meaning: spelling left out)."""
    return {(t, name): [rules.meaning(r) for r in chain.rules]
            for t, table in rules.parse(text).tables.items() for name, chain in table.items()}


def nft_meaning(text: str) -> tuple:
    rs = nft.parse(text)
    return ({name: [rules.meaning(r) for r in chain.rules] for name, chain in rs.chains.items()}, rs.base,
            {name: (st.key, st.is_map, st.flags, st.timeout, st.interval, sorted(st.elements, key=repr))
             for name, st in rs.sets.items()})


def ipvs_tables(text: str) -> tuple[dict, dict, str]:
    """IPVS mode's render() read back: ``ipvsadm -Ln`` as {(address, protocol, port): (scheduler,
    [(ip, port, forward, weight)])}, ``ipset list`` as {set: (type, sorted members)}, and the
    iptables-save text that follows them."""
    lines = text.splitlines()
    first_set = next(i for i, line in enumerate(lines) if line.startswith("Name: "))
    first_table = next(i for i, line in enumerate(lines) if line.startswith("*"))
    services, cur = {}, None
    for line in lines[:first_set]:
        if m := IPVSADM_SERVICE.fullmatch(line):
            cur = services[(m[2], m[1], int(m[3]))] = (m[4], [])
        elif (d := IPVSADM_DEST.fullmatch(line)) and cur is not None:
            cur[1].append((d[1], int(d[2]), d[3], int(d[4])))
    services = {k: (sched, sorted(dests)) for k, (sched, dests) in services.items()}
    sets, name, members = {}, None, False
    for line in lines[first_set:first_table]:
        if line.startswith("Name: "):
            name, members = line[6:], False
            sets[name] = ("", [])
        elif line.startswith("Type: "):
            sets[name] = (line[6:], [])
        elif line == "Members:":
            members = True
        elif members and line:
            sets[name][1].append(line)
        elif not line:
            members = False
    return services, {k: (t, sorted(m)) for k, (t, m) in sets.items()}, "\n".join(lines[first_table:]) + "\n"


def bpf_lb_tables(text: str) -> dict:
    """eBPF mode's render() (``cilium-dbg bpf lb list``) read back: {frontend: (rev-NAT id, flags,
    [backend address per slot])}."""
    out = {}
    for line in text.splitlines():
        if m := BPF_LB_LINE.fullmatch(line.strip()):
            entry = out.setdefault(m[1], [int(m[4]), "", []])
            if int(m[2]) == 0:
                entry[1] = m[6] or ""
            else:
                entry[2].append(m[3])
    return {k: tuple(v) for k, v in out.items()}


@all_modes
@given(world=worlds())
def test_render_parses_back_into_the_tables_the_engine_runs(mode, world):
    tick()
    c = world.build(mode)
    for node in world.node_names:
        text, plane = c.render(node), c.proxiers[node].dataplane()
        if mode == "iptables":
            assert rules_meaning(text) == rules_meaning(plane.iptables)
        elif mode == "nftables":
            assert nft_meaning(text) == nft_meaning(plane.nft)
        elif mode == "ipvs":
            services, sets, iptables = ipvs_tables(text)
            # ipvsadm sorts the real servers it prints (ipvs_sort_dests), so their list order is not shown
            assert services == {vs.key: (vs.scheduler, sorted((d.address, d.port, d.forward, d.weight)
                                                              for d in vs.destinations)) for vs in plane.ipvs}
            assert sets == {k: (t, sorted(v)) for k, (t, v) in plane.ipsets.items()}
            assert rules_meaning(iptables) == rules_meaning(plane.iptables)
        else:
            assert bpf_lb_tables(text) == {
                f.key: (f.rev_nat_id, ", ".join(f.flags),
                        [plane.backends[b].addr for b in f.backends + f.inactive]) for f in plane.frontends}


# ---- the same manifests, in any order or twice, give the same rules -------------------------------------------------
def canonical(mode: str, text: str):
    """A node's dataplane up to kube-proxy's own ordering: iptables and nftables as each chain's rules
    (set elements) in any order; IPVS as printed (ipvsadm and ipset sort); eBPF as frontend ->
    (flags, backends) without the IDs, which Cilium allocates in reconcile order."""
    if mode == "iptables":
        return {k: sorted(map(repr, v)) for k, v in rules_meaning(text).items()}
    if mode == "nftables":
        chains, base, sets = nft_meaning(text)
        return {k: sorted(map(repr, v)) for k, v in chains.items()}, base, sets
    if mode == "ipvs":
        return text
    return {k: (flags, sorted(backends)) for k, (_, flags, backends) in bpf_lb_tables(text).items()}


@all_modes
@given(world=worlds(), order=st.data())
@example(world=PINNED_POD, order=None)
def test_the_same_manifests_in_any_order_or_twice_give_the_same_rules(mode, world, order):
    tick()
    first = world.build(mode)
    docs = pinned(world, first)
    order = order.draw(st.permutations(range(len(docs))), label="apply order") if order else range(len(docs))
    again = world.build(mode, [docs[i] for i in order])
    before = {node: again.render(node) for node in world.node_names}
    for node in world.node_names:
        assert canonical(mode, before[node]) == canonical(mode, first.render(node)), node
    again.apply(docs)                       # kubectl apply of unchanged manifests changes nothing
    for node in world.node_names:
        assert again.render(node) == before[node], node
