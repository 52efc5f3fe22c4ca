"""LoadBalancer Services with and without a load-balancer controller, through the public API
(``kslib.Cluster(cloud=...)``, ``c.cloud``, ``connect``/``connect_many``, ``kslib.viz.get_services``).

Sources of the rules checked here:
  [SC]  kubernetes/kubernetes staging/src/k8s.io/cloud-provider/controllers/service/controller.go
        (wantsLoadBalancer, needsUpdate, syncLoadBalancerIfNeeded, the node predicate, event texts)
  [HC]  kubernetes/kubernetes pkg/proxy/healthcheck/service_health.go, proxier_health.go
  [CIL] cilium pkg/loadbalancer healthserver (kube-proxy compatible JSON) and kube-proxy healthz
  [MLB] metallb/metallb controller/service.go, internal/allocator, internal/config, speaker/
  [KC]  kubectl pkg/printers/internalversion/printers.go getServiceExternalIP
"""
import hashlib

import pytest

import kslib
from kslib.viz import get_services

NODE_IP = {"node-1": "192.168.0.2", "node-2": "192.168.0.3", "node-3": "192.168.0.4"}
CNI0 = {"node-1": "10.244.0.1", "node-2": "10.244.1.1", "node-3": "10.244.2.1"}
ENTRY_ADDRESSES = {a: n for n in NODE_IP for a in (NODE_IP[n], CNI0[n])}
CLIENT = "198.51.100.7"                 # an external client (TEST-NET-2)
EXCLUDE = "node.kubernetes.io/exclude-from-external-load-balancers"


# ---- manifests and helpers -------------------------------------------------------------------------------------
def pod(name, node, app="web", ready=True):
    status = "" if ready else "\nstatus: {conditions: [{type: Ready, status: 'False'}]}"
    return (f"---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: {app}}}}}\n"
            f"spec: {{nodeName: {node}, containers: [{{name: c, ports: [{{containerPort: 8080}}]}}]}}{status}\n")


def lb(name="web", etp="Cluster", extra="", ports="[{port: 80, targetPort: 8080}]", annotations=""):
    meta = f"{{name: {name}" + (f", annotations: {{{annotations}}}" if annotations else "") + "}"
    return (f"---\napiVersion: v1\nkind: Service\nmetadata: {meta}\nspec:\n  type: LoadBalancer\n"
            f"  externalTrafficPolicy: {etp}\n  selector: {{app: web}}\n{extra}  ports: {ports}\n")


def node(name, labels="", ready=True):
    status = "" if ready else "\nstatus: {conditions: [{type: Ready, status: 'False'}]}"
    return f"---\napiVersion: v1\nkind: Node\nmetadata: {{name: {name}, labels: {{{labels}}}}}{status}\n"


def cluster(*docs, cloud=None, mode="iptables", nodes=3, **kw):
    c = kslib.Cluster(mode=mode, nodes=nodes, cloud=cloud, **kw)
    if docs:
        c.apply("".join(docs))
    return c


def ingress(c, name="web"):
    return [i.ip for i in c.get("svc", name).ingress]


def reasons(cloud, name="web"):
    return [e.reason for e in cloud.events_for(name)]


def external_ip_column(c, name="web"):
    for line in get_services(c).splitlines()[1:]:
        cols = line.split()
        if cols[0] == name:
            return cols[3]
    raise KeyError(name)


# ---- no controller: <pending> ---------------------------------------------------------------------------------
def test_without_a_cloud_controller_a_loadbalancer_stays_pending():
    c = cluster(pod("web-1", "node-1"), lb())
    assert c.cloud is None
    svc = c.get("svc", "web")
    assert svc.ingress == [] and svc.to_dict()["status"] == {"loadBalancer": {}}
    assert external_ip_column(c) == "<pending>"
    assert svc.ports[0].node_port                      # the NodePort path works all the same
    conn = c.connect(CLIENT, NODE_IP["node-1"], svc.ports[0].node_port)
    assert conn.outcome == "delivered"


