"""The numba packet engine: identical to the plain-Python reference on random traffic, uniform
endpoint choice, batches that agree with single connections, and xt_statistic nth / xt_recent LRU
semantics on small hand-written rulesets."""
import random
import warnings
from collections import Counter

import numpy as np
import pytest

from kslib import Cluster
from kslib.dataplane import codes as C
from kslib.dataplane import engine as E
from kslib.dataplane.network import ClusterNetwork, NodeSpec, PodSpec, ip_int
from kslib.dataplane.reference import ReferenceNetwork
from kslib.dataplane.trace import ip

OUTCOMES = {C.O_DELIVERED: "delivered", C.O_REJECTED: "rejected", C.O_DROPPED: "dropped", C.O_LEFT: "left"}
CHI2_2DF_999 = 13.8155          # 0.999 quantile of the chi-square distribution with 2 degrees of freedom

# A realistic 3-node cluster: every kind of Service kube-proxy writes distinct rules for.
MANIFESTS = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, ports: [{containerPort: 8080, name: http}]}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  replicas: 2
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: c, ports: [{containerPort: 9000}, {containerPort: 5353, protocol: UDP}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client-1}
spec: {nodeName: node-1, containers: [{name: c}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client-3}
spec: {nodeName: node-3, containers: [{name: c}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web-sticky}
spec:
  selector: {app: web}
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}
  ports: [{port: 8080, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-np}
spec:
  type: NodePort
  selector: {app: web}
  externalIPs: [198.51.100.20]
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
---
apiVersion: v1
kind: Service
metadata: {name: api-lb}
spec:
  type: LoadBalancer
  selector: {app: api}
  loadBalancerSourceRanges: [203.0.113.0/25]
  ports: [{name: tcp, port: 9000, nodePort: 30900}, {name: udp, port: 5353, protocol: UDP, nodePort: 30953}]
status:
  loadBalancer: {ingress: [{ip: 198.51.100.10}]}
---
apiVersion: v1
kind: Service
metadata: {name: api-local}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: api}
  ports: [{port: 9000, nodePort: 30901}]
status:
  loadBalancer: {ingress: [{ip: 198.51.100.11}]}
---
apiVersion: v1
kind: Service
metadata: {name: api-itp}
spec:
  internalTrafficPolicy: Local
  selector: {app: api}
  ports: [{port: 9000}]
---
apiVersion: v1
kind: Service
metadata: {name: empty}
spec:
  type: NodePort
  selector: {app: nothing}
  ports: [{port: 80, nodePort: 30081}]
"""


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(nodes=3, seed=0, proxy_options={"random_fully": True})   # MASQUERADE --random-fully draws too
    c.apply(MANIFESTS)
    c.connect("client-1", "10.96.0.1", 443)          # loads c.network
    return c


# ---- helpers -------------------------------------------------------------------------------------------
def twin(nodes, pods, texts, seed, service_cidr="10.96.0.0/12"):
    """A fresh engine network and a reference network over the same facts, on the same random stream."""
    net = ClusterNetwork(seed=seed, service_cidr=service_cidr)
    net.load(nodes, pods, texts)
    ref = ReferenceNetwork(nodes, pods, {n: net._parsed[(n, "iptables")][1] for n in texts}, int(net.rng[0]),
                           service_cidr=str(net.service_cidr))
    return net, ref


def engine_flow(net, node, kind, src, dst, sport, dport, proto=6, now=0.0, commit=False, ttl=120.0, reply=False):
    """One packet through ``engine.run_flow`` (no trace): (outcome, pod key, src, dst, sport, dport, rules)."""
    net._ensure_conntrack(now)
    pk = np.zeros(C.P_LEN, np.int64)
    pk[C.P_SRC], pk[C.P_DST], pk[C.P_PROTO] = ip_int(src), ip_int(dst), proto
    pk[C.P_SPORT], pk[C.P_DPORT] = sport, dport
    tr, trn, out = np.zeros((0, 9), np.int64), np.zeros(2, np.int64), np.zeros(10, np.int64)
    E.run_flow(net._tables(), net.node_index(node), kind, pk, now, commit, ttl, reply, 0, np.empty((E.MAXDEPTH, 2), np.int64),
               tr, trn, out)
    pod = net.pods[out[2]].key if out[2] >= 0 else None
    return (OUTCOMES[int(out[0])], pod, ip(out[5]), ip(out[3]), int(out[6]), int(out[4])), int(trn[1]), \
        net.nodes[out[1]].name


def chi_square(observed, expected):
    return sum((o - e) ** 2 / e for o, e in zip(observed, expected))


# ---- (a) the engine against the reference --------------------------------------------------------------------
def agree_on_random_traffic(cluster, seed: int, packets: int) -> Counter:
    """The engine and the reference, loaded with ``cluster``'s iptables rules, carry the same ``packets``
    random packets (new connections from pods, nodes and outside to every address the cluster has,
    replies of earlier ones, time jumps that let conntrack and affinity expire) to the same fate, rule
    count and random stream. Returns what the traffic did (tests/test_properties.py uses it too)."""
    base = cluster._network()
    nodes, pods = list(base.nodes), list(base.pods)
    net, ref = twin(nodes, pods, {n: t for (n, k), (t, _) in base._parsed.items() if k == "iptables"}, seed,
                    cluster.service_cidr)
    svcs = cluster.services
    vips = [s.cluster_ip for s in svcs if s.cluster_ip and s.cluster_ip != "None"] + \
        [i.ip for s in svcs for i in s.ingress] + ["198.51.100.10", "127.0.0.1"]
    ports = sorted({p.port for s in svcs for p in s.ports} | {p.node_port for s in svcs for p in s.ports if p.node_port}
                   | {s.health_check_node_port for s in svcs if s.health_check_node_port}
                   | {8080, 9000, 5353, 10250, 6443, 1})
    externals = ["203.0.113.7", "203.0.113.200", "8.8.8.8"]
    dsts = vips * 3 + [n.ip for n in nodes] + [p.ip for p in pods] + externals
    rnd = random.Random(seed)
    now, pending, seen = 0.0, [], Counter()
    for k in range(packets):
        now += rnd.choice([0.0, 0.001, 0.5, 2.0, 31.0, 61.0, 121.0])     # lets conntrack and affinity expire
        if pending and rnd.random() < 0.25:                                # the reply of an earlier connection
            node, kind, src, dst, sport, dport, proto = pending.pop(rnd.randrange(len(pending)))
            commit, reply = True, True
        else:
            who = rnd.random()
            if who < 0.5 and pods:
                p = rnd.choice(pods)
                node, kind, src = p.node, C.FROM_POD, p.ip
            elif who < 0.75:
                n = rnd.choice(nodes)
                node, kind, src = n.name, C.LOCAL_OUT, n.ip
            else:
                node, kind, src = rnd.choice(nodes).name, C.FROM_WIRE, rnd.choice(externals)
            dst, dport, proto = rnd.choice(dsts), rnd.choice(ports), rnd.choice([6, 6, 17, 132])
            sport, commit, reply = rnd.randrange(1024, 65536), rnd.random() < 0.7, False
        ttl = 120.0 if proto == 6 else 30.0
        got, visited, at = engine_flow(net, node, kind, src, dst, sport, dport, proto, now, commit, ttl, reply)
        ref.visited = 0
        r = ref.flow(node, kind, ip_int(src), ip_int(dst), sport, dport, proto, now, commit, ttl, reply)
        want = (r["outcome"], r["pod"], ip(r["src"]), ip(r["dst"]), r["sport"], r["dport"])
        assert got == want, f"packet {k}: {src}:{sport} -> {dst}:{dport}/{proto} at {node} (kind {kind})"
        assert int(net.rng[0]) == ref.rng.state, f"packet {k}: the random streams diverged"
        assert visited == ref.visited, f"packet {k}: rules visited"
        seen[got[0]] += 1
        seen["reply"] += reply
        seen["dnat"] += got[0] == "delivered" and got[3] != dst
        seen["snat"] += got[0] == "delivered" and got[2] != src
        if commit and not reply and got[0] == "delivered":
            pending.append((at, C.FROM_POD if got[1] else C.LOCAL_OUT, got[3], got[2], got[5], got[4], proto))
    return seen


@pytest.mark.parametrize("seed", [3, 11])
def test_engine_and_reference_agree_packet_by_packet_on_random_traffic(cluster, seed):
    seen = agree_on_random_traffic(cluster, seed, 3000)
    # the traffic really exercised every path
    assert all(seen[k] >= 30 for k in ("delivered", "rejected", "dropped", "left", "reply", "dnat", "snat")), seen


def test_batch_equals_the_reference_one_flow_at_a_time(cluster):
    base = cluster.network
    nodes, pods = list(base.nodes), list(base.pods)
    net, ref = twin(nodes, pods, {n: t for (n, k), (t, _) in base._parsed.items() if k == "iptables"}, 5, cluster.service_cidr)
    client = next(p for p in pods if p.key == "default/client-3")
    web = cluster.get("svc", "web").cluster_ip
    counts = net.connect_many(net.node_index(client.node), C.FROM_POD, ip_int(client.ip), ip_int(web), 80, "TCP",
                              2000, 0.0)
    want = Counter()
    for k in range(2000):
        r = ref.flow(client.node, C.FROM_POD, ip_int(client.ip), ip_int(web), C.EPHEMERAL_LO + k, 80, 6, 0.0,
                     False, 0.0, False)
        want[r["pod"]] += 1
    assert counts == want
    assert int(net.rng[0]) == ref.rng.state


# ---- (b) uniform choice ------------------------------------------------------------------------------------------
def test_30000_connections_split_evenly_over_3_endpoints():
    c = Cluster(nodes=3, seed=2)                   # its own cluster: the random stream starts at a fixed state
    c.apply(MANIFESTS)
    counts = c.connect_many("client-1", c.get("svc", "web").cluster_ip, 80, 30_000)
    web = sorted(k for k in counts if k.startswith("default/web-"))
    assert len(web) == 3 and sum(counts[k] for k in web) == 30_000
    # Tolerance: each share within 2 percentage points of 1/3. One share's standard deviation is
    # sqrt(p(1-p)/n) = 0.27 points for n = 30,000, so 2 points is > 7 sigma: never flaky with a fixed seed
    # yet catches a biased probability (0.3 instead of 1/3 moves a share by 3 points).
    for k in web:
        assert abs(counts[k] / 30_000 - 1 / 3) < 0.02, counts
    # Pearson's chi-square against the uniform split, 2 degrees of freedom, rejected above the 0.999 quantile.
    assert chi_square([counts[k] for k in web], [10_000] * 3) < CHI2_2DF_999, counts


# ---- (c) connect_many and connect agree ------------------------------------------------------------------------------
def test_connect_many_agrees_in_distribution_with_single_connects():
    c = Cluster(nodes=3, seed=1)
    c.apply(MANIFESTS)
    vip = c.get("svc", "web").cluster_ip
    single = Counter(c.connect("client-3", vip, 80).pod for _ in range(3000))
    batch = c.connect_many("client-3", vip, 80, 30_000)
    pods = sorted(batch)
    assert sorted(single) == pods and len(pods) == 3
    # chi-square test of homogeneity on the 2 x 3 table (2 degrees of freedom), at the 0.999 level
    rows = [[single[p] for p in pods], [batch[p] for p in pods]]
    total = sum(map(sum, rows))
    stat = 0.0
    for row in rows:
        for j, o in enumerate(row):
            e = sum(row) * (rows[0][j] + rows[1][j]) / total
            stat += (o - e) ** 2 / e
    assert stat < CHI2_2DF_999, rows


def test_connect_many_to_an_affinity_service_sticks_to_one_pod(cluster):
    counts = cluster.connect_many("client-3", cluster.get("svc", "web-sticky").cluster_ip, 8080, 500)
    assert len(counts) == 1 and sum(counts.values()) == 500


def test_connect_many_counts_rejections_and_drops(cluster):
    assert cluster.connect_many("client-1", cluster.get("svc", "empty").cluster_ip, 80, 100) == \
        Counter({"rejected": 100})
    assert cluster.connect_many("client-1", cluster.get("svc", "web").cluster_ip, 81, 50) == \
        Counter({"dropped": 50})


# ---- (d) hand-written rulesets: statistic nth, recent LRU -------------------------------------------------
NODE = NodeSpec("n1", "192.168.0.2", "10.244.0.0/24")
PODS = [PodSpec("d/a", "10.244.0.11", "n1"), PodSpec("d/b", "10.244.0.12", "n1"),
        PodSpec("d/client", "10.244.0.5", "n1")]


def tiny(rules, seed=0):
    """One node, pods a and b, and ``rules`` as its nat PREROUTING (plus declared user chains)."""
    text = "*nat\n:PREROUTING ACCEPT [0:0]\n" + "\n".join(rules) + "\nCOMMIT\n"
    return twin([NODE], PODS, {"n1": text}, seed)


def choices(net, ref, n, src="10.244.0.5", kind=C.FROM_POD, now=0.0):
    """Pods chosen for ``n`` new connections to 10.96.0.50:80 from ``src``; the reference must agree."""
    out = []
    for k in range(n):
        got, _, _ = engine_flow(net, "n1", kind, src, "10.96.0.50", 40000 + k, 80, now=now)
        r = ref.flow("n1", kind, ip_int(src), ip_int("10.96.0.50"), 40000 + k, 80, 6, now, False, 0.0, False)
        assert got[1] == r["pod"]
        out.append(got[1])
    return out


NTH = ["-A PREROUTING -d 10.96.0.50/32 -p tcp -m statistic --mode nth --every 3 --packet {p} "
       "-j DNAT --to-destination 10.244.0.11:80",
       "-A PREROUTING -d 10.96.0.50/32 -p tcp -j DNAT --to-destination 10.244.0.12:80"]


@pytest.mark.parametrize("packet", [0, 1, 2])
def test_statistic_nth_matches_one_packet_in_every_three(packet):
    net, ref = tiny([NTH[0].format(p=packet), NTH[1]])
    seq = choices(net, ref, 12)
    assert seq.count("d/a") == 4
    assert all(seq[i] == seq[i + 3] for i in range(9))          # a period of exactly 3


def test_statistic_nth_packet_p_matches_the_p_th_packet_first():
    for packet in (0, 1, 2):
        net, ref = tiny([NTH[0].format(p=packet), NTH[1]])
        seq = choices(net, ref, 6)
        assert [i for i, pod in enumerate(seq) if pod == "d/a"] == [packet, packet + 3]


RECENT = ["-A PREROUTING -d 10.96.0.50/32 -p tcp -m recent --rcheck --seconds 3600 --name AFF "
          "--mask 255.255.255.255 --rsource -j DNAT --to-destination 10.244.0.11:80",
          "-A PREROUTING -d 10.96.0.50/32 -p tcp -m recent --set --name AFF --mask 255.255.255.255 --rsource "
          "-j DNAT --to-destination 10.244.0.12:80"]


def client(i):
    return f"198.51.100.{i + 1}" if i < 200 else f"198.51.101.{i - 199}"


def test_recent_remembers_a_client_it_has_set():
    net, ref = tiny(RECENT)
    assert choices(net, ref, 3, client(0), C.FROM_WIRE) == ["d/b", "d/a", "d/a"]


def test_recent_101st_client_evicts_the_least_recently_set_one():
    net, ref = tiny(RECENT)
    for i in range(100):                                          # 100 clients set, the table is full
        assert choices(net, ref, 1, client(i), C.FROM_WIRE, now=float(i)) == ["d/b"]
    assert [a for a, _ in net.recent_table("n1", "AFF", 100.0)][:2] == [client(0), client(1)]
    choices(net, ref, 1, client(100), C.FROM_WIRE, now=100.0)     # the 101st distinct client
    table = [a for a, _ in net.recent_table("n1", "AFF", 101.0)]
    assert len(table) == 100 and client(0) not in table and table[-1] == client(100)
    assert choices(net, ref, 1, client(0), C.FROM_WIRE, now=101.0) == ["d/b"]   # forgotten: set again
    assert choices(net, ref, 1, client(2), C.FROM_WIRE, now=101.0) == ["d/a"]   # still remembered


def test_recent_set_again_moves_a_client_to_the_lru_tail():
    rules = ["-A PREROUTING -d 10.96.0.50/32 -p tcp -m recent --set --name AFF -j DNAT --to-destination 10.244.0.12:80"]
    net, ref = tiny(rules)
    for i in range(100):
        choices(net, ref, 1, client(i), C.FROM_WIRE, now=float(i))
    choices(net, ref, 1, client(0), C.FROM_WIRE, now=100.0)      # set again: now the most recent
    choices(net, ref, 1, client(100), C.FROM_WIRE, now=101.0)
    table = [a for a, _ in net.recent_table("n1", "AFF", 102.0)]
    assert client(0) in table and client(1) not in table


def test_recent_rcheck_with_seconds_expires():
    net, ref = tiny(RECENT)
    assert choices(net, ref, 1, client(0), C.FROM_WIRE, now=0.0) == ["d/b"]
    assert choices(net, ref, 1, client(0), C.FROM_WIRE, now=3599.0) == ["d/a"]
    assert choices(net, ref, 1, client(0), C.FROM_WIRE, now=3601.0) == ["d/b"]


def test_goto_returns_to_the_chain_that_jumped():
    text = ("*nat\n:PREROUTING ACCEPT [0:0]\n:K-A - [0:0]\n:K-B - [0:0]\n"
            "-A PREROUTING -d 10.96.0.50/32 -p tcp -j K-A\n"
            "-A PREROUTING -d 10.96.0.50/32 -p tcp -j DNAT --to-destination 10.244.0.12:80\n"
            "-A K-A -g K-B\n-A K-A -p tcp -j DNAT --to-destination 10.244.0.11:80\n"
            "-A K-B -j RETURN\nCOMMIT\n")
    net, ref = twin([NODE], PODS, {"n1": text}, 0)
    # K-B returns to PREROUTING (the chain that jumped to K-A), not to K-A
    assert choices(net, ref, 1) == ["d/b"]


def test_a_seeded_network_raises_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ClusterNetwork(seed=7)
