"""The nft parser: kslib's own render() and the kernel's normalised listing of it compile alike."""
import shutil
import subprocess
import uuid

import pytest

import kslib
from kslib.dataplane.nft import NftError, parse
from kslib.dataplane.program import Compiler


def nft_cluster():
    c = kslib.Cluster(mode="nftables", nodes=2)
    c.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
             "spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP", "ports": [{"port": 80}],
                      "loadBalancerSourceRanges": ["198.51.100.0/24"], "selector": {"app": "web"}},
             "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.200"}]}}})
    for i in range(2):
        c.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"web{i}", "labels": {"app": "web"}},
                 "spec": {"containers": [{"name": "c"}]}})
    return c


def shape(text):
    """What the engine gets from a ruleset: rule rows, matches, chains, hooks and set elements."""
    comp = Compiler()
    comp.add_node(0, nft=parse(text))
    prog = comp.program()
    return (prog.rules.shape, prog.matches.shape, prog.chains.shape, prog.hooks.tolist(),
            sorted(e[1:] for e in comp.elements))


def test_render_parses_and_every_rule_compiles():
    text = nft_cluster().render("node-1")
    rs = parse(text)
    assert rs.name == "kube-proxy" and rs.base["nat-prerouting"] == ("PREROUTING", -100, "nat")
    assert rs.sets["service-ips"].is_map and rs.sets["service-ips"].elements
    assert any(s.timeout == 10800 for s in rs.sets.values())        # the affinity sets
    assert shape(text)[0][0] == len(rs)


@pytest.mark.parametrize("bad, token", [
    ("table ip t {\n chain c {\n  ip daddr 10.0.0.1 log\n }\n}\n", "log"),
    ("table ip t {\n chain c {\n  jump nowhere\n }\n}\n", "nowhere"),
    ("table ip t {\n chain c {\n  ip daddr . th dport vmap @m\n }\n}\n", "@m"),
    ("table inet t {\n}\n", "inet"),
])
def test_what_the_engine_cannot_execute_is_refused_with_line_and_token(bad, token):
    with pytest.raises(NftError) as e:
        parse(bad, source="test")
    assert e.value.token == token and "test line" in str(e.value)


@pytest.mark.skipif(shutil.which("nft") is None or shutil.which("ip") is None, reason="needs nft and ip")
def test_the_kernels_listing_of_render_compiles_to_the_same_tables():
    ns = f"kslibtest-{uuid.uuid4().hex[:8]}"
    if subprocess.run(["ip", "netns", "add", ns], capture_output=True).returncode != 0:
        pytest.skip("cannot create a network namespace here (not root?)")
    try:
        text = nft_cluster().render("node-1")
        subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=text, text=True, check=True,
                       capture_output=True)
        listed = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "ruleset"], text=True, check=True,
                                capture_output=True).stdout
        assert shape(listed) == shape(text)
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