def test_kubectl_external_ip_column_rules():
    """[KC] externalIPs are listed after the ingress, and hide <pending>."""
    c = cluster(lb(extra="  externalIPs: [198.51.100.20]\n"), lb("api", extra="  externalIPs: [198.51.100.21]\n"),
                cloud=kslib.CloudProvider(pool="203.0.113.10-203.0.113.10"))
    assert external_ip_column(c, "api") == "203.0.113.10,198.51.100.21"
    assert external_ip_column(c, "web") == "198.51.100.20"      # no address left: pending, shown as its externalIP


# ---- the cloud provider -------------------------------------------------------------------------------------------
def test_provider_assigns_an_ingress_ip_and_watchers_see_the_status_write():
    cloud = kslib.CloudProvider(pool="203.0.113.0/24", hourly_price=0.025)
    c = cluster(cloud=cloud)
    seen = []
    c.subscribe(lambda e: seen.append((e.type, [i.ip for i in e.obj.ingress])) if e.kind == "Service" else None)
    c.apply(pod("web-1", "node-1") + lb())
    assert seen == [("ADDED", []), ("MODIFIED", ["203.0.113.1"])]   # the /24's first host address
    svc = c.get("svc", "web")
    assert svc.to_dict()["status"] == {"loadBalancer": {"ingress": [{"ip": "203.0.113.1", "ipMode": "VIP"}]}}
    assert external_ip_column(c) == "203.0.113.1"
    assert c.cloud is cloud
    assert reasons(cloud) == ["EnsuringLoadBalancer", "EnsuredLoadBalancer"]
    assert [(e.type, e.message, e.source) for e in cloud.events_for("web")] == [
        ("Normal", "Ensuring load balancer", "service-controller"),
        ("Normal", "Ensured load balancer", "service-controller")]
    (lb_,) = cloud.load_balancers
    assert lb_.service == "default/web" and lb_.ip == "203.0.113.1"
    assert lb_.name == ("a" + svc.metadata.uid.replace("-", ""))[:32]        # DefaultLoadBalancerName
    assert lb_.hosts == ["node-1", "node-2", "node-3"]
    assert c.connect(CLIENT, "203.0.113.1", 80).pod == "default/web-1"


def test_reapplying_the_service_keeps_its_load_balancer():
    cloud = kslib.CloudProvider()
    c = cluster(pod("web-1", "node-1"), lb(), cloud=cloud)
    c.apply(lb())                                   # the same spec again: no sync, same address
    assert ingress(c) == ["203.0.113.1"]
    assert reasons(cloud) == ["EnsuringLoadBalancer", "EnsuredLoadBalancer"]


def test_pool_order_exhaustion_release_and_reuse():
    cloud = kslib.CloudProvider(pool="203.0.113.10-203.0.113.11")
    c = cluster(lb("a"), lb("b"), lb("c"), cloud=cloud)
    assert (ingress(c, "a"), ingress(c, "b"), ingress(c, "c")) == (["203.0.113.10"], ["203.0.113.11"], [])
    assert external_ip_column(c, "c") == "<pending>"
    failed = cloud.events_for("c")[-1]
    assert (failed.type, failed.reason) == ("Warning", "SyncLoadBalancerFailed")
    assert failed.message == ("Error syncing load balancer: failed to ensure load balancer: no free address in the "
                              "provider's address pool 203.0.113.10-203.0.113.11")
    c.apply(pod("web-1", "node-1"))                  # unrelated changes do not retry it (no event storm)
    assert reasons(cloud, "c") == ["EnsuringLoadBalancer", "SyncLoadBalancerFailed"]
    c.delete("svc", "a")
    assert reasons(cloud, "a")[-2:] == ["DeletingLoadBalancer", "DeletedLoadBalancer"]
    assert ingress(c, "c") == ["203.0.113.10"]        # the freed address goes to the pending Service
    assert reasons(cloud, "c")[2:] == ["EnsuringLoadBalancer", "EnsuredLoadBalancer"]
    c.delete("svc", "b")
    c.apply(lb("d"))
    assert ingress(c, "d") == ["203.0.113.11"]        # and is reused
    assert [x.service for x in cloud.load_balancers] == ["default/c", "default/d"]


