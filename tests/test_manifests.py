"""Reading manifests: YAML/JSON text, kind: List, paths, dicts, lists; errors; atomic apply."""
from __future__ import annotations

import json
import textwrap

import pytest

import kslib

SVC_A = textwrap.dedent("""\
    apiVersion: v1
    kind: Service
    metadata:
      name: a
    spec:
      selector: {app: a}
      ports:
      - port: 80
    """)
SVC_B = SVC_A.replace("name: a", "name: b").replace("app: a", "app: b")


def svc(name: str, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"port": 80}], **spec}}


def names(c, kind="Service") -> list[str]:
    return [o.name for o in c.list(kind) if o.name != "kubernetes"]


@pytest.fixture
def c():
    return kslib.Cluster(nodes=2)


# ---- sources --------------------------------------------------------------------------------------
def test_multi_document_yaml_with_empty_document(c):
    c.apply(SVC_A + "---\n---\n" + SVC_B + "---\n")
    assert names(c) == ["a", "b"]


def test_apply_returns_stored_objects(c):
    out = c.apply(SVC_A)
    assert [o.name for o in out] == ["a"] and out[0].cluster_ip == c.get("Service", "a").cluster_ip


def test_json_text(c):
    c.apply(json.dumps(svc("j")))
    assert c.get("Service", "j").ports[0].port == 80


def test_json_list_text(c):
    c.apply(json.dumps([svc("j1"), svc("j2")]))
    assert names(c) == ["j1", "j2"]


def test_kind_list_with_status_is_honoured(c):
    doc = {
        "apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
        "items": [
            svc("web", selector={"app": "web"}),
            {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": "web-0", "labels": {"app": "web"}},
             "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "nginx"}]},
             "status": {"phase": "Running", "podIP": "10.244.0.50", "hostIP": "192.168.0.2",
                        "conditions": [{"type": "Ready", "status": "False"}]}},
        ],
    }
    c.apply(doc)
    p = c.pod("web-0")
    assert p.pod_ip == "10.244.0.50" and p.ready is False
    slices = c.endpoint_slices("web")
    eps = [e for s in slices for e in s.endpoints]
    assert len(eps) == 1
    assert eps[0].addresses == ["10.244.0.50"]
    assert eps[0].conditions.ready is False and eps[0].conditions.serving is False


def test_kind_list_as_yaml_text(c):
    text = kslib.dump([kslib.load(SVC_A)[0], kslib.load(SVC_B)[0]], as_list=True)
    assert "kind: List" in text
    c.apply(text)
    assert names(c) == ["a", "b"]


def test_path_to_file(c, tmp_path):
    f = tmp_path / "svc.yaml"
    f.write_text(SVC_A)
    c.apply(str(f))
    assert names(c) == ["a"]


def test_pathlib_path_to_directory(c, tmp_path):
    (tmp_path / "b.yaml").write_text(SVC_B)
    (tmp_path / "a.yml").write_text(SVC_A)
    (tmp_path / "c.json").write_text(json.dumps(svc("c")))
    (tmp_path / "notes.txt").write_text("not a manifest: [")
    c.apply(tmp_path)
    assert names(c) == ["a", "b", "c"]


def test_missing_yaml_file_is_a_manifest_error(c, tmp_path):
    with pytest.raises(kslib.ManifestError, match="does not exist"):
        c.apply(str(tmp_path / "nope.yaml"))


def test_dict(c):
    c.apply(svc("d"))
    assert names(c) == ["d"]


def test_list_mixing_dicts_and_text(c):
    c.apply([svc("d"), SVC_A, [svc("nested")]])
    assert names(c) == ["a", "d", "nested"]


def test_round_trip_through_dump(c):
    c.apply([svc("web", type="NodePort", selector={"app": "web"}),
             svc("lb", type="LoadBalancer", externalTrafficPolicy="Local",
                 ports=[{"name": "http", "port": 80, "targetPort": "http"}, {"name": "dns", "port": 53,
                                                                            "protocol": "UDP"}]),
             svc("fixed", clusterIP="10.96.0.10")])
    text = kslib.dump(c.list("Service"))
    fresh = kslib.Cluster(nodes=2)
    fresh.apply(text)

    def shape(cl):
        return {s.name: (s.cluster_ip, s.type, s.health_check_node_port,
                         [(p.name, p.protocol, p.port, p.target_port, p.node_port) for p in s.ports])
                for s in cl.list("Service")}
    assert shape(fresh) == shape(c)


# ---- bad input ---------------------------------------------------------------------------------------
def manifest_error(c, text) -> str:
    with pytest.raises(kslib.ManifestError) as ei:
        c.apply(text)
    assert isinstance(ei.value, ValueError)
    return str(ei.value)


