"""The model against the real kernel: the packet-flow scenarios of tests/test_connect.py run through
``Cluster.connect`` and through ``KernelCluster.connect`` (the rules ``render()`` printed, loaded with
iptables-restore or nft -f into network namespaces), in iptables and nftables modes.

Each probe opens ``n`` connections both ways; model and kernel must agree on the outcomes, on the set
of pods reached, on the addresses the pods saw as source, on the endpoint address the packets
arrived at and on the address the reply came from. With several backends n is 30, so a backend
one side reaches and the other misses by chance has probability below 2e-5 (3 x (2/3)^30).
Under session affinity both sides keep to one backend, but each picks its own, so only the number of
backends is compared there.
"""
from __future__ import annotations

import pytest

from kslib import Cluster
from kslib.lab import KernelCluster

EXT = "203.0.113.9"                      # an external client (TEST-NET-3)
LB_IP = "198.51.100.10"                  # a LoadBalancer ingress IP (TEST-NET-2)


def pod(name, node, app="web", ports=(8080,), protocol="TCP", ready=True):
    plist = ", ".join(f"{{containerPort: {p}, protocol: {protocol}}}" for p in ports)
    status = "" if ready else "\nstatus: {conditions: [{type: Ready, status: 'False'}]}"
    return (f"---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: {app}}}}}\n"
            f"spec: {{nodeName: {node}, containers: [{{name: c, ports: [{plist}]}}]}}{status}\n")


def client(name="client", node="node-1", ports=()):
    return pod(name, node, app="client", ports=ports)


def service(name="web", app="web", spec="", kind="ClusterIP", ports="[{port: 80, targetPort: 8080}]", status=""):
    return (f"---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  type: {kind}\n"
            f"  selector: {{app: {app}}}\n{spec}  ports: {ports}\n{status}")


NODEPORT = "[{port: 80, targetPort: 8080, nodePort: 30080}]"
LB_STATUS = f"status:\n  loadBalancer: {{ingress: [{{ip: {LB_IP}}}]}}\n"


def delete_all_web(c):
    c.delete("pod", "web-1")
    c.delete("pod", "web-2")