def test_type_change_away_from_loadbalancer_releases_it():
    cloud = kslib.CloudProvider(pool="203.0.113.10/31")    # /31: both addresses usable
    c = cluster(pod("web-1", "node-1"), lb(), cloud=cloud)
    assert ingress(c) == ["203.0.113.10"]
    c.apply("---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
            "spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}\n")
    assert ingress(c) == [] and cloud.load_balancers == []
    assert [(e.reason, e.message) for e in cloud.events_for("web")][2:] == [
        ("Type", "LoadBalancer -> ClusterIP"), ("DeletingLoadBalancer", "Deleting load balancer"),
        ("DeletedLoadBalancer", "Deleted load balancer")]
    assert external_ip_column(c) == "<none>"
    c.apply(lb("other"))
    assert ingress(c, "other") == ["203.0.113.10"]


def test_a_class_the_controller_does_not_own_stays_pending():
    """[SC] wantsLoadBalancer: type LoadBalancer and no loadBalancerClass; [MLB] filterByLoadBalancerClass."""
    vip = "  loadBalancerClass: example.com/internal-vip\n"
    for cloud in (kslib.CloudProvider(), kslib.MetalLB(pools=["192.168.10.0/24"])):
        c = cluster(lb(extra=vip), lb("plain"), cloud=cloud)
        assert ingress(c) == [] and external_ip_column(c) == "<pending>"
        assert cloud.events_for("web") == []
        assert ingress(c, "plain") != []
    owner = kslib.CloudProvider(load_balancer_class="example.com/internal-vip")
    c = cluster(lb(extra=vip), lb("plain"), cloud=owner)
    assert ingress(c) == ["203.0.113.1"] and ingress(c, "plain") == []


def test_load_balancer_ip_in_the_pool_is_honoured():
    cloud = kslib.CloudProvider(pool="203.0.113.0/24")
    c = cluster(lb(extra="  loadBalancerIP: 203.0.113.77\n"), cloud=cloud)
    assert ingress(c) == ["203.0.113.77"]
    c.apply(lb(extra="  loadBalancerIP: 203.0.113.78\n"))        # moved: the needsUpdate event, then a sync
    assert ingress(c) == ["203.0.113.78"]
    assert [(e.reason, e.message) for e in cloud.events_for("web")][2] == ("LoadbalancerIP",
                                                                         "203.0.113.77 -> 203.0.113.78")
    c.apply(lb("taken", extra="  loadBalancerIP: 203.0.113.78\n")
            + lb("outside", extra="  loadBalancerIP: 192.0.2.5\n"))
    assert ingress(c, "taken") == [] and ingress(c, "outside") == []
    assert cloud.events_for("taken")[-1].message.endswith(
        "requested loadBalancerIP 203.0.113.78 is in use by the load balancer of default/web")
    assert cloud.events_for("outside")[-1].message.endswith(
        "requested loadBalancerIP 192.0.2.5 is not in the provider's address pool 203.0.113.0/24")


def test_excluded_nodes_get_no_traffic_and_node_changes_update_the_load_balancer():
    cloud = kslib.CloudProvider()
    c = cluster(pod("web-1", "node-1"), pod("web-2", "node-2"), lb(), cloud=cloud)
    c.apply(node("node-3", f"{EXCLUDE}: ''"))
    assert cloud.load_balancers[0].hosts == ["node-1", "node-2"]
    assert sorted(cloud.health("web")) == ["node-1", "node-2"]         # an excluded node is not probed
    assert reasons(cloud)[-1] == "UpdatedLoadBalancer"
    entries = {ENTRY_ADDRESSES[c.connect(CLIENT, ingress(c)[0], 80).source_ip] for _ in range(40)}
    assert entries == {"node-1", "node-2"}