def test_unclosed_flow_sequence(c):
    assert manifest_error(c, "a: [1, 2") == \
        "manifest: document 1, line 1, column 9: expected ',' or ']', but got '<stream end>'"


def test_tab_indentation_in_second_document(c):
    msg = manifest_error(c, SVC_A + "---\nkind: Service\n\tmetadata: x\n")
    assert msg.startswith("manifest: document 2, line 11, column 1:")
    assert "'\\t'" in msg


def test_bare_string_document(c):
    assert manifest_error(c, SVC_A + "---\nhello\n") == (
        "manifest: document 2 (line 10): expected a Kubernetes object (a mapping with apiVersion and kind), "
        "got str 'hello'")


def test_object_without_kind(c):
    assert manifest_error(c, "apiVersion: v1\nmetadata: {name: x}\n") == \
        "manifest: document 1 (line 1): object has no 'kind'"


def test_object_without_api_version(c):
    assert manifest_error(c, "kind: Service\nmetadata: {name: x}\n") == \
        "manifest: document 1 (line 1): Service has no 'apiVersion'"


def test_bad_json(c):
    assert manifest_error(c, '{"kind": "Service",\n "x": }') == \
        "manifest: document 1, line 2, column 7: Expecting value"


def test_garbage_in_file_names_the_file(c, tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("a: [1, 2")
    assert manifest_error(c, str(f)).startswith(f"{f}: document 1, line 1, column 9:")


def test_port_of_wrong_type_is_a_validation_error(c):
    with pytest.raises(kslib.ValidationError) as ei:
        c.apply(SVC_A.replace("port: 80", "port: abc"))
    assert str(ei.value) == 'The Service "a" is invalid: spec.ports[0].port: Invalid value: "abc": must be an integer'
    assert ei.value.fields == ["spec.ports[0].port"]


def test_bad_manifest_changes_nothing(c):
    before = names(c)
    with pytest.raises(kslib.ManifestError):
        c.apply(SVC_A + "---\n" + "a: [1, 2")
    assert names(c) == before


# ---- kinds kslib does not model ---------------------------------------------------------------------------
def test_ignored_kinds_are_skipped_silently(c, recwarn):
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"k": "v"}}
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
    out = c.apply([cm, ns, svc("d")])
    assert [o.name for o in out] == ["d"]
    assert len(recwarn) == 0


def test_unknown_kind_is_skipped_with_a_warning(c):
    text = "apiVersion: example.com/v1\nkind: Frobnicator\nmetadata: {name: f}\n---\n" + SVC_A
    with pytest.warns(UserWarning, match="kind 'Frobnicator' is not modelled by kslib and was left out") as rec:
        out = c.apply(text)
    assert [o.name for o in out] == ["a"]
    assert "document 1 (line 1)" in str(rec[0].message)


# ---- atomic apply ---------------------------------------------------------------------------------------
def test_failed_batch_changes_nothing(c):
    events = []
    c.subscribe(events.append)
    ips_before = set(c.api.service_ips.bitmap.used)
    ports_before = set(c.api.node_ports.bitmap.used)
    with pytest.raises(kslib.ValidationError) as ei:
        c.apply([svc("a", clusterIP="10.96.0.40", type="NodePort",
                     ports=[{"port": 80, "nodePort": 30040}]),
                 svc("b", sessionAffinity="Sticky")])
    assert ei.value.name == "b"
    assert c.get("Service", "a") is None
    assert c.api.service_ips.bitmap.used == ips_before
    assert c.api.node_ports.bitmap.used == ports_before
    assert events == []
    # A's IP and nodePort can be taken now
    c.apply(svc("a2", clusterIP="10.96.0.40", type="NodePort", ports=[{"port": 80, "nodePort": 30040}]))
    assert [(e.type, e.kind, e.obj.name) for e in events if e.kind == "Service"] == [("ADDED", "Service", "a2")]


def test_failed_batch_keeps_earlier_objects_unchanged(c):
    c.apply(svc("a", selector={"app": "v1"}))
    before = c.get("Service", "a")
    with pytest.raises(kslib.ValidationError):
        c.apply([svc("a", selector={"app": "v2"}), svc("b", type="Foo")])
    assert c.get("Service", "a") == before
    assert c.get("Service", "b") is None


def test_failed_batch_with_internal_error_changes_nothing():
    c = kslib.Cluster(node_port_range="30000-30003")
    with pytest.raises(kslib.InternalError):
        c.apply([svc(f"np{i}", type="NodePort") for i in range(5)])
    assert names(c) == []
    assert c.api.node_ports.bitmap.used == set()