# scenario -> (cluster options, manifests, setup, probes); a probe is
# (src, dst, port, protocol, via, n, compare) with dst "vip:<svc>", "pod:<name>", "node:<name>" or an IP,
# port "hc:<svc>" for a health-check NodePort, compare "set" or "sticky"
SCENARIOS = {
    "clusterip": (dict(nodes=2), client() + pod("web-1", "node-1") + pod("web-2", "node-2")
                  + pod("web-3", "node-2", ready=False) + service()
                  + pod("dns-1", "node-2", app="dns", ports=(53,), protocol="UDP")
                  + service("dns", "dns", ports="[{port: 53, protocol: UDP}]"), None, [
        ("client", "pod:web-2", 8080, "TCP", None, 3, "set"),             # pod to pod: no NAT
        ("client", "vip:web", 80, "TCP", None, 30, "set"),                # DNAT, the not-ready pod left out
        ("node-1", "vip:web", 80, "TCP", None, 30, "set"),                # masquerade: node IP or cni0
        ("node-2", "vip:web", 80, "TCP", None, 30, "set"),
        ("web-1", "vip:web", 80, "TCP", None, 30, "set"),                 # hairpin when it picks itself
        ("client", "vip:web", 81, "TCP", None, 1, "set"),                 # undefined port
        ("client", "10.96.0.200", 80, "TCP", None, 1, "set"),             # an unallocated ClusterIP
        ("client", "vip:dns", 53, "UDP", None, 3, "set"),
        ("client", "vip:dns", 53, "TCP", None, 1, "set"),                 # no TCP port 53
        (EXT, "vip:web", 80, "TCP", "node-1", 30, "set"),                 # ClusterIP from outside, via a node
        ("node-2", "vip:kubernetes", 443, "TCP", None, 3, "set"),         # the API server on a host network
    ]),
    "ports": (dict(nodes=2), client() + pod("web-1", "node-2") + pod("any-1", "node-2", app="any", ports=())
              + service(ports="[{port: 80, targetPort: 9999}]")
              + service("any", "any", ports="[{port: 80, targetPort: 9999}]"), None, [
        ("client", "vip:web", 80, "TCP", None, 2, "set"),                 # nothing listens on 9999: refused
        ("client", "vip:any", 80, "TCP", None, 2, "set"),                 # declares no ports: it listens
    ]),
    "no_endpoints": (dict(nodes=2), client() + service() + pod("nr-1", "node-2", app="nr", ready=False)
                     + service("nr", "nr", spec="  publishNotReadyAddresses: true\n"), None, [
        ("client", "vip:web", 80, "TCP", None, 2, "set"),                 # REJECT "has no endpoints"
        ("node-1", "vip:web", 80, "UDP", None, 1, "set"),
        ("client", "vip:nr", 80, "TCP", None, 3, "set"),                  # publishNotReadyAddresses
    ]),
    "terminating": (dict(nodes=2), client() + pod("web-1", "node-1") + pod("web-2", "node-2") + service(),
                    delete_all_web, [
        ("client", "vip:web", 80, "TCP", None, 30, "set"),                # serving + terminating still used
    ]),
    "ready_over_terminating": (dict(nodes=2), client() + pod("web-1", "node-1") + pod("web-2", "node-2") + service(),
                               lambda c: c.delete("pod", "web-1"), [
        ("client", "vip:web", 80, "TCP", None, 20, "set"),
    ]),
    "affinity": (dict(nodes=2, seed=4), client() + pod("web-1", "node-1") + pod("web-2", "node-2")
                 + pod("web-3", "node-2") + service(spec="  sessionAffinity: ClientIP\n"), None, [
        ("client", "vip:web", 80, "TCP", None, 20, "sticky"),             # xt_recent / the affinity set
    ]),
    "nodeport": (dict(nodes=2), client(ports=(80,)) + pod("web-1", "node-2") + service(kind="NodePort", ports=NODEPORT),
                 None, [
        (EXT, "node:node-1", 30080, "TCP", "node-1", 3, "set"),          # SNAT to the entry node, forwarded
        (EXT, "node:node-2", 30080, "TCP", None, 3, "set"),              # local pod: SNAT to the pod gateway
        ("node-1", "127.0.0.1", 30080, "TCP", None, 2, "set"),           # localhost NodePorts (iptables only)
        ("client", "127.0.0.1", 30080, "TCP", None, 1, "set"),           # a pod's localhost is its own
        ("client", "127.0.0.1", 80, "TCP", None, 1, "set"),
        ("client", "node:node-2", 30080, "TCP", None, 3, "set"),
    ]),
    "etp_local": (dict(nodes=3), client("client", "node-3") + pod("web-1", "node-1") + pod("web-2", "node-2")
                  + service(kind="LoadBalancer", spec="  externalTrafficPolicy: Local\n", ports=NODEPORT,
                            status=LB_STATUS), None, [
        (EXT, "node:node-1", 30080, "TCP", "node-1", 3, "set"),          # the client IP is kept
        (EXT, "node:node-3", 30080, "TCP", "node-3", 1, "set"),          # no local endpoint: DROP
        (EXT, LB_IP, 80, "TCP", None, 30, "set"),                         # the LB picks healthy nodes only
        ("client", LB_IP, 80, "TCP", None, 30, "set"),                    # short-circuited, not masqueraded
        ("client", "node:node-3", 30080, "TCP", None, 30, "set"),
        ("node-3", LB_IP, 80, "TCP", None, 30, "set"),                    # masqueraded, all endpoints
        (EXT, "node:node-1", "hc:web", "TCP", "node-1", 2, "set"),       # health-check NodePort on the host
        (EXT, "node:node-3", "hc:web", "TCP", "node-3", 2, "set"),
    ]),
    "itp_local_remote": (dict(nodes=2), client("client", "node-2") + pod("web-1", "node-1")
                         + service(spec="  internalTrafficPolicy: Local\n"), None, [
        ("client", "vip:web", 80, "TCP", None, 1, "set"),                 # no local endpoint: DROP
        ("node-2", "vip:web", 80, "TCP", None, 1, "set"),
    ]),
    "itp_local_local": (dict(nodes=2), client() + pod("web-1", "node-1") + pod("web-2", "node-2")
                        + service(spec="  internalTrafficPolicy: Local\n"), None, [
        ("client", "vip:web", 80, "TCP", None, 20, "set"),
        ("node-1", "vip:web", 80, "TCP", None, 3, "set"),
    ]),
    "external_ip": (dict(nodes=2), client() + pod("web-1", "node-2")
                    + service(spec="  externalIPs: [198.51.100.20]\n"), None, [
        ("client", "198.51.100.20", 80, "TCP", None, 3, "set"),
        (EXT, "198.51.100.20", 80, "TCP", "node-1", 3, "set"),
    ]),
    "source_ranges": (dict(nodes=2), client() + pod("web-1", "node-2")
                      + service(kind="LoadBalancer", spec="  loadBalancerSourceRanges: [203.0.113.0/25]\n",
                                status=LB_STATUS), None, [
        ("203.0.113.5", LB_IP, 80, "TCP", None, 3, "set"),
        ("203.0.113.200", LB_IP, 80, "TCP", None, 1, "set"),              # outside the ranges: DROP
        ("client", LB_IP, 80, "TCP", None, 1, "set"),
        ("client", "vip:web", 80, "TCP", None, 3, "set"),                 # the ClusterIP is not filtered
    ]),
    "masquerade_all": (dict(nodes=2, masquerade_all=True), client() + pod("web-1", "node-2") + pod("web-2", "node-1")
                       + service(), None, [
        ("client", "vip:web", 80, "TCP", None, 30, "set"),
    ]),
}
MODES = ["iptables", "nftables"]
CASES = [(s, i, m) for s in SCENARIOS for i in range(len(SCENARIOS[s][3])) for m in MODES]
_labs: dict = {}