# ---- health checks ------------------------------------------------------------------------------------------------
KUBE_PROXY_BODY = ('{\n\t"service": {\n\t\t"namespace": "default",\n\t\t"name": "web"\n\t},\n'
                   '\t"localEndpoints": %d,\n\t"serviceProxyHealthy": true\n}')


def test_local_health_check_codes_bodies_and_headers():
    """[HC] 200 with at least one local ready endpoint, 503 otherwise; the body is kube-proxy's JSON."""
    cloud = kslib.CloudProvider()
    c = cluster(pod("web-1", "node-1"), pod("web-2", "node-2"), pod("web-3", "node-2"),
                pod("web-4", "node-3", ready=False), lb(etp="Local"), cloud=cloud)
    hc = c.get("svc", "web").health_check_node_port
    probes = cloud.health("web")
    assert {n: (p.status, p.body) for n, p in probes.items()} == {
        "node-1": (200, KUBE_PROXY_BODY % 1), "node-2": (200, KUBE_PROXY_BODY % 2),
        "node-3": (503, KUBE_PROXY_BODY % 0)}            # an unready endpoint does not count
    assert probes["node-1"].url == f"http://192.168.0.2:{hc}/healthz"
    assert probes["node-2"].headers == {"Content-Type": "application/json", "X-Content-Type-Options": "nosniff",
                                        "X-Load-Balancing-Endpoint-Weight": "2"}
    assert probes["node-3"].json() == {"service": {"namespace": "default", "name": "web"}, "localEndpoints": 0,
                                       "serviceProxyHealthy": True}
    assert cloud.nodes_for("web") == ["node-1", "node-2"]
    c.set_ready("web-1", False)
    assert cloud.health("web")["node-1"].status == 503 and cloud.nodes_for("web") == ["node-2"]


def test_cluster_policy_probes_kube_proxy_healthz_on_every_node():
    cloud = kslib.CloudProvider()
    c = cluster(pod("web-1", "node-1"), lb(), cloud=cloud)
    c.advance(1.5)
    probes = cloud.health("web")
    assert {n: p.status for n, p in probes.items()} == {"node-1": 200, "node-2": 200, "node-3": 200}
    assert probes["node-3"].url == "http://192.168.0.4:10256/healthz"
    now = "2026-01-01 00:00:01.5 +0000 UTC m=+1.500000000"    # Go's time.Time String()
    assert probes["node-3"].body == f'{{"lastUpdated": "{now}","currentTime": "{now}", "nodeEligible": true}}'
    assert cloud.nodes_for("web") == ["node-1", "node-2", "node-3"]


def test_cilium_answers_the_health_checks_in_ebpf_mode():
    """[CIL] compact JSON without serviceProxyHealthy; its healthz has no nodeEligible."""
    cloud = kslib.CloudProvider()
    c = cluster(pod("web-1", "node-1"), lb(etp="Local"), lb("all"), cloud=cloud, mode="ebpf")
    probes = cloud.health("web")
    assert (probes["node-1"].status, probes["node-1"].body) == (
        200, '{"service":{"namespace":"default","name":"web"},"localEndpoints":1}\n')
    assert probes["node-2"].status == 503
    now = "2026-01-01 00:00:00 +0000 UTC m=+0.000000000"
    assert cloud.health("all")["node-2"].body == f'{{"lastUpdated": "{now}","currentTime": "{now}"}}'


