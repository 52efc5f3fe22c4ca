"""ClusterIP, NodePort and pod IP allocation (kslib/api/allocators.py, kslib/api/server.py)."""
from __future__ import annotations

import ipaddress

import pytest

import kslib
from kslib.api.allocators import NodePortAllocator, ServiceIPAllocator


def svc(name: str, spec: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": spec or {"ports": [{"port": 80}]}}


def pod(name: str, node: str | None = None) -> dict:
    spec = {"containers": [{"name": "app", "image": "nginx"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "web"}}, "spec": spec}


def ip_int(ip: str) -> int:
    return int(ipaddress.ip_address(ip))


# ---- ClusterIP bands -------------------------------------------------------------------------------
@pytest.mark.parametrize("cidr, offset, first_static, last_static", [
    ("10.96.0.0/12", 256, "10.96.0.1", "10.96.1.0"),
    ("10.0.0.0/24", 16, "10.0.0.1", "10.0.0.16"),
    ("10.0.0.0/28", 0, "", ""),
])
def test_service_ip_static_band(cidr, offset, first_static, last_static):
    a = ServiceIPAllocator(cidr)
    assert a.bitmap.offset == offset
    assert a.static_band == (first_static, last_static)


def test_dynamic_cluster_ips_come_from_upper_band():
    c = kslib.Cluster()
    c.apply([svc(f"s{i}") for i in range(40)])
    ips = [s.cluster_ip for s in c.services if s.name != "kubernetes"]
    assert len(set(ips)) == 40
    for ip in ips:
        assert ip_int("10.96.1.1") <= ip_int(ip) <= ip_int("10.111.255.254")


def test_dynamic_cluster_ips_in_small_range_avoid_static_band():
    c = kslib.Cluster(service_cidr="10.0.0.0/24")
    c.apply([svc(f"s{i}") for i in range(30)])
    for s in c.services:
        if s.name != "kubernetes":
            assert ip_int("10.0.0.17") <= ip_int(s.cluster_ip) <= ip_int("10.0.0.254")


def test_kubernetes_service_gets_index_1():
    assert kslib.Cluster().get("Service", "kubernetes").cluster_ip == "10.96.0.1"
    assert kslib.Cluster(service_cidr="10.0.0.0/24").get("Service", "kubernetes").cluster_ip == "10.0.0.1"


def test_specific_ip_in_static_band_can_be_requested():
    c = kslib.Cluster()
    c.apply(svc("dns", {"clusterIP": "10.96.0.10", "ports": [{"port": 53, "protocol": "UDP"}]}))
    s = c.get("Service", "dns")
    assert s.cluster_ip == "10.96.0.10" and s.cluster_ips == ["10.96.0.10"]


def test_specific_ip_in_dynamic_band_can_be_requested():
    c = kslib.Cluster()
    c.apply(svc("web", {"clusterIP": "10.100.0.5", "ports": [{"port": 80}]}))
    assert c.get("Service", "web").cluster_ip == "10.100.0.5"


def test_service_ip_range_exhaustion():
    c = kslib.Cluster(service_cidr="10.0.0.0/29")      # 6 usable, one taken by kubernetes
    c.apply([svc(f"s{i}") for i in range(5)])
    ips = sorted(s.cluster_ip for s in c.services)
    assert ips == [f"10.0.0.{i}" for i in range(1, 7)]
    with pytest.raises(kslib.InternalError) as ei:
        c.apply(svc("one-more"))
    assert str(ei.value) == "Internal error occurred: failed to allocate a serviceIP: range is full"
    assert c.get("Service", "one-more") is None


def test_network_and_broadcast_addresses_are_never_allocated():
    from kslib.api.allocators import NotInRange
    a = ServiceIPAllocator("10.0.0.0/29")
    for ip in ("10.0.0.0", "10.0.0.7", "10.0.0.8"):
        with pytest.raises(NotInRange):
            a.allocate(ip)
    a.allocate("10.0.0.6")


# ---- NodePort bands --------------------------------------------------------------------------------
def test_node_port_static_band():
    assert NodePortAllocator(30000, 2768).bitmap.offset == 86
    assert NodePortAllocator(30000, 4).bitmap.offset == 0


def test_auto_node_ports_come_from_upper_band():
    c = kslib.Cluster()
    c.apply([svc(f"np{i}", {"type": "NodePort", "ports": [{"port": 80}]}) for i in range(40)])
    ports = [s.ports[0].node_port for s in c.services if s.type == "NodePort"]
    assert len(set(ports)) == 40
    assert all(30086 <= p <= 32767 for p in ports)


def test_node_port_in_static_band_can_be_requested():
    c = kslib.Cluster()
    c.apply(svc("np", {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30001}]}))
    assert c.get("Service", "np").ports[0].node_port == 30001


