"""The nft parser: kslib's own render() and the kernel's normalised listing of it compile alike."""

import pytest

import kslib
from kslib.dataplane.nft import NftError, parse
from kslib.dataplane.program import Compiler
from kslib.lab.netns import Namespaces
from kslib.lab.netns import available as lab_available


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


@pytest.mark.kernel
def test_the_kernels_listing_of_render_compiles_to_the_same_tables():
    ok, reason = lab_available("nftables")
    if not ok:
        pytest.skip(reason)
    lab = Namespaces()
    try:
        (ns,) = lab.add("nft")
        text = nft_cluster().render("node-1")
        lab.exec(ns, ["nft", "-f", "-"], input=text)
        listed = lab.exec(ns, ["nft", "list", "ruleset"]).stdout
        assert shape(listed) == shape(text)
    finally:
        lab.close()