def test_a_not_ready_node_stays_in_the_set_but_fails_its_probe():
    """[SC] StableLoadBalancerNodeSet: readiness does not change the node set; the probe times out."""
    cloud = kslib.CloudProvider()
    c = cluster(pod("web-1", "node-1"), lb(), cloud=cloud)
    c.apply(node("node-2", ready=False))
    assert cloud.load_balancers[0].hosts == ["node-1", "node-2", "node-3"]
    assert cloud.health("web")["node-2"].status is None
    assert cloud.nodes_for("web") == ["node-1", "node-3"]
    assert "UpdatedLoadBalancer" not in reasons(cloud)


def test_connect_many_reaches_only_healthy_nodes_with_local_policy():
    cloud = kslib.CloudProvider()
    c = cluster(pod("web-1", "node-1"), pod("web-2", "node-2"), lb(etp="Local"), cloud=cloud)
    ip = ingress(c)[0]
    got = c.connect_many(CLIENT, ip, 80, 400)
    assert set(got) == {"default/web-1", "default/web-2"} and sum(got.values()) == 400   # none to node-3
    assert min(got.values()) > 150                                   # spread over the two healthy nodes
    for _ in range(10):
        conn = c.connect(CLIENT, ip, 80)
        assert conn.outcome == "delivered" and conn.source_ip == CLIENT
    c.delete("pod", "web-2")                                         # terminating: no longer ready
    assert cloud.nodes_for("web") == ["node-1"]
    assert set(c.connect_many(CLIENT, ip, 80, 100)) == {"default/web-1"}


def test_connect_many_enters_every_node_with_cluster_policy():
    cloud = kslib.CloudProvider()
    c = cluster(pod("web-1", "node-1"), lb(), cloud=cloud)
    ip = ingress(c)[0]
    assert c.connect_many(CLIENT, ip, 80, 300) == {"default/web-1": 300}
    entries = {ENTRY_ADDRESSES[c.connect(CLIENT, ip, 80).source_ip] for _ in range(40)}
    assert entries == {"node-1", "node-2", "node-3"}        # the client IP is replaced by the entry node's


# ---- the client address across the dataplanes ------------------------------------------------------------------
MODES = ["iptables", "nftables", "ipvs", "ebpf", "ebpf-dsr"]


def mode_cluster(mode, *docs, **kw):
    c = cluster(*docs, mode="ebpf" if mode == "ebpf-dsr" else mode, **kw)
    if mode == "ebpf-dsr":
        c.set_mode("ebpf", lb_mode="dsr")
    return c


@pytest.mark.parametrize("mode", MODES)
def test_client_ip_is_preserved_with_local_policy(mode):
    c = mode_cluster(mode, pod("web-1", "node-2"), lb(etp="Local"), cloud=kslib.CloudProvider())
    for _ in range(5):
        conn = c.connect(CLIENT, ingress(c)[0], 80)
        assert (conn.outcome, conn.pod, conn.node, conn.source_ip) == ("delivered", "default/web-1", "node-2", CLIENT)


@pytest.mark.parametrize("mode", MODES)
def test_client_ip_is_replaced_with_cluster_policy_except_cilium_dsr(mode):
    """kube-proxy masquerades eTP=Cluster traffic to a remote endpoint; Cilium does in its default
    loadBalancer.mode=snat, while dsr keeps the client address (ipvs-ebpf-maglev.md 3.4)."""
    c = mode_cluster(mode, pod("web-1", "node-2"), lb(), cloud=kslib.CloudProvider())
    c.apply(node("node-2", f"{EXCLUDE}: ''"))             # the LB enters at node-1 or node-3: always remote
    seen = set()
    for _ in range(12):
        conn = c.connect(CLIENT, ingress(c)[0], 80)
        assert (conn.outcome, conn.pod, conn.node) == ("delivered", "default/web-1", "node-2")
        seen.add(conn.source_ip)
    assert seen == ({CLIENT} if mode == "ebpf-dsr" else {NODE_IP["node-1"], NODE_IP["node-3"]})