def test_node_port_range_exhaustion():
    c = kslib.Cluster(node_port_range="30000-30003")
    c.apply([svc(f"np{i}", {"type": "NodePort", "ports": [{"port": 80}]}) for i in range(4)])
    assert sorted(s.ports[0].node_port for s in c.services if s.type == "NodePort") == [30000, 30001, 30002, 30003]
    with pytest.raises(kslib.InternalError) as ei:
        c.apply(svc("np-more", {"type": "NodePort", "ports": [{"port": 80}]}))
    assert str(ei.value) == "Internal error occurred: failed to allocate a nodePort: range is full"
    assert c.get("Service", "np-more") is None


def test_custom_node_port_range_in_error_text():
    c = kslib.Cluster(node_port_range="30000-30003")
    with pytest.raises(kslib.ValidationError) as ei:
        c.apply(svc("np", {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30004}]}))
    assert str(ei.value) == ('The Service "np" is invalid: spec.ports[0].nodePort: Invalid value: 30004: '
                             "provided port is not in the valid range. The range of valid ports is 30000-30003")


def test_same_port_number_two_protocols_share_one_node_port():
    c = kslib.Cluster()
    c.apply(svc("dns", {"type": "NodePort", "ports": [{"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                                                      {"name": "dns-udp", "port": 53, "protocol": "UDP"}]}))
    s = c.get("Service", "dns")
    assert s.ports[0].node_port == s.ports[1].node_port != 0
    assert c.api.node_ports.in_use(s.ports[0].node_port)


def test_allocate_load_balancer_node_ports_false_allocates_none():
    c = kslib.Cluster()
    before = set(c.api.node_ports.bitmap.used)
    c.apply(svc("lb", {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": False,
                       "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 443}]}))
    s = c.get("Service", "lb")
    assert [p.node_port for p in s.ports] == [0, 0]
    assert c.api.node_ports.bitmap.used == before


def test_allocate_load_balancer_node_ports_false_still_honours_requested_port():
    c = kslib.Cluster()
    c.apply(svc("lb", {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": False,
                       "ports": [{"name": "a", "port": 80, "nodePort": 30100}, {"name": "b", "port": 443}]}))
    assert [p.node_port for p in c.get("Service", "lb").ports] == [30100, 0]


# ---- release on delete -------------------------------------------------------------------------------
def test_delete_releases_ip_and_ports():
    c = kslib.Cluster()
    spec = {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "clusterIP": "10.96.0.20",
            "healthCheckNodePort": 30200, "ports": [{"port": 80, "nodePort": 30100}]}
    c.apply(svc("lb", spec))
    with pytest.raises(kslib.ValidationError, match="provided port is already allocated"):
        c.apply(svc("other", {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30100}]}))
    c.delete("Service", "lb")
    assert c.get("Service", "lb") is None
    assert not c.api.node_ports.in_use(30100) and not c.api.node_ports.in_use(30200)
    c.apply(svc("again", dict(spec)))
    s = c.get("Service", "again")
    assert (s.cluster_ip, s.ports[0].node_port, s.health_check_node_port) == ("10.96.0.20", 30100, 30200)


def test_delete_releases_auto_allocated_ip():
    c = kslib.Cluster(service_cidr="10.0.0.0/29")
    c.apply([svc(f"s{i}") for i in range(5)])
    freed = c.get("Service", "s2").cluster_ip
    c.delete("Service", "s2")
    c.apply(svc("new"))
    assert c.get("Service", "new").cluster_ip == freed


# ---- pod IPs --------------------------------------------------------------------------------------------
def test_nodes_get_pod_cidrs_in_order():
    c = kslib.Cluster(nodes=3)
    assert [n.pod_cidr for n in c.nodes] == ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"]


def test_pod_ips_come_from_node_pod_cidr_starting_at_2():
    c = kslib.Cluster(nodes=2)
    c.apply([pod("a1", "node-1"), pod("a2", "node-1"), pod("b1", "node-2")])
    assert c.pod("a1").pod_ip == "10.244.0.2"
    assert c.pod("a2").pod_ip == "10.244.0.3"
    assert c.pod("b1").pod_ip == "10.244.1.2"
    for p in c.pods:
        node = c.get("Node", p.node_name)
        assert ipaddress.ip_address(p.pod_ip) in ipaddress.ip_network(node.pod_cidr)
        assert p.host_ip == node.internal_ip


def test_recreated_pod_gets_a_new_ip():
    c = kslib.Cluster(nodes=1)
    c.apply(pod("web", "node-1"))
    first = c.pod("web").pod_ip
    c.delete("Pod", "web")
    c.advance(60)                      # past the 30 s grace period
    assert c.api.get("Pod", "default/web") is None
    c.apply(pod("web", "node-1"))
    second = c.pod("web").pod_ip
    assert first == "10.244.0.2" and second == "10.244.0.3"


def test_scheduled_pods_get_ips_from_their_node():
    c = kslib.Cluster(nodes=2)
    c.apply([pod(f"p{i}") for i in range(4)])
    for p in c.pods:
        assert p.node_name in ("node-1", "node-2")
        assert ipaddress.ip_address(p.pod_ip) in ipaddress.ip_network(c.get("Node", p.node_name).pod_cidr)
    assert len({p.pod_ip for p in c.pods}) == 4
