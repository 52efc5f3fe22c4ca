"""Node taints and pod tolerations: the API server's validation (pkg/apis/core/validation
validateNodeTaints, validateTolerations) and the scheduler's TaintToleration filter and score."""
import pytest

import kslib

CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


def node(name, *taints, labels=None):
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": {"taints": list(taints)} if taints else {}}


def pod(name, *tolerations, node_selector=None):
    spec = {"containers": [{"name": "c", "image": "nginx"}]}
    if tolerations:
        spec["tolerations"] = list(tolerations)
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def invalid(c, obj) -> str:
    with pytest.raises(kslib.ValidationError) as e:
        c.apply(obj)
    return str(e.value)


@pytest.fixture
def c():
    return kslib.Cluster(nodes=0)


def test_pods_stay_off_a_control_plane_node_without_a_toleration(c):
    c.apply([node("cp", CP_TAINT), node("w1")])
    c.apply([pod(f"p{i}") for i in range(4)])
    assert {p.node_name for p in c.pods} == {"w1"}


def test_a_toleration_lets_a_pod_onto_the_tainted_node(c):
    c.apply([node("cp", CP_TAINT)])
    c.apply([pod("plain"), pod("tolerant", {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
                                             "effect": "NoSchedule"})])
    assert (c.pod("plain").node_name, c.pod("tolerant").node_name) == ("", "cp")
    assert c.pod("plain").to_dict()["status"]["phase"] == "Pending" and not c.pod("plain").pod_ip


@pytest.mark.parametrize("toleration, ok", [
    ({"operator": "Exists"}, True),                                           # empty key + Exists: everything
    ({"key": "dedicated", "operator": "Exists"}, True),                       # any value, any effect
    ({"key": "dedicated", "value": "db", "effect": "NoSchedule"}, True),      # operator defaults to Equal
    ({"key": "dedicated", "operator": "Equal", "value": "web"}, False),       # another value
    ({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}, False),  # another effect
    ({"key": "other", "operator": "Exists"}, False),
])
def test_toleration_matching(c, toleration, ok):
    c.apply([node("n", {"key": "dedicated", "value": "db", "effect": "NoSchedule"})])
    c.apply([pod("p", toleration)])
    assert (c.pod("p").node_name == "n") is ok


def test_no_execute_filters_and_prefer_no_schedule_only_scores(c):
    c.apply([node("a", {"key": "x", "effect": "NoExecute"}), node("b", {"key": "y", "effect": "PreferNoSchedule"})])
    c.apply([pod("p1"), pod("p2"), pod("p3")])
    assert {p.node_name for p in c.pods} == {"b"}              # a soft taint does not keep pods off a node
    c.apply([node("c")])
    c.apply([pod("p4")])
    assert c.pod("p4").node_name == "c"                        # ... but a node without one wins


def test_taints_round_trip_through_a_dump(c):
    c.apply([node("cp", CP_TAINT)])
    text = c.dump(kinds=("Node",))
    fresh = kslib.Cluster(nodes=0)
    fresh.apply(text)
    assert fresh.nodes[0].taints == [CP_TAINT]


def test_taint_validation_messages(c):
    assert invalid(c, node("n", {"key": "x", "effect": "Sometimes"})) == (
        'The Node "n" is invalid: spec.taints[0].effect: Unsupported value: "Sometimes": supported values: '
        '"NoSchedule", "PreferNoSchedule", "NoExecute"')
    assert invalid(c, node("n", {"key": "x"})) == 'The Node "n" is invalid: spec.taints[0].effect: Required value'
    assert invalid(c, node("n", {"key": "x", "effect": "NoSchedule"}, {"key": "x", "value": "2", "effect": "NoSchedule"})) == (
        'The Node "n" is invalid: spec.taints[1]: Duplicate value: core.Taint{Key:"x", Value:"2", '
        'Effect:"NoSchedule", TimeAdded:<nil>}: taints must be unique by key and effect pair')
    assert c.nodes == []                                       # nothing was stored


def test_toleration_validation_messages(c):
    c.apply([node("n")])
    assert invalid(c, pod("p", {"key": "k", "operator": "Exists", "value": "v"})) == (
        'The Pod "p" is invalid: spec.tolerations[0].operator: Invalid value: core.Toleration{Key:"k", '
        'Operator:"Exists", Value:"v", Effect:"", TolerationSeconds:(*int64)(nil)}: value must be empty when '
        "`operator` is 'Exists'")
    assert invalid(c, pod("p", {"operator": "Equal", "value": "v"})) == (
        'The Pod "p" is invalid: spec.tolerations[0].operator: Invalid value: "Equal": operator must be Exists '
        'when `key` is empty, which means "match all values and all keys"')
    assert invalid(c, pod("p", {"key": "k", "operator": "In"})) == (
        'The Pod "p" is invalid: spec.tolerations[0].operator: Unsupported value: "In": supported values: '
        '"Equal", "Exists"')
    assert invalid(c, pod("p", {"key": "k", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 5})) == (
        'The Pod "p" is invalid: spec.tolerations[0].effect: Invalid value: "NoSchedule": effect must be '
        "'NoExecute' when `tolerationSeconds` is set")
    assert c.pods == []