# ---- MetalLB ---------------------------------------------------------------------------------------------------
def test_metallb_assignment_order_and_exhaustion():
    """[MLB] a pool's CIDRs in order, each from its first address (the network address included
    unless avoidBuggyIPs); exhaustion leaves the Service pending with AllocationFailed."""
    metallb = kslib.MetalLB(pools=[{"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                                    "metadata": {"name": "lab"},
                                    "spec": {"addresses": ["192.168.10.0/31", "192.168.9.250-192.168.9.251"]}}])
    c = cluster(*(lb(n) for n in ("a", "b", "c", "d", "e")), cloud=metallb)
    assert [ingress(c, n) for n in "abcde"] == [["192.168.10.0"], ["192.168.10.1"], ["192.168.9.250"],
                                                ["192.168.9.251"], []]
    assert c.get("svc", "a").metadata.annotations == {"metallb.io/ip-allocated-from-pool": "lab"}
    assert [(e.type, e.reason, e.message) for e in metallb.events_for("a")] == [
        ("Normal", "IPAllocated", 'Assigned IP ["192.168.10.0"]')]
    assert [(e.type, e.reason, e.message, e.source) for e in metallb.events_for("e")] == [
        ("Warning", "AllocationFailed", 'Failed to allocate IP for "default/e": no available IPs',
         "metallb-controller")]
    assert external_ip_column(c, "e") == "<pending>"
    c.delete("svc", "b")                                  # a freed address goes to the pending Service
    assert ingress(c, "e") == ["192.168.10.1"]
    c.apply("---\napiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80}]}\n")
    assert ingress(c, "a") == [] and c.get("svc", "a").metadata.annotations == {}   # type change: released
    c.apply(lb("f"))
    assert ingress(c, "f") == ["192.168.10.0"]
    assert metallb.monthly_cost() == 0.0


def test_metallb_avoid_buggy_ips_auto_assign_and_requests():
    metallb = kslib.MetalLB(pools=[kslib.IPAddressPool("reserved", ["192.168.20.0/24"], auto_assign=False),
                                   kslib.IPAddressPool("main", ["192.168.10.0/24"], avoid_buggy_ips=True)])
    c = cluster(lb("auto"), lb("pinned", extra="  loadBalancerIP: 192.168.20.7\n"),
                lb("bypool", annotations="metallb.io/address-pool: reserved"),
                lb("nowhere", extra="  loadBalancerIP: 192.0.2.9\n"), cloud=metallb)
    assert ingress(c, "auto") == ["192.168.10.1"]          # .0 skipped; the autoAssign: false pool not used
    assert ingress(c, "pinned") == ["192.168.20.7"]        # a requested address may come from it
    assert ingress(c, "bypool") == ["192.168.20.0"]
    assert ingress(c, "nowhere") == []
    assert metallb.events_for("nowhere")[-1].message == \
        'Failed to allocate IP for "default/nowhere": ["192.0.2.9"] is not allowed in config'
    c.apply(lb("again", extra="  loadBalancerIP: 192.168.20.7\n"))
    assert metallb.events_for("again")[-1].message == ('Failed to allocate IP for "default/again": can\'t change '
                                                       'sharing key for "default/again", address also in use by '
                                                       'default/pinned')


def test_metallb_keeps_an_address_already_in_the_status():
    """[MLB] convergeBalancer: a status IP the config allows is assigned again; otherwise ClearAssignment."""
    metallb = kslib.MetalLB(pools=["192.168.10.0/24"])
    c = cluster(lb() + "status: {loadBalancer: {ingress: [{ip: 192.168.10.50}]}}\n",
                lb("other") + "status: {loadBalancer: {ingress: [{ip: 198.51.100.99}]}}\n", cloud=metallb)
    assert ingress(c) == ["192.168.10.50"] and metallb.events_for("web") == []
    assert ingress(c, "other") == ["192.168.10.0"]
    assert [(e.reason, e.message) for e in metallb.events_for("other")] == [
        ("ClearAssignment", 'current IP for "default/other" not allowed by config, will attempt for new IP '
                            'assignment: ["198.51.100.99"] is not allowed in config'),
        ("IPAllocated", 'Assigned IP ["192.168.10.0"]')]
    c.apply(lb())                                  # re-applied without a status: the same address comes back
    assert ingress(c) == ["192.168.10.50"]


