"""Traffic from outside: client populations, what each pod sees as the client address, the NAT
affinity hotspot, long-lived connections across advance(), and the scheduler's spreading."""
from collections import Counter

import pytest

import kslib

MODES = ("iptables", "nftables", "ipvs", "ebpf")


def web(replicas=3, policy="Cluster", affinity=False, spec_extra=""):
    aff = "sessionAffinity: ClientIP" if affinity else ""
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: c, image: nginx, ports: [{{containerPort: 8080}}]}}]
{spec_extra}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  type: NodePort
  externalTrafficPolicy: {policy}
  {aff}
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
"""


def cluster(mode="iptables", nodes=3, **kw):
    c = kslib.Cluster(mode=mode, nodes=nodes)
    c.apply(web(**kw))
    return c


def node_port(c):
    return c.get("Service", "web").ports[0].node_port


# ---- populations --------------------------------------------------------------------------------------
def test_clients_are_distinct_benchmark_addresses_and_share_connections_round_robin():
    pop = kslib.clients(300)
    assert len(pop) == 300 and len(set(pop.addresses)) == 300
    assert pop.addresses[0] == "198.18.0.1" and pop.addresses[299] == "198.18.1.44"
    shares = pop.shares(1000)
    assert sum(shares.values()) == 1000 and set(shares.values()) == {3, 4}
    assert sum(1 for v in shares.values() if v == 4) == 100


def test_clients_behind_nat_share_one_public_address():
    pop = kslib.clients(1000, behind_nat=True)
    assert set(pop.addresses) == {"198.51.100.7"} and pop.shares(5000) == Counter({"198.51.100.7": 5000})


@pytest.mark.parametrize("kwargs, message", [
    (dict(n=0), "n: Invalid value: 0: must be a positive integer"),
    (dict(n=300, subnet="10.0.0.0/24"), "subnet 10.0.0.0/24 holds only 254 client addresses"),
    (dict(n=3, subnet="not-a-cidr"), "subnet: 'not-a-cidr' is not an IPv4 CIDR"),
    (dict(n=3, behind_nat=True, nat_address="x"), "nat_address: 'x' is not an IPv4 address"),
])
def test_clients_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        kslib.clients(**kwargs)


# ---- what the pod sees ----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_local_policy_preserves_every_client_address(mode):
    c = cluster(mode, policy="Local")
    t = c.connect_many(kslib.clients(200), c.nodes[0].internal_ip, node_port(c), 2000)
    assert sum(t.values()) == 2000 and t.client_ip_preserved() == 1.0
    assert set(t.by_node()) == {"node-1"}            # Local: only the entry node's own pod
    assert {row["source_ip"] for row in t.rows()} == set(kslib.clients(200).addresses)


@pytest.mark.parametrize("mode", MODES)
def test_cluster_policy_replaces_the_client_address(mode):
    """kube-proxy masquerades external traffic under Cluster: the pod sees the node (a remote pod)
    or the node's bridge address (a local pod). Cilium SNATs only what it forwards to another node:
    a backend on the entry node sees the client (bpf_host nodeport_lb4: SNAT is for the
    remote-backend case)."""
    c = cluster(mode, policy="Cluster")
    entry = c.nodes[0]
    t = c.connect_many(kslib.clients(200), entry.internal_ip, node_port(c), 3000)
    assert sum(t.values()) == 3000
    pods = {p.key: p for p in c.pods}
    for (pod, seen), n in t.sources().items():
        local = pods[pod].node_name == entry.name
        if mode == "ebpf":
            assert (seen == entry.internal_ip) == (not local)
        else:
            assert seen == ("10.244.0.1" if local else entry.internal_ip)
    local_share = sum(n for f in t.flows if f.pod and pods[f.pod].node_name == entry.name
                      for n in [f.connections]) / 3000
    assert t.client_ip_preserved() == (pytest.approx(local_share) if mode == "ebpf" else 0.0)


# ---- the affinity hotspot -----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_one_nat_address_with_client_ip_affinity_lands_on_one_pod(mode):
    c = cluster(mode, policy="Local", nodes=1, affinity=True)
    port, node = node_port(c), c.nodes[0].internal_ip
    office = c.connect_many(kslib.clients(1000, behind_nat=True), node, port, 1000)
    assert len(office) == 1 and sum(office.values()) == 1000
    spread = c.connect_many(kslib.clients(1000), node, port, 1000)
    assert len(spread) == 3 and min(spread.values()) > 200     # 1000 addresses: each pod gets about a third


# ---- long-lived connections ---------------------------------------------------------------------------------
def open_streams(c, n, clients=300):
    return c.connect_many(kslib.clients(clients), c.nodes[0].internal_ip, node_port(c), n, hold=True)


def test_least_connection_fills_a_new_pod_random_does_not():
    """300 streams on 3 pods, then a 4th pod and 300 more. IPVS lc sends new streams to the pod with
    the fewest active ones, so the four end level; iptables' random choice gives the new pod a
    quarter of the new streams (binomial: 75 +- 7.5), leaving it far behind."""
    counts = {}
    for mode, options in (("ipvs", {"scheduler": "lc"}), ("iptables", {})):
        c = cluster(mode, nodes=1, policy="Local")
        if options:
            c.set_mode(mode, **options)
        open_streams(c, 300)
        c.scale("Deployment", "web", 4)
        open_streams(c, 300)
        counts[mode] = c.open_connections()
        assert sum(counts[mode].values()) == 600
    lc = sorted(counts["ipvs"].values())
    assert lc == [150, 150, 150, 150]
    rnd = counts["iptables"]
    newest = min(rnd, key=rnd.get)
    assert 45 <= rnd[newest] <= 105 and all(v > 140 for k, v in rnd.items() if k != newest)


def test_held_streams_stay_open_across_advance_and_close_moves_ipvs_counts():
    c = cluster("ipvs", nodes=1, policy="Local")
    c.set_mode("ipvs", scheduler="lc")
    streams = open_streams(c, 90, clients=30)
    c.advance(3600)
    assert c.open_connections() == Counter(dict(streams))
    assert "ActiveConn" in c.render("node-1")
    active = [line for line in c.render("node-1").splitlines() if line.strip().startswith("-> 10.244.")]
    assert sum(int(line.split()[4]) for line in active) >= 90     # Masq weight ActiveConn InActConn
    streams.close()
    assert c.open_connections() == Counter()
    with pytest.raises(ValueError, match="was not opened with hold=True"):
        c.connect_many("198.51.100.9", c.nodes[0].internal_ip, node_port(c), 5).close()


def test_streams_to_a_deleted_pod_are_reset():
    c = cluster("iptables", nodes=1, policy="Local")
    open_streams(c, 60)
    gone = sorted(c.open_connections())[0]
    c.delete("Pod", gone.split("/")[1])
    c.advance(60)
    assert gone not in c.open_connections()


# ---- spreading: the fix for uneven Local load ----------------------------------------------------------------
def per_pod_share(c, n=6000):
    """Equal traffic into every node's NodePort (what a load balancer's even spread does)."""
    total = Counter()
    for node in c.nodes:
        total.update(c.connect_many(kslib.clients(100), node.internal_ip, node_port(c), n // len(c.nodes)))
    return {k: v / n for k, v in total.items() if "/" in k}


def test_local_load_is_uneven_when_a_node_holds_two_pods_and_anti_affinity_fixes_it():
    c = cluster("iptables", replicas=4, policy="Local")
    placed = Counter(p.node_name for p in c.pods if p.metadata.labels.get("app") == "web")
    assert sorted(placed.values()) == [1, 1, 2]
    share = per_pod_share(c)
    assert max(share.values()) == pytest.approx(1 / 3, abs=0.03)   # alone on its node
    assert min(share.values()) == pytest.approx(1 / 6, abs=0.03)   # sharing a node
    anti = """      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: web}}
            topologyKey: kubernetes.io/hostname"""
    c2 = cluster("iptables", replicas=4, policy="Local", spec_extra=anti)
    pods = [p for p in c2.pods if p.metadata.labels.get("app") == "web"]
    assert sorted(p.phase for p in pods) == ["Pending", "Running", "Running", "Running"]
    assert all(v == pytest.approx(1 / 3, abs=0.03) for v in per_pod_share(c2).values())


def zoned(spec_extra, replicas):
    c = kslib.Cluster(nodes=4, zones=["a", "a", "a", "b"])
    c.apply(web(replicas=replicas, spec_extra=spec_extra))
    return Counter(c.get("Node", p.node_name).zone for p in c.pods if p.metadata.labels.get("app") == "web"
                   and p.node_name), c


def test_topology_spread_do_not_schedule_keeps_zones_within_max_skew():
    spread = """      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: topology.kubernetes.io/zone
        whenUnsatisfiable: DoNotSchedule
        labelSelector: {matchLabels: {app: web}}"""
    zones, _ = zoned(spread, 4)
    assert zones == Counter({"a": 2, "b": 2})
    plain, _ = zoned("", 4)
    assert plain == Counter({"a": 3, "b": 1})       # the default spread is per node, not per zone


def test_preferred_anti_affinity_prefers_an_empty_zone():
    pref = """      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            podAffinityTerm:
              labelSelector: {matchLabels: {app: web}}
              topologyKey: topology.kubernetes.io/zone"""
    zones, _ = zoned(pref, 2)
    assert zones == Counter({"a": 1, "b": 1})


@pytest.mark.parametrize("constraint, message", [
    ("{maxSkew: 0, topologyKey: zone, whenUnsatisfiable: DoNotSchedule}",
     "spec.topologySpreadConstraints[0].maxSkew: Invalid value: 0: must be greater than zero"),
    ("{maxSkew: 1, whenUnsatisfiable: DoNotSchedule}",
     "spec.topologySpreadConstraints[0].topologyKey: Required value: can not be empty"),
    ("{maxSkew: 1, topologyKey: zone, whenUnsatisfiable: Sometimes}",
     'spec.topologySpreadConstraints[0].whenUnsatisfiable: Unsupported value: "Sometimes": supported values: '
     '"DoNotSchedule", "ScheduleAnyway"'),
])
def test_topology_spread_validation(constraint, message):
    c = kslib.Cluster(nodes=1)
    pod = f"""
apiVersion: v1
kind: Pod
metadata: {{name: p}}
spec:
  containers: [{{name: c, image: nginx}}]
  topologySpreadConstraints: [{constraint}]
"""
    with pytest.raises(kslib.ValidationError) as err:
        c.apply(pod)
    assert message in str(err.value)