@pytest.fixture(scope="module", autouse=True)
def close_labs():
    yield
    while _labs:
        _labs.popitem()[1][1].close()


def lab(scenario: str, mode: str):
    if (scenario, mode) not in _labs:
        options, docs, setup, _ = SCENARIOS[scenario]
        c = Cluster(mode=mode, **options)
        c.apply(docs)
        if setup:
            setup(c)
        _labs[(scenario, mode)] = (c, KernelCluster(c, timeout=0.5))
    return _labs[(scenario, mode)]


def address(c, dst: str) -> str:
    kind, _, name = dst.partition(":")
    if kind == "vip":
        return c.get("svc", name).cluster_ip
    if kind == "pod":
        return c.pod(name).pod_ip
    if kind == "node":
        return c.get("node", name).internal_ip
    return dst


def seen(conns, sticky: bool) -> dict:
    pods = {x.pod for x in conns}
    return {"outcome": {x.outcome for x in conns},
            "pods": len(pods) if sticky else pods,
            "endpoint": len({x.endpoint for x in conns}) if sticky else {x.endpoint for x in conns},
            "source_ip": {x.source_ip for x in conns},
            "reply_source": {x.reply_source for x in conns}}


@pytest.mark.parametrize("scenario, probe, mode", CASES, ids=[f"{s}-{i}-{m}" for s, i, m in CASES])
def test_model_and_kernel_agree(scenario, probe, mode):
    c, k = lab(scenario, mode)
    src, dst, port, protocol, via, n, compare = SCENARIOS[scenario][3][probe]
    dst = address(c, dst)
    if isinstance(port, str):
        port = c.get("svc", port.split(":")[1]).health_check_node_port
    model = [c.connect(src, dst, port, protocol, via=via) for _ in range(n)]
    kernel = [k.connect(src, dst, port, protocol, via=via) for _ in range(n)]
    assert seen(kernel, compare == "sticky") == seen(model, compare == "sticky"), \
        f"{src} -> {dst}:{port}/{protocol}: kernel {kernel[0].reason!r}; model {model[0].reason!r}"