def test_metallb_without_pools_leaves_services_pending():
    c = cluster(lb(), cloud=kslib.MetalLB())
    assert ingress(c) == [] and c.cloud.events == []


def test_metallb_layer2_sends_everything_to_the_elected_node():
    """[MLB] speaker/layer2_controller.go: candidates sorted by sha256(node + "#" + ip), first wins."""
    metallb = kslib.MetalLB(pools=["192.168.10.0/24"])
    c = cluster(pod("web-1", "node-1"), pod("web-2", "node-2"), lb(), cloud=metallb)
    ip = ingress(c)[0]
    leader = min(NODE_IP, key=lambda n: hashlib.sha256(f"{n}#{ip}".encode()).digest())
    assert metallb.announcements("web") == {n: "" if n == leader else "notOwner" for n in NODE_IP}
    assert metallb.nodes_for("web") == [leader]
    entries = {ENTRY_ADDRESSES[c.connect(CLIENT, ip, 80).source_ip] for _ in range(20)}
    assert entries == {leader}
    c.apply(lb(etp="Local"))                       # Local: only nodes with a serving endpoint may win
    assert metallb.nodes_for("web")[0] in ("node-1", "node-2")


def test_metallb_bgp_announces_from_every_eligible_node():
    metallb = kslib.MetalLB(pools=["192.168.10.0/24"], mode="bgp")
    c = cluster(pod("web-1", "node-1"), lb(), lb("local", etp="Local"), cloud=metallb)
    c.apply(node("node-3", f"{EXCLUDE}: ''"))
    assert metallb.announcements("web") == {"node-1": "", "node-2": "", "node-3": "nodeLabeledExcludeBalancers"}
    assert metallb.announcements("local") == {"node-1": "", "node-2": "noLocalEndpoints",
                                              "node-3": "nodeLabeledExcludeBalancers"}
    got = c.connect_many(CLIENT, ingress(c, "local")[0], 80, 50)
    assert got == {"default/web-1": 50}
    with pytest.raises(AttributeError):
        metallb.health("web")                        # no load-balancer health checks in MetalLB


# ---- cost -----------------------------------------------------------------------------------------------------
def test_cost_report_figures():
    cloud = kslib.CloudProvider(hourly_price=0.025)
    c = cluster(lb("a"), lb("b"), lb("c"), cloud=cloud)
    assert cloud.monthly_cost() == 54.75                   # 3 x $0.025 x 730 h
    assert cloud.monthly_cost(hours=24) == 1.8             # 3 x $0.025 x 24 h
    alt = cloud.ingress_alternative()
    assert (alt.per_service_lbs, alt.shared_lbs) == (3, 1)
    assert (alt.per_service_cost, alt.shared_cost, alt.saving) == (54.75, 18.25, 36.5)
    assert str(alt).splitlines()[1:] == ["one per Service    3                3           $54.75",
                                         "shared (Ingress)   1                1           $18.25"]
    c.apply(lb("dns", ports="[{port: 53, protocol: UDP}]"))   # an Ingress cannot route UDP
    alt = cloud.ingress_alternative()
    assert alt.keep_own == ["default/dns"]
    assert (alt.per_service_lbs, alt.shared_lbs, alt.per_service_cost, alt.shared_cost) == (4, 2, 73.0, 36.5)
    nlb = kslib.CloudProvider(hourly_price=0.0225)
    cluster(lb("a"), lb("b"), cloud=nlb)
    assert nlb.monthly_cost() == 32.85                     # 2 x $0.0225 x 730 h
    free = kslib.MetalLB(pools=["192.168.10.0/24"])
    cluster(lb("a"), lb("b"), cloud=free)
    alt = free.ingress_alternative()
    assert (free.monthly_cost(), alt.per_service_cost, alt.per_service_lbs, alt.shared_lbs) == (0.0, 0.0, 2, 1)
    with pytest.raises(ValueError, match="hours: Invalid value: -1: must be a non-negative number"):
        cloud.monthly_cost(hours=-1)


