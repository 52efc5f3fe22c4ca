"""The kernel lab itself: what it reports, that it follows the cluster, and its safety rules: only
its own namespaces, a closed network, and cleanup on close, on exceptions, at interpreter exit and
after a crash."""
import os
import subprocess
import sys
import textwrap

import pytest

import kslib
from kslib.lab import KernelCluster, LabError, LabUnavailable, available, netns

DOCS = """---
apiVersion: v1
kind: Pod
metadata: {name: client, labels: {app: client}}
spec: {nodeName: node-1, containers: [{name: c}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, labels: {app: web}}
spec: {nodeName: node-2, containers: [{name: c, ports: [{containerPort: 8080}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""


def small(mode="iptables"):
    c = kslib.Cluster(mode=mode, nodes=2)
    c.apply(DOCS)
    return c


def vip(c):
    return c.get("svc", "web").cluster_ip


def host_state() -> str:
    """The host's own links, addresses, routes and netfilter tables."""
    out = []
    for argv in (["ip", "-o", "link"], ["ip", "-o", "addr"], ["ip", "route"], ["nft", "list", "ruleset"],
                 ["iptables-save"]):
        done = subprocess.run([netns.tool(argv[0]), *argv[1:]], capture_output=True, text=True)
        out.append(done.stdout)
    text = "\n".join(out)
    return "\n".join(ln for ln in text.splitlines() if not ln.startswith("#"))     # iptables-save stamps


def test_available_reports_a_reason_for_the_modes_it_cannot_run():
    assert available() == (True, "")
    ok, reason = available("ipvs")
    assert not ok and "IPVS" in reason and "CONFIG_IP_VS" in reason
    with pytest.raises(LabUnavailable, match="IPVS"):
        KernelCluster(small("ipvs"))
    with pytest.raises(LabUnavailable, match="eBPF"):
        KernelCluster(small("ebpf"))


def test_a_lab_leaves_the_hosts_links_routes_and_tables_untouched_and_removes_its_namespaces():
    before = host_state()
    c = small()
    with KernelCluster(c) as k:
        names = k.namespaces
        assert len(names) == 6 and all(n.startswith(f"kslib-{os.getpid()}-") for n in names)   # sw, out, 2 nodes, 2 pods
        assert set(names) <= set(netns.listed())
        assert k.connect("client", vip(c), 80).pod == "default/web-1"
        assert host_state() == before
        echo = k._echo
    assert not set(names) & set(netns.listed())
    assert echo.poll() is not None                  # the echo servers stopped with the lab
    assert host_state() == before


def test_namespaces_go_when_the_with_block_raises():
    with pytest.raises(ZeroDivisionError):
        with KernelCluster(small()) as k:
            names = k.namespaces
            1 / 0
    assert not set(names) & set(netns.listed())


def test_the_lab_is_a_closed_network():
    c = small()
    host_ips = subprocess.run([netns.tool("ip"), "-o", "-4", "addr"], capture_output=True, text=True).stdout
    host_ip = next(w.split("/")[0] for ln in host_ips.splitlines() for w in ln.split()[3:4]
                   if not w.startswith("127."))
    with KernelCluster(c, timeout=0.3) as k:
        for src in ("client", "node-1"):
            # the host's own address and a documentation address: nothing routes out of the lab
            for dst in (host_ip, "192.0.2.1"):
                assert k.connect(src, dst, 22).outcome == "dropped", (src, dst)


def test_the_lab_refuses_to_touch_a_namespace_it_did_not_create():
    ns = netns.Namespaces()
    try:
        with pytest.raises(LabError, match="not a namespace of this lab"):
            ns.exec("kslib-1-1-n0", ["iptables-save"])
        with pytest.raises(LabError, match="not a namespace of this lab"):
            ns.ip("default", ["link show"])
    finally:
        ns.close()


CHILD = textwrap.dedent("""
    import os, sys, kslib
    from kslib.lab import KernelCluster
    c = kslib.Cluster(nodes=2)
    k = KernelCluster(c)
    print(" ".join(k.namespaces), flush=True)
    if sys.argv[1] == "crash":
        os._exit(0)               # no finalizers, no atexit: as if killed
""")


def run_child(how: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", CHILD, how], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_namespaces_are_removed_at_interpreter_exit_without_close():
    names = run_child("exit")
    assert names and not set(names) & set(netns.listed())


def test_a_crashed_labs_namespaces_are_removed_by_the_next_lab():
    names = run_child("crash")
    assert names and set(names) <= set(netns.listed())       # left behind by the crash
    with KernelCluster(small()) as k:
        assert set(names) <= set(k.stale_removed)
    assert not set(names) & set(netns.listed())


def test_the_lab_follows_the_cluster_scale_and_mode():
    c = small()
    with KernelCluster(c) as k:
        assert k.connect_many("client", vip(c), 80, 10) == {"default/web-1": 10}
        c.apply(DOCS.split("---")[2].replace("web-1", "web-2"))
        assert set(k.connect_many("client", vip(c), 80, 30)) == {"default/web-1", "default/web-2"}
        assert "-A KUBE-SERVICES" in k.ruleset("node-1")
        c.set_mode("nftables")
        listed = k.ruleset("node-1")
        assert "table ip kube-proxy" in listed and "KUBE-SERVICES" not in listed
        assert set(k.connect_many("client", vip(c), 80, 30)) == {"default/web-1", "default/web-2"}
        old = vip(c)
        c.delete("svc", "web")
        assert k.connect("client", old, 80).outcome == c.connect("client", old, 80).outcome == "dropped"
    assert not k.namespaces


def test_conntrack_in_the_node_shows_the_dnat():
    c = small()
    with KernelCluster(c) as k:
        conn = k.connect("client", vip(c), 80)
        entries = [e for e in k.conntrack("node-1") if f"dst={vip(c)}" in e]
        assert len(entries) == 1
        assert f"sport={conn.source_port} dport=80 src={c.pod('web-1').pod_ip}" in entries[0]
        assert conn.latency is not None and 0 < conn.latency < k.timeout


def test_iptables_ruleset_in_the_kernel_holds_every_rendered_rule():
    c = small()
    with KernelCluster(c) as k:
        rendered = [ln for ln in c.render("node-1").splitlines() if ln.startswith("-A ")]
        listed = [ln for ln in k.ruleset("node-1").splitlines() if ln.startswith("-A ")]
        assert len(listed) == len(rendered)


def test_bad_input_names_the_field():
    c = small()
    with KernelCluster(c) as k:
        with pytest.raises(ValueError, match="src"):
            k.connect("nobody", vip(c), 80)
        with pytest.raises(ValueError, match="protocol"):
            k.connect("client", vip(c), 80, protocol="SCTP")
        with pytest.raises(ValueError, match="via"):
            k.connect("client", vip(c), 80, via="node-1")
        conn = k.connect("203.0.113.9", vip(c), 80)             # a ClusterIP from outside, no via
        assert conn.outcome == "dropped" and "no route from outside" in conn.reason