# ---- configuration errors -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    ({"pool": "203.0.113.0/33"}, 'pool: Invalid value: "203.0.113.0/33": invalid CIDR "203.0.113.0/33"'),
    ({"pool": "nonsense"}, 'pool: Invalid value: "nonsense": invalid CIDR "nonsense"'),
    ({"pool": "203.0.113.9-203.0.113.1"}, 'invalid IP range "203.0.113.9-203.0.113.1": start IP "203.0.113.9" '
                                          'is after the end IP "203.0.113.1"'),
    ({"pool": "203.0.113.1-x"}, 'invalid IP range "203.0.113.1-x": invalid end IP "x"'),
    ({"pool": []}, "pool: Invalid value: .*: must be a CIDR"),
    ({"pool": "2001:db8::/64"}, "IPv6 is not modelled"),
    ({"hourly_price": -0.01}, "hourly_price: Invalid value: -0.01: must be a non-negative number"),
    ({"hourly_price": True}, "hourly_price: Invalid value: true: must be a non-negative number"),
    ({"load_balancer_class": "a/b/c"}, "load_balancer_class: Invalid value"),
])
def test_cloud_provider_configuration_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kslib.CloudProvider(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"pools": ["192.168.10.0/24", "192.168.10.128/25"]},
     'CIDR "192.168.10.128/25" in pool "default" overlaps with already defined CIDR "192.168.10.0/24"'),
    ({"pools": [{"name": "a", "addresses": ["192.168.1.0/24"]}, {"name": "a", "addresses": ["192.168.2.0/24"]}]},
     'pools\\[1\\].name: Invalid value: "a": duplicate definition of pool "a"'),
    ({"pools": [{"name": "a", "addresses": []}]}, "pools\\[0\\].addresses: Invalid value"),
    ({"pools": [{"name": "a", "addresses": ["1.2.3.4-1.2.3"]}]},
     'pools\\[0\\].addresses\\[0\\]: Invalid value: "1.2.3.4-1.2.3": invalid IP range "1.2.3.4-1.2.3": invalid end IP'),
    ({"mode": "arp"}, 'mode: Unsupported value: "arp": supported values: "layer2", "bgp"'),
])
def test_metallb_configuration_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kslib.MetalLB(**kwargs)


def test_cluster_configuration_errors():
    with pytest.raises(ValueError, match="cloud: must be None"):
        kslib.Cluster(cloud="aws")
    with pytest.raises(ValueError, match="pool: Invalid value: \"10.96.0.0/24\": overlaps the cluster's service_cidr"):
        kslib.Cluster(cloud=kslib.CloudProvider(pool="10.96.0.0/24"))
    with pytest.raises(ValueError, match="overlaps the cluster's node_cidr 192.168.0.0/24"):
        kslib.Cluster(cloud=kslib.MetalLB(pools=["192.168.0.240/28"]))
    cloud = kslib.CloudProvider()
    kslib.Cluster(cloud=cloud)
    with pytest.raises(ValueError, match="already serves another Cluster"):
        kslib.Cluster(cloud=cloud)
    c = cluster(lb(), cloud=kslib.CloudProvider(pool="203.0.113.10-203.0.113.10"))
    c.apply(lb("second"))
    with pytest.raises(ValueError, match="service default/second has no load balancer from this provider"):
        c.cloud.health("second")
    assert c.cloud.nodes_for("second") == []
